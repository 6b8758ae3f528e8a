"""Paired comparisons as the report shows them: a Markdown table of each comparison against its baseline, the task
ids of each outcome group (linked to the evaluation's failure/success plots) and a PNG of the tasks that differ.

    | compared | tasks | both | A only | B only | neither | B - A (95% interval) | p (McNemar) | left out |
    |---|---|---|---|---|---|---|---|---|
    | B: trained (5e6f7a8b) vs A: base (1a2b3c4d) | 400 | 31 | 4 | 17 | 348 | +3.3 (+1.0 to +5.8) | 0.007 | 0 |

The statistics are :mod:`arc_exp.tracking.significance`'s; this module only arranges them.
"""
from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from arc_exp.tracking.per_task import PerTask, per_task_metric
from arc_exp.tracking.report import RunRecord
from arc_exp.tracking.significance import (
    Interval,
    PairedComparison,
    SignificanceError,
    SignificanceSettings,
    bootstrap_interval,
    compare_tasks,
)

GROUPS = ("both", "a_only", "b_only", "neither", "left_out")


@dataclass
class Arm:
    """One side of a comparison: its label (``trained (5e6f7a8b)``, a table row), its per-task values of the
    compared metric (``None``: the run has no per-task results) and its plots (``{task_id: [URI, ...]}``)."""

    label: str
    values: Optional[Mapping[str, float]]
    plots: Mapping[str, list[str]] = field(default_factory=dict)
    lacks: str = "no per-task results"


@dataclass
class Compared:
    """Arm ``b`` against the baseline ``a``: the comparison, or the one line that says why there is none."""

    a: Arm
    b: Arm
    result: Optional[PairedComparison] = None
    problem: Optional[str] = None


def compare_arms(baseline: Arm, others: Sequence[Arm], settings: SignificanceSettings) -> list[Compared]:
    """Each arm against ``baseline`` on their shared tasks; a side without per-task results, or two sides without a
    task in common, is a :class:`Compared` with a one-line ``problem`` instead.

    >>> a, b = Arm("base", {"t1": 1.0, "t2": 0.0}), Arm("trained", {"t2": 1.0, "t3": 1.0})
    >>> c = compare_arms(a, [b, Arm("no eval", None, lacks="no per_task.csv (a training run without evaluation)"),
    ...                      Arm("other set", {"t9": 1.0})], SignificanceSettings(resamples=10))
    >>> c[0].result.b_only, c[0].result.left_out, c[1].problem, c[2].problem
    (['t2'], 2, 'no eval: no per_task.csv (a training run without evaluation)', 'other set vs base: no task in common (1 task and 2 tasks)')
    """
    compared = []
    for arm in others:
        missing = next((side for side in (baseline, arm) if side.values is None), None)
        if missing is not None:
            compared.append(Compared(baseline, arm, problem=f"{missing.label}: {missing.lacks}"))
            continue
        try:
            result = compare_tasks(baseline.values, arm.values, settings.solved_at, settings.resamples, settings.seed,
                                   settings.level)
        except SignificanceError:
            counts = " and ".join(f"{len(v)} task{'s' if len(v) != 1 else ''}" for v in (arm.values, baseline.values))
            compared.append(Compared(baseline, arm, problem=f"{arm.label} vs {baseline.label}: no task in common "
                                                            f"({counts})"))
            continue
        compared.append(Compared(baseline, arm, result))
    return compared


def format_difference(difference: float, low: float, high: float) -> str:
    """A difference of two per-task means in percentage points, with its interval.

    >>> format_difference(0.0333, 0.01, 0.058)
    '+3.3 (+1.0 to +5.8)'
    """
    return f"{100 * difference:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})"


