"""Choosing which tasks of a source to use: explicit ids, small grids only, a seeded train/val split, a sample.

The Hydra data configs describe each task set as a mapping; :class:`TaskSetSpec` reads it::

    val: {source: arc1-training, split: val, first_n: 8, prompt: output-from-examples-v0}
    eval: {source: arc1-evaluation, max_grid_side: 10}

``prompt`` belongs to the caller; ``test_outputs: false`` drops the test outputs after selection (the tasks as they
are at test time); everything else is a :func:`select_tasks` argument. A ``data.train`` entry
(:class:`arc_exp.data.entries.TrainEntry`) builds its TaskSetSpec from the selection keys it sets.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

from arc_exp.data.sources import load_source
from arc_exp.data.tasks import Example, Task

log = logging.getLogger(__name__)

SPLITS = ("train", "val")


class UnknownTaskIdError(ValueError):
    """``task_ids`` names tasks that the source does not hold."""


def select_tasks(
    tasks: Sequence[Task],
    task_ids: Optional[Sequence[str]] = None,
    first_n: Optional[int] = None,
    sample_n: Optional[int] = None,
    seed: int = 0,
    split: Optional[str] = None,
    val_fraction: float = 0.2,
    max_grid_side: Optional[int] = None,
    source: Optional[str] = None,
) -> list[Task]:
    """Filter ``tasks`` in this order: ``task_ids``, ``max_grid_side``, ``split``, ``sample_n``, ``first_n``.

    - ``task_ids``: keep exactly these tasks, in this order (otherwise the input order, by id from ``load_source``);
    - ``max_grid_side``: keep tasks whose every grid (train, test input, known test output) has both sides <= it;
    - ``split``: ``"train"`` or ``"val"`` part of a seeded partition: the sorted ids are shuffled with
      ``random.Random(seed)`` and the first ``round(n * val_fraction)`` are val. It depends only on the ids left
      after the filters above, not on their order, so train and val never overlap;
    - ``sample_n``: at most this many tasks drawn with ``random.Random(seed)`` from the sorted ids, kept in input order;
    - ``first_n``: at most the first N of what is left.

    ``source`` only names the task set in errors (default: the ``source`` of the tasks).

    >>> [t.task_id for t in select_tasks(load_source("arc1-training"), first_n=2)]
    ['007bbfb7', '00d62c1b']
    """
    check_selection(task_ids=task_ids, first_n=first_n, sample_n=sample_n, seed=seed, split=split,
                    val_fraction=val_fraction, max_grid_side=max_grid_side)
    selected = list(tasks)
    if task_ids is not None:
        selected = _pick_ids(selected, _as_id_list(task_ids), source or _describe_source(selected))
    if max_grid_side is not None:
        selected = [task for task in selected if largest_grid_side(task) <= max_grid_side]
    if split is not None:
        val_ids = split_val_ids([task.task_id for task in selected], seed, val_fraction)
        want_val = split == "val"
        selected = [task for task in selected if (task.task_id in val_ids) == want_val]
    if sample_n is not None:
        if sample_n > len(selected):
            log.warning("sample_n=%d but only %d tasks are left; using all of them", sample_n, len(selected))
        ids = sorted(task.task_id for task in selected)
        chosen = set(random.Random(seed).sample(ids, min(sample_n, len(ids))))
        selected = [task for task in selected if task.task_id in chosen]
    if first_n is not None:
        selected = selected[:first_n]
    return selected


def split_val_ids(task_ids: Iterable[str], seed: int = 0, val_fraction: float = 0.2) -> set[str]:
    """The ids that fall in the val part: shuffle the sorted ids with ``random.Random(seed)``, take the first
    ``round(n * val_fraction)``."""
    ids = sorted(task_ids)
    random.Random(seed).shuffle(ids)
    return set(ids[: round(len(ids) * val_fraction)])


def largest_grid_side(task: Task) -> int:
    """The longest side (rows or columns) of any grid in ``task``: train pairs, test inputs and known test outputs."""
    grids = [grid for example in task.train + task.test for grid in (example.input, example.output) if grid is not None]
    return max(max(len(grid), len(grid[0])) for grid in grids)


def check_selection(
    task_ids: Any = None,
    first_n: Any = None,
    sample_n: Any = None,
    seed: Any = 0,
    split: Any = None,
    val_fraction: Any = 0.2,
    max_grid_side: Any = None,
) -> None:
    """Raise ``ValueError`` naming the first bad selection key, so a bad config fails before any loading."""
    for key, value in (("first_n", first_n), ("sample_n", sample_n), ("max_grid_side", max_grid_side)):
        if value is not None and (not _is_int(value) or value < 1):
            raise ValueError(f"{key} must be an integer >= 1 or null, got {value!r}")
    if not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or null, got {split!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    if task_ids is not None:
        _as_id_list(task_ids)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_id_list(task_ids: Any) -> list[str]:
    """Task ids as a list of strings; one string is one id. Rejects numbers, which YAML makes of unquoted ids."""
    if isinstance(task_ids, str):
        ids = [task_ids]
    elif isinstance(task_ids, Iterable) and not isinstance(task_ids, Mapping):
        ids = list(task_ids)
    else:
        raise ValueError(f"task_ids must be a list of task ids, got {task_ids!r}")
    for task_id in ids:
        if not isinstance(task_id, str):
            # YAML reads 00576224 as an (octal) int and 1e000000 as a float; the id must be quoted.
            raise ValueError(f"task_ids must be strings, got {task_id!r} ({type(task_id).__name__}); "
                             f"quote task ids in YAML, e.g. '00576224'")
    repeated = sorted(task_id for task_id, count in Counter(ids).items() if count > 1)
    if repeated:
        raise ValueError(f"task_ids lists {', '.join(repeated)} more than once")
    return ids


def _pick_ids(tasks: list[Task], task_ids: list[str], source: str) -> list[Task]:
    by_id = {task.task_id: task for task in tasks}
    missing = [task_id for task_id in task_ids if task_id not in by_id]
    if missing:
        raise UnknownTaskIdError(f"task_ids not in {source}: {', '.join(missing)}")
    return [by_id[task_id] for task_id in task_ids]


def _describe_source(tasks: Sequence[Task]) -> str:
    sources = sorted({task.source for task in tasks})
    if not sources:
        return "an empty task set"
    if len(sources) == 1:
        return sources[0]
    return f"{sources[0]} and {len(sources) - 1} other files"


@dataclass
class TaskSetSpec:
    """One task set of a data config: a source (see :func:`~arc_exp.data.sources.load_source`) and a selection.

    >>> spec = TaskSetSpec.from_config({"source": "arc1-training", "prompt": "p", "task_ids": ["00d62c1b"]})
    >>> [t.task_id for t in spec.load()]
    ['00d62c1b']
    """

    source: str
    task_ids: Optional[list[str]] = None
    first_n: Optional[int] = None
    sample_n: Optional[int] = None
    seed: int = 0
    split: Optional[str] = None
    val_fraction: float = 0.2
    max_grid_side: Optional[int] = None
    test_outputs: bool = True  # false: drop the test outputs after selection, as the tasks are at test time

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"source must be a task set name or path, got {self.source!r}")
        if not isinstance(self.test_outputs, bool):
            raise ValueError(f"test_outputs must be true or false, got {self.test_outputs!r}")
        if self.task_ids is not None:
            self.task_ids = _as_id_list(self.task_ids)  # also turns an OmegaConf ListConfig into a list
        check_selection(**self.selection())

    def selection(self) -> dict[str, Any]:
        """The :func:`select_tasks` keyword arguments of this spec."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("source", "test_outputs")}

    def load(self) -> list[Task]:
        tasks = select_tasks(load_source(self.source), source=self.source, **self.selection())
        if not self.test_outputs:
            tasks = [task.replace(test=[Example(e.input) for e in task.test]) for task in tasks]
        return tasks

    @classmethod
    def from_config(cls, config: Mapping, ignore: Iterable[str] = ("prompt", "weight")) -> "TaskSetSpec":
        """Build from a dict or a node of a composed config; keys in ``ignore`` are skipped, unknown keys raise."""
        if not isinstance(config, Mapping):
            raise ValueError(f"a task set config must be a mapping with a 'source' key, got {config!r}")
        allowed = [f.name for f in fields(cls)]
        ignored = set(ignore)
        values = {}
        for key, value in config.items():
            if key in ignored:
                continue
            if key not in allowed:
                raise ValueError(f"unknown task set key {key!r}; allowed keys: {', '.join(allowed + sorted(ignored))}")
            values[key] = value
        if "source" not in values:
            raise ValueError(f"task set config has no 'source' key: {dict(config)!r}")
        return cls(**values)
