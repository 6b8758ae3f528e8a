"""What a count grid is: its objects (color, cells, bounding box) under 4- and 8-connectivity, found with scipy's
connected-component labelling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from arc_exp.data.grid import Grid

CONNECTIVITIES = (4, 8)


# scipy's structures (ndimage.generate_binary_structure(2, 1) and (2, 2)): 4-connectivity joins side neighbors,
# 8-connectivity also corner neighbors. Written out, and scipy imported where it labels: the config schemas import
# this package (arc_exp/schemas.py), and `train.py --cfg job` should not wait ~0.4 s for scipy.
STRUCTURES = {4: np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool), 8: np.ones((3, 3), dtype=bool)}


class GridObject(NamedTuple):
    """One object: its color, its cells (row, column) in row-major order and its inclusive bounding box.

    A NamedTuple rather than a dataclass: grids are made by the million and tuples are the cheapest to build.

    >>> GridObject.from_cells(1, [(1, 0), (0, 1)])
    GridObject(color=1, cells=((0, 1), (1, 0)), bbox=(0, 0, 1, 1))
    """

    color: int
    cells: tuple[tuple[int, int], ...]
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right)

    @property
    def area(self) -> int:
        return len(self.cells)

    @classmethod
    def from_cells(cls, color: int, cells) -> "GridObject":
        cells = tuple(sorted((int(r), int(c)) for r, c in cells))
        cols = [c for _, c in cells]
        return cls(int(color), cells, (cells[0][0], min(cols), cells[-1][0], max(cols)))

    def to_dict(self) -> dict:
        # json writes tuples as lists; no per-cell conversion needed
        return {"color": self.color, "area": len(self.cells), "bbox": self.bbox, "cells": self.cells}

    @classmethod
    def from_dict(cls, data: dict) -> "GridObject":
        return cls(data["color"], tuple(tuple(c) for c in data["cells"]), tuple(data["bbox"]))


@dataclass(frozen=True)
class CountGrid:
    """A grid with its background, the connectivity its objects were placed for, and its objects under 4 and 8.

    >>> CountGrid.from_grid([[0, 1], [1, 0]], background=0).objects[4]
    [GridObject(color=1, cells=((0, 1),), bbox=(0, 1, 0, 1)), GridObject(color=1, cells=((1, 0),), bbox=(1, 0, 1, 0))]
    """

    grid: Grid
    background: int
    connectivity: int
    objects: dict  # {4: [GridObject, ...], 8: [...]}, each list ordered by the object's first cell (row-major)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.grid), len(self.grid[0])

    def to_dict(self) -> dict:
        # Most objects are the same under both connectivities (often the same tuple): convert each once.
        converted = {id(obj): obj.to_dict() for objects in self.objects.values() for obj in objects}
        return {"grid": self.grid, "background": self.background, "connectivity": self.connectivity,
                "objects": {str(k): [converted[id(o)] for o in v] for k, v in self.objects.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "CountGrid":
        objects = {int(k): [GridObject.from_dict(o) for o in v] for k, v in data["objects"].items()}
        return cls(data["grid"], data["background"], data["connectivity"], objects)

    @classmethod
    def from_grid(cls, grid: Grid, background: int, connectivity: int = 4) -> "CountGrid":
        """The metadata of a hand-drawn grid, found by connected-component labelling."""
        array = np.asarray(grid, dtype=np.int8)
        return cls([[int(v) for v in row] for row in grid], int(background), connectivity,
                   {k: find_objects(array, background, k) for k in CONNECTIVITIES})


def find_objects(grid: np.ndarray, background: int, connectivity: int) -> list[GridObject]:
    """The connected components of each non-background color (scipy labelling), ordered by their first cell.

    >>> [o.cells for o in find_objects(np.array([[1, 0], [0, 1]]), 0, 8)]
    [((0, 0), (1, 1))]
    """
    # scipy: only where grids are labelled or tested (the config schemas import this module)
    from scipy import ndimage

    objects = []
    for color in np.unique(grid).tolist():
        if color == background:
            continue
        labels, n = ndimage.label(grid == color, STRUCTURES[connectivity])
        for label in range(1, n + 1):
            rows, cols = np.nonzero(labels == label)  # row-major order
            objects.append(GridObject.from_cells(color, zip(rows.tolist(), cols.tolist())))
    objects.sort(key=lambda o: o.cells[0])
    return objects
