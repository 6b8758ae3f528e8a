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
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from arc_exp.data.grid import N_COLORS, Grid, to_array, to_grid
from arc_exp.data.tasks import Example, Task

Rng = Union[random.Random, np.random.Generator]

# ---------------------------------------------------------------------------------------------------------------------
# Random helpers: the same code accepts random.Random and numpy Generators.


def _check_rng(rng: Any) -> None:
    if not isinstance(rng, (random.Random, np.random.Generator)):
        raise TypeError(
            f"rng must be a random.Random or numpy.random.Generator, got {type(rng).__name__}; "
            "seed one with random.Random(seed) or numpy.random.default_rng(seed)"
        )


def randbelow(rng: Rng, n: int) -> int:
    _check_rng(rng)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    return rng.randrange(n)


def uniform(rng: Rng) -> float:
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


def map_task(task: Task, map_input, map_output, task_id: Optional[str] = None) -> Task:
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
        return map_task(task, self.apply_grid, self.apply_grid)

    def revert_task(self, task: Task) -> Task:
        return map_task(task, self.revert_grid, self.revert_grid)

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

















# ---------------------------------------------------------------------------------------------------------------------
# The policy configured from conf/augmentation/*.yaml.


