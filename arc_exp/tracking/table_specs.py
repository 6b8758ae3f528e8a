"""What a preset's ``report.tables`` asks for: one :class:`TableSpec` per table of its seed document, with its row
keys (:class:`RowKey`), its columns titled as the journal titles them, and ``where``, the runs it takes.

    report:
      tables:
        - name: lora_rank
          rows: [lora.r]
          columns: [{metric: train/loss, name: train loss}, {metric: eval/accuracy, name: accuracy}]
          where: {learning_rate: 1e-4}

:mod:`arc_exp.tracking.tables` builds them from the runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from arc_exp.tracking.report import Column, ReportError, RunRecord, is_number


def same_value(a: Any, b: Any) -> bool:
    """``"0.0001"`` and ``"1e-4"`` are the same learning rate; ``"qwen2-0.5b"`` only equals itself."""
    if a is None or b is None:
        return a is None and b is None
    a, b = str(a), str(b)
    if a == b:
        return True
    if is_number(a) and is_number(b):
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
        if self.format == "sci" and is_number(raw):
            return f"{float(raw):.2E}"
        return raw

    def order(self, raw: Optional[str]) -> tuple:
        key = self.mapped(raw)
        if key is not None:
            return (0, list(self.map).index(key), 0.0, "")
        text = "" if raw is None else raw
        return (1, 0, *((0.0, text) if not is_number(text) else (float(text), "")))


@dataclass
class TableSpec:
    """One table of a preset's ``report.tables`` (one per table of the journal document).

    ``rows``: the row-key columns (:class:`RowKey`); ``columns``: the metric columns (:class:`Column`), titled as the
    journal titles them; ``where``: the runs the table takes, ``{setting: value or [values]}`` (a one-factor table:
    the learning-rate table takes the runs at ``lora.r: 32``); ``run_type``: ``training`` (train.py), ``evaluation``
    (evaluate.py) or ``solve`` (solve.py), or a list of them; ``keep_apart``: settings whose runs may share a row key
    but are kept apart by an extra column; ``split_by``: settings that keep runs apart without a column of their own
    (the journal's shape stays): rows that would look alike name their value after the first row key, as
    ``tiny-random (size_small)`` when both model-size arms ran one model; ``ignore``: settings allowed to differ
    within a row (besides ``seed``).
    ``metric_rows`` turns the table around: one row per listed metric (``{metric, name}``) under ``row_title``, one
    column per :class:`Column` (``metric`` unused there, ``step: first`` = before training), over all the runs it takes
    (one setting). ``command`` is the command that makes its runs (shown when it has none).
    ``baseline``: the row every other row is compared with task by task (the journal's one-factor design), as
    ``{setting: value}`` of its runs or the text of its first cell; the first row when unset. ``compare``: the
    per-task metric of that comparison (``pass_2`` when unset: report.yaml's ``significance.metric``)."""

    name: str
    columns: list[Column]
    rows: list[RowKey] = field(default_factory=list)
    title: Optional[str] = None
    run_type: Any = "training"
    where: dict = field(default_factory=dict)
    keep_apart: list[str] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    metric_rows: list[dict] = field(default_factory=list)
    row_title: str = "metric"
    command: Optional[str] = None
    layout: list[tuple[str, int]] = field(default_factory=list)  # ("row" | "column", index) in header order
    baseline: Any = None
    compare: Optional[str] = None

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
                      "split_by": list(spec.get("split_by") or []),
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
