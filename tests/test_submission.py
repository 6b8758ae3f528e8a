"""Kaggle submissions: fallbacks, validation errors, scoring, atomic writing and merging by priority."""
import json
import os

import pytest

from arc_exp.data.tasks import Task
from arc_exp.evaluation.submission import (
    SubmissionError,
    build_submission,
    merge_submissions,
    score_submission,
    validate_submission,
    write_submission,
)

TWO_TESTS = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1]], "output": [[2]]}],
    "test": [{"input": [[1, 1]], "output": [[2, 2]]}, {"input": [[3]], "output": [[4]]}],
})
ONE_TEST = Task.from_dict("4e5f6a7b", {
    "train": [{"input": [[5]], "output": [[6]]}],
    "test": [{"input": [[5, 5], [5, 5]], "output": [[6]]}],
})
HIDDEN = Task.from_dict("8c9d0e1f", {  # test output unknown, as on Kaggle's hidden set
    "train": [{"input": [[7]], "output": [[8]]}],
    "test": [{"input": [[7, 7]]}],
})
TASKS = {t.task_id: t for t in (TWO_TESTS, ONE_TEST, HIDDEN)}


def test_build_fills_every_slot_with_fallbacks():
    submission = build_submission({"0a1b2c3d": [[[[9]], [[8]], [[7]]], [[[4]]]]}, TASKS)
    assert submission == {
        "0a1b2c3d": [
            {"attempt_1": [[9]], "attempt_2": [[8]]},  # only the first two are used
            {"attempt_1": [[4]], "attempt_2": [[3]]},  # attempt_2: a copy of the test input
        ],
        "4e5f6a7b": [{"attempt_1": [[5, 5], [5, 5]], "attempt_2": [[0]]}],  # nothing: test input, then [[0]]
        "8c9d0e1f": [{"attempt_1": [[7, 7]], "attempt_2": [[0]]}],
    }
    validate_submission(submission, TASKS)


def test_build_takes_distinct_valid_attempts():
    submission = build_submission({
        "0a1b2c3d": [[None, [[2, 2]], [[2, 2]]], None],  # duplicate dropped; None test input filled
        "4e5f6a7b": [[[[5, 5], [5, 5]], [[12]]]],  # the test input itself; [[12]] is not a grid (color 12)
    }, list(TASKS.values()))
    assert submission["0a1b2c3d"] == [
        {"attempt_1": [[2, 2]], "attempt_2": [[1, 1]]},
        {"attempt_1": [[3]], "attempt_2": [[0]]},
    ]
    assert submission["4e5f6a7b"] == [{"attempt_1": [[5, 5], [5, 5]], "attempt_2": [[0]]}]


def test_build_does_not_share_the_test_input_lists():
    submission = build_submission({}, TASKS)
    submission["8c9d0e1f"][0]["attempt_1"][0][0] = 0
    assert HIDDEN.test[0].input == [[7, 7]]


def test_build_errors_name_the_task():
    with pytest.raises(SubmissionError, match="task ffffffff has attempts but is not among the tasks"):
        build_submission({"ffffffff": [[[[1]]]]}, TASKS)
    with pytest.raises(SubmissionError, match="task 4e5f6a7b has attempts for 2 test inputs but only 1"):
        build_submission({"4e5f6a7b": [[[[1]]], [[[2]]]]}, TASKS)


def _valid():
    return build_submission({}, TASKS)


@pytest.mark.parametrize("break_it, message", [
    (lambda s: s.pop("4e5f6a7b"), "task 4e5f6a7b: missing from the submission"),
    (lambda s: s.update(ffffffff=[]), "task ffffffff: in the submission but not among the tasks"),
    (lambda s: s["0a1b2c3d"].pop(), "task 0a1b2c3d: 1 entries for 2 test inputs"),
    (lambda s: s.update({"8c9d0e1f": {"attempt_1": [[1]]}}), "task 8c9d0e1f: expected a list"),
    (lambda s: s["0a1b2c3d"][1].pop("attempt_2"),
     r"task 0a1b2c3d test input 1: expected keys \['attempt_1', 'attempt_2'\], got \['attempt_1'\]"),
    (lambda s: s["4e5f6a7b"][0].update(attempt_2=[[1, 10]]),
     r"task 4e5f6a7b test input 0 attempt_2: cell \(0, 1\) holds 10"),
    (lambda s: s["4e5f6a7b"][0].update(attempt_1=[[1], [1, 2]]),
     "task 4e5f6a7b test input 0 attempt_1: grid is not rectangular"),
])
def test_validate_errors_name_the_task(break_it, message):
    submission = _valid()
    break_it(submission)
    with pytest.raises(SubmissionError, match=message):
        validate_submission(submission, TASKS)


