"""Count grids: random grids with objects, and each object's metadata under 4- and 8-connectivity.

An *object* is a group of same-colored, non-background cells that are connected: through their sides
(4-connectivity) or also through their corners (8-connectivity). A generated grid states the connectivity its objects
were placed for: under it, the placed objects are exactly the connected components of their color (same-colored
objects never touch, so nothing merges by accident). Under the other connectivity objects may split or join, e.g. a
diagonal line is one object with 8-connectivity and single cells with 4-connectivity. The metadata lists both::

    0 1 0        background 0; 4-connectivity: two objects of color 1, areas 1 and 1
    1 0 0                      8-connectivity: one object of color 1, area 2
    0 0 0

Sizes follow a curriculum: P(side = s) is proportional to s ** -size_power, so small grids are more frequent than big
ones. Objects cover less than half the grid, so the background is always the most frequent color.

Speed matters (a million grids in minutes), so placing an object costs a few integer operations, not a loop over
its cells:

- shapes (lines, rectangles, frames, random-walk blobs) come from a library built once per process (vectorized with
  numpy), each with its cells, its *halo* (the cells a same-colored object must avoid) and its parts under the other
  connectivity;
- the canvas is a set of bitsets (Python ints, one bit per cell), so testing a random position is one shift and one
  AND over the whole grid;
- the objects under the other connectivity come from that bookkeeping (an 8-connected blob splits into its
  4-connected parts; 4-connected objects of one color that touch at a corner join), not from labelling the grid.
  :func:`find_objects` (scipy labelling) is the independent reference the tests compare against.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right as bisect
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from arc_exp.data.grid import MAX_SIDE, N_COLORS
from arc_exp.synthetic.objects import CountGrid
from arc_exp.synthetic.shapes import (
    WALK_STEPS,
    Canvas,
    Shape,
    line_shape,
    make_shapes,
    rectangle_shape,
)

SHAPES = ("line", "rectangle", "blob")



class GeneratorSettingsError(ValueError):
    """Generator settings that cannot produce valid data; the message names the setting and the allowed values."""


@dataclass(frozen=True)
class CountConfig:
    """How count grids are drawn. Every setting is checked on construction (see :class:`GeneratorSettingsError`)."""

    min_side: int = 3
    max_side: int = 30
    size_power: float = 1.0          # P(side = s) ∝ s ** -size_power: the curriculum, more small grids than big
    square_prob: float = 0.3         # probability that width = height; otherwise both sides are drawn
    background_zero_prob: float = 0.8  # otherwise the background is another color, drawn uniformly
    min_objects: int = 1
    max_objects: int = 12            # objects tried per grid, also capped by max_fill (crowded grids get fewer)
    max_object_side: int = 6         # bounding box side of rectangles and blobs, length of lines
    max_colors: int = 4              # object colors per grid (repeated colors make "objects of color c" useful)
    max_fill: float = 0.45           # fraction of cells objects may cover; < 0.5 keeps the background most frequent
    shape_weights: dict = field(default_factory=lambda: {"line": 1.0, "rectangle": 1.0, "blob": 2.0})
    connectivity_8_prob: float = 0.5  # grids whose objects are placed as 8-connected components (else 4)
    attempts: int = 16               # random positions tried per object before it is skipped
    blobs_per_box: int = 128         # random-walk blobs in the library per (connectivity, box height, box width)
    library_seed: int = 0            # seeds the blob library (the same in every process, so shards agree)

    def __post_init__(self):
        object.__setattr__(self, "shape_weights", {str(k): float(v) for k, v in dict(self.shape_weights).items()})
        check_count_config(self)

    def side_probabilities(self) -> dict[int, float]:
        """P(side = s) for each allowed side: the curriculum. ``{3: 0.134, 4: 0.100, ..., 30: 0.013}`` by default."""
        weights = {s: s ** -self.size_power for s in range(self.min_side, self.max_side + 1)}
        total = sum(weights.values())
        return {s: w / total for s, w in weights.items()}

    def to_dict(self) -> dict:
        return asdict(self)


def check_count_config(config: CountConfig) -> None:
    """Raise :class:`GeneratorSettingsError` naming the first impossible setting."""
    def fail(key: str, message: str):
        raise GeneratorSettingsError(f"count generator: grids.{key}={getattr(config, key)!r}: {message}")

    def is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for key in ("min_side", "max_side"):
        if not is_int(getattr(config, key)) or not 1 <= getattr(config, key) <= MAX_SIDE:
            fail(key, f"grid sides must be integers in 1..{MAX_SIDE}")
    if config.min_side > config.max_side:
        fail("min_side", f"larger than max_side={config.max_side}")
    if not config.size_power >= 0:
        fail("size_power", "must be >= 0 (0: uniform sizes; larger: more small grids)")
    for key in ("square_prob", "background_zero_prob", "connectivity_8_prob"):
        if not 0.0 <= getattr(config, key) <= 1.0:
            fail(key, "a probability must be in 0..1")
    if not 0.0 < config.max_fill < 0.5:
        fail("max_fill", "must be in (0, 0.5) so that objects fit and the background stays the most frequent color")
    if not is_int(config.min_objects) or config.min_objects < 0:
        fail("min_objects", "must be an integer >= 0")
    if not is_int(config.max_objects) or config.max_objects < config.min_objects:
        fail("max_objects", f"must be an integer >= min_objects={config.min_objects}")
    # Each object takes at least one cell and objects cover at most max_fill of the grid.
    smallest = fill_capacity(config.min_side, config.max_fill)
    largest = fill_capacity(config.max_side, config.max_fill)
    if config.min_objects > smallest:
        fail("min_objects", f"more objects than cells they may cover in a {config.min_side}x{config.min_side} grid "
                            f"({smallest} = max_fill * cells); raise min_side or lower min_objects")
    if config.max_objects > largest:
        fail("max_objects", f"more objects than cells they may cover in a {config.max_side}x{config.max_side} grid "
                            f"({largest} = max_fill * cells)")
    if not is_int(config.max_object_side) or not 1 <= config.max_object_side <= MAX_SIDE:
        fail("max_object_side", f"must be an integer in 1..{MAX_SIDE}")
    if not is_int(config.max_colors) or not 1 <= config.max_colors <= N_COLORS - 1:
        fail("max_colors", f"must be an integer in 1..{N_COLORS - 1} (one color is the background)")
    unknown = sorted(set(config.shape_weights) - set(SHAPES))
    if unknown:
        fail("shape_weights", f"unknown shape(s) {unknown}; known shapes: {', '.join(SHAPES)}")
    if any(w < 0 for w in config.shape_weights.values()) or sum(config.shape_weights.values()) <= 0:
        fail("shape_weights", "weights must be >= 0 with a positive sum")
    for key in ("attempts", "blobs_per_box"):
        if not is_int(getattr(config, key)) or getattr(config, key) < 1:
            fail(key, "must be an integer >= 1")


def fill_capacity(side: int, max_fill: float) -> int:
    """How many cells objects may cover in a ``side`` x ``side`` grid."""
    return int(math.floor(max_fill * side * side))
















class CountGridGenerator:
    """Draws :class:`CountGrid` s from a :class:`CountConfig`.

    ``rng`` is passed in, so a caller seeds one per shard and the output does not depend on how shards are spread
    over processes. Shapes come from a library built on first use and seeded by ``library_seed`` and the shape's box
    alone, so every process builds the same library whatever order it needs the boxes in.

    >>> grid = CountGridGenerator(CountConfig(max_side=4, max_objects=3)).generate(make_rng(2, 0))
    >>> grid.grid, grid.background, grid.connectivity, [(o.color, o.bbox) for o in grid.objects[4]]
    ([[4, 4, 0], [0, 0, 7], [0, 0, 7]], 0, 8, [(4, (0, 0, 0, 1)), (7, (1, 2, 2, 2))])
    """

    def __init__(self, config: Optional[CountConfig] = None):
        self.config = config or CountConfig()
        probabilities = self.config.side_probabilities()
        self._sides = list(probabilities)
        self._side_cum = np.cumsum(list(probabilities.values())).tolist()[:-1]  # bisect them with a uniform draw
        self._kinds = [s for s in SHAPES if self.config.shape_weights.get(s, 0) > 0]
        weights = np.array([self.config.shape_weights[s] for s in self._kinds])
        self._kind_cum = (np.cumsum(weights) / weights.sum()).tolist()[:-1]
        self._library: dict = {}

    def generate(self, rng: random.Random) -> CountGrid:
        config = self.config
        height = self._sides[bisect(self._side_cum, rng.random())]
        width = height if rng.random() < config.square_prob else self._sides[bisect(self._side_cum, rng.random())]
        background = 0 if rng.random() < config.background_zero_prob else randint(rng, 1, N_COLORS - 1)
        connectivity = 8 if rng.random() < config.connectivity_8_prob else 4
        colors = [c for c in range(N_COLORS) if c != background]
        palette = [colors.pop(int(rng.random() * len(colors))) for _ in range(randint(rng, 1, config.max_colors))]

        capacity = int(config.max_fill * height * width)
        canvas = Canvas(height, width, connectivity, background)
        for _ in range(randint(rng, min(config.min_objects, capacity), min(config.max_objects, capacity))):
            budget = capacity - canvas.filled
            if budget <= 0:
                break
            shape = self._pick_shape(rng, height, width, connectivity)
            if shape.area > budget:
                shape = self._shape(("line", connectivity, 0, 1))  # one cell
            canvas.place(shape, palette[int(rng.random() * len(palette))], rng, config.attempts)
        return canvas.count_grid()

    def _pick_shape(self, rng: random.Random, height: int, width: int, connectivity: int) -> Shape:
        kind = self._kinds[bisect(self._kind_cum, rng.random())]
        limit = self.config.max_object_side
        if kind == "line":
            # Diagonal lines are one object only with 8-connectivity.
            direction = int(rng.random() * (4 if connectivity == 8 else 2))
            longest = (width, height, min(height, width), min(height, width))[direction]
            return self._shape(("line", connectivity, direction, randint(rng, 1, min(limit, longest))))
        box_h, box_w = randint(rng, 1, min(limit, height)), randint(rng, 1, min(limit, width))
        if kind == "rectangle":
            hollow = box_h >= 3 and box_w >= 3 and rng.random() < 0.3  # a frame
            return self._shape(("rectangle", connectivity, box_h, box_w, hollow))
        blobs = self._shape(("blob", connectivity, box_h, box_w))
        return blobs[int(rng.random() * len(blobs))]

    def _shape(self, key: tuple):
        """The library entry of ``key``, built on first use: a shape, or the list of blobs of a box."""
        return self._library.get(key) or self._build(key)

    def _build(self, key: tuple):
        kind, connectivity, *size = key
        build = {"line": line_shape, "rectangle": rectangle_shape, "blob": self._blobs}[kind]
        found = self._library[key] = build(*size, connectivity)
        return found

    def _blobs(self, box_h: int, box_w: int, connectivity: int) -> list[Shape]:
        """Random-walk blobs in a ``box_h`` x ``box_w`` box.

        Each step moves to a neighbor under the connectivity, and clipping to the box changes no coordinate by more
        than the step did, so consecutive cells stay neighbors and the blob is connected.
        """
        nrng = np.random.default_rng([self.config.library_seed, connectivity, box_h, box_w])
        count, longest = self.config.blobs_per_box, 2 * box_h * box_w
        steps = WALK_STEPS[connectivity][nrng.integers(0, len(WALK_STEPS[connectivity]), (count, longest))]
        lengths = nrng.integers(1, longest + 1, (count, 1))
        steps[np.arange(longest)[None, :] >= lengths] = 0  # walks of random length: later steps stay put
        path = np.cumsum(steps, axis=1) + nrng.integers(0, (box_h, box_w), (count, 1, 2))
        return make_shapes(np.clip(path[..., 0], 0, box_h - 1), np.clip(path[..., 1], 0, box_w - 1), connectivity)












def randint(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``low..high``; faster than ``rng.randint`` in the hot loop (float bias is negligible)."""
    return low + int(rng.random() * (high - low + 1))


def make_rng(seed: int, *keys: int) -> random.Random:
    """A random generator seeded from ``(seed, *keys)``, e.g. one per (seed, shard index)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(4, dtype=np.uint32)
    return random.Random(int.from_bytes(state.tobytes(), "little"))
