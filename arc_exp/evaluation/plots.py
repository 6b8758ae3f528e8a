"""PNG plots of ARC grids in the usual ARC palette, with grid lines between cells.

Figures are built as plain :class:`matplotlib.figure.Figure` objects on the Agg canvas, never through pyplot, so no
GUI backend is touched and no figure stays registered (nothing to leak, safe in workers and tests).

Sizes are fixed so plots of a run line up: each panel is ``PANEL_WIDTH x PANEL_HEIGHT`` inches at ``DPI``
(200 x 225 pixels), plus a ``HEADER_HEIGHT`` band (50 pixels) when the figure has a title. For example
:func:`plot_prediction` with a known expected output draws 4 panels: 800 x 275 pixels.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from arc_exp.data.grid import Grid, grid_key, grid_shape, validate_grid
from arc_exp.data.tasks import Task

# The ARC palette, color 0..9: black, blue, red, green, yellow, grey, magenta, orange, azure, maroon.
ARC_COLORS = (
    "#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
    "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25",
)
ARC_CMAP = ListedColormap(ARC_COLORS, name="arc")
ARC_NORM = BoundaryNorm(np.arange(-0.5, 10.5, 1), ARC_CMAP.N)  # integer color c -> bin c
GRID_LINE_COLOR = "#555555"

DPI = 100
PANEL_WIDTH = 2.0  # inches; binary-exact values so pixel sizes are exact integers
PANEL_HEIGHT = 2.25
HEADER_HEIGHT = 0.5

PathLike = Union[str, os.PathLike]


def _figure(nrows: int, ncols: int, title: Optional[str] = None, title_color: str = "black"):
    height = nrows * PANEL_HEIGHT + (HEADER_HEIGHT if title else 0.0)
    fig = Figure(figsize=(ncols * PANEL_WIDTH, height), dpi=DPI, layout="constrained", facecolor="white")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, color=title_color, fontsize=12)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()  # drop artists now; the figure is not registered anywhere, so it is then garbage
    return path


def draw_grid(ax, grid: Optional[Grid], title: str = "", empty_label: str = "unanswered", title_color="black"):
    """Draw ``grid`` on ``ax`` with the ARC palette and cell lines; ``None`` draws an empty panel with
    ``empty_label`` in its middle."""
    ax.set_title(title, fontsize=9, color=title_color)
    ax.set_xticks([])
    ax.set_yticks([])
    if grid is None:
        ax.set_facecolor("#F4F4F4")
        ax.text(0.5, 0.5, empty_label, ha="center", va="center", fontsize=10, color="#666666",
                transform=ax.transAxes)
        return
    array = np.asarray(validate_grid(grid, title or "grid"))
    height, width = array.shape
    ax.imshow(array, cmap=ARC_CMAP, norm=ARC_NORM, interpolation="nearest")
    # Lines on the cell borders: minor ticks at half-integers, labels and tick marks hidden.
    ax.set_xticks(np.arange(-0.5, width, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, height, 1), minor=True)
    ax.grid(which="minor", color=GRID_LINE_COLOR, linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)


def _shape_title(name: str, grid: Optional[Grid]) -> str:
    return name if grid is None else f"{name} {grid_shape(grid)[0]}x{grid_shape(grid)[1]}"


def plot_grids(grids: Sequence[Optional[Grid]], titles: Sequence[str], path: PathLike,
               title: Optional[str] = None) -> Path:
    """One row of panels, one per grid (``None`` = an empty "unanswered" panel); returns ``path``.

    Size: ``200 * len(grids)`` x 225 pixels (+50 with a figure ``title``).
    """
    if len(grids) != len(titles):
        raise ValueError(f"plot_grids: {len(grids)} grids but {len(titles)} titles")
    if not grids:
        raise ValueError("plot_grids: no grid to plot")
    fig, axes = _figure(1, len(grids), title)
    for ax, grid, name in zip(axes[0], grids, titles):
        draw_grid(ax, grid, name)
    return _save(fig, path)


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
    panels: list[tuple[Optional[Grid], str, str]] = [(test_input, _shape_title("test input", test_input), "black")]
    if expected is not None:
        panels.append((expected, _shape_title("expected", expected), "black"))
    for number, attempt in enumerate(attempts, start=1):
        name = _shape_title(f"attempt {number}", attempt)
        color = "black"
        if expected is not None and attempt is not None:
            right = grid_key(attempt) == grid_key(expected)
            name += ": correct" if right else ": wrong"
            color = "green" if right else "red"
        panels.append((attempt, name, color))

    status, status_color = ("correct", "green") if correct else ("wrong", "red")
    fig, axes = _figure(1, len(panels), f"{task_id}: {status}", status_color)
    for ax, (grid, name, color) in zip(axes[0], panels):
        draw_grid(ax, grid, name, title_color=color)
    return _save(fig, path)


def plot_task(task: Task, path: PathLike) -> Path:
    """A task at a glance: one column per train example then per test input, inputs on top, outputs below
    (an unknown test output is an empty panel labelled "?"); titled with the task id; returns ``path``.

    Size: ``200 * (len(train) + len(test))`` x 500 pixels.
    """
    columns = [(f"train {i}", e) for i, e in enumerate(task.train)]
    columns += [(f"test {i}", e) for i, e in enumerate(task.test)]
    fig, axes = _figure(2, len(columns), task.task_id)
    for col, (name, example) in enumerate(columns):
        draw_grid(axes[0][col], example.input, _shape_title(f"{name} input", example.input))
        draw_grid(axes[1][col], example.output, _shape_title(f"{name} output", example.output), empty_label="?")
    return _save(fig, path)