def test_validate_rejects_a_non_object():
    with pytest.raises(SubmissionError, match="submission must be an object"):
        validate_submission([], TASKS)


def test_score_is_the_mean_over_tasks_with_known_outputs():
    submission = build_submission({
        "0a1b2c3d": [[[[0, 0]], [[2, 2]]], [[[5]]]],  # first test input solved by attempt_2, second not: 0.5
        "4e5f6a7b": [[[[6]]]],  # solved: 1.0
        "8c9d0e1f": [[[[8, 8]]]],  # unknown output: not scored
    }, TASKS)
    assert score_submission(submission, TASKS) == {
        "score": 0.75, "n_tasks": 2, "per_task": {"0a1b2c3d": 0.5, "4e5f6a7b": 1.0}}


def test_score_counts_missing_or_malformed_entries_as_wrong():
    submission = {"0a1b2c3d": [{"attempt_1": "oops", "attempt_2": [[2, 2]]}]}  # second test input missing
    assert score_submission(submission, TASKS) == {
        "score": 0.25, "n_tasks": 2, "per_task": {"0a1b2c3d": 0.5, "4e5f6a7b": 0.0}}


def test_score_needs_known_outputs():
    with pytest.raises(SubmissionError, match="no task has known test outputs"):
        score_submission(_valid(), [HIDDEN])


def test_write_submission_round_trips(tmp_path):
    path = write_submission(_valid(), tmp_path / "out" / "submission.json")
    assert path == tmp_path / "out" / "submission.json"
    assert json.loads(path.read_text()) == _valid()
    assert os.listdir(tmp_path / "out") == ["submission.json"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_write_submission_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "submission.json"
    path.write_text('{"old": []}')
    with pytest.raises(TypeError):
        write_submission({"0a1b2c3d": [{"attempt_1": object()}]}, path)  # not JSON-serializable mid-write
    assert path.read_text() == '{"old": []}'
    assert os.listdir(tmp_path) == ["submission.json"]  # no temporary file left behind
    write_submission({"new": []}, path)
    assert json.loads(path.read_text()) == {"new": []}


def _entry(first, second):
    return {"attempt_1": first, "attempt_2": second}


def test_merge_takes_attempt_1_of_each_submission_first():
    model = {"4e5f6a7b": [_entry([[1]], [[2]])]}
    solver = {"4e5f6a7b": [_entry([[3]], [[4]])]}
    merged = merge_submissions([model, solver], [ONE_TEST])
    assert merged == {"4e5f6a7b": [_entry([[1]], [[3]])]}
    assert merge_submissions([solver, model], [ONE_TEST]) == {"4e5f6a7b": [_entry([[3]], [[1]])]}


def test_merge_uses_attempt_2_when_attempt_1s_agree_or_are_missing():
    model = {"0a1b2c3d": [_entry([[1]], [[2]]), _entry([[6]], [[7]])]}
    solver = {"0a1b2c3d": [_entry([[1]], [[4]])]}  # no entry for the second test input
    third = {"0a1b2c3d": [_entry([[1]], [[5]]), _entry([[8]], [[9]])]}
    merged = merge_submissions([model, solver, third], [TWO_TESTS])
    assert merged == {"0a1b2c3d": [_entry([[1]], [[2]]), _entry([[6]], [[8]])]}


def test_merge_puts_fallback_grids_last():
    # the model had no answer: its submission holds the fallbacks (test input copy, [[0]])
    model = {"4e5f6a7b": [_entry([[5, 5], [5, 5]], [[0]])]}
    solver = {"4e5f6a7b": [_entry([[3]], [[4]])]}
    assert merge_submissions([model, solver], [ONE_TEST]) == {"4e5f6a7b": [_entry([[3]], [[4]])]}
    only_one = {"4e5f6a7b": [_entry([[3]], [[0]])]}
    assert merge_submissions([model, only_one], [ONE_TEST]) == {"4e5f6a7b": [_entry([[3]], [[5, 5], [5, 5]])]}


def test_merge_covers_every_task_and_ignores_others():
    merged = merge_submissions([{"ffffffff": [_entry([[1]], [[2]])]}, {}], TASKS)
    assert merged == _valid()
    validate_submission(merged, TASKS)
