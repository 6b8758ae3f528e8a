"""Drawing ARC grids: the usual ARC palette, grid lines between cells, fixed panel sizes.

Figures are built as plain :class:`matplotlib.figure.Figure` objects on the Agg canvas, never through pyplot, so no
GUI backend is touched and no figure stays registered (nothing to leak, safe in workers and tests).

Sizes are fixed so plots of a run line up: each panel is ``PANEL_WIDTH x PANEL_HEIGHT`` inches at ``DPI``
(200 x 225 pixels), plus a ``HEADER_HEIGHT`` band (50 pixels) when the figure has a title. The plots of predictions
(:mod:`arc_exp.evaluation.plots`) and of new inputs (:mod:`arc_exp.synthetic.new_inputs`) draw with these.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from arc_exp.data.grid import Grid, grid_shape, validate_grid

# The ARC palette, color 0..9: black, blue, red, green, yellow, grey, magenta, orange, azure, maroon.
ARC_COLORS = (
    "#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
    "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25",
)
GRID_LINE_COLOR = "#555555"

DPI = 100
PANEL_WIDTH = 2.0  # inches; binary-exact values so pixel sizes are exact integers
PANEL_HEIGHT = 2.25
HEADER_HEIGHT = 0.5

PathLike = Union[str, os.PathLike]


@functools.cache
def arc_palette():
    """The ARC palette as a matplotlib colormap and the norm that maps integer color c to its bin."""
    # matplotlib takes ~0.3 s to import: imported when the first grid is drawn (the config schemas import synthetic)
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap(ARC_COLORS, name="arc")
    return cmap, BoundaryNorm(np.arange(-0.5, 10.5, 1), cmap.N)


def new_figure(nrows: int, ncols: int, title: Optional[str] = None, title_color: str = "black"):
    # matplotlib takes ~0.3 s to import: imported when the first figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = nrows * PANEL_HEIGHT + (HEADER_HEIGHT if title else 0.0)
    fig = Figure(figsize=(ncols * PANEL_WIDTH, height), dpi=DPI, layout="constrained", facecolor="white")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, color=title_color, fontsize=12)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path: PathLike) -> Path:
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
    cmap, norm = arc_palette()
    ax.imshow(array, cmap=cmap, norm=norm, interpolation="nearest")
    # Lines on the cell borders: minor ticks at half-integers, labels and tick marks hidden.
    ax.set_xticks(np.arange(-0.5, width, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, height, 1), minor=True)
    ax.grid(which="minor", color=GRID_LINE_COLOR, linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)


def shape_title(name: str, grid: Optional[Grid]) -> str:
    return name if grid is None else f"{name} {grid_shape(grid)[0]}x{grid_shape(grid)[1]}"
