"""Synthetic count grids and QA chats: exact answers (4- vs 8-connectivity), objects checked against independent
connected components, the size curriculum, pinned chats, the answer-only loss mask, seeded and resumable shards,
impossible settings, and the generate.py entry point."""
import doctest
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from scipy import ndimage

import arc_exp.synthetic.count
import arc_exp.synthetic.questions
from arc_exp.data.encoders import create_grid_encoder
from arc_exp.synthetic import (
    QUESTION_TYPES,
    CountConfig,
    CountGrid,
    CountGridGenerator,
    CountQAGenerator,
    GeneratorSettingsError,
    GridObject,
    OutputMismatchError,
    Question,
    QuestionConfig,
    answer,
    build_chat,
    find_objects,
    load_chats,
    load_records,
    make_rng,
    write_shards,
)
from arc_exp.data.samples import chat_sample
from arc_exp.synthetic.questions import SYSTEM_PROMPT, ask_questions

ROOT = Path(__file__).resolve().parents[1]

# Color 1 touches itself only at a corner at the top left: two objects with 4-connectivity, one with 8.
HAND_DRAWN = [[0, 1, 0, 0, 2],
              [1, 0, 0, 2, 2],
              [0, 0, 3, 0, 0],
              [1, 1, 0, 0, 1]]


def bfs_objects(grid, background, connectivity):
    """Independent reference: connected components by breadth-first search, as sorted (color, cells) pairs."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    height, width = len(grid), len(grid[0])
    seen, found = set(), []
    for r in range(height):
        for c in range(width):
            if grid[r][c] == background or (r, c) in seen:
                continue
            color, queue, cells = grid[r][c], [(r, c)], []
            seen.add((r, c))
            while queue:
                cell = queue.pop()
                cells.append(cell)
                for dr, dc in steps:
                    nr, nc = cell[0] + dr, cell[1] + dc
                    if 0 <= nr < height and 0 <= nc < width and grid[nr][nc] == color and (nr, nc) not in seen:
                        seen.add((nr, nc))
                        queue.append((nr, nc))
            found.append((color, tuple(sorted(cells))))
    return sorted(found, key=lambda item: item[1][0])


def reference_answer(question: Question, grid: CountGrid):
    """The answer computed from the grid alone (BFS), never from the generator's metadata."""
    objects = bfs_objects(grid.grid, grid.background, question.connectivity or 4)
    areas = sorted(len(cells) for _, cells in objects)
    kind = question.type
    if kind == "count":
        return str(len(objects))
    if kind == "areas":
        return ", ".join(map(str, areas)) or "none"
    if kind in ("biggest_area", "smallest_area"):
        return (str(max(areas)) if kind == "biggest_area" else str(min(areas))) if areas else None
    if kind == "count_color":
        return str(sum(color == question.color for color, _ in objects))
    if kind == "background":
        return str(grid.background)
    if kind == "shape":
        return f"{len(grid.grid)}x{len(grid.grid[0])}"
    cells = Counter(v for row in grid.grid for v in row if v != grid.background)
    ranked = cells.most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return str(ranked[0][0])


# --- hand-drawn grids: exact answers --------------------------------------------------------------------------------

def test_hand_drawn_objects_under_4_and_8_connectivity():
    grid = CountGrid.from_grid(HAND_DRAWN, background=0)
    assert [(o.color, o.cells) for o in grid.objects[4]] == [
        (1, ((0, 1),)), (2, ((0, 4), (1, 3), (1, 4))), (1, ((1, 0),)), (3, ((2, 2),)), (1, ((3, 0), (3, 1))),
        (1, ((3, 4),))]
    assert [(o.color, o.cells) for o in grid.objects[8]] == [
        (1, ((0, 1), (1, 0))), (2, ((0, 4), (1, 3), (1, 4))), (3, ((2, 2),)), (1, ((3, 0), (3, 1))),
        (1, ((3, 4),))]
    assert grid.objects[8][0] == GridObject(1, ((0, 1), (1, 0)), (0, 0, 1, 1))
    assert grid.objects[8][1].bbox == (0, 3, 1, 4) and grid.objects[8][1].area == 3


