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
own, its cells daggered and its count marked ``(degraded)``. A missing value is a dash.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Iterable, Mapping, Optional, Sequence

DEGRADED = " (degraded)"
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
        ``"[{'source': ..., 'weight': 1.0}, {...}]"``; ``None`` when there is no such param or it does not parse."""
        import ast

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
            return None if isinstance(value, (list, dict)) else str(value)
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
    return tuple((0, float(v), "") if _is_number(v) else (1, 0.0, v) for v in setting)


def _is_number(text: str) -> bool:
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


class ReportError(ValueError):
    """A table that cannot be built as asked; the message names the table and the setting or key at fault."""


def same_value(a: Any, b: Any) -> bool:
    """``"0.0001"`` and ``"1e-4"`` are the same learning rate; ``"qwen2-0.5b"`` only equals itself."""
    if a is None or b is None:
        return a is None and b is None
    a, b = str(a), str(b)
    if a == b:
        return True
    if _is_number(a) and _is_number(b):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))
    return a.lower() == b.lower() and a.lower() in ("true", "false")


@dataclass
class RowKey:
    """A row-key column of a table: a run's setting ``key`` (param, tag or ``choice/<group>``) shown under ``name``.

    - ``key`` may be a list: the first of them the run has (an ``evaluate.py`` run of the base model has no arm),
      or a template of settings, ``"{model.name}/{lora.load_in_4bit}"``;
    - ``map``: raw value -> shown text, in the journal's row order (unmapped values keep their text and come after);
    - ``contains``: an x-marked flag, ``x`` when the raw value contains this text, else empty (iteration 12's
      ``row numbers`` column is ``{key: choice/encoder, name: row numbers, contains: row_number}``);
    - ``format: sci`` shows ``0.0001`` as ``1.00E-04``;
    - ``only_when``: ``{other key: value}``: the key has an effect only then; elsewhere it shows ``-`` and runs are
      grouped regardless of it.
    """

    key: Any
    name: Optional[str] = None
    map: Optional[dict] = None
    contains: Optional[str] = None
    format: str = "text"
    only_when: Optional[dict] = None

    def __post_init__(self) -> None:
        self.map = None if self.map is None else {str(k): v for k, v in self.map.items()}

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else [str(k) for k in self.key]

    @property
    def title(self) -> str:
        return self.name or self.keys[0]

    def raw(self, run: RunRecord) -> Optional[str]:
        if self.only_when and any(not same_value(run.value(k), v) for k, v in self.only_when.items()):
            return "-"
        for key in self.keys:
            if "{" in key:  # a template of settings: "{model.name}/{lora.load_in_4bit}"
                names = re.findall(r"\{([^}]+)\}", key)
                if all(run.value(n) is None for n in names):
                    continue
                return re.sub(r"\{([^}]+)\}", lambda m: str(run.value(m.group(1))), key)
            value = run.value(key)
            if value is not None:
                return str(value)
        return None

    def mapped(self, raw: Optional[str]) -> Optional[str]:
        """The ``map`` key the raw value matches (numbers by value), or ``None``."""
        if self.map is None or raw is None:
            return None
        return next((k for k in self.map if same_value(k, raw)), None)

    def show(self, raw: Optional[str]) -> str:
        if raw is None:
            return "-"
        if self.contains is not None:
            return "x" if self.contains in raw else ""
        key = self.mapped(raw)
        if key is not None:
            return str(self.map[key])
        if self.format == "sci" and _is_number(raw):
            return f"{float(raw):.2E}"
        return raw

    def order(self, raw: Optional[str]) -> tuple:
        key = self.mapped(raw)
        if key is not None:
            return (0, list(self.map).index(key), 0.0, "")
        text = "" if raw is None else raw
        return (1, 0, *((0.0, text) if not _is_number(text) else (float(text), "")))


@dataclass
class TableSpec:
    """One table of a preset's ``report.tables`` (one per table of the journal document).

    ``rows``: the row-key columns (:class:`RowKey`); ``columns``: the metric columns (:class:`Column`), titled as the
    journal titles them; ``where``: the runs the table takes, ``{setting: value or [values]}`` (a one-factor table:
    the learning-rate table takes the runs at ``lora.r: 32``); ``run_type``: ``training`` (train.py), ``evaluation``
    (evaluate.py) or ``solve`` (solve.py), or a list of them; ``keep_apart``: settings whose runs may share a row key
    but are kept apart by an extra column; ``ignore``: settings allowed to differ within a row (besides ``seed``).
    ``metric_rows`` turns the table around: one row per listed metric (``{metric, name}``) under ``row_title``, one
    column per :class:`Column` (``metric`` unused there, ``step: first`` = before training), over all the runs it takes
    (one setting). ``command`` is the command that makes its runs (shown when it has none)."""

    name: str
    columns: list[Column]
    rows: list[RowKey] = field(default_factory=list)
    title: Optional[str] = None
    run_type: Any = "training"
    where: dict = field(default_factory=dict)
    keep_apart: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    metric_rows: list[dict] = field(default_factory=list)
    row_title: str = "metric"
    command: Optional[str] = None
    layout: list[tuple[str, int]] = field(default_factory=list)  # ("row" | "column", index) in header order

    @classmethod
    def from_config(cls, spec: Mapping, where: str = "report.tables") -> "TableSpec":
        """From a plain dict of the preset; an unknown key or a missing part is a :class:`ReportError`."""
        known = set(cls.__dataclass_fields__)
        name = spec.get("name")
        if not name:
            raise ReportError(f"{where}: a table needs a name (report.py table=<name> prints it alone)")
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ReportError(f"{where}: table '{name}' has unknown key(s) {', '.join(unknown)}; "
                              f"use {', '.join(sorted(known))}")
        if not spec.get("columns") or not (spec.get("rows") or spec.get("metric_rows")):
            raise ReportError(f"{where}: table '{name}' needs columns and rows (or metric_rows)")
        try:
            rows = [RowKey(**r) if isinstance(r, Mapping) else RowKey(str(r)) for r in spec.get("rows") or []]
            layout = [("row", i) for i in range(len(rows))]
            columns = []
            for c in spec["columns"]:  # an entry with `key` is a row key shown at that place (the journal's order)
                if isinstance(c, Mapping) and "key" in c:
                    layout.append(("row", len(rows)))
                    rows.append(RowKey(**c))
                else:
                    layout.append(("column", len(columns)))
                    columns.append(Column(**c) if isinstance(c, Mapping) else Column(str(c)))
        except TypeError as error:
            raise ReportError(f"{where}: table '{name}': {error}") from None
        return cls(**{**dict(spec), "columns": columns, "rows": rows, "layout": layout,
                      "where": dict(spec.get("where") or {}), "keep_apart": list(spec.get("keep_apart") or []),
                      "ignore": list(spec.get("ignore") or []), "metric_rows": list(spec.get("metric_rows") or [])})

    @property
    def run_types(self) -> list[str]:
        return [self.run_type] if isinstance(self.run_type, str) else list(self.run_type)

    @property
    def header(self) -> list[str]:
        """The journal's titles: row keys (or ``row_title``), then the metric columns."""
        if self.metric_rows:
            return [self.row_title, *(c.title for c in self.columns)]
        return [*self.keep_apart, *(self.rows[i].title if kind == "row" else self.columns[i].title
                                    for kind, i in self.cells)]

    @property
    def cells(self) -> list[tuple[str, int]]:
        """``("row" | "column", index)`` of each cell after the ``keep_apart`` ones, in the header's order."""
        return self.layout or [*(("row", i) for i in range(len(self.rows))),
                               *(("column", i) for i in range(len(self.columns)))]


