"""Task augmentations (iteration 22, augmentation=task_augmentation): a new task from an old one by transforming all
inputs or all outputs the same way (geometric, upscale, padding, mirror)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from arc_exp.data.augmentation import (
    Rng,
    dihedral,
    map_task,
    randbelow,
)
from arc_exp.data.grid import MAX_SIDE, N_COLORS, Grid, to_array, to_grid
from arc_exp.data.tasks import Task

TASK_AUGMENTATIONS = ("geometric", "upscale", "padding", "mirror")


TASK_AUGMENTATION_SIDES = ("input", "output")


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

    >>> from arc_exp.data.tasks import Example, Task
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
        return map_task(task, map_input, map_output, task_id=f"{task.task_id}:{self.name}")


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
    kind = kinds[randbelow(rng, len(kinds))]
    side = TASK_AUGMENTATION_SIDES[randbelow(rng, 2)]
    candidates = [TaskAugmentation(kind, side, p) for p in TASK_AUGMENTATION_PARAMETERS[kind]]
    candidates = [c for c in candidates if c.fits(task)]
    if not candidates:
        return None
    return candidates[randbelow(rng, len(candidates))].apply(task)


# The parameter each kind takes: a dihedral, an upscale factor, a border color, a mirror direction.
TASK_AUGMENTATION_PARAMETERS: dict[str, tuple] = {
    "geometric": tuple(range(1, 8)),
    "upscale": (2, 3),
    "padding": tuple(range(N_COLORS)),
    "mirror": ("horizontal", "vertical"),
}
