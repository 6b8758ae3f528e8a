"""Task selection: explicit ids, small grids, seeded train/val split, seeded sample, first N, and TaskSetSpec."""
import pytest
from omegaconf import OmegaConf

from arc_exp.data.selection import (
    TaskSetSpec,
    UnknownTaskIdError,
    largest_grid_side,
    select_tasks,
    split_val_ids,
)
from arc_exp.data.sources import load_source
from arc_exp.data.tasks import Task


@pytest.fixture(scope="module")
def arc1():
    return load_source("arc1-training")


def ids(tasks):
    return [t.task_id for t in tasks]


def tiny_task(task_id: str, side: int, source: str = "tiny.json") -> Task:
    """A task whose largest grid is ``side`` x 1 (in the test output)."""
    data = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]] * side}]}
    return Task.from_dict(task_id, data, source=source)


# --- pinned selections of arc1-training -----------------------------------------------------------------------------

def test_sample_is_seeded_and_kept_in_id_order(arc1):
    assert ids(select_tasks(arc1, sample_n=5, seed=0)) == ["1190e5a7", "57aa92db", "83302e8f", "8efcae92", "f76d97a5"]
    assert ids(select_tasks(arc1, sample_n=5, seed=1)) == ["1e32b0e9", "321b1fc6", "56dc2b01", "ba26e723", "f8c80d96"]


def test_sample_does_not_depend_on_input_order(arc1):
    assert ids(select_tasks(arc1[::-1], sample_n=5, seed=0)) == [
        "f76d97a5", "8efcae92", "83302e8f", "57aa92db", "1190e5a7"
    ]


def test_split_is_seeded_and_pinned(arc1):
    val = ["045e512c", "05269061", "137eaa0f", "150deff5", "1b60fb0c"]
    assert ids(select_tasks(arc1, split="val", first_n=5)) == val
    train = ["007bbfb7", "00d62c1b", "017c7c7b", "025d127b", "0520fde7"]
    assert ids(select_tasks(arc1, split="train", first_n=5)) == train
    assert ids(select_tasks(arc1, split="val", seed=7, first_n=3)) == ["017c7c7b", "045e512c", "06df4c85"]


def test_split_sizes_and_disjointness(arc1):
    val = ids(select_tasks(arc1, split="val"))
    train = ids(select_tasks(arc1, split="train"))
    assert (len(val), len(train)) == (80, 320)
    assert set(val).isdisjoint(train)
    assert sorted(val + train) == ids(arc1)
    assert len(select_tasks(arc1, split="val", val_fraction=0.1)) == 40


def test_split_is_stable_under_input_order_and_repeated_calls(arc1):
    val = ids(select_tasks(arc1, split="val", seed=3))
    assert ids(select_tasks(arc1[::-1], split="val", seed=3)) == val[::-1]
    assert ids(select_tasks(arc1, split="val", seed=3)) == val


def test_max_grid_side_keeps_small_tasks(arc1):
    assert ids(select_tasks(arc1, max_grid_side=4)) == [
        "0d3d703e", "25d8a9c8", "25ff71a9", "27a28665", "3c9b0459", "44f52bb0", "5582e5ca", "6150a2bd",
        "6e02f1e3", "74dd1130", "794b24be", "9565186b", "a85d4709", "d037b0a7", "ed36ccf7",
    ]


def test_split_applies_to_the_filtered_set(arc1):
    # 25 tasks have every grid within 5x5; round(25 * 0.2) = 5 of them are val
    assert ids(select_tasks(arc1, max_grid_side=5, split="val")) == [
        "0d3d703e", "44f52bb0", "9565186b", "aedd82e4", "ed36ccf7"
    ]
    assert len(select_tasks(arc1, max_grid_side=5, split="train")) == 20


def test_all_filters_together(arc1):
    assert ids(select_tasks(arc1, max_grid_side=6, split="train", sample_n=3, seed=2)) == [
        "25ff71a9", "44f52bb0", "a85d4709"
    ]


