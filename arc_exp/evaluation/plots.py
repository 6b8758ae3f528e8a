"""PNG plots of ARC tasks and predictions, drawn with :mod:`arc_exp.data.drawing` (the ARC palette, grid lines,
fixed panel sizes): for example :func:`plot_prediction` with a known expected output draws 4 panels: 800 x 275
pixels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from arc_exp.data.drawing import PathLike, draw_grid, new_figure, save_figure, shape_title
from arc_exp.data.grid import Grid, grid_key
from arc_exp.data.tasks import Task


def plot_grids(grids: Sequence[Optional[Grid]], titles: Sequence[str], path: PathLike,
               title: Optional[str] = None) -> Path:
    """One row of panels, one per grid (``None`` = an empty "unanswered" panel); returns ``path``.

    Size: ``200 * len(grids)`` x 225 pixels (+50 with a figure ``title``).
    """
    if len(grids) != len(titles):
        raise ValueError(f"plot_grids: {len(grids)} grids but {len(titles)} titles")
    if not grids:
        raise ValueError("plot_grids: no grid to plot")
    fig, axes = new_figure(1, len(grids), title)
    for ax, grid, name in zip(axes[0], grids, titles):
        draw_grid(ax, grid, name)
    return save_figure(fig, path)


def plot_prediction(task_id: str, test_input: Grid, expected: Optional[Grid], attempts: Sequence[Optional[Grid]],
                    path: PathLike, correct: bool) -> Path:
    """Panels: the test input, the expected output (only when known) and both attempts; returns ``path``.

    A missing attempt (``None`` or fewer than two given) is an empty panel labelled "unanswered". With the
    expected output known each attempt title says "correct" or "wrong"; the figure title is
    ``"<task_id>: correct"`` in green or ``"<task_id>: wrong"`` in red, from ``correct``.
    Size: 800 x 275 pixels with the expected output, 600 x 275 without.
    """
    if len(attempts) > 2:
        raise ValueError(f"plot_prediction: task {task_id}: at most 2 attempts, got {len(attempts)}")
    attempts = list(attempts) + [None] * (2 - len(attempts))
    panels: list[tuple[Optional[Grid], str, str]] = [(test_input, shape_title("test input", test_input), "black")]
    if expected is not None:
        panels.append((expected, shape_title("expected", expected), "black"))
    for number, attempt in enumerate(attempts, start=1):
        name = shape_title(f"attempt {number}", attempt)
        color = "black"
        if expected is not None and attempt is not None:
            right = grid_key(attempt) == grid_key(expected)
            name += ": correct" if right else ": wrong"
            color = "green" if right else "red"
        panels.append((attempt, name, color))

    status, status_color = ("correct", "green") if correct else ("wrong", "red")
    fig, axes = new_figure(1, len(panels), f"{task_id}: {status}", status_color)
    for ax, (grid, name, color) in zip(axes[0], panels):
        draw_grid(ax, grid, name, title_color=color)
    return save_figure(fig, path)


def plot_task(task: Task, path: PathLike) -> Path:
    """A task at a glance: one column per train example then per test input, inputs on top, outputs below
    (an unknown test output is an empty panel labelled "?"); titled with the task id; returns ``path``.

    Size: ``200 * (len(train) + len(test))`` x 500 pixels.
    """
    columns = [(f"train {i}", e) for i, e in enumerate(task.train)]
    columns += [(f"test {i}", e) for i, e in enumerate(task.test)]
    fig, axes = new_figure(2, len(columns), task.task_id)
    for col, (name, example) in enumerate(columns):
        draw_grid(axes[0][col], example.input, shape_title(f"{name} input", example.input))
        draw_grid(axes[1][col], example.output, shape_title(f"{name} output", example.output), empty_label="?")
    return save_figure(fig, path)
