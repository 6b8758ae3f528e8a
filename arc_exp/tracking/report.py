"""Iteration tables rebuilt from MLflow alone, in the shape of the journal's tables.

    | model | lora_rank | train loss | val loss | accuracy | correct_pixels | ... | runs |
    |---|---|---|---|---|---|---|---|
    | qwen2-0.5b | 16 | 0.412 | 0.398 | 12.5% | 61.3% | ... | 2 |

Runs are found by their ``experiment`` tag (set by ``python train.py experiment=<name>``), not by folder, so the
table does not need ``multirun/``. A preset's ``report.tables`` lists one :class:`TableSpec` per table of its journal
document: its row keys, its columns (the journal's titles) and ``where``, the runs it takes (the journal's one-factor
tables: the learning-rate table holds the runs at rank 32). Repeats of one setting (runs that differ only in
``seed``) show the mean and their count; runs of one row that differ in anything else are an error naming the setting
(:class:`ReportError`), unless the table keeps that setting apart (``keep_apart``: an extra column). A run tagged
``degraded=true`` (a failed TTFT stage, fallback predictions) is never averaged with clean runs: it gets a row of its
own, its cells daggered and its count marked ``(degraded)``. So is a run tagged ``trained_on_evaluated_outputs=<n>``
(it scored test outputs its model trained on, allowed on purpose): a row of its own, cells double-daggered, its count
marked. A missing value is a dash.
"""
from __future__ import annotations

import ast
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Iterable, Mapping, Optional, Sequence

from arc_exp.tracking.runs import RunNotFoundError, resolve_run_ids

DEGRADED = " (degraded)"
TRAINED_TAG = "trained_on_evaluated_outputs"  # arc_exp.data.trained_outputs.TAG (tracking reads tags, not data)
PERCENT_METRICS = ("accuracy", "correct_pixels", "max_correct_pixels", "correct_size", "any_correct_size", "pass_",
                   "vote_", "unanswered", "score")


@dataclass
class Column:
    """A table column: an MLflow metric (or param, ``param:<key>``) shown under ``name`` in ``format``;
    ``"eval/accuracy|accuracy"``: the first of these the run has (training and evaluate.py runs in one table)."""

    metric: str
    name: Optional[str] = None
    format: str = "auto"  # auto | percent | loss | number | text
    scale: float = 1.0    # shown value = metric x scale: seconds per step x 10 / 60 = "10 steps time (min)"
    step: str = "last"    # last: the final value; first: the value at the first logged step (before training)

    @property
    def title(self) -> str:
        return self.name or self.metric.split("|")[0].split("/")[-1]

    def kind(self) -> str:
        if self.format != "auto":
            return self.format
        base = self.metric.split("|")[0].split("/")[-1]
        if any(base.startswith(p) for p in PERCENT_METRICS):
            return "percent"
        return "loss" if "loss" in base else "number"


@dataclass
class RunRecord:
    """What a table needs of an MLflow run."""

    run_id: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    first_metrics: dict[str, float] = field(default_factory=dict)  # a metric's value at its first logged step

    @property
    def degraded(self) -> bool:
        """The run's pipeline degraded (a failed TTFT stage, fallback predictions): its figures are not clean."""
        return str(self.tags.get("degraded", "")).lower() == "true"

    @property
    def trained_outputs(self) -> int:
        """How many of the test outputs it scored the model trained on (tag ``trained_on_evaluated_outputs``, set
        when ``evaluation.allow_trained_outputs=true`` let it score them): its figures measure memory."""
        value = str(self.tags.get(TRAINED_TAG, "0"))
        return int(value) if value.isdigit() else 0

    def value(self, key: str) -> Any:
        """A metric, param or tag by name; ``{param}`` in a key is filled from the run's params, so
        ``eval/pass_{evaluation.predictions_per_task}`` finds ``eval/pass_8`` in a run that made 8 predictions."""
        if "{" in key:
            key = re.sub(r"\{([^}]+)\}", lambda m: str(self.params.get(m.group(1), m.group(0))), key)
        if key.startswith("param:"):
            return self.params.get(key[len("param:"):])
        if key.startswith("tag:"):
            return self.tags.get(key[len("tag:"):])
        if key in self.metrics:
            return self.metrics[key]
        if key in self.params or key in self.tags:
            return self.params.get(key, self.tags.get(key))
        item = self.list_item(key)
        return item if item is not None else self.overrides().get(key)

    def list_item(self, key: str) -> Any:
        """A key inside a param logged whole as a list: ``data.train.1.weight`` from the ``data.train`` param
        ``"[{'source': ..., 'weight': 1.0}, {...}]"``; ``None`` when there is no such param, it does not parse or the
        value is null."""
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            text = self.params.get(".".join(parts[:cut]))
            if text is None:
                continue
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return None
            for part in parts[cut:]:
                if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                elif isinstance(value, dict) and part in value:
                    value = value[part]
                else:
                    return None
            # None: a key the entry leaves unset (a typed entry lists every key: source: None in a chats entry)
            return None if value is None or isinstance(value, (list, dict)) else str(value)
        return None

    def overrides(self) -> dict[str, str]:
        """The run's command-line overrides (its ``overrides`` tag) by key: a swept key that is no param of its own,
        such as ``data.train.0.weight`` (lists are logged whole), is found there."""
        pairs = (item.split("=", 1) for item in self.tags.get("overrides", "").split() if "=" in item)
        return {key.lstrip("+~"): value for key, value in pairs}