# --- task_ids, first_n, sample_n on tiny tasks ----------------------------------------------------------------------

def test_task_ids_keep_the_given_order(arc1):
    chosen = ["ff805c23", "007bbfb7", "3c9b0459"]
    assert ids(select_tasks(arc1, task_ids=chosen)) == chosen
    assert ids(select_tasks(arc1, task_ids="3c9b0459")) == ["3c9b0459"]


def test_task_ids_then_first_n(arc1):
    assert ids(select_tasks(arc1, task_ids=["ff805c23", "007bbfb7", "3c9b0459"], first_n=2)) == ["ff805c23", "007bbfb7"]


def test_unknown_task_ids_name_the_ids_and_the_source(arc1):
    with pytest.raises(UnknownTaskIdError) as error:
        select_tasks(arc1, task_ids=["007bbfb7", "deadbeef", "0000000a"])
    assert str(error.value) == "task_ids not in arc1-training: deadbeef, 0000000a"
    with pytest.raises(UnknownTaskIdError, match="^task_ids not in my-set: deadbeef$"):
        select_tasks(arc1, task_ids=["deadbeef"], source="my-set")


def test_unknown_task_id_in_a_set_of_files():
    tasks = [tiny_task("a", 1, "d/a.json"), tiny_task("b", 1, "d/b.json"), tiny_task("c", 1, "d/c.json")]
    with pytest.raises(UnknownTaskIdError, match="^task_ids not in d/a.json and 2 other files: x$"):
        select_tasks(tasks, task_ids=["x"])


def test_task_ids_must_be_unique_strings():
    tasks = [tiny_task("a", 1)]
    with pytest.raises(ValueError, match="^task_ids lists a more than once$"):
        select_tasks(tasks, task_ids=["a", "a"])
    # what YAML makes of an unquoted 00576224: an octal int
    with pytest.raises(ValueError, match=r"^task_ids must be strings, got 195732 \(int\); quote task ids in YAML"):
        select_tasks(tasks, task_ids=[195732])
    with pytest.raises(ValueError, match="^task_ids must be a list of task ids, got 5$"):
        select_tasks(tasks, task_ids=5)


def test_first_n_and_sample_n_are_upper_bounds():
    tasks = [tiny_task(c, 1) for c in "abc"]
    assert ids(select_tasks(tasks, first_n=2)) == ["a", "b"]
    assert ids(select_tasks(tasks, first_n=10)) == ["a", "b", "c"]
    assert ids(select_tasks(tasks, sample_n=10)) == ["a", "b", "c"]
    assert ids(select_tasks(tasks)) == ["a", "b", "c"]


def test_largest_grid_side_counts_test_outputs():
    assert largest_grid_side(tiny_task("a", 7)) == 7
    assert ids(select_tasks([tiny_task("a", 7), tiny_task("b", 3)], max_grid_side=6)) == ["b"]


def test_split_val_ids():
    assert split_val_ids(list("abcdefghij"), seed=0, val_fraction=0.3) == {"b", "h", "i"}
    assert split_val_ids(list("jihgfedcba"), seed=0, val_fraction=0.3) == {"b", "h", "i"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"first_n": 0}, "first_n must be an integer >= 1 or null, got 0"),
        ({"sample_n": -1}, "sample_n must be an integer >= 1 or null, got -1"),
        ({"max_grid_side": 2.5}, "max_grid_side must be an integer >= 1 or null, got 2.5"),
        ({"first_n": True}, "first_n must be an integer >= 1 or null, got True"),
        ({"seed": "1"}, "seed must be an integer, got '1'"),
        ({"split": "test"}, "split must be one of train, val or null, got 'test'"),
        ({"val_fraction": 0}, "val_fraction must be a number strictly between 0 and 1, got 0"),
        ({"val_fraction": 1.0}, "val_fraction must be a number strictly between 0 and 1, got 1.0"),
        ({"val_fraction": "0.2"}, "val_fraction must be a number strictly between 0 and 1, got '0.2'"),
    ],
)
def test_bad_values_name_the_key(kwargs, message):
    with pytest.raises(ValueError) as error:
        select_tasks([tiny_task("a", 1)], **kwargs)
    assert str(error.value) == message