def format_p(p: float) -> str:
    """A p-value to 3 decimals.

    >>> format_p(0.03857), format_p(0.00001), format_p(1.0)
    ('0.039', '<0.001', '1.000')
    """
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def paired_markdown(compared: Sequence[Compared], metric: str, a_name: str = "A", b_name: str = "B",
                    settings: Optional[SignificanceSettings] = None) -> str:
    """The comparisons as one Markdown table, its legend first; the comparisons that could not be made follow it,
    one line each."""
    settings = settings or SignificanceSettings()
    done = [c for c in compared if c.result is not None]
    lines = []
    if done:
        level = f"{100 * settings.level:g}%"
        lines += [f"paired on the shared tasks, {metric} per task (solved: >= {settings.solved_at:g}); difference "
                  f"{b_name} - {a_name} in points with its {level} paired bootstrap interval ({settings.resamples} "
                  f"resamples, seed {settings.seed}); p: exact McNemar test on the tasks solved by one side only",
                  "",
                  f"| compared | tasks | both | {a_name} only | {b_name} only | neither | {b_name} - {a_name} | "
                  f"p (McNemar) | left out |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in done:
            r = c.result
            left = str(r.left_out) if not r.left_out else \
                f"{r.left_out} ({len(r.left_out_a)} of {a_name}, {len(r.left_out_b)} of {b_name})"
            lines.append(f"| {b_name}: {c.b.label} vs {a_name}: {c.a.label} | {r.shared} | {len(r.both)} | "
                         f"{len(r.a_only)} | {len(r.b_only)} | {len(r.neither)} | "
                         f"{format_difference(r.difference, r.low, r.high)} | {format_p(r.p_value)} | {left} |")
    problems = [f"no paired comparison: {c.problem}" for c in compared if c.problem]
    if problems:
        lines += ([""] if lines else []) + problems
    return "\n".join(lines)


def paired_csv(compared: Sequence[Compared]) -> str:
    """:func:`paired_markdown` with raw numbers, one line per comparison (``problem``: why there is none)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["b", "a", "tasks", "both", "a_only", "b_only", "neither", "difference", "low", "high", "p_value",
                     "left_out_a", "left_out_b", "problem"])
    for c in compared:
        r = c.result
        numbers = ([r.shared, len(r.both), len(r.a_only), len(r.b_only), len(r.neither), r.difference, r.low, r.high,
                    r.p_value, len(r.left_out_a), len(r.left_out_b)] if r else [""] * 11)
        writer.writerow([c.b.label, c.a.label, *numbers, c.problem or ""])
    return out.getvalue()


def task_groups_markdown(compared: Sequence[Compared], a_name: str = "A", b_name: str = "B") -> str:
    """The task ids of each outcome group of each comparison, each linked to the plots its evaluations wrote (the
    failures and a sample of the successes: a task without a plot is listed plain)."""
    titles = {"both": "solved by both", "a_only": f"solved by {a_name} only", "b_only": f"solved by {b_name} only",
              "neither": "solved by neither", "left_out": "left out (not evaluated by both)"}
    lines = []
    for c in compared:
        if c.result is None:
            continue
        lines += [f"## {b_name}: {c.b.label} vs {a_name}: {c.a.label}", ""]
        for group in GROUPS:
            tasks = c.result.left_out_a + c.result.left_out_b if group == "left_out" else getattr(c.result, group)
            items = [_linked(t, c, a_name, b_name) for t in tasks]
            lines.append(f"- {titles[group]} ({len(tasks)}): {', '.join(items) if items else '-'}")
        lines.append("")
    return "\n".join(lines)


def _linked(task_id: str, c: Compared, a_name: str, b_name: str) -> str:
    links = [f"[{name}]({uri})" for name, arm in ((a_name, c.a), (b_name, c.b)) for uri in arm.plots.get(task_id, [])]
    return f"{task_id} ({' '.join(links)})" if links else task_id


def task_groups_csv(compared: Sequence[Compared]) -> str:
    """One line per task of each comparison: ``b,a,task_id,group,a_value,b_value,a_plots,b_plots`` (values raw)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["b", "a", "task_id", "group", "a_value", "b_value", "a_plots", "b_plots"])
    for c in compared:
        if c.result is None:
            continue
        for task_id in sorted({*c.a.values, *c.b.values}):
            writer.writerow([c.b.label, c.a.label, task_id, c.result.group(task_id), c.a.values.get(task_id, ""),
                             c.b.values.get(task_id, ""), " ".join(c.a.plots.get(task_id, [])),
                             " ".join(c.b.plots.get(task_id, []))])
    return out.getvalue()


def differing_tasks(arms: Sequence[Arm]) -> list[str]:
    """The tasks whose value is not the same in every arm (a task some arm lacks differs too), sorted.

    >>> differing_tasks([Arm("a", {"t1": 1.0, "t2": 0.0, "t3": 1.0}), Arm("b", {"t1": 1.0, "t2": 1.0})])
    ['t2', 't3']
    """
    tasks = sorted({t for arm in arms if arm.values for t in arm.values})
    return [t for t in tasks if len({(arm.values or {}).get(t) for arm in arms}) > 1]