@pytest.mark.parametrize("question, expected", [
    (Question("count", connectivity=4), "6"),
    (Question("count", connectivity=8), "5"),
    (Question("areas", connectivity=4), "1, 1, 1, 1, 2, 3"),
    (Question("areas", connectivity=8), "1, 1, 2, 2, 3"),
    (Question("biggest_area", connectivity=4), "3"),
    (Question("smallest_area", connectivity=8), "1"),
    (Question("count_color", connectivity=4, color=1), "4"),
    (Question("count_color", connectivity=8, color=1), "3"),
    (Question("count_color", connectivity=8, color=2), "1"),
    (Question("count_color", connectivity=4, color=5), "0"),
    (Question("background"), "0"),
    (Question("shape"), "4x5"),
    (Question("most_common_color"), "1"),
])
def test_hand_drawn_answers(question, expected):
    grid = CountGrid.from_grid(HAND_DRAWN, background=0)
    assert answer(question, grid) == expected
    assert reference_answer(question, grid) == expected


def test_questions_without_a_single_answer():
    empty = CountGrid.from_grid([[5, 5], [5, 5]], background=5)
    assert answer(Question("count", connectivity=8), empty) == "0"
    assert answer(Question("areas", connectivity=4), empty) == "none"
    assert answer(Question("biggest_area", connectivity=4), empty) is None
    assert answer(Question("most_common_color"), empty) is None
    tie = CountGrid.from_grid([[0, 1, 0, 2]], background=0)
    assert answer(Question("most_common_color"), tie) is None
    assert answer(Question("background"), empty, color_names="ñò÷ûąćďęĚĞ") == "ć"


# --- generated grids: metadata against independent connected components ---------------------------------------------

@pytest.fixture(scope="module")
def generated():
    generator = CountGridGenerator(CountConfig())
    rng = make_rng(0, 0)
    return [generator.generate(rng) for _ in range(400)]


