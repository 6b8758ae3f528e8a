"""Object shapes as bitsets and the canvas that places them: cells, halo and reach of each shape kept as integer bitsets
(one bit a cell, rows 32 bits apart) so a placement test is a few integer ANDs, not a grid scan."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from arc_exp.data.grid import MAX_SIDE, N_COLORS
from arc_exp.synthetic.objects import CONNECTIVITIES, STRUCTURES, CountGrid, GridObject

# Placement works on bitsets: a Python int whose bit (row + 1) * 32 + (column + 1) stands for a cell. Rows are 32 bits
# apart (up to 30 columns plus an empty border bit on each side), so a neighbor is a fixed bit offset that never wraps
# around a row, and moving a shape is one shift. Testing a position is then one AND over the whole grid: no loop over
# cells, and far fewer calls than numpy on grids this small.
_STRIDE = 32


_ORIGIN = _STRIDE + 1  # bit of cell (0, 0)


_NEIGHBORS = {4: np.array([0, -_STRIDE, _STRIDE, -1, 1]),
              8: np.array([0, -_STRIDE, _STRIDE, -1, 1, -_STRIDE - 1, -_STRIDE + 1, _STRIDE - 1, _STRIDE + 1])}


WALK_STEPS = {4: np.array([[-1, 0], [1, 0], [0, -1], [0, 1]]),
               8: np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [-1, -1], [-1, 1], [1, -1], [1, 1]])}


@dataclass(frozen=True)
class Shape:
    """A shape ready to place, connected under its connectivity; cells relative to its bounding box's top left."""

    height: int
    width: int
    area: int
    cells: tuple[tuple[int, int], ...]   # row-major
    bits: int            # its cells, as a bitset placed at the top left
    halo: int            # its cells and their neighbors: no other object of its color may go there
    reach: int           # (4-connectivity) its cells and their 8-neighbors: a same-colored object there joins it
    parts: tuple[tuple[tuple, tuple], ...]  # (8-connectivity) (cells, bbox) of its 4-connected parts, row-major