def plot_outcomes(arms: Sequence[Arm], path: str | Path, title: str, max_tasks: int = 80) -> Path:
    """A PNG of the tasks' outcomes: one row per task that differs between the arms, one column per arm, the cell
    the task's value (red 0 to green 1; grey: not evaluated there). The first ``max_tasks`` tasks in id order."""
    # matplotlib: only where a figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arms = [a for a in arms if a.values is not None]
    tasks = differing_tasks(arms)
    shown = tasks[:max_tasks]
    figure = Figure(figsize=(2.2 + 1.3 * len(arms), 2.2 + 0.22 * len(shown)), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    more = f" (first {len(shown)} of {len(tasks)})" if len(shown) < len(tasks) else ""
    axis.set_title(f"{title}\n{len(tasks)} tasks differ{more}", fontsize=9)
    if shown:
        matrix = np.array([[a.values.get(t, np.nan) for a in arms] for t in shown], dtype=float)
        colors = figure.colorbar(axis.imshow(np.ma.masked_invalid(matrix), cmap="RdYlGn", vmin=0, vmax=1,
                                             aspect="auto"), ax=axis, fraction=0.05)
        colors.ax.tick_params(labelsize=7)
        axis.set_facecolor("lightgrey")
        axis.set_yticks(range(len(shown)), shown, fontsize=7, family="monospace")
    else:
        axis.text(0.5, 0.5, "no task differs", ha="center", va="center", transform=axis.transAxes)
        axis.set_yticks([])
    axis.set_xticks(range(len(arms)), [_wrap(a.label) for a in arms], fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _wrap(label: str, width: int = 18, lines: int = 4) -> str:
    """A column label in at most ``lines`` lines of ``width`` characters (run names are long override lists): the
    start of the label and its end, the ``(run id)``.

    >>> print(_wrap("eval:data.eval.first_n=3,debug=smoke,inference.max_new_tokens=8 (0a1b2c3d)"))
    eval:data.eval.fir
    st_n=3,debug=smoke
    ,inference.max_new
    … (0a1b2c3d)
    """
    parts = textwrap.wrap(label, width, break_long_words=True, break_on_hyphens=False)
    if len(parts) > lines:
        tail = label.rsplit(" ", 1)[-1] if label.endswith(")") else ""
        parts = parts[:lines - 1] + [f"… {tail}".strip()]
    return "\n".join(parts)


def run_arm(run: RunRecord, results: Optional[PerTask], metric: str) -> Arm:
    """A run as one side of a comparison: its per-task values of ``metric``, or what it lacks."""
    name = run.name if len(run.name) <= 40 else run.name[:39] + "…"  # run names list their overrides
    label = f"{name} ({run.run_id[:8]})"
    if results is None:
        lacks = ("no per_task.csv: a training run without evaluation (train.py evaluation.enabled=true, or "
                 f"evaluate.py checkpoint={run.run_id[:8]})" if run.tags.get("run_type") == "training"
                 else "no per_task.csv among its artifacts")
        return Arm(label, None, lacks=lacks)
    values = results.values(metric)
    if values is None:
        return Arm(label, None, lacks=f"its per_task.csv has no {metric} (it has {', '.join(results.metrics)})")
    return Arm(label, values, results.plots)


def run_intervals(runs: Sequence[RunRecord], results: Mapping[tuple[str, bool], PerTask],
                  settings: SignificanceSettings) -> dict[tuple[str, str], Interval]:
    """``(run id, metric key) -> Interval`` for each metric of each run that comes from its per-task results."""
    intervals = {}
    for run in runs:
        found = results.get((run.run_id, False))
        for key in run.metrics if found else ():
            metric = per_task_metric(key)
            values = found.values(metric) if metric else None
            if values:
                intervals[(run.run_id, key)] = bootstrap_interval(values, settings.resamples, settings.seed,
                                                                  settings.level)
    return intervals


def write_comparison(compared: Sequence[Compared], folder: Path, stem: str, title: str,
                     settings: SignificanceSettings, a_name: str = "A", b_name: str = "B") -> tuple[str, list[Path]]:
    """The paired table (returned, and written as ``<stem>.paired.md`` and ``.csv``), the task ids of each group
    (``<stem>.tasks.md`` and ``.csv``) and the PNG of the tasks that differ (``<stem>.tasks.png``)."""
    markdown = paired_markdown(compared, settings.metric, a_name, b_name, settings)
    files = [folder / f"{stem}.paired.md", folder / f"{stem}.paired.csv"]
    files[0].write_text(markdown + "\n")
    files[1].write_text(paired_csv(compared))
    done = [c for c in compared if c.result is not None]
    if done:
        arms = [Arm(f"{a_name}: {done[0].a.label}", done[0].a.values),
                *(Arm(f"{b_name}: {c.b.label}", c.b.values) for c in done)]
        files += [folder / f"{stem}.tasks.md", folder / f"{stem}.tasks.csv"]
        files[2].write_text(task_groups_markdown(done, a_name, b_name))
        files[3].write_text(task_groups_csv(done))
        files.append(plot_outcomes(arms, folder / f"{stem}.tasks.png", f"{title}: {settings.metric} per task"))
    return markdown, files