def test_generated_objects_are_exactly_the_connected_components(generated):
    differ = {4: 0, 8: 0}  # grids whose objects differ between connectivities, by the one they were placed for
    for grid in generated:
        array = np.array(grid.grid)
        for connectivity in (4, 8):
            objects = grid.objects[connectivity]
            # scipy labelling, per color: same number of components as objects of that color, and the same cells
            for color in set(array.ravel().tolist()) - {grid.background}:
                labels, n = ndimage.label(array == color, ndimage.generate_binary_structure(2, connectivity // 4))
                mine = [o for o in objects if o.color == color]
                assert len(mine) == n
                assert sorted(o.cells for o in mine) == sorted(
                    tuple(zip(*np.nonzero(labels == i))) for i in range(1, n + 1))
            assert [(o.color, o.cells) for o in objects] == bfs_objects(grid.grid, grid.background, connectivity)
            assert objects == find_objects(array, grid.background, connectivity)
            for obj in objects:
                rows, cols = zip(*obj.cells)
                assert obj.bbox == (min(rows), min(cols), max(rows), max(cols))
                assert all(grid.grid[r][c] == obj.color for r, c in obj.cells)
        differ[grid.connectivity] += grid.objects[4] != grid.objects[8]
        values = Counter(array.ravel().tolist())
        assert values.most_common(1)[0][0] == grid.background and values[grid.background] > array.size / 2
    # Both ways of differing occur: 8-connected shapes that split under 4, 4-separated objects that join under 8.
    assert differ[4] > 20 and differ[8] > 20


def test_answers_of_generated_chats_match_an_independent_count():
    generator = CountQAGenerator(questions={"max_grids": 3, "multi_grid_prob": 0.5})
    rng, checked = make_rng(1, 0), Counter()
    for i in range(150):
        record = generator.sample(rng, str(i))
        grids = [CountGrid.from_dict(g) for g in record["grids"]]
        for q in record["questions"]:
            question = Question(q["type"], q["grid"], q["connectivity"], q["color"])
            assert q["answer"] == reference_answer(question, grids[question.grid])
            checked[question.type] += 1
    assert set(checked) == set(QUESTION_TYPES)


# --- curriculum and other distributions ------------------------------------------------------------------------------

def test_curriculum_probabilities():
    assert CountConfig(min_side=3, max_side=5, max_objects=4).side_probabilities() == pytest.approx(
        {3: 20 / 47, 4: 15 / 47, 5: 12 / 47})
    default = CountConfig().side_probabilities()
    assert list(default) == list(range(3, 31))
    assert default[3] == pytest.approx(0.133601, abs=1e-6) and default[30] == pytest.approx(0.0133601, abs=1e-7)
    assert CountConfig(size_power=0).side_probabilities()[30] == pytest.approx(1 / 28)


def test_curriculum_size_distribution_of_generated_grids(generated):
    heights = Counter(len(g.grid) for g in generated)
    sides = [len(g.grid) for g in generated] + [len(g.grid[0]) for g in generated]
    expected = CountConfig().side_probabilities()
    small = sum(p for s, p in expected.items() if s <= 10)  # 0.573
    assert small == pytest.approx(0.5727, abs=1e-4)
    assert sum(s <= 10 for s in sides) / len(sides) == pytest.approx(small, abs=0.04)
    # more small grids than big: each band of sides is rarer than the one before
    bands = [sum(heights[s] for s in band) for band in (range(3, 6), range(6, 11), range(11, 21), range(21, 31))]
    assert bands[0] > bands[1] and bands[1] + bands[0] > bands[2] + bands[3] and bands[2] > bands[3]
    assert sum(g.background == 0 for g in generated) / len(generated) == pytest.approx(0.8, abs=0.06)
    assert min(sides) == 3 and max(sides) == 30


# --- chats ---------------------------------------------------------------------------------------------------------

def test_chat_is_pinned():
    grid = CountGrid.from_grid([[0, 1], [1, 0]], background=0)
    questions = [Question("count", 0, 8), Question("areas", 0, 4), Question("count_color", 0, 4, 1)]
    messages = build_chat([grid], questions, create_grid_encoder("grid_shape_row_number"))
    assert messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content":
            "Here is a grid from an ARC task:\n\n```grid shape: 2x2\n1 01\n2 10\n```\n\n"
            "Objects are groups of cells of the same color, other than the background, that touch through their "
            "sides (4-connectivity) or also through their corners (8-connectivity). Answer each question with the "
            "answer only.\n\nHow many objects are there with 8-connectivity?"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "What are the areas of the objects with 4-connectivity, in ascending order?"},
        {"role": "assistant", "content": "1, 1"},
        {"role": "user", "content": "How many objects of color 1 are there with 4-connectivity?"},
        {"role": "assistant", "content": "2"},
    ]


def test_short_chat_is_pinned_and_survives_rendering_with_another_encoder(tmp_path, tokenizer):
    grid = CountGrid.from_grid([[0, 1], [1, 0]], background=0)
    questions = [Question("count", 0, 8), Question("count", 0, 4)]
    messages = build_chat([grid], questions, create_grid_encoder("grid_shape_row_number"), style="short")
    assert messages == [
        {"role": "system", "content": "Answer questions about ARC grids."},
        {"role": "user", "content": "```grid shape: 2x2\n1 01\n2 10\n```\nHow many objects are there with "
                                    "8-connectivity?"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "How many objects are there with 4-connectivity?"},
        {"role": "assistant", "content": "2"},
    ]
    full = build_chat([grid], questions, create_grid_encoder("grid_shape_row_number"))
    # the point of the short style: fewer tokens per chat for the same questions and answers
    assert (len(chat_sample(messages, tokenizer)), len(chat_sample(full, tokenizer))) == (81, 187)
    # a generated record keeps its style, so training's re-rendering with the run's encoder stays short; full-style
    # records stay as they were (no "style" key, the same describe()), so earlier outputs still resume
    generator = CountQAGenerator(questions={"types": ["count"]}, style="short")
    assert generator.describe()["style"] == "short" and "style" not in CountQAGenerator().describe()
    write_shards(generator, n=2, out=tmp_path / "short", seed=0, shard_size=2, workers=1)
    record = next(load_records(tmp_path / "short"))
    assert record["style"] == "short" and "style" not in CountQAGenerator().sample(make_rng(0, 0))
    minimal = next(load_chats(tmp_path / "short", encoder="minimal"))
    grid_text = "\n".join("".join(map(str, row)) for row in record["grids"][0]["grid"])
    assert minimal[0] == {"role": "system", "content": "Answer questions about ARC grids."}
    assert minimal[1]["content"].startswith(f"{grid_text}\nHow many objects")
    with pytest.raises(GeneratorSettingsError, match="style='tiny': unknown chat style; known styles: full, short"):
        CountQAGenerator(style="tiny")


