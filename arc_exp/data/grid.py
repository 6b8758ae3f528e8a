"""The ARC grid: a rectangular list of rows of ints 0..9, 1x1 to 30x30.

Grids are plain ``list[list[int]]`` everywhere (JSON-friendly, hashable via :func:`grid_key`);
numpy is used inside functions that transform them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

Grid = list[list[int]]

MAX_SIDE = 30
N_COLORS = 10


class InvalidGridError(ValueError):
    """A grid that breaks the ARC rules; the message names where it came from."""


def validate_grid(grid: object, where: str = "grid") -> Grid:
    """Check ``grid`` is a non-empty rectangular list of lists of ints 0..9, at most 30x30.

    >>> validate_grid([[0, 1], [2, 3]])
    [[0, 1], [2, 3]]

    Raises :class:`InvalidGridError` naming ``where`` (e.g. ``"tasks.json: task 0a1b2c3d train[0].input"``).
    """
    if not isinstance(grid, (list, tuple)) or len(grid) == 0:
        raise InvalidGridError(f"{where}: grid is empty or not a list of rows")
    width = None
    for r, row in enumerate(grid):
        if not isinstance(row, (list, tuple)) or len(row) == 0:
            raise InvalidGridError(f"{where}: row {r} is empty or not a list")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise InvalidGridError(
                f"{where}: grid is not rectangular (row 0 has {width} cells, row {r} has {len(row)})"
            )
        for c, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < N_COLORS:
                raise InvalidGridError(f"{where}: cell ({r}, {c}) holds {value!r}, colors must be ints 0..9")
    if len(grid) > MAX_SIDE or width > MAX_SIDE:
        raise InvalidGridError(f"{where}: grid is {len(grid)}x{width}, larger than {MAX_SIDE}x{MAX_SIDE}")
    return [[int(v) for v in row] for row in grid]


def to_array(grid: Sequence[Sequence[int]]) -> np.ndarray:
    return np.asarray(grid, dtype=np.int8)


def to_grid(array: np.ndarray) -> Grid:
    return [[int(v) for v in row] for row in np.asarray(array)]


def grid_key(grid: Grid) -> tuple[tuple[int, ...], ...]:
    """A hashable form of a grid, for voting and de-duplication."""
    return tuple(tuple(row) for row in grid)


def grid_shape(grid: Grid) -> tuple[int, int]:
    return len(grid), len(grid[0])