def is_degraded(run: RunRecord) -> bool:
    """A run tagged ``degraded=true``: a stage failed and was worked around, so its figures are no clean result."""
    return run.tags.get("degraded") == "true"


def mark_degraded(row: dict, rows: Sequence[str]) -> dict:
    """Mark a table row of degraded runs: its first row key (else its run count) is suffixed ``(degraded)``.

    >>> mark_degraded({"lora.r": "16", "runs": 1}, ["lora.r"])
    {'lora.r': '16 (degraded)', 'runs': 1, 'degraded': True}
    """
    key = rows[0] if rows else "runs"
    row[key] = f"{row[key]}{DEGRADED}"
    row["degraded"] = True
    return row
def column_value(run: RunRecord, column: Column) -> Any:
    """The run's value of a column: the metric (at its first step with ``step: first``) times ``scale``."""
    if column.step not in ("first", "last"):
        raise ReportError(f"report column '{column.title}': step must be 'first' or 'last', got '{column.step}'")
    value = None
    for key in column.metric.split("|"):  # alternatives: "eval/accuracy|accuracy" (train.py or evaluate.py runs)
        if column.step == "first":
            value = run.first_metrics.get(re.sub(r"\{([^}]+)\}",
                                                 lambda m: str(run.params.get(m.group(1), m.group(0))), key))
        else:
            value = run.value(key)
        if value is not None:
            break
    if isinstance(value, (int, float)) and not isinstance(value, bool) and column.scale != 1.0:
        value = value * column.scale
    return value