def test_chat_with_several_grids_and_symbol_colors():
    grids = [CountGrid.from_grid([[0, 1]], 0), CountGrid.from_grid([[3, 3], [2, 3]], 3)]
    encoder = create_grid_encoder("ReplaceNumberEncoder(MinimalGridEncoder())")
    messages = build_chat(grids, [Question("background", 1), Question("count_color", 0, 4, 1)], encoder)
    assert messages[1]["content"].startswith("Here are 2 grids from ARC tasks:\n\n## Grid 1\n\nñò\n\n## Grid 2\n\n"
                                             "ûû\n÷û\n\nObjects are")
    assert messages[1]["content"].endswith("\n\nIn grid 2, what is the background color?")
    assert messages[2:] == [{"role": "assistant", "content": "û"},
                            {"role": "user", "content": "In grid 1, how many objects of color ò are there with "
                                                        "4-connectivity?"},
                            {"role": "assistant", "content": "1"}]


def test_question_order_is_random_per_chat():
    grids, rng = CountGridGenerator(), make_rng(2, 0)
    config = QuestionConfig(types=("background", "shape"), min_questions=2, max_questions=2, multi_grid_prob=0.0)
    orders = Counter(tuple(q.type for q, _ in ask_questions([grids.generate(rng)], rng, config)) for _ in range(200))
    assert set(orders) == {("background", "shape"), ("shape", "background")}
    assert 80 <= orders[("background", "shape")] <= 120
    # with every type: distinct questions, and any type may come first
    config, first = QuestionConfig(), Counter()
    for _ in range(300):
        asked = ask_questions([grids.generate(rng)], rng, config)
        assert len({q for q, _ in asked}) == len(asked) >= 3
        first[asked[0][0].type] += 1
    assert set(first) == set(QUESTION_TYPES)


def test_answer_only_loss_mask_on_a_multi_turn_chat():
    folder = Path(os.environ.get("ARC_EXP_CACHE", Path.home() / ".cache" / "arc_exp")) / "models" / "smollm2-135m"
    if not (folder / "tokenizer.json").exists():
        pytest.skip("the SmolLM2 tokenizer is not converted yet (run make setup / train once)")
    from transformers import AutoTokenizer

    from arc_exp.data.samples import IGNORE_INDEX, chat_sample

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    grid = CountGrid.from_grid(HAND_DRAWN, background=0)
    questions = [Question("count", 0, 4), Question("areas", 0, 8), Question("shape")]
    sample = chat_sample(build_chat([grid], questions, create_grid_encoder("minimal")), tokenizer)
    answer_ids = [t for t, label in zip(sample.input_ids, sample.labels) if label != IGNORE_INDEX]
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(sample.input_ids, sample.labels))
    assert tokenizer.decode(answer_ids) == "6<|im_end|>\n1, 1, 2, 2, 3<|im_end|>\n4x5<|im_end|>\n"
    prompt = tokenizer.decode([t for t, label in zip(sample.input_ids, sample.labels) if label == IGNORE_INDEX])
    assert "How many objects are there with 4-connectivity?" in prompt and "01002\n10022" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


# --- shards: seeded, independent of workers, resumable; reading back -------------------------------------------------

