"""Kaggle ARC Prize submissions: build, validate, score, write and merge them.

A submission holds two attempts for every test input of every task, in test input order::

    {"0a1b2c3d": [{"attempt_1": [[1, 2]], "attempt_2": [[0]]}],      # a task with one test input
     "4e5f6a7b": [{"attempt_1": [[3]], "attempt_2": [[4]]},
                  {"attempt_1": [[5]], "attempt_2": [[6]]}]}         # two test inputs

A test input counts as solved when either attempt equals its output. Kaggle rejects a file that misses a task or
a test input, so every attempt slot is filled; a slot with no answer gets a fallback grid:

1. a copy of the test input (the identity guess keeps the output size plausible and solves the odd task),
2. then ``[[0]]`` (the smallest valid grid).

A fallback equal to an attempt already taken is skipped, so the two attempts differ whenever possible.

``tasks`` arguments take either a mapping ``{task_id: Task}`` or an iterable of :class:`~arc_exp.data.tasks.Task`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from arc_exp.data.grid import Grid, InvalidGridError, grid_key, validate_grid
from arc_exp.data.tasks import Task
from arc_exp.files import write_json

log = logging.getLogger(__name__)

ATTEMPT_KEYS = ("attempt_1", "attempt_2")
EMPTY_FALLBACK: Grid = [[0]]

Tasks = Union[Mapping[str, Task], Iterable[Task]]


class SubmissionError(ValueError):
    """A submission that Kaggle would reject or that does not match the tasks; the message names the task id."""


def _tasks_by_id(tasks: Tasks) -> dict[str, Task]:
    if isinstance(tasks, Mapping):
        return dict(tasks)
    return {task.task_id: task for task in tasks}


def _key_or_none(grid: Any) -> Optional[tuple]:
    """grid_key of a well-formed grid, ``None`` for anything else (so malformed attempts never match)."""
    try:
        return grid_key(validate_grid(grid))
    except InvalidGridError:  # validate_grid names every malformed form; anything else is a bug
        return None


def _fallbacks(test_input: Grid) -> list[Grid]:
    return [[list(row) for row in test_input], [list(row) for row in EMPTY_FALLBACK]]


def _fill_attempts(candidates: Iterable[Any], test_input: Grid, where: str) -> list[Grid]:
    """The first two distinct valid grids of ``candidates``, completed with the fallbacks.

    ``None`` candidates are missing answers; invalid grids are skipped with a warning naming ``where``.

    >>> _fill_attempts([None, [[7]], [[7]], [[8]]], [[1, 1]], "task x test input 0")
    [[[7]], [[8]]]
    >>> _fill_attempts([[[7]]], [[1, 1]], "task x test input 0")
    [[[7]], [[1, 1]]]
    >>> _fill_attempts([[[1, 1]]], [[1, 1]], "task x test input 0")
    [[[1, 1]], [[0]]]
    """
    chosen: list[Grid] = []
    seen: set = set()
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            grid = validate_grid(candidate, f"{where} attempt")
        except InvalidGridError as error:
            log.warning("skipping an invalid attempt: %s", error)
            continue
        if grid_key(grid) not in seen:
            seen.add(grid_key(grid))
            chosen.append(grid)
        if len(chosen) == 2:
            return chosen
    for grid in _fallbacks(test_input):
        if len(chosen) < 2 and grid_key(grid) not in seen:
            seen.add(grid_key(grid))
            chosen.append(grid)
    while len(chosen) < 2:  # only when the test input itself is [[0]] and taken: a duplicate is still valid
        chosen.append([list(row) for row in EMPTY_FALLBACK])
    return chosen


def build_submission(attempts: Mapping[str, Sequence[Optional[Sequence[Optional[Grid]]]]], tasks: Tasks) -> dict:
    """The submission for ``tasks`` from ``attempts[task_id][test_index]`` = ranked grids for that test input.

    Every task and test input of ``tasks`` is present, in their order, with exactly two attempts: the first two
    distinct valid grids given, completed by the fallbacks (see the module docstring). Missing tasks, test inputs
    and ``None`` grids are filled the same way.

    >>> task = Task.from_dict("0a1b2c3d", {"train": [], "test": [{"input": [[5, 5]]}]})
    >>> build_submission({"0a1b2c3d": [[[[1, 2]]]]}, [task])
    {'0a1b2c3d': [{'attempt_1': [[1, 2]], 'attempt_2': [[5, 5]]}]}

    Raises :class:`SubmissionError` for a task id not in ``tasks`` or more test inputs than the task has.
    """
    by_id = _tasks_by_id(tasks)
    unknown = sorted(set(attempts) - set(by_id))
    if unknown:
        raise SubmissionError(f"build_submission: task {unknown[0]} has attempts but is not among the tasks")
    submission: dict[str, list[dict]] = {}
    for task_id, task in by_id.items():
        per_test = list(attempts.get(task_id) or [])
        if len(per_test) > len(task.test):
            raise SubmissionError(
                f"build_submission: task {task_id} has attempts for {len(per_test)} test inputs "
                f"but only {len(task.test)} test inputs"
            )
        entries = []
        for index, example in enumerate(task.test):
            grids = (per_test[index] if index < len(per_test) else None) or []
            first, second = _fill_attempts(grids, example.input, f"task {task_id} test input {index}")
            entries.append({"attempt_1": first, "attempt_2": second})
        submission[task_id] = entries
    return submission


def validate_submission(submission: Any, tasks: Tasks) -> None:
    """Check ``submission`` has exactly the tasks of ``tasks``, one entry per test input, each with exactly
    ``attempt_1`` and ``attempt_2`` holding valid grids. Raises :class:`SubmissionError` naming the task id."""
    if not isinstance(submission, Mapping):
        raise SubmissionError(f"submission must be an object {{task_id: [...]}}, got {type(submission).__name__}")
    by_id = _tasks_by_id(tasks)
    extra = sorted(set(submission) - set(by_id))
    if extra:
        raise SubmissionError(f"task {extra[0]}: in the submission but not among the tasks")
    for task_id, task in by_id.items():
        if task_id not in submission:
            raise SubmissionError(f"task {task_id}: missing from the submission")
        entries = submission[task_id]
        if not isinstance(entries, list):
            raise SubmissionError(f"task {task_id}: expected a list of test input entries, got {type(entries).__name__}")
        if len(entries) != len(task.test):
            raise SubmissionError(f"task {task_id}: {len(entries)} entries for {len(task.test)} test inputs")
        for index, entry in enumerate(entries):
            where = f"task {task_id} test input {index}"
            if not isinstance(entry, Mapping) or set(entry) != set(ATTEMPT_KEYS):
                keys = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
                raise SubmissionError(f"{where}: expected keys ['attempt_1', 'attempt_2'], got {keys}")
            for key in ATTEMPT_KEYS:
                try:
                    validate_grid(entry[key], f"{where} {key}")
                except InvalidGridError as error:
                    raise SubmissionError(str(error)) from None


def score_submission(submission: Mapping[str, Any], tasks: Tasks) -> dict:
    """The Kaggle score: per task, the fraction of test inputs where either attempt equals the output;
    the mean over tasks. Only tasks whose test outputs are all known are scored; a task or test input missing
    from the submission, or a malformed attempt, counts as wrong.

    Returns ``{"score": float, "n_tasks": int, "per_task": {task_id: float}}``. Raises :class:`SubmissionError`
    when no task has known outputs.
    """
    per_task: dict[str, float] = {}
    for task_id, task in _tasks_by_id(tasks).items():
        outputs = task.test_outputs
        if outputs is None:
            continue
        entries = submission.get(task_id)
        entries = entries if isinstance(entries, list) else []
        solved = 0
        for index, expected in enumerate(outputs):
            entry = entries[index] if index < len(entries) else None
            if isinstance(entry, Mapping):
                keys = {_key_or_none(entry.get(key)) for key in ATTEMPT_KEYS}
                solved += grid_key(expected) in keys
        per_task[task_id] = solved / len(outputs)
    if not per_task:
        raise SubmissionError("score_submission: no task has known test outputs, nothing to score")
    return {"score": sum(per_task.values()) / len(per_task), "n_tasks": len(per_task), "per_task": per_task}


def write_submission(submission: Mapping[str, Any], path: Union[str, os.PathLike]) -> Path:
    """Write ``submission`` as JSON to ``path`` atomically and return the path.

    The JSON goes to a temporary file in the same directory, which then replaces ``path`` in one ``os.replace``:
    a crash mid-write leaves any previous file intact, never a truncated one.
    """
    return write_json(path, submission)


def merge_submissions(submissions: Sequence[Mapping[str, Any]], tasks: Tasks) -> dict:
    """Ensemble submissions by priority, earlier submissions first, into one submission for ``tasks``.

    For each test input the candidates are ranked attempt-major: every submission's ``attempt_1`` in submission
    order, then every ``attempt_2`` in submission order; the first two distinct grids become the attempts. So with
    ``[model, solver2020]`` the attempts are the model's attempt_1 then the 2020 solver's attempt_1 (as in the seed
    that combined its model with the 2020 solution), and a submission's attempt_2 is used only when the attempt_1s
    agree or are missing.

    A candidate equal to a fallback (a copy of the test input, or ``[[0]]``) most likely marks a missing answer in
    that submission, so it is tried after all other candidates. Tasks or test inputs missing from a submission are
    skipped; tasks not among ``tasks`` are ignored; empty slots get the fallbacks.

    >>> task = Task.from_dict("0a1b2c3d", {"train": [], "test": [{"input": [[5]]}]})
    >>> model = {"0a1b2c3d": [{"attempt_1": [[1]], "attempt_2": [[2]]}]}
    >>> solver = {"0a1b2c3d": [{"attempt_1": [[3]], "attempt_2": [[4]]}]}
    >>> merge_submissions([model, solver], [task])
    {'0a1b2c3d': [{'attempt_1': [[1]], 'attempt_2': [[3]]}]}
    """
    merged: dict[str, list[dict]] = {}
    for task_id, task in _tasks_by_id(tasks).items():
        entries = []
        for index, example in enumerate(task.test):
            candidates = []
            for key in ATTEMPT_KEYS:
                for submission in submissions:
                    per_test = submission.get(task_id)
                    if isinstance(per_test, list) and index < len(per_test) and isinstance(per_test[index], Mapping):
                        candidates.append(per_test[index].get(key))
            fallback_keys = {grid_key(g) for g in _fallbacks(example.input)}
            answers = [c for c in candidates if _key_or_none(c) not in fallback_keys]
            placeholders = [c for c in candidates if _key_or_none(c) in fallback_keys]
            first, second = _fill_attempts(answers + placeholders, example.input, f"task {task_id} test input {index}")
            entries.append({"attempt_1": first, "attempt_2": second})
        merged[task_id] = entries
    return merged