def _bitsets(offsets: np.ndarray) -> list[int]:
    """For each row of ``offsets`` (bit positions, repeats allowed), the int with those bits set."""
    flags = np.zeros((len(offsets), (MAX_SIDE + 3) * _STRIDE), dtype=bool)
    flags[np.arange(len(offsets))[:, None], offsets.reshape(len(offsets), -1)] = True
    packed = np.packbits(flags, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def make_shapes(rows: np.ndarray, cols: np.ndarray, connectivity: int) -> list[Shape]:
    """One shape per row of ``rows``/``cols`` (its cells, repeats allowed), each connected under ``connectivity``.

    Vectorized over shapes: a library of blobs is built with a few numpy calls and one labelling.
    """
    rows = rows - rows.min(axis=1, keepdims=True)
    cols = cols - cols.min(axis=1, keepdims=True)
    offsets = np.sort(rows * _STRIDE + cols, axis=1)
    first = np.ones(offsets.shape, dtype=bool)  # the first copy of each cell in the sorted rows
    first[:, 1:] = offsets[:, 1:] != offsets[:, :-1]
    bits = offsets + _ORIGIN
    cell_bits = _bitsets(bits)
    halos = _bitsets(bits[:, :, None] + _NEIGHBORS[connectivity])
    reaches = _bitsets(bits[:, :, None] + _NEIGHBORS[8]) if connectivity == 4 else [0] * len(bits)
    parts_of = None
    if connectivity == 8:
        # Label all shapes at once, each in its own band of a tall canvas, to find their 4-connected parts.
        from scipy import ndimage  # here, not at the top: see objects.STRUCTURES

        band = int(rows.max()) + 2
        band_rows = band * np.arange(len(rows))[:, None]
        canvas = np.zeros((band * len(rows), _STRIDE), dtype=bool)
        canvas[rows + band_rows, cols] = True
        labels, _ = ndimage.label(canvas, STRUCTURES[4])
        parts_of = labels[offsets // _STRIDE + band_rows, offsets % _STRIDE]
    shapes = []
    for i in range(len(offsets)):
        unique = offsets[i][first[i]]
        cell_rows, cell_cols = (unique // _STRIDE).tolist(), (unique % _STRIDE).tolist()
        cells = tuple(zip(cell_rows, cell_cols))
        height, width = cell_rows[-1] + 1, max(cell_cols) + 1
        if parts_of is None:
            parts = ((cells, (0, 0, height - 1, width - 1)),)
        else:
            groups: dict[int, list] = {}
            for cell, part in zip(cells, parts_of[i][first[i]].tolist()):
                groups.setdefault(part, []).append(cell)
            parts = tuple((tuple(g), (g[0][0], min(c for _, c in g), g[-1][0], max(c for _, c in g)))
                          for g in groups.values())  # dicts keep first-cell order
        shapes.append(Shape(height, width, len(cells), cells, cell_bits[i], halos[i], reaches[i], parts))
    return shapes


def line_shape(direction: int, length: int, connectivity: int) -> Shape:
    """0 horizontal, 1 vertical, 2 diagonal, 3 anti-diagonal."""
    steps, zeros = np.arange(length), np.zeros(length, dtype=int)
    rows, cols = [(zeros, steps), (steps, zeros), (steps, steps), (steps, length - 1 - steps)][direction]
    return make_shapes(rows[None], cols[None], connectivity)[0]


def rectangle_shape(height: int, width: int, hollow: bool, connectivity: int) -> Shape:
    """A filled rectangle, or its frame when ``hollow``."""
    rows, cols = np.divmod(np.arange(height * width), width)
    if hollow:
        keep = (rows == 0) | (rows == height - 1) | (cols == 0) | (cols == width - 1)
        rows, cols = rows[keep], cols[keep]
    return make_shapes(rows[None], cols[None], connectivity)[0]


class Canvas:
    """Places shapes so that same-colored objects never touch under the grid's connectivity, and keeps the books."""

    def __init__(self, height: int, width: int, connectivity: int, background: int):
        self.height, self.width, self.connectivity, self.background = height, width, connectivity, background
        self.taken = 0                 # bits of the cells objects cover
        self.near = [0] * N_COLORS     # bits where color c may not go: its objects and their neighbors
        self.placed: list[tuple[int, int, int, Shape]] = []  # (color, top, left, shape)
        self.by_color: list[list[tuple[int, int]]] = [[] for _ in range(N_COLORS)]  # (index, bits), for joins
        self.joins: list[tuple[int, int]] = []  # same-colored placed objects that touch at a corner
        self.filled = 0

    def place(self, shape: Shape, color: int, rng: random.Random, attempts: int) -> bool:
        """Place ``shape`` at the first of ``attempts`` random positions where it fits; False if none does."""
        rows, cols = self.height - shape.height + 1, self.width - shape.width + 1
        if rows <= 0 or cols <= 0:
            return False
        blocked, bits, draw = self.taken | self.near[color], shape.bits, rng.random
        for _ in range(attempts):
            top, left = int(draw() * rows), int(draw() * cols)
            moved = bits << (top * _STRIDE + left)
            if not moved & blocked:
                break
        else:
            return False
        shift = top * _STRIDE + left
        index = len(self.placed)
        if self.connectivity == 4:
            # Side neighbors of the color are blocked, so a same-colored object within reach touches at a corner:
            # the two are one object under 8-connectivity.
            reach = shape.reach << shift
            self.joins += [(other, index) for other, other_bits in self.by_color[color] if other_bits & reach]
            self.by_color[color].append((index, moved))
        self.taken |= moved
        self.near[color] |= shape.halo << shift
        self.placed.append((color, top, left, shape))
        self.filled += shape.area
        return True

    def count_grid(self) -> CountGrid:
        placed = [GridObject(color, _shift(shape.cells, top, left),
                             (top, left, top + shape.height - 1, left + shape.width - 1))
                  for color, top, left, shape in self.placed]
        # The grid is written out as lists anyway; painting the few object cells into them beats a numpy round trip.
        grid = [[self.background] * self.width for _ in range(self.height)]
        for obj in placed:
            for row, col in obj.cells:
                grid[row][col] = obj.color
        if self.connectivity == 4:
            objects = {4: placed, 8: _join(placed, self.joins)}
        else:  # an 8-connected object splits into its 4-connected parts (most shapes have one: the object itself)
            objects = {8: placed, 4: [
                obj if len(shape.parts) == 1 else
                GridObject(color, _shift(cells, top, left), (top + t, left + l, top + b, left + r))
                for obj, (color, top, left, shape) in zip(placed, self.placed) for cells, (t, l, b, r) in shape.parts]}
        for found in objects.values():
            found.sort(key=lambda o: o.cells[0])
        return CountGrid(grid, self.background, self.connectivity, {k: objects[k] for k in CONNECTIVITIES})


def _shift(cells: tuple[tuple[int, int], ...], top: int, left: int) -> tuple[tuple[int, int], ...]:
    return tuple([(top + r, left + c) for r, c in cells])


def _join(placed: list[GridObject], joins: list[tuple[int, int]]) -> list[GridObject]:
    """Merge the objects that touch at a corner (same color) into the objects they form under 8-connectivity."""
    if not joins:
        return list(placed)
    root = list(range(len(placed)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for a, b in joins:
        root[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(placed)):
        groups.setdefault(find(i), []).append(i)
    return [placed[g[0]] if len(g) == 1 else
            GridObject.from_cells(placed[g[0]].color, [cell for i in g for cell in placed[i].cells])
            for g in groups.values()]