def test_shards_are_seeded_and_independent_of_the_number_of_processes(tmp_path):
    generator = CountQAGenerator()
    one = write_shards(generator, n=50, out=tmp_path / "one", seed=3, shard_size=20, workers=1)
    two = write_shards(CountQAGenerator(), n=50, out=tmp_path / "two", seed=3, shard_size=20, workers=2)
    again = write_shards(generator, n=50, out=tmp_path / "again", seed=3, shard_size=20, workers=1)
    other = write_shards(generator, n=50, out=tmp_path / "other", seed=4, shard_size=20, workers=1)
    names = ["manifest.json", "shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == names
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    assert (tmp_path / "one" / names[1]).read_bytes() != (tmp_path / "other" / names[1]).read_bytes()
    assert (one.shards, one.written, one.samples, two.samples, again.samples, other.samples) == (3, 3, 50, 50, 50, 50)
    records = list(load_records(tmp_path / "one"))
    assert [r["id"] for r in records[:2]] == ["count-3-00000000", "count-3-00000001"]
    assert len(records) == 50 and records[49]["id"] == "count-3-00000049"


def test_an_interrupted_run_continues_from_its_complete_shards(tmp_path):
    out = tmp_path / "count"
    write_shards(CountQAGenerator(), n=45, out=out, seed=0, shard_size=15, workers=1)
    complete = {p.name: p.read_bytes() for p in out.glob("shard-*.jsonl")}
    kept = (out / "shard-00000.jsonl").stat().st_mtime_ns
    (out / "shard-00001.jsonl").unlink()                      # never finished
    (out / ".shard-00001.jsonl.tmp").write_text('{"half": ')   # the temporary file it left
    summary = write_shards(CountQAGenerator(), n=45, out=out, seed=0, shard_size=15, workers=1)
    assert (summary.shards, summary.written, summary.samples) == (3, 1, 15)
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.jsonl")} == complete
    assert (out / "shard-00000.jsonl").stat().st_mtime_ns == kept
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(OutputMismatchError, match=r"seed: 0 -> 1"):
        write_shards(CountQAGenerator(), n=45, out=out, seed=1, shard_size=15, workers=1)
    with pytest.raises(OutputMismatchError, match=r"generator.grids.max_side: 30 -> 10"):
        write_shards(CountQAGenerator(grids={"max_side": 10}), n=45, out=out, seed=0, shard_size=15, workers=1)


def test_load_chats_as_stored_or_with_another_encoder(tmp_path):
    write_shards(CountQAGenerator(), n=6, out=tmp_path / "count", seed=0, shard_size=3, workers=1)
    stored = list(load_chats(tmp_path / "count"))
    assert stored == list(load_chats(str(tmp_path / "count" / "shard-*.jsonl")))
    assert len(stored) == 6 and all(m["role"] == ("user", "assistant")[i % 2]
                                    for chat in stored for i, m in enumerate(chat[1:]))
    record = next(load_records(tmp_path / "count"))
    assert stored[0][1]["content"].startswith("Here is a grid from an ARC task:\n\n```grid shape: ")
    minimal = next(load_chats(tmp_path / "count" / "shard-00000.jsonl", encoder="minimal", system_prompt="S"))
    grid_text = "\n".join("".join(map(str, row)) for row in record["grids"][0]["grid"])
    assert minimal[0] == {"role": "system", "content": "S"}
    assert minimal[1]["content"].startswith(f"Here is a grid from an ARC task:\n\n{grid_text}\n\nObjects are")
    assert [m["content"] for m in minimal[2::2]] == [m["content"] for m in stored[0][2::2]]
    assert [m["content"] for m in minimal[2::2]] == [q["answer"] for q in record["questions"]]
    with pytest.raises(FileNotFoundError, match="no generated shards"):
        list(load_chats(tmp_path / "missing"))


# --- impossible settings ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"grids": {"max_side": 31}}, r"grids.max_side=31: grid sides must be integers in 1..30"),
    ({"grids": {"min_side": 0}}, r"grids.min_side=0: grid sides must be integers in 1..30"),
    ({"grids": {"min_side": 12, "max_side": 10}}, r"grids.min_side=12: larger than max_side=10"),
    ({"grids": {"max_side": 4, "max_objects": 20}}, r"grids.max_objects=20: more objects than cells .* 4x4 grid"),
    ({"grids": {"min_side": 2, "min_objects": 2}}, r"grids.min_objects=2: more objects than cells .* 2x2 grid"),
    ({"grids": {"max_fill": 0.6}}, r"grids.max_fill=0.6"),
    ({"grids": {"shape_weights": {"circle": 1}}}, r"unknown shape\(s\) \['circle'\]"),
    ({"grids": {"max_sides": 10}}, r"unknown setting\(s\) \['max_sides'\] under grids"),
    ({"questions": {"types": ["count", "colour"]}}, r"questions.types=\['count', 'colour'\]: unknown question "
                                                     r"type\(s\) \['colour'\]; known types: count, areas"),
    ({"questions": {"min_questions": 4, "max_questions": 2}}, r"questions.max_questions=2"),
])
def test_impossible_settings_raise_one_clear_error(tmp_path, settings, message):
    with pytest.raises(GeneratorSettingsError, match=message):
        write_shards(CountQAGenerator(**settings), n=10, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing started


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(ValueError, match="shard_size=0"):
        write_shards(CountQAGenerator(), n=10, out=tmp_path, shard_size=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputMismatchError, match="is a file"):
        write_shards(CountQAGenerator(), n=10, out=tmp_path / "file")


# --- Hydra config and entry point ------------------------------------------------------------------------------------

def test_generate_config_composes_the_default_generator():
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("generate", overrides=["out=x", "encoder=minimal", "generator.grids.max_side=10"])
        generator = instantiate(cfg.generator, encoder=instantiate(cfg.encoder))
        assert generator.grid_config == CountConfig(max_side=10)  # the YAML spells out the code defaults
        assert generator.question_config == QuestionConfig()
        assert repr(generator.encoder) == "MinimalGridEncoder()"
        bad = compose("generate", overrides=["out=x", "generator.questions.types=[count,colour]"])
        with pytest.raises(InstantiationException, match="unknown question type"):
            instantiate(bad.generator, encoder=instantiate(bad.encoder))


@pytest.mark.parametrize("override, key, message", [
    ("generator.grids.max_side=abc", "generator.grids.max_side", "could not be converted to Integer"),
    ("generator.questions.max_grids=1.5", "generator.questions.max_grids", "could not be converted to Integer"),
    ("generator.grids.maxside=10", "generator.grids.maxside", "Key 'maxside' not in 'CountGridsSchema'"),
])
def test_generator_settings_are_typed_when_composing(override, key, message):
    """The count generator's schemas are derived from CountConfig and QuestionConfig (arc_exp/schemas.py): a value
    of the wrong type or an unknown key stops the composition, naming the key."""
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as error:
            compose("generate", overrides=["out=x", override])
    text = f"{error.value}\n{error.value.__cause__}"
    assert message in text and key in text


def test_generate_entry_point_writes_the_library_output(tmp_path):
    command = [sys.executable, str(ROOT / "generate.py"), "n=30", f"out={tmp_path / 'cli'}", "shard_size=20",
               "workers=1", f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    write_shards(CountQAGenerator(), n=30, out=tmp_path / "lib", shard_size=20, workers=1)
    for name in ("manifest.json", "shard-00000.jsonl", "shard-00001.jsonl"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["generator"]["encoder"] == \
        "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))"


def test_the_schemas_import_the_generator_settings_without_scipy():
    """arc_exp/schemas.py derives the count generator's schemas from CountConfig and QuestionConfig; scipy (~0.4 s)
    is imported only where grids are labelled, so ``--cfg job`` answers at once. The structures written out in
    objects.py are scipy's."""
    from scipy import ndimage

    from arc_exp.synthetic.objects import STRUCTURES

    code = "import sys, arc_exp.schemas; print('scipy' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
    for connectivity, rank in ((4, 1), (8, 2)):
        expected = ndimage.generate_binary_structure(2, rank)
        assert STRUCTURES[connectivity].dtype == expected.dtype and (STRUCTURES[connectivity] == expected).all()


def test_doctests():
    for module in (arc_exp.synthetic.count, arc_exp.synthetic.questions):
        assert doctest.testmod(module).failed == 0
