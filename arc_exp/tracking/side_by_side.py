"""Runs side by side (``report.py runs=[<id>,<id>]`` or ``sweep=<multirun folder>``): the params that differ
between them and their metrics with intervals (Markdown and CSV), each run paired with the first task by task, and
the mean and standard deviation of repeats that differ only in their seed."""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from arc_exp.tracking.comparison import compare_arms, run_arm, run_intervals, write_comparison
from arc_exp.tracking.per_task import PerTask
from arc_exp.tracking.report import DEGRADED, Column, RunRecord, format_figure, is_degraded
from arc_exp.tracking.significance import SignificanceSettings, seed_spread


def write_side_by_side(records: Sequence[RunRecord], results: Mapping[tuple[str, bool], PerTask],
                       metrics: Optional[Sequence[str]], settings: SignificanceSettings, folder: Path
                       ) -> tuple[str, list[Path]]:
    """``comparison.md`` and ``.csv`` (:func:`compare_runs`), and each run paired with the first task by task
    (``comparison.paired.md``, ``.tasks.md``, ``.csv``, ``.png``) in ``folder``: the text to print and the files."""
    intervals = run_intervals(records, results, settings)
    seeds = differ_only_in_seed(records)  # repeats of one setting: their mean and standard deviation
    markdown = compare_runs(records, metrics, intervals, seeds)
    arms = [run_arm(r, results.get((r.run_id, False)), settings.metric) for r in records]
    paired, files = write_comparison(compare_arms(arms[0], arms[1:], settings), folder, "comparison", "runs",
                                     settings)
    (folder / "comparison.md").write_text(markdown + "\n")
    (folder / "comparison.csv").write_text(compare_runs_csv(records, metrics, intervals, seeds))
    return f"{markdown}\n\n{paired}", [*files, folder / "comparison.md", folder / "comparison.csv"]


def differ_only_in_seed(runs: Sequence[RunRecord]) -> bool:
    """Two or more runs whose params differ in seeds alone (``seed``, ``*.seed``): repeats of one setting."""
    keys = {k for r in runs for k in r.params}
    differing = [k for k in keys if len({r.params.get(k) for r in runs}) > 1]
    return len(runs) > 1 and bool(differing) and all(k == "seed" or k.endswith(".seed") for k in differing)


def one_name_per_quantity(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Runs of several types side by side (``runs=``): the evaluation after training logs ``eval/accuracy`` in a
    training run, an evaluation run logs ``accuracy``; one quantity, one row, under the evaluation's name (the
    README's metric list). Runs of one type keep their names.

    >>> [r.metrics for r in one_name_per_quantity([
    ...     RunRecord("a", "a", {}, {"train/loss": 0.5, "eval/accuracy": 0.25}, {"run_type": "training"}),
    ...     RunRecord("b", "b", {}, {"accuracy": 0.5}, {"run_type": "evaluation"})])]
    [{'train/loss': 0.5, 'accuracy': 0.25}, {'accuracy': 0.5}]
    """
    if len({r.tags.get("run_type") for r in runs}) < 2:
        return list(runs)
    return [dataclasses.replace(r, metrics={k.removeprefix("eval/") if r.tags.get("run_type") == "training" else k: v
                                            for k, v in r.metrics.items()}) for r in runs]


def compare_runs(runs: Sequence[RunRecord], metrics: Optional[Sequence[str]] = None,
                 intervals: Optional[Mapping[tuple[str, str], Any]] = None, spread: bool = False) -> str:
    """Runs side by side: the params that differ between them, then their metrics (Markdown). ``intervals``:
    ``(run id, metric) -> Interval`` of the figures from per-task results; ``spread``: a last column with the mean
    and standard deviation over the runs (repeats that differ only in seed)."""
    intervals = intervals or {}
    differing, metric_keys = _differing_params(runs), list(metrics) if metrics else _metric_names(runs)
    header = ["", *(f"{r.name} ({r.run_id[:8]}){DEGRADED if is_degraded(r) else ''}"
                    f"{f' (trained on {r.trained_outputs} scored outputs)' if r.trained_outputs else ''}" for r in runs)]
    header += [f"mean over {len(runs)} seeds"] if spread else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in differing:
        lines.append("| " + " | ".join([key, *(str(r.params.get(key, "-")) for r in runs)] + [""] * spread) + " |")
    for key in metric_keys:
        kind = Column(key).kind()
        cells = [key, *(format_figure(r.metrics.get(key), kind, intervals.get((r.run_id, key))) for r in runs)]
        if spread:
            cells.append(format_figure(*(lambda m, sd: (m, kind, None, sd))(*seed_spread(
                [r.metrics.get(key) for r in runs]))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_runs_csv(runs: Sequence[RunRecord], metrics: Optional[Sequence[str]] = None,
                     intervals: Optional[Mapping[tuple[str, str], Any]] = None, spread: bool = False) -> str:
    """:func:`compare_runs` as CSV with raw values: a ``key`` column, then one column per run id (a metric with
    intervals is followed by its ``<metric> low`` and ``<metric> high`` lines); ``spread``: ``mean`` and ``sd``."""
    intervals = intervals or {}
    differing, metric_keys = _differing_params(runs), list(metrics) if metrics else _metric_names(runs)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", *(r.run_id for r in runs), *(("mean", "sd") if spread else ())])
    writer.writerow(["name", *(r.name for r in runs), *(("", "") if spread else ())])
    for key in differing:
        writer.writerow([key, *(r.params.get(key, "") for r in runs), *(("", "") if spread else ())])
    for key in metric_keys:
        values = [r.metrics.get(key) for r in runs]
        extra = ["" if v is None else v for v in seed_spread(values)] if spread else []
        writer.writerow([key, *("" if v is None else v for v in values), *extra])
        found = [intervals.get((r.run_id, key)) for r in runs]
        if any(found):
            for bound in ("low", "high"):
                writer.writerow([f"{key} {bound}", *("" if i is None else getattr(i, bound) for i in found),
                                 *(("", "") if spread else ())])
    return out.getvalue()


def _differing_params(runs: Sequence[RunRecord]) -> list[str]:
    keys = sorted({k for r in runs for k in r.params})
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def _metric_names(runs: Sequence[RunRecord]) -> list[str]:
    return sorted({k for r in runs for k in r.metrics})
