"""Task augmentation: dihedral transforms, color permutations, example shuffling and new tasks built from a task.

Two families live here:

- **Invertible augmentations** (:class:`Augmentation`): one of the 8 dihedral transforms plus a color permutation,
  applied to every grid of a task. A prediction on the augmented task maps back with :meth:`Augmentation.revert_grid`,
  so evaluation can vote over several augmented views.
- **New tasks for training** (:func:`swap_train_test`, :func:`leave_one_out`, :func:`leave_two_out`,
  :class:`TaskAugmentation`): they change which examples are train/test, or change the input->output mapping itself.
  They are not reverted.

:class:`AugmentationPolicy` (built from ``conf/augmentation/*.yaml``) samples random augmentations for training and
enumerates distinct views for inference. Every random choice takes an explicit ``random.Random`` or
``numpy.random.Generator``, so results are reproducible from a seed.

>>> Augmentation(dihedral=1).apply_grid([[1, 2, 3], [4, 5, 6]])
[[4, 1], [5, 2], [6, 3]]
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from arc_exp.data.tasks import Example, Task
from arc_exp.data.grid import MAX_SIDE, N_COLORS, Grid, to_array, to_grid

Rng = Union[random.Random, np.random.Generator]

# ---------------------------------------------------------------------------------------------------------------------
# Random helpers: the same code accepts random.Random and numpy Generators.


def _check_rng(rng: Any) -> None:
    if not isinstance(rng, (random.Random, np.random.Generator)):
        raise TypeError(
            f"rng must be a random.Random or numpy.random.Generator, got {type(rng).__name__}; "
            "seed one with random.Random(seed) or numpy.random.default_rng(seed)"
        )


def _randbelow(rng: Rng, n: int) -> int:
    _check_rng(rng)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    return rng.randrange(n)


def _uniform(rng: Rng) -> float:
    _check_rng(rng)
    return float(rng.random())


def _permutation(rng: Rng, n: int) -> list[int]:
    _check_rng(rng)
    if isinstance(rng, np.random.Generator):
        return [int(i) for i in rng.permutation(n)]
    order = list(range(n))
    rng.shuffle(order)
    return order


# ---------------------------------------------------------------------------------------------------------------------
# Dihedral transforms (the symmetries of a square: 4 rotations, each with or without a left-right flip).

DIHEDRAL_NAMES = (
    "identity",  # 0
    "rot90",  # 1: quarter turn clockwise
    "rot180",  # 2
    "rot270",  # 3: three quarter turns clockwise (= one turn counter-clockwise)
    "flip",  # 4: left-right mirror (columns reversed)
    "flip_rot90",  # 5: flip, then rot90       = transpose across the anti-diagonal
    "flip_rot180",  # 6: flip, then rot180     = up-down mirror (rows reversed)
    "flip_rot270",  # 7: flip, then rot270     = transpose (rows become columns)
)


def _check_dihedral(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < 8:
        raise ValueError(f"dihedral must be an int 0..7 ({', '.join(DIHEDRAL_NAMES)}), got {k!r}")
    return int(k)


def _dihedral_array(array: np.ndarray, k: int) -> np.ndarray:
    if k >= 4:
        array = np.fliplr(array)
    # np.rot90 turns counter-clockwise; a negative count turns clockwise.
    return np.rot90(array, -(k % 4))


def dihedral(grid: Grid, k: int) -> Grid:
    """Apply dihedral transform ``k`` (0..7, see :data:`DIHEDRAL_NAMES`): flip left-right if ``k >= 4``, then
    turn ``k % 4`` quarter turns clockwise.

    >>> [dihedral([[1, 2, 3], [4, 5, 6]], k) for k in (1, 4, 7)]
    [[[4, 1], [5, 2], [6, 3]], [[3, 2, 1], [6, 5, 4]], [[1, 4], [2, 5], [3, 6]]]
    """
    return to_grid(_dihedral_array(to_array(grid), _check_dihedral(k)))


def inverse_dihedral(k: int) -> int:
    """The ``j`` with ``dihedral(dihedral(g, k), j) == g``: rotations invert to the opposite turn, flips to themselves.

    >>> [inverse_dihedral(k) for k in range(8)]
    [0, 3, 2, 1, 4, 5, 6, 7]
    """
    k = _check_dihedral(k)
    return (4 - k) % 4 if k < 4 else k


def revert_dihedral(grid: Grid, k: int) -> Grid:
    """Undo :func:`dihedral` ``k``: ``revert_dihedral(dihedral(g, k), k) == g``."""
    return dihedral(grid, inverse_dihedral(k))


# ---------------------------------------------------------------------------------------------------------------------
# Color permutations: a tuple ``m`` of 10 ints, color ``c`` becomes ``m[c]``.

IDENTITY_COLORS: tuple[int, ...] = tuple(range(N_COLORS))


def check_color_map(color_map: Any, where: str = "color_map") -> tuple[int, ...]:
    """``color_map`` as a tuple, checked to be a permutation of 0..9; else ``ValueError`` naming ``where``."""
    try:
        values = tuple(int(c) for c in color_map)
    except (TypeError, ValueError):
        values = None
    if values is None or sorted(values) != list(IDENTITY_COLORS):
        raise ValueError(f"{where} must be a permutation of the colors 0..9, got {color_map!r}")
    return values


def random_color_map(rng: Rng, keep_background: bool = True) -> tuple[int, ...]:
    """A random permutation of the 10 colors; with ``keep_background`` color 0 (black) stays 0.

    >>> random_color_map(random.Random(0))
    (0, 8, 6, 2, 4, 5, 3, 1, 9, 7)
    """
    if keep_background:
        return (0,) + tuple(1 + c for c in _permutation(rng, N_COLORS - 1))
    return tuple(_permutation(rng, N_COLORS))


def apply_color_map(grid: Grid, color_map: Sequence[int]) -> Grid:
    """Recolor every cell: ``c -> color_map[c]``.

    >>> apply_color_map([[0, 1], [2, 1]], (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    [[0, 2], [1, 2]]
    """
    return to_grid(np.asarray(color_map, dtype=np.int8)[to_array(grid)])


def invert_color_map(color_map: Sequence[int]) -> tuple[int, ...]:
    """The permutation that undoes ``color_map``: ``inverse[color_map[c]] == c``."""
    inverse = [0] * N_COLORS
    for color, mapped in enumerate(check_color_map(color_map)):
        inverse[mapped] = color
    return tuple(inverse)


def revert_color_map(grid: Grid, color_map: Sequence[int]) -> Grid:
    """Undo :func:`apply_color_map`: ``revert_color_map(apply_color_map(g, m), m) == g``."""
    return apply_color_map(grid, invert_color_map(color_map))


# ---------------------------------------------------------------------------------------------------------------------
# The invertible augmentation of a task.


def _map_task(task: Task, map_input, map_output, task_id: Optional[str] = None) -> Task:
    """Apply ``map_input`` to every input and ``map_output`` to every known output (test outputs included)."""

    def example(e: Example) -> Example:
        return Example(map_input(e.input), None if e.output is None else map_output(e.output))

    return task.replace(
        task_id=task.task_id if task_id is None else task_id,
        train=[example(e) for e in task.train],
        test=[example(e) for e in task.test],
    )


@dataclass(frozen=True)
class Augmentation:
    """An invertible view of a task: recolor with ``color_map``, then apply dihedral transform ``dihedral``.

    Its :attr:`name` is what predictions.json stores, e.g. ``"d0"`` (identity), ``"d4"`` or
    ``"d1+c[0,3,1,2,4,5,6,7,8,9]"``; :meth:`from_name` / :meth:`from_dict` read it back.

    >>> aug = Augmentation(dihedral=4, color_map=(0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    >>> aug.apply_grid([[0, 1, 2]]), aug.revert_grid([[1, 2, 0]])
    ([[1, 2, 0]], [[0, 1, 2]])
    """

    dihedral: int = 0
    color_map: tuple[int, ...] = IDENTITY_COLORS

    def __post_init__(self) -> None:
        object.__setattr__(self, "dihedral", _check_dihedral(self.dihedral))
        object.__setattr__(self, "color_map", check_color_map(self.color_map, "Augmentation.color_map"))

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.color_map == IDENTITY_COLORS

    def apply_grid(self, grid: Grid) -> Grid:
        # Recoloring is per cell, so it commutes with the dihedral transform; the order is a convention.
        return dihedral(apply_color_map(grid, self.color_map), self.dihedral)

    def revert_grid(self, grid: Grid) -> Grid:
        """Map a grid of the augmented task (e.g. a predicted test output) back to the original task."""
        return revert_color_map(revert_dihedral(grid, self.dihedral), self.color_map)

    def inverse(self) -> "Augmentation":
        """The augmentation whose ``apply_grid`` is this one's ``revert_grid``."""
        return Augmentation(inverse_dihedral(self.dihedral), invert_color_map(self.color_map))

    def apply_task(self, task: Task) -> Task:
        """Augment every grid of ``task`` (train pairs, test inputs, test outputs when known); the id is kept."""
        return _map_task(task, self.apply_grid, self.apply_grid)

    def revert_task(self, task: Task) -> Task:
        return _map_task(task, self.revert_grid, self.revert_grid)

    @property
    def name(self) -> str:
        text = f"d{self.dihedral}"
        if self.color_map != IDENTITY_COLORS:
            text += "+c[" + ",".join(str(c) for c in self.color_map) + "]"
        return text

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_name(cls, name: str) -> "Augmentation":
        """Parse :attr:`name`: ``"d4"`` or ``"d4+c[0,3,1,2,4,5,6,7,8,9]"``."""
        head, _, colors = str(name).partition("+")
        try:
            if not head.startswith("d") or (colors and not (colors.startswith("c[") and colors.endswith("]"))):
                raise ValueError
            k = int(head[1:])
            color_map = tuple(int(c) for c in colors[2:-1].split(",")) if colors else IDENTITY_COLORS
        except ValueError:
            raise ValueError(
                f"augmentation name {name!r} is not of the form 'd<0..7>' or 'd<0..7>+c[<10 colors>]'"
            ) from None
        return cls(k, color_map)

    def to_dict(self) -> dict:
        return {"dihedral": self.dihedral, "color_map": list(self.color_map)}

    @classmethod
    def from_dict(cls, data: Any) -> "Augmentation":
        if not isinstance(data, dict) or set(data) - {"dihedral", "color_map"}:
            raise ValueError(f"augmentation dict must only hold keys 'dihedral' and 'color_map', got {data!r}")
        return cls(data.get("dihedral", 0), data.get("color_map", IDENTITY_COLORS))


IDENTITY = Augmentation()


def shuffle_train(task: Task, rng: Rng) -> Task:
    """The same task with its train examples in a random order (test examples untouched)."""
    order = _permutation(rng, len(task.train))
    return task.replace(train=[task.train[i] for i in order])


# ---------------------------------------------------------------------------------------------------------------------
# New tasks from the examples of one task (train/test swaps and leave-out for test-time fine-tuning).


def swap_train_test(task: Task) -> list[Task]:
    """Pool train and test examples; each pooled example in turn is the single test, the others are train.

    Ids are ``"<id>:swap<i>"`` with ``i`` the index in the pool (train examples first, then tests). A task without
    known test outputs cannot be swapped and comes back as ``[task]``.
    """
    if not task.has_solutions:
        return [task]
    pool = task.train + task.test
    return [
        task.replace(task_id=f"{task.task_id}:swap{i}", train=pool[:i] + pool[i + 1 :], test=[pool[i]])
        for i in range(len(pool))
    ]


def leave_one_out(task: Task) -> list[Task]:
    """The n-1 tasks for test-time fine-tuning: train example ``i`` becomes the test (with its output), the other
    train examples stay train. Ids ``"<id>:loo<i>"``. The original test inputs are dropped. A task with fewer than 2
    train examples gives ``[]``.
    """
    train = task.train
    if len(train) < 2:
        return []
    return [
        task.replace(task_id=f"{task.task_id}:loo{i}", train=train[:i] + train[i + 1 :], test=[train[i]])
        for i in range(len(train))
    ]


def leave_two_out(task: Task) -> list[Task]:
    """The n-2 tasks: for each ordered pair (target ``i``, dropped ``j``), train example ``i`` is the test and the
    other n-2 examples (all but ``i`` and ``j``) are train. Ids ``"<id>:l2o<i>-<j>"``; n*(n-1) tasks. A task with
    fewer than 3 train examples gives ``[]``.
    """
    train = task.train
    if len(train) < 3:
        return []
    return [
        task.replace(
            task_id=f"{task.task_id}:l2o{i}-{j}",
            train=[e for m, e in enumerate(train) if m not in (i, j)],
            test=[train[i]],
        )
        for i, j in itertools.permutations(range(len(train)), 2)
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Task augmentation: one extra transform on all inputs only or all outputs only, which makes a new, harder task.

TASK_AUGMENTATIONS = ("geometric", "upscale", "padding", "mirror")
TASK_AUGMENTATION_SIDES = ("input", "output")
# The parameter each kind takes: a dihedral, an upscale factor, a border color, a mirror direction.
TASK_AUGMENTATION_PARAMETERS: dict[str, tuple] = {
    "geometric": tuple(range(1, 8)),
    "upscale": (2, 3),
    "padding": tuple(range(N_COLORS)),
    "mirror": ("horizontal", "vertical"),
}


def upscale(grid: Grid, factor: int) -> Grid:
    """Each cell becomes a ``factor`` x ``factor`` block: ``upscale([[1, 2]], 2) == [[1, 1, 2, 2], [1, 1, 2, 2]]``."""
    return to_grid(np.kron(to_array(grid), np.ones((factor, factor), dtype=np.int8)))


def pad(grid: Grid, color: int, width: int = 1) -> Grid:
    """Surround the grid with a border of ``color``: ``pad([[1]], 5) == [[5, 5, 5], [5, 1, 5], [5, 5, 5]]``."""
    return to_grid(np.pad(to_array(grid), width, constant_values=color))


def mirror(grid: Grid, direction: str) -> Grid:
    """Concatenate the grid with its mirror image: ``"horizontal"`` puts the left-right mirror on the right,
    ``"vertical"`` puts the up-down mirror below.

    >>> mirror([[1, 2]], "horizontal"), mirror([[1, 2]], "vertical")
    ([[1, 2, 2, 1]], [[1, 2], [1, 2]])
    """
    array = to_array(grid)
    if direction == "horizontal":
        return to_grid(np.concatenate([array, np.fliplr(array)], axis=1))
    if direction == "vertical":
        return to_grid(np.concatenate([array, np.flipud(array)], axis=0))
    raise ValueError(f"mirror direction must be 'horizontal' or 'vertical', got {direction!r}")


def _transformed_shape(shape: tuple[int, int], kind: str, parameter: Any) -> tuple[int, int]:
    rows, cols = shape
    if kind == "geometric":
        return (cols, rows) if parameter in (1, 3, 5, 7) else (rows, cols)
    if kind == "upscale":
        return rows * parameter, cols * parameter
    if kind == "padding":
        return rows + 2, cols + 2
    return (rows, 2 * cols) if parameter == "horizontal" else (2 * rows, cols)


@dataclass(frozen=True)
class TaskAugmentation:
    """One extra transform applied to all inputs (``side="input"``) or all outputs (``side="output"``) of a task.

    ``kind`` is one of :data:`TASK_AUGMENTATIONS` and ``parameter`` one of its
    :data:`TASK_AUGMENTATION_PARAMETERS`: a dihedral 1..7, an upscale factor 2 or 3, a border color 0..9, or a mirror
    direction. The mapping changes but stays consistent across examples, so the new task is solvable; it is for
    training only and is never reverted.

    >>> task = Task("t", (Example([[1, 2]], [[2, 1]]),), (Example([[3, 4]], [[4, 3]]),))
    >>> TaskAugmentation("upscale", "output", 2).apply(task).test[0].output
    [[4, 4, 3, 3], [4, 4, 3, 3]]
    """

    kind: str
    side: str
    parameter: Any

    def __post_init__(self) -> None:
        if self.kind not in TASK_AUGMENTATIONS:
            allowed = ", ".join(TASK_AUGMENTATIONS)
            raise ValueError(f"task augmentation kind {self.kind!r} is unknown; allowed: {allowed}")
        if self.side not in TASK_AUGMENTATION_SIDES:
            raise ValueError(f"task augmentation side {self.side!r} is unknown; allowed: input, output")
        allowed = TASK_AUGMENTATION_PARAMETERS[self.kind]
        if self.parameter not in allowed or isinstance(self.parameter, bool):
            raise ValueError(
                f"task augmentation {self.kind!r} takes a parameter in {list(allowed)}, got {self.parameter!r}"
            )

    @property
    def name(self) -> str:
        """Appended to the task id: ``"output-upscale-2"``."""
        return f"{self.side}-{self.kind}-{self.parameter}"

    def transform_grid(self, grid: Grid) -> Grid:
        if self.kind == "geometric":
            return dihedral(grid, self.parameter)
        if self.kind == "upscale":
            return upscale(grid, self.parameter)
        if self.kind == "padding":
            return pad(grid, self.parameter)
        return mirror(grid, self.parameter)

    def fits(self, task: Task) -> bool:
        """Whether every transformed grid stays within 30x30."""
        return all(
            max(_transformed_shape((len(g), len(g[0])), self.kind, self.parameter)) <= MAX_SIDE
            for g in _side_grids(task, self.side)
        )

    def apply(self, task: Task) -> Optional[Task]:
        """The new task with id ``"<id>:<name>"``, or ``None`` when a transformed grid would exceed 30x30."""
        if not self.fits(task):
            return None
        keep = lambda grid: grid  # noqa: E731 - the untouched side
        change = self.transform_grid
        map_input, map_output = (change, keep) if self.side == "input" else (keep, change)
        return _map_task(task, map_input, map_output, task_id=f"{task.task_id}:{self.name}")


def _side_grids(task: Task, side: str) -> list[Grid]:
    examples = task.train + task.test
    if side == "input":
        return [e.input for e in examples]
    return [e.output for e in examples if e.output is not None]


def random_task_augmentation(
    task: Task, rng: Rng, kinds: Sequence[str] = TASK_AUGMENTATIONS
) -> Optional[Task]:
    """Pick a kind from ``kinds`` and a side at random, then a parameter among those that keep every grid within
    30x30 (e.g. upscale x2 when x3 would not fit). ``None`` when no parameter of that kind fits.
    """
    kind = kinds[_randbelow(rng, len(kinds))]
    side = TASK_AUGMENTATION_SIDES[_randbelow(rng, 2)]
    candidates = [TaskAugmentation(kind, side, p) for p in TASK_AUGMENTATION_PARAMETERS[kind]]
    candidates = [c for c in candidates if c.fits(task)]
    if not candidates:
        return None
    return candidates[_randbelow(rng, len(candidates))].apply(task)


# ---------------------------------------------------------------------------------------------------------------------
# The policy configured from conf/augmentation/*.yaml.


@dataclass
class AugmentationPolicy:
    """Which augmentations to use, built from ``conf/augmentation/<name>.yaml`` with ``hydra.utils.instantiate``.

    - ``dihedral``: sample one of the 8 dihedral transforms;
    - ``color_permutation`` / ``keep_background`` / ``color_probability``: permute colors (keeping 0) with that
      probability;
    - ``shuffle_train``: shuffle the order of train examples;
    - ``task_augmentation_probability`` / ``task_augmentations``: with that probability first make a new task with
      one of these :class:`TaskAugmentation` kinds (training only).
    """

    dihedral: bool = True
    color_permutation: bool = True
    keep_background: bool = True
    color_probability: float = 1.0
    shuffle_train: bool = True
    task_augmentation_probability: float = 0.0
    task_augmentations: tuple[str, ...] = field(default=TASK_AUGMENTATIONS)

    def __post_init__(self) -> None:
        for name in ("dihedral", "color_permutation", "keep_background", "shuffle_train"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"augmentation.{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("color_probability", "task_augmentation_probability"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation.{name} must be a probability between 0 and 1, got {value!r}")
            setattr(self, name, float(value))
        if isinstance(self.task_augmentations, str):
            raise ValueError(
                f"augmentation.task_augmentations must be a list, got the string {self.task_augmentations!r}; "
                f"allowed values: {', '.join(TASK_AUGMENTATIONS)}"
            )
        # Hydra hands over a ListConfig; keep a plain tuple.
        self.task_augmentations = tuple(self.task_augmentations)
        unknown = [k for k in self.task_augmentations if k not in TASK_AUGMENTATIONS]
        if unknown:
            raise ValueError(
                f"augmentation.task_augmentations holds unknown {unknown}; "
                f"allowed values: {', '.join(TASK_AUGMENTATIONS)}"
            )
        if self.task_augmentation_probability > 0 and not self.task_augmentations:
            raise ValueError(
                "augmentation.task_augmentations is empty but task_augmentation_probability is "
                f"{self.task_augmentation_probability}; list some of: {', '.join(TASK_AUGMENTATIONS)}"
            )

    def sample(self, rng: Rng) -> Augmentation:
        """A random invertible augmentation allowed by this policy."""
        k = _randbelow(rng, 8) if self.dihedral else 0
        color_map = IDENTITY_COLORS
        if self.color_permutation and _uniform(rng) < self.color_probability:
            color_map = random_color_map(rng, self.keep_background)
        return Augmentation(k, color_map)

    def __call__(self, task: Task, rng: Rng) -> tuple[Task, Augmentation]:
        """Augment one training task on the fly: maybe a task augmentation (kept only when it fits 30x30), then a
        sampled :class:`Augmentation`, then a train shuffle. Returns the task and the invertible augmentation used.
        """
        if self.task_augmentation_probability > 0 and _uniform(rng) < self.task_augmentation_probability:
            task = random_task_augmentation(task, rng, self.task_augmentations) or task
        augmentation = self.sample(rng)
        task = augmentation.apply_task(task)
        if self.shuffle_train:
            task = shuffle_train(task, rng)
        return task, augmentation

    @property
    def max_views(self) -> Optional[int]:
        """How many distinct views :meth:`enumerate_views` can give (``None``: practically unlimited)."""
        if self.color_permutation:
            return None
        return 8 if self.dihedral else 1

    def enumerate_views(self, n: int, rng: Rng) -> list[Augmentation]:
        """``n`` distinct augmentations for inference: the identity first, then the other 7 dihedrals (if
        ``dihedral``), then dihedrals cycling 0..7 each with a new random color permutation (if
        ``color_permutation``). Raises ``ValueError`` when the policy allows fewer than ``n`` views.
        """
        if n < 1:
            raise ValueError(f"number of augmented views must be at least 1, got {n}")
        if self.max_views is not None and n > self.max_views:
            raise ValueError(
                f"augmentation policy (dihedral={self.dihedral}, color_permutation={self.color_permutation}) "
                f"allows only {self.max_views} distinct views, asked for {n}"
            )
        dihedrals = list(range(8)) if self.dihedral else [0]
        views = [Augmentation(k) for k in dihedrals][:n]
        seen = set(views)
        i = 0
        while len(views) < n:
            view = Augmentation(dihedrals[i % len(dihedrals)], random_color_map(rng, self.keep_background))
            if view not in seen:  # a repeated color map (rare) is simply drawn again
                seen.add(view)
                views.append(view)
                i += 1
        return views
