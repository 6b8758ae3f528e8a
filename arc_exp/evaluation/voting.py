"""Voting: turn many predictions for one test input into ranked candidate grids and two attempts.

A model samples several predictions per test input (often one per augmentation, mapped back to the original
orientation and colors). Identical grids are grouped; the most frequent grids become the attempts.

>>> predictions = [
...     Prediction([[1, 2]], -0.1, "identity"),
...     Prediction([[3]], -0.5, "rot90"),
...     Prediction([[1, 2]], -0.3, "transpose"),
...     Prediction(None, -2.0, "flip"),  # output did not parse: ignored by the vote
... ]
>>> [(v.grid, v.count, v.augmentations) for v in vote(predictions)]
[([[1, 2]], 2, ['identity', 'transpose']), ([[3]], 1, ['rot90'])]
>>> select_attempts(vote(predictions))
[[[1, 2]], [[3]]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

from arc_exp.data.grid import Grid, grid_key


@dataclass
class Prediction:
    """One generated answer for a test input.

    ``grid`` is ``None`` when the generated text did not parse to a grid (an unanswered prediction);
    ``logprob`` is the mean token log-probability of the generation (higher is more confident);
    ``augmentation`` names the transformation the prompt was built with (e.g. ``"rot90"``), for analysis only.
    """

    grid: Optional[Grid]
    logprob: float
    augmentation: str = ""


@dataclass
class VotedGrid:
    """A distinct predicted grid with its votes: how many predictions produced it, their mean logprob and the
    augmentations they came from (in prediction order)."""

    grid: Grid
    count: int
    mean_logprob: float
    augmentations: list[str] = field(default_factory=list)


def _rank_logprob(value: float) -> float:
    # NaN would make the sort order undefined; rank it like the least confident value.
    return -math.inf if math.isnan(value) else value


def vote(predictions: Iterable[Prediction]) -> list[VotedGrid]:
    """Group identical grids (by :func:`arc_exp.data.grid.grid_key`) and rank them, best first.

    Ranking: more votes first; equal votes, higher mean logprob first (NaN ranks last); equal votes and equal
    mean logprob, the grid that appeared first among ``predictions`` first (a stable sort over groups kept in
    first-appearance order), so the result is deterministic for a given prediction order.
    Unanswered predictions (``grid is None``) cast no vote. Returns ``[]`` when nothing was answered.
    """
    groups: dict[tuple, list[Prediction]] = {}  # dicts keep insertion order = first appearance
    for prediction in predictions:
        if prediction.grid is None:
            continue
        groups.setdefault(grid_key(prediction.grid), []).append(prediction)

    voted = [
        VotedGrid(
            grid=[list(row) for row in members[0].grid],
            count=len(members),
            mean_logprob=sum(float(p.logprob) for p in members) / len(members),
            augmentations=[p.augmentation for p in members],
        )
        for members in groups.values()
    ]
    # sorted() is stable: ties on (count, logprob) keep first-appearance order.
    return sorted(voted, key=lambda v: (-v.count, -_rank_logprob(v.mean_logprob)))


def select_attempts(voted: list[VotedGrid], n: int = 2) -> list[Grid]:
    """The grids of the ``n`` best voted candidates, best first; fewer when fewer distinct grids were voted.

    >>> select_attempts([VotedGrid([[1]], 3, -0.1), VotedGrid([[2]], 1, -0.2), VotedGrid([[3]], 1, -0.9)])
    [[[1]], [[2]]]
    """
    if n < 0:
        raise ValueError(f"select_attempts: n must be >= 0, got {n}")
    return [v.grid for v in voted[:n]]