# --- TaskSetSpec ------------------------------------------------------------------------------------------------------

def test_spec_from_dict_config_ignores_prompt_and_weight():
    config = OmegaConf.create({
        "source": "arc1-training", "prompt": "predict_output", "weight": 2.0,
        "task_ids": ["ff805c23", "007bbfb7", "3c9b0459"], "first_n": 2,
    })
    spec = TaskSetSpec.from_config(config)
    assert spec == TaskSetSpec(source="arc1-training", task_ids=["ff805c23", "007bbfb7", "3c9b0459"], first_n=2)
    assert type(spec.task_ids) is list
    assert ids(spec.load()) == ["ff805c23", "007bbfb7"]


def test_spec_load_pinned_split():
    spec = TaskSetSpec.from_config({"source": "arc1-training", "split": "val", "max_grid_side": 5})
    assert ids(spec.load()) == ["0d3d703e", "44f52bb0", "9565186b", "aedd82e4", "ed36ccf7"]


def test_spec_load_names_the_source_for_unknown_ids(tmp_path):
    (tmp_path / "aaaa0001.json").write_text('{"train": [], "test": [{"input": [[1]]}]}')
    spec = TaskSetSpec(source=str(tmp_path), task_ids=["bbbb0002"])
    with pytest.raises(UnknownTaskIdError) as error:
        spec.load()
    assert str(error.value) == f"task_ids not in {tmp_path}: bbbb0002"


def test_spec_unknown_key_names_it_and_the_allowed_keys():
    with pytest.raises(ValueError) as error:
        TaskSetSpec.from_config({"source": "arc1-training", "n_first": 3})
    assert str(error.value) == (
        "unknown task set key 'n_first'; allowed keys: source, task_ids, first_n, sample_n, seed, split, "
        "val_fraction, max_grid_side, test_outputs, prompt, weight"
    )


def test_spec_custom_ignore():
    with pytest.raises(ValueError, match="unknown task set key 'prompt'"):
        TaskSetSpec.from_config({"source": "arc1-training", "prompt": "p"}, ignore=())
    spec = TaskSetSpec.from_config({"source": "x", "prompt": "p", "augment": True}, ignore=("prompt", "augment"))
    assert spec == TaskSetSpec(source="x")


def test_spec_missing_source_and_bad_values_fail_before_loading():
    with pytest.raises(ValueError, match="^task set config has no 'source' key"):
        TaskSetSpec.from_config({"first_n": 3})
    with pytest.raises(ValueError, match="^split must be one of train, val or null, got 'validation'$"):
        TaskSetSpec.from_config({"source": "no-such-set", "split": "validation"})
    with pytest.raises(ValueError, match="^a task set config must be a mapping"):
        TaskSetSpec.from_config(["arc1-training"])


def test_spec_test_outputs_false_drops_them_after_selection():
    spec = TaskSetSpec.from_config({"source": "arc1-evaluation", "max_grid_side": 4, "test_outputs": False})
    with_outputs = TaskSetSpec.from_config({"source": "arc1-evaluation", "max_grid_side": 4}).load()
    tasks = spec.load()
    # the same tasks (selected with their outputs known), the same inputs and train pairs, no test output
    assert [t.task_id for t in tasks] == [t.task_id for t in with_outputs] and len(tasks) == 3
    assert [t.train for t in tasks] == [t.train for t in with_outputs]
    assert [t.test_inputs for t in tasks] == [t.test_inputs for t in with_outputs]
    assert not any(t.has_solutions for t in tasks)