def format_value(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "text" or isinstance(value, str):
        return str(value)
    if kind == "percent":
        return f"{100 * value:.1f}%"
    if kind == "loss":
        return f"{value:.3f}"
    return f"{value:.4g}"


def iteration_table(runs: Sequence[RunRecord], rows: Sequence[str], columns: Sequence[Column],
                    only_when: Optional[Mapping[str, Mapping[str, Any]]] = None) -> list[dict]:
    """One row per distinct setting of ``rows`` (param keys), each metric the mean over that setting's runs.

    ``only_when`` shows a row key only where it has an effect: ``{"inference.dfs_threshold": {"inference.sampler":
    "dfs"}}`` prints ``-`` as the threshold of greedy and sampling runs (and groups them regardless of it)."""
    only_when = only_when or {}

    def setting_value(run: RunRecord, key: str) -> str:
        conditions = only_when.get(key, {})
        if any(str(run.value(k)) != str(v) for k, v in conditions.items()):
            return "-"
        value = run.value(key)
        return "-" if value is None else str(value)

    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:  # degraded runs group apart (the last item of the key), so no clean row hides one
        key = (*(setting_value(run, k) for k in rows), "degraded" if is_degraded(run) else "")
        groups.setdefault(key, []).append(run)
    table = []
    for setting in sorted(groups, key=_natural_key):
        members = groups[setting]
        row: dict[str, Any] = dict(zip(rows, setting[:-1]))
        for column in columns:
            values = [m.value(column.metric) for m in members]
            numbers = [v for v in values if isinstance(v, (int, float))]
            texts = [v for v in values if isinstance(v, str)]
            row[column.title] = mean(numbers) if numbers else (texts[0] if texts else None)
        row["runs"] = len(members)
        table.append(mark_degraded(row, rows) if setting[-1] else row)
    return table


def _natural_key(setting: tuple) -> tuple:
    """Sort ``("16",) < ("128",)`` numerically, text otherwise."""
    return tuple((0, float(v), "") if is_number(v) else (1, 0.0, v) for v in setting)


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def to_markdown(table: Sequence[Mapping], rows: Sequence[str], columns: Sequence[Column]) -> str:
    header = [*rows, *(c.title for c in columns), "runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [str(row[k]) for k in rows]
        cells += [format_value(row[c.title], c.kind()) for c in columns]
        cells.append(str(row["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(table: Sequence[Mapping], rows: Sequence[str], columns: Sequence[Column]) -> str:
    """Raw numbers (not formatted), for spreadsheets and pandas."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*rows, *(c.title for c in columns), "runs"])
    for row in table:
        writer.writerow([row[k] for k in rows] + ["" if row[c.title] is None else row[c.title] for c in columns]
                        + [row["runs"]])
    return out.getvalue()


































def format_figure(value: Any, kind: str, interval: Any = None, sd: Optional[float] = None) -> str:
    """A figure with its interval over tasks (``interval.low``/``.high``) and its standard deviation over seeds, when
    it has them.

    >>> from arc_exp.tracking.significance import Interval
    >>> format_figure(0.315, "percent", Interval(0.315, 0.27, 0.361, 400), 0.021)
    '31.5% (27.0-36.1) sd 2.1'
    >>> format_figure(0.4, "loss", None, 0.1414), format_figure(None, "percent")
    ('0.400 sd 0.141', '-')
    """
    text = format_value(value, kind)
    if value is None or isinstance(value, str):
        return text
    if interval is not None:
        low, high = (format_value(v, kind).rstrip("%") for v in (interval.low, interval.high))
        text += f" ({low}-{high})"
    if sd is not None:
        text += f" sd {format_value(sd, kind).rstrip('%')}"
    return text


def runs_under(tracking_uri: str, folder: str | Path) -> list[str]:
    """The ids of the finished runs whose run folder (tag ``output_dir``) lies in ``folder``, a multirun's sweep
    folder (``multirun/evaluate/<date>/<time>``), in job order; a :class:`RunNotFoundError` when there is none."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    folder = str(Path(folder).resolve())
    ids = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(ids, filter_string=f"tags.output_dir LIKE '{folder}/%' and attributes.status = "
                                                  f"'FINISHED'", max_results=5000) if ids else []
    if not found:
        raise RunNotFoundError(f"sweep: no finished MLflow run in {tracking_uri} has its run folder in {folder}")
    jobs = sorted(found, key=lambda r: [int(p) if p.isdigit() else p
                                        for p in Path(r.data.tags["output_dir"]).relative_to(folder).parts])
    return [r.info.run_id for r in jobs]


def fetch_runs(tracking_uri: str, experiment: Optional[str] = None, run_ids: Iterable[str] = (),
               run_type: Optional[str] = "training", first_step_metrics: Iterable[str] = ()) -> list[RunRecord]:
    """The finished runs of an iteration (by its ``experiment`` tag; of every run type with ``run_type=None``), or
    the given run ids, from any MLflow experiment. ``first_step_metrics``: metrics whose value at their first logged
    step is read too (``qa/count`` at step 0: before training)."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if run_ids:
        found = [client.get_run(run_id) for run_id in resolve_run_ids(client, run_ids, tracking_uri)]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
        # finished runs only: a run still going (or killed) has no final metrics to put in a table
        query = f"tags.experiment = '{experiment}' and attributes.status = 'FINISHED'"
        if run_type:
            query += f" and tags.run_type = '{run_type}'"
        found = client.search_runs(ids, filter_string=query, max_results=5000) if ids else []
    records = [RunRecord(r.info.run_id, r.info.run_name or r.info.run_id, dict(r.data.params), dict(r.data.metrics),
                         dict(r.data.tags)) for r in found]
    for record in records:
        for key in first_step_metrics:
            key = re.sub(r"\{([^}]+)\}", lambda m: str(record.params.get(m.group(1), m.group(0))), key)
            if key in record.metrics:
                history = client.get_metric_history(record.run_id, key)
                record.first_metrics[key] = min(history, key=lambda m: (m.step, m.timestamp)).value
    return records


def plot_metric_curves(tracking_uri: str, runs: Sequence[RunRecord], metrics: Sequence[str], path: str | Path,
                       label_keys: Sequence[str] = ()) -> Path:
    """Each metric over training steps, one line per run (the seeds' "val loss is not a proxy" plot)."""
    # matplotlib: only where a figure is drawn
    import mlflow
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    figure = Figure(figsize=(5 * len(metrics), 4))
    FigureCanvasAgg(figure)
    for i, metric in enumerate(metrics):
        axis = figure.add_subplot(1, len(metrics), i + 1)
        for run in runs:
            history = sorted(client.get_metric_history(run.run_id, metric), key=lambda m: m.step)
            if history:
                label = ", ".join(f"{k}={run.value(k)}" for k in label_keys) or run.name
                axis.plot([m.step for m in history], [m.value for m in history], marker=".", label=label)
        axis.set_title(metric)
        axis.set_xlabel("step")
        if axis.lines:
            axis.legend(fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


class ReportError(ValueError):
    """A table that cannot be built as asked; the message names the table and the setting or key at fault."""
