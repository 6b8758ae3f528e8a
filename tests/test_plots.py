"""Plots: PNG files of the documented pixel size, ARC colors, empty "unanswered" panels, no figure leaks."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from arc_exp.data.tasks import Example, Task
from arc_exp.data.drawing import ARC_COLORS
from arc_exp.evaluation.plots import plot_grids, plot_prediction, plot_task

RED = (255, 65, 54)  # color 2, #FF4136
EMPTY_PANEL = (244, 244, 244)  # #F4F4F4

TASK = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 0], [0, 1]], "output": [[2]]}, {"input": [[3]], "output": [[4, 4]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[9]]}],
})


def _pixels(path):
    """(width, height) and the count of pixels of each RGB color."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        rgb = np.asarray(image.convert("RGB")).reshape(-1, 3)
        colors, counts = np.unique(rgb, axis=0, return_counts=True)
        return image.size, {tuple(int(v) for v in c): int(n) for c, n in zip(colors, counts)}


def test_palette():
    assert ARC_COLORS == ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
                          "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")


def test_plot_grids_size_and_colors(tmp_path):
    path = plot_grids([[[2]], None], ["red", "missing"], tmp_path / "sub" / "grids.png")
    assert path == tmp_path / "sub" / "grids.png"
    assert path.stat().st_size > 1000
    size, counts = _pixels(path)
    assert size == (400, 225)
    assert counts.get(RED, 0) > 20000  # the 1x1 red grid fills most of its 200x225 panel
    assert counts.get(EMPTY_PANEL, 0) > 20000  # the "unanswered" panel


def test_plot_grids_draws_every_arc_color(tmp_path):
    _, counts = _pixels(plot_grids([[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]], ["all"], tmp_path / "all.png"))
    for color in ARC_COLORS:
        rgb = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb, 0) > 300, color


def test_plot_grids_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="2 grids but 1 titles"):
        plot_grids([[[1]], [[2]]], ["one"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no grid"):
        plot_grids([], [], tmp_path / "x.png")


def test_plot_prediction_sizes(tmp_path):
    known = plot_prediction("0a1b2c3d", [[5, 6], [7, 8]], [[9]], [[[9]], None], tmp_path / "known.png", True)
    assert _pixels(known)[0] == (800, 275)  # test input, expected, attempt 1, attempt 2 + title band
    hidden = plot_prediction("0a1b2c3d", [[5, 6], [7, 8]], None, [[[2]]], tmp_path / "hidden.png", False)
    size, counts = _pixels(hidden)
    assert size == (600, 275)  # no expected panel
    assert counts.get(EMPTY_PANEL, 0) > 20000  # attempt 2 was not given: "unanswered" panel
    with pytest.raises(ValueError, match="task 0a1b2c3d: at most 2 attempts"):
        plot_prediction("0a1b2c3d", [[1]], None, [[[1]], [[2]], [[3]]], tmp_path / "bad.png", False)


def test_plot_task_size(tmp_path):
    path = plot_task(TASK, tmp_path / "task.png")
    assert _pixels(path)[0] == (600, 500)  # 2 train + 1 test columns, input and output rows + title band
    hidden = plot_task(TASK.replace(test=[Example([[5]])]), tmp_path / "hidden.png")
    assert _pixels(hidden)[1].get(EMPTY_PANEL, 0) > 20000  # unknown test output: empty "?" panel


def test_no_figure_is_left_open(tmp_path):
    before = plt.get_fignums()
    plot_grids([[[1]]], ["a"], tmp_path / "a.png")
    plot_prediction("0a1b2c3d", [[1]], [[1]], [[[1]], [[2]]], tmp_path / "b.png", True)
    plot_task(TASK, tmp_path / "c.png")
    assert plt.get_fignums() == before == []
