"""ARC metrics, as in the seed solutions: per prediction, per test input, per task, and over a dataset.

Per prediction, against the expected output grid:

- ``accuracy``: 1.0 when the grid is exactly the expected one;
- ``correct_pixels``: the fraction of equal cells when the shape matches, else 0.0;
- ``correct_size``: 1.0 when the shape matches.

An unanswered prediction (``None``: the output did not parse to a grid) scores 0.0 on all three.

>>> prediction_metrics([[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 5, 0]])
{'accuracy': 0.0, 'correct_pixels': 0.8333333333333334, 'correct_size': 1.0}

Per test input, from its n predictions and its (up to) two submitted attempts:

- ``accuracy``, ``correct_pixels``, ``correct_size``: means over the predictions;
- ``max_correct_pixels``, ``any_correct_size``: best over the predictions;
- ``pass_<n>`` (e.g. ``pass_8``): 1.0 when any prediction is correct (see :func:`pass_n_key` for n = 2);
- ``vote_2``: 1.0 when one of the two most voted grids (:func:`arc_exp.evaluation.voting.vote`) is correct;
- ``pass_2``: 1.0 when one of the two submitted attempts is correct. It equals ``vote_2`` when the attempts come
  from the vote, and differs when another selection (a different ranking, an ensemble) picked them;
- ``unanswered``: the share of predictions that are unanswered.

Per task: the mean over its test inputs. Over a dataset: the mean over tasks, so each task weighs the same
(as the Kaggle score does), whatever its number of test inputs.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from arc_exp.data.grid import Grid, grid_key, grid_shape
from arc_exp.evaluation.voting import Prediction, select_attempts, vote

ATTEMPTS_KEY = "pass_2"  # one of the two submitted attempts is correct (the Kaggle criterion)
VOTE_KEY = "vote_2"

PredictionLike = Union[Prediction, Grid, None]


def pass_n_key(n: int) -> str:
    """The name of the "any of n predictions is correct" metric.

    >>> pass_n_key(8)
    'pass_8'

    ``pass_2`` is reserved for the two submitted attempts, so with exactly 2 predictions the key is
    ``pass_2_predictions``.
    >>> pass_n_key(2)
    'pass_2_predictions'
    """
    if n < 0:
        raise ValueError(f"pass_n_key: n must be >= 0, got {n}")
    return "pass_2_predictions" if n == 2 else f"pass_{n}"


def _pass_n_count(key: str) -> Optional[int]:
    """The n of a pass_n key (``"pass_8"`` -> 8), or ``None`` for any other key (including ``"pass_2"``)."""
    if key == "pass_2_predictions":
        return 2
    match = re.fullmatch(r"pass_(\d+)", key)
    if match is None or key == ATTEMPTS_KEY:
        return None
    return int(match.group(1))


def _same_grid(grid: Optional[Grid], expected: Grid) -> bool:
    return grid is not None and grid_key(grid) == grid_key(expected)


def prediction_metrics(grid: Optional[Grid], expected: Grid) -> dict[str, float]:
    """accuracy, correct_pixels and correct_size of one predicted grid (``None`` = unanswered) against ``expected``.

    >>> prediction_metrics([[1, 2]], [[1], [2]])  # 1x2 vs 2x1: wrong shape, no pixel counts
    {'accuracy': 0.0, 'correct_pixels': 0.0, 'correct_size': 0.0}
    >>> prediction_metrics(None, [[1]])
    {'accuracy': 0.0, 'correct_pixels': 0.0, 'correct_size': 0.0}
    """
    if expected is None:
        raise ValueError("prediction_metrics: the expected output is unknown (None); metrics need the solution")
    if grid is None or grid_shape(grid) != grid_shape(expected):
        return {"accuracy": 0.0, "correct_pixels": 0.0, "correct_size": 0.0}
    equal = np.asarray(grid) == np.asarray(expected)
    return {
        "accuracy": float(equal.all()),
        "correct_pixels": float(equal.mean()),
        "correct_size": 1.0,
    }


def _as_prediction(item: PredictionLike) -> Prediction:
    # Plain grids (or None) are accepted for convenience; they vote with equal confidence.
    return item if isinstance(item, Prediction) else Prediction(item, 0.0)


def test_input_metrics(
    predictions: Sequence[PredictionLike],
    expected: Grid,
    attempts: Optional[Sequence[Optional[Grid]]],
    n: Optional[int] = None,
) -> dict[str, float]:
    """All metrics of one test input.

    ``predictions`` are :class:`~arc_exp.evaluation.voting.Prediction` objects (or bare grids / ``None``, which vote with
    logprob 0). ``attempts`` are the (at most two) grids submitted for this test input, ``None`` entries meaning
    missing; ``attempts=None`` takes the two most voted grids, so ``pass_2 == vote_2``. ``n`` is the configured
    number of predictions and names the pass_n key (default: ``len(predictions)``); pass it when some predictions
    may be missing so every test input reports the same key.

    With no predictions at all the means are 0.0 and ``unanswered`` is 1.0.

    >>> m = test_input_metrics([[[1]], [[2]], None], [[2]], attempts=[[[1]], [[3]]])
    >>> m["pass_3"], m["vote_2"], m["pass_2"], round(m["unanswered"], 3)
    (1.0, 1.0, 0.0, 0.333)
    """
    if expected is None:
        raise ValueError("test_input_metrics: the expected output is unknown (None); metrics need the solution")
    predictions = [_as_prediction(p) for p in predictions]
    if attempts is None:
        attempts = select_attempts(vote(predictions), 2)
    if len(attempts) > 2:
        raise ValueError(f"test_input_metrics: at most 2 attempts per test input, got {len(attempts)}")
    n = len(predictions) if n is None else n

    per_prediction = [prediction_metrics(p.grid, expected) for p in predictions]
    count = len(per_prediction)

    def mean(key: str) -> float:
        return sum(m[key] for m in per_prediction) / count if count else 0.0

    def best(key: str) -> float:
        return max((m[key] for m in per_prediction), default=0.0)

    voted = select_attempts(vote(predictions), 2)
    return {
        "accuracy": mean("accuracy"),
        "correct_pixels": mean("correct_pixels"),
        "correct_size": mean("correct_size"),
        "max_correct_pixels": best("correct_pixels"),
        "any_correct_size": best("correct_size"),
        pass_n_key(n): best("accuracy"),
        VOTE_KEY: float(any(_same_grid(g, expected) for g in voted)),
        ATTEMPTS_KEY: float(any(_same_grid(g, expected) for g in attempts)),
        "unanswered": sum(p.grid is None for p in predictions) / count if count else 1.0,
    }


# The name starts with "test_": keep pytest from collecting it when a test module imports it.
test_input_metrics.__test__ = False


def _harmonize_pass_n(metrics: dict[str, float], target: str) -> dict[str, float]:
    """Rename the pass_n key of ``metrics`` to ``target``, keeping the key order."""
    return {(target if _pass_n_count(k) is not None else k): v for k, v in metrics.items()}


def _mean_of(items: Sequence[tuple[str, Mapping[str, float]]], n: Optional[int], what: str) -> dict[str, float]:
    """Mean of each metric over ``items`` (label, metrics); ``what`` names the caller in errors.

    pass_n keys are renamed to ``pass_n_key(n)`` when ``n`` is given; without ``n``, when they differ between
    items (different numbers of predictions), to the largest n seen, taken as the configured one.
    """
    if not items:
        raise ValueError(f"{what}: no metrics to average")
    counts = {c for _, m in items for c in map(_pass_n_count, m) if c is not None}
    if n is not None or len(counts) > 1:
        target = pass_n_key(n if n is not None else max(counts))
        items = [(label, _harmonize_pass_n(dict(m), target)) for label, m in items]

    keys = list(items[0][1])
    for label, metrics in items:
        if set(metrics) != set(keys):
            missing = sorted(set(keys) - set(metrics))
            extra = sorted(set(metrics) - set(keys))
            raise ValueError(f"{what}: {label} has different metrics (missing {missing}, extra {extra})")
    return {key: sum(float(m[key]) for _, m in items) / len(items) for key in keys}


def task_metrics(test_inputs: Sequence[Mapping[str, float]], n: Optional[int] = None) -> dict[str, float]:
    """The metrics of one task: the mean of its test inputs' metrics (from :func:`test_input_metrics`).

    When the pass_n keys differ between test inputs they are named by ``n`` (the configured number of
    predictions) or, without it, by the largest n seen.

    >>> task_metrics([{"accuracy": 1.0, "pass_8": 1.0}, {"accuracy": 0.5, "pass_7": 0.0}])
    {'accuracy': 0.75, 'pass_8': 0.5}
    """
    return _mean_of([(f"test input {i}", m) for i, m in enumerate(test_inputs)], n, "task_metrics")


def aggregate_metrics(per_task: Mapping[str, Mapping[str, float]], n: Optional[int] = None) -> dict[str, float]:
    """The dataset metrics: the mean over tasks of their :func:`task_metrics` (each task weighs the same).

    pass_n keys are harmonized as in :func:`task_metrics`. Returns ``{}`` for no tasks.

    >>> aggregate_metrics({"0a1b2c3d": {"pass_2": 1.0}, "4e5f6a7b": {"pass_2": 0.0}})
    {'pass_2': 0.5}
    """
    if not per_task:
        return {}
    return _mean_of([(f"task {task_id}", m) for task_id, m in per_task.items()], n, "aggregate_metrics")