def table_specs(report: Mapping, experiment: str = "report") -> list[TableSpec]:
    """A preset's ``report:`` as tables: ``report.tables`` (a list), or the older single table
    (``report.rows``/``columns``/``only_when``/``run_type``) named after the experiment."""
    if "tables" in report:
        specs = [TableSpec.from_config(t, f"report.tables[{i}]") for i, t in enumerate(report["tables"] or [])]
    elif report.get("rows"):
        only_when = report.get("only_when") or {}
        specs = [TableSpec(name=experiment, columns=[Column(**c) for c in report["columns"]],
                           rows=[RowKey(k, only_when=only_when.get(k)) for k in report["rows"]],
                           run_type=report.get("run_type", "training"))]
    else:
        specs = []
    if not specs:
        raise ReportError("report: the preset has no table (report.tables)")
    names = [t.name for t in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ReportError(f"report.tables: table name(s) {', '.join(duplicates)} used twice")
    return specs


def select_runs(runs: Sequence[RunRecord], table: TableSpec) -> list[RunRecord]:
    """The runs of the table: its run types, and every ``where`` setting matched (a list: any of its values)."""
    chosen = []
    for run in runs:
        if run.tags.get("run_type", "training") not in table.run_types:
            continue
        if all(any(same_value(run.value(key), v) for v in (wanted if isinstance(wanted, (list, tuple)) else [wanted]))
               for key, wanted in table.where.items()):
            chosen.append(run)
    return chosen


def check_one_setting(members: Sequence[RunRecord], table: TableSpec, row: str) -> None:
    """Runs averaged into one row must differ only in ``seed`` (and the table's ``ignore``): else a
    :class:`ReportError` naming the setting that differs."""
    if len(members) < 2:
        return
    allowed = {"seed", *table.ignore, *table.keep_apart, *(k for r in table.rows if r.only_when for k in r.keys)}
    for key in sorted({k for m in members for k in m.params}):
        if key in allowed or key.rsplit(".", 1)[-1] == "seed":
            continue
        values = {m.params.get(key) for m in members}
        if len({_canonical(v) for v in values}) > 1:
            shown = ", ".join(sorted("(unset)" if v is None else str(v)[:60] for v in values))
            raise ReportError(f"table '{table.name}', row {row}: its {len(members)} runs differ in '{key}' "
                              f"({shown}), not only in seed; give the table where: {{{key}: <value>}} or "
                              f"keep_apart: [{key}]")


@dataclass
class BuiltTable:
    """A table filled from runs: ``records`` hold, per row, the shown row keys, the raw column values (means), the
    number of runs and how many of them degraded."""

    spec: TableSpec
    records: list[dict]
    notes: list[str] = field(default_factory=list)

    @property
    def header(self) -> list[str]:
        return [*self.spec.header, "runs"]


def metric_notes(runs: Sequence[RunRecord], table: TableSpec) -> list[str]:
    """A column titled as the journal (``pass_64``) whose template found another metric in these runs (``pass_4`` at
    the smoke scale) says so under the table."""
    notes = []
    for column in table.columns:
        for key in column.metric.split("|"):
            if "{" not in key:
                continue
            found = sorted({re.sub(r"\{([^}]+)\}", lambda m: str(r.params.get(m.group(1), m.group(0))), key)
                            .split("/")[-1] for r in runs} - {column.title})
            if found:
                notes.append(f"{column.title}: {', '.join(found)} of these runs")
            break
    return notes


def build_table(runs: Sequence[RunRecord], table: TableSpec) -> BuiltTable:
    """The table's rows from ``runs`` (all runs of the experiment: :func:`select_runs` picks the table's)."""
    chosen = select_runs(runs, table)
    if table.metric_rows:
        check_one_setting(chosen, table, "(all)")
        records = []
        for item in table.metric_rows:
            values = [_mean([column_value(r, Column(**{**c.__dict__, "metric": item["metric"]})) for r in chosen])
                      for c in table.columns]
            records.append({"keys": [item.get("name") or item["metric"]], "values": values, "runs": len(chosen),
                            "degraded": sum(r.degraded for r in chosen), "names": [r.name for r in chosen if r.degraded]})
        return BuiltTable(table, records if chosen else [], metric_notes(chosen, table))
    keys = [*table.rows, *(RowKey(k) for k in table.keep_apart)]  # records keep rows first, then keep_apart
    groups: dict[tuple, list[RunRecord]] = {}
    for run in chosen:  # "1e-4" and "0.0001" are one learning rate: grouped by value, shown as the first run has it;
        # degraded runs are never averaged with clean ones: a row of their own, after the clean row
        groups.setdefault((*(_canonical(k.raw(run)) for k in keys), run.degraded), []).append(run)
    records = []
    for members in sorted(groups.values(),
                          key=lambda m: (*(k.order(k.raw(m[0])) for k in keys), m[0].degraded)):
        setting = tuple(k.raw(members[0]) for k in keys)
        shown = [k.show(v) for k, v in zip(keys, setting)]
        check_one_setting(members, table, "(" + ", ".join(f"{k.title}={v}" for k, v in zip(keys, shown)) + ")")
        records.append({"keys": shown, "values": [_mean([column_value(m, c) for m in members]) for c in table.columns],
                        "runs": len(members), "degraded": sum(m.degraded for m in members),
                        "names": [m.name for m in members if m.degraded]})
    return BuiltTable(table, records, metric_notes(chosen, table))


def _canonical(raw: Optional[str]) -> Optional[str]:
    return repr(float(raw)) if raw is not None and _is_number(raw) else raw


def _mean(values: Sequence[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    texts = [v for v in values if isinstance(v, str)]
    return mean(numbers) if numbers else (texts[0] if texts else None)


DAGGER = "†"


def table_markdown(built: BuiltTable) -> str:
    """The table as the journal prints it (plus ``runs``); a row with degraded runs has daggered cells, its count
    says how many degraded, and a note under the table names them."""
    lines = ["| " + " | ".join(built.header) + " |", "|" + "---|" * len(built.header)]
    for record in built.records:
        mark = f" {DAGGER}" if record["degraded"] else ""
        values = [format_value(v, c.kind()) + (mark if v is not None else "")
                  for v, c in zip(record["values"], built.spec.columns)]
        cells = _ordered(built.spec, record["keys"], values)
        cells.append(f"{record['runs']} (degraded)" if record["degraded"] else str(record["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    if built.notes:
        lines.append("\n" + "; ".join(built.notes))
    degraded = [n for r in built.records for n in r["names"]]
    if degraded:
        lines.append(f"\n{DAGGER} degraded runs (tag degraded=true: a failed stage, fallback predictions), not clean "
                     f"results: {', '.join(sorted(set(degraded)))}")
    return "\n".join(lines)


def _ordered(spec: TableSpec, keys: Sequence[Any], values: Sequence[Any]) -> list[Any]:
    """A record's cells in the header's order: keep_apart, then row keys and columns as the spec lays them out."""
    if spec.metric_rows:
        return [*keys, *values]
    rows, apart = keys[:len(spec.rows)], keys[len(spec.rows):]
    return [*apart, *(rows[i] if kind == "row" else values[i] for kind, i in spec.cells)]


def table_csv(built: BuiltTable) -> str:
    """Raw numbers (not formatted), for spreadsheets and pandas; ``degraded`` counts the degraded runs of a row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*built.header, "degraded"])
    for record in built.records:
        values = ["" if v is None else v for v in record["values"]]
        writer.writerow([*_ordered(built.spec, record["keys"], values), record["runs"], record["degraded"]])
    return out.getvalue()


def compare_runs(runs: Sequence[RunRecord], metrics: Optional[Sequence[str]] = None) -> str:
    """Runs side by side: the params that differ between them, then their metrics (Markdown)."""
    keys = sorted({k for r in runs for k in r.params})
    differing = [k for k in keys if len({r.params.get(k) for r in runs}) > 1]
    metric_keys = list(metrics) if metrics else sorted({k for r in runs for k in r.metrics})
    header = ["", *(f"{r.name} ({r.run_id[:8]}){DEGRADED if is_degraded(r) else ''}" for r in runs)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in differing:
        lines.append("| " + " | ".join([key, *(str(r.params.get(key, "-")) for r in runs)]) + " |")
    for key in metric_keys:
        kind = Column(key).kind()
        lines.append("| " + " | ".join([key, *(format_value(r.metrics.get(key), kind) for r in runs)]) + " |")
    return "\n".join(lines)


def compare_runs_csv(runs: Sequence[RunRecord], metrics: Optional[Sequence[str]] = None) -> str:
    """:func:`compare_runs` as CSV with raw values: a ``key`` column, then one column per run id."""
    keys = sorted({k for r in runs for k in r.params})
    differing = [k for k in keys if len({r.params.get(k) for r in runs}) > 1]
    metric_keys = list(metrics) if metrics else sorted({k for r in runs for k in r.metrics})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", *(r.run_id for r in runs)])
    writer.writerow(["name", *(r.name for r in runs)])
    for key in differing:
        writer.writerow([key, *(r.params.get(key, "") for r in runs)])
    for key in metric_keys:
        writer.writerow([key, *("" if r.metrics.get(key) is None else r.metrics[key] for r in runs)])
    return out.getvalue()


class RunNotFoundError(ValueError):
    """A ``runs=`` id (or id prefix) that names no MLflow run, or more than one."""


def resolve_run_ids(client, run_ids: Iterable[str], tracking_uri: str) -> list[str]:
    """Full MLflow run ids from full ids or unique prefixes (the 8 characters ``compare_runs`` prints)."""
    wanted = [str(run_id).strip() for run_id in run_ids]
    known: Optional[list[str]] = None
    resolved = []
    for run_id in wanted:
        if known is None:
            ids = [e.experiment_id for e in client.search_experiments()]
            known = [r.info.run_id for r in client.search_runs(ids, max_results=50000)] if ids else []
        matches = [k for k in known if k.startswith(run_id)] if run_id else []
        if not matches:
            raise RunNotFoundError(f"runs: no MLflow run '{run_id}' in {tracking_uri}")
        if len(matches) > 1:
            raise RunNotFoundError(f"runs: '{run_id}' is the start of {len(matches)} run ids ({', '.join(matches[:4])}"
                                   f"{', ...' if len(matches) > 4 else ''}); give more characters")
        resolved.append(matches[0])
    return resolved


def fetch_runs(tracking_uri: str, experiment: Optional[str] = None, run_ids: Iterable[str] = (),
               run_type: Optional[str] = "training", first_step_metrics: Iterable[str] = ()) -> list[RunRecord]:
    """The finished runs of an iteration (by its ``experiment`` tag; of every run type with ``run_type=None``), or
    the given run ids, from any MLflow experiment. ``first_step_metrics``: metrics whose value at their first logged
    step is read too (``qa/count`` at step 0: before training)."""
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
