"""Is the difference real? Bootstrap intervals over tasks, paired comparisons and the spread over seeds.

An ARC evaluation is a few hundred tasks, so a 2-point difference between two arms is often noise. Every function
here takes plain data, per-task values ``{task_id: value}`` (a task's metric from ``per_task.csv``: the mean over its
test inputs), and returns plain numbers:

- :func:`bootstrap_interval`: the mean over tasks (or over several runs' means) with a percentile bootstrap interval,
  resampling tasks with a seeded generator (same seed, same interval);
- :func:`compare_tasks`: two runs on the tasks they share: solved by both, by A only, by B only, by neither, the
  difference B - A with its paired bootstrap interval and the exact McNemar p-value (:func:`mcnemar_p`);
- :func:`seed_spread`: mean and standard deviation of a figure over the runs of one setting (its seeds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import mean, stdev
from typing import Mapping, Optional, Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 10000


class SignificanceError(ValueError):
    """Two runs that cannot be compared task by task (no task in common); the message says why in one line."""


@dataclass
class SignificanceSettings:
    """report.yaml's ``significance``: bootstrap ``resamples`` drawn with ``seed`` at ``level``; the per-task
    ``metric`` compared task by task, a task counting as solved at ``value >= solved_at``."""

    resamples: int = RESAMPLES
    seed: int = 0
    level: float = LEVEL
    metric: str = "pass_2"
    solved_at: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.resamples, int) or self.resamples < 1:
            raise SignificanceError(f"significance.resamples must be an integer >= 1, got {self.resamples!r}")
        if not 0 < self.level < 1:
            raise SignificanceError(f"significance.level must be between 0 and 1, got {self.level!r}")


@dataclass
class Interval:
    """A figure and its bootstrap interval: ``value`` (the mean), ``low``/``high`` at ``level``, over ``tasks``."""

    value: float
    low: float
    high: float
    tasks: int
    level: float = LEVEL


def bootstrap_interval(runs: Sequence[Mapping[str, float]] | Mapping[str, float], resamples: int = RESAMPLES,
                       seed: int = 0, level: float = LEVEL) -> Interval:
    """The mean over tasks and its percentile bootstrap interval, resampling tasks (with replacement).

    ``runs``: one run's per-task values, or several (the seeds of one table row): then the figure is the mean of the
    runs' means and each resample draws the same tasks for every run (a task is hard for all seeds alike); a run
    lacking a drawn task averages the drawn tasks it has.

    >>> solved = {f"t{i}": float(i < 30) for i in range(100)}   # 30 of 100 tasks solved
    >>> i = bootstrap_interval(solved, resamples=2000, seed=0)
    >>> i.value, round(i.low, 2), round(i.high, 2), i.tasks
    (0.3, 0.22, 0.39, 100)
    >>> bootstrap_interval([solved, {"t0": 1.0, "t99": 1.0}], resamples=10).value   # mean of the runs' means
    0.65
    """
    runs = [runs] if isinstance(runs, Mapping) else list(runs)
    runs = [r for r in runs if r]
    if not runs:
        raise SignificanceError("bootstrap_interval: no per-task value")
    tasks = sorted({t for r in runs for t in r})
    matrix = np.array([[r.get(t, np.nan) for r in runs] for t in tasks], dtype=float)  # tasks x runs
    present = ~np.isnan(matrix)
    values = np.where(present, matrix, 0.0)
    value = float(np.mean([values[present[:, j], j].mean() for j in range(len(runs))]))
    draws = np.random.default_rng(seed).integers(0, len(tasks), size=(resamples, len(tasks)))
    means = np.zeros(resamples)
    counted = np.zeros(resamples)
    for j in range(len(runs)):
        drawn = present[draws, j].sum(axis=1)
        run_means = np.divide(values[draws, j].sum(axis=1), drawn, out=np.zeros(resamples), where=drawn > 0)
        means += run_means
        counted += drawn > 0
    means = np.divide(means, counted, out=np.full(resamples, np.nan), where=counted > 0)
    low, high = np.nanquantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(value, float(low), float(high), len(tasks), level)


def seed_spread(values: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation of one figure over runs (seeds); the deviation is ``None`` under 2 runs.

    >>> seed_spread([0.30, 0.34, 0.32])
    (0.32, 0.02)
    >>> seed_spread([0.3, None])
    (0.3, None)
    """
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return None, None
    return round(mean(numbers), 12), (round(stdev(numbers), 12) if len(numbers) > 1 else None)


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value (two-sided): the binomial test of the discordant tasks, ``b_only`` successes out of
    ``a_only + b_only`` at one half; 1.0 when no task is discordant.

    >>> round(mcnemar_p(2, 10), 4)
    0.0386
    >>> mcnemar_p(0, 0)
    1.0
    """
    # scipy: only where grids are labelled or tested (the config schemas import this module)
    from scipy.stats import binomtest

    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(b_only, a_only + b_only, 0.5).pvalue)


def shared_tasks(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], list[str], list[str]]:
    """``(shared, only in a, only in b)`` task ids, sorted: a comparison pairs the shared ones alone.

    >>> shared_tasks({"t1": 1, "t2": 0}, {"t2": 1, "t3": 0})
    (['t2'], ['t1'], ['t3'])
    """
    return sorted(set(a) & set(b)), sorted(set(a) - set(b)), sorted(set(b) - set(a))


def paired_interval(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                    level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of ``mean(b) - mean(a)`` over paired tasks (the same draw for both).

    >>> low, high = paired_interval([0.0] * 50 + [1.0] * 50, [1.0] * 100, resamples=2000)
    >>> round(low, 2), round(high, 2)
    (0.4, 0.6)
    """
    if len(a) != len(b) or not len(a):
        raise SignificanceError(f"paired_interval: {len(a)} and {len(b)} values; needs the same tasks, at least one")
    differences = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(differences), size=(resamples, len(differences)))
    low, high = np.quantile(differences[draws].mean(axis=1), [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


@dataclass
class PairedComparison:
    """Runs A and B on their shared tasks: task ids by outcome, the difference B - A and how sure it is."""

    both: list[str]
    a_only: list[str]
    b_only: list[str]
    neither: list[str]
    difference: float          # mean over shared tasks of B - A (the metric, not only solved/unsolved)
    low: float
    high: float
    p_value: float             # exact McNemar on the discordant tasks (a_only vs b_only)
    left_out_a: list[str] = field(default_factory=list)   # tasks of A that B lacks (not paired)
    left_out_b: list[str] = field(default_factory=list)
    level: float = LEVEL

    @property
    def shared(self) -> int:
        return len(self.both) + len(self.a_only) + len(self.b_only) + len(self.neither)

    @property
    def left_out(self) -> int:
        return len(self.left_out_a) + len(self.left_out_b)

    def group(self, task_id: str) -> str:
        """``both``, ``a_only``, ``b_only``, ``neither`` or ``left_out``."""
        for name in ("both", "a_only", "b_only", "neither"):
            if task_id in getattr(self, name):
                return name
        return "left_out"


def compare_tasks(a: Mapping[str, float], b: Mapping[str, float], solved_at: float = 1.0,
                  resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> PairedComparison:
    """Compare two runs' per-task values on the tasks they share; a task counts as solved at ``value >= solved_at``.

    >>> c = compare_tasks({"t1": 1.0, "t2": 1.0, "t3": 0.0, "t4": 0.0, "t5": 1.0},
    ...                   {"t1": 1.0, "t2": 0.0, "t3": 1.0, "t4": 1.0, "t6": 1.0}, resamples=100)
    >>> c.both, c.a_only, c.b_only, c.neither, c.difference, c.left_out_a, c.left_out_b
    (['t1'], ['t2'], ['t3', 't4'], [], 0.25, ['t5'], ['t6'])
    >>> c.p_value
    1.0
    """
    shared, left_out_a, left_out_b = shared_tasks(a, b)
    if not shared:
        raise SignificanceError(f"no task in common ({len(a)} and {len(b)} tasks)")
    groups: dict[str, list[str]] = {"both": [], "a_only": [], "b_only": [], "neither": []}
    for task in shared:
        solved_a, solved_b = a[task] >= solved_at, b[task] >= solved_at
        groups["both" if solved_a and solved_b else "a_only" if solved_a else "b_only" if solved_b
               else "neither"].append(task)
    first, second = [float(a[t]) for t in shared], [float(b[t]) for t in shared]
    low, high = paired_interval(first, second, resamples, seed, level)
    difference = math.fsum(second) / len(shared) - math.fsum(first) / len(shared)
    return PairedComparison(**groups, difference=round(difference, 12), low=low, high=high,
                            p_value=mcnemar_p(len(groups["a_only"]), len(groups["b_only"])),
                            left_out_a=left_out_a, left_out_b=left_out_b, level=level)
