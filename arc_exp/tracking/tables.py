"""The journal's tables built from the runs: each table of a preset's report.tables (a
:class:`~arc_exp.tracking.table_specs.TableSpec`: its row keys, its columns titled as the journal titles them and a
filter on the runs it takes) filled; runs of a row that differ in anything but the seed are an error, repeats average,
degraded runs keep rows of their own.

A figure that comes from per-task results (an evaluation's ``per_task.csv``) carries its 95% bootstrap interval over
tasks, ``31.5% (27.0-36.1)``; a row of several seeds also shows their standard deviation, ``sd 2.1``. The CSV has
them as columns of their own (``<title> low``, ``<title> high``, ``<title> sd``)."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Mapping, Optional, Sequence

from arc_exp.tracking.comparison import Arm, compare_arms, write_comparison
from arc_exp.tracking.per_task import PerTask, per_task_metric
from arc_exp.tracking.report import (
    Column,
    ReportError,
    RunRecord,
    column_value,
    format_figure,
    is_number,
)
from arc_exp.tracking.significance import (
    Interval,
    SignificanceSettings,
    bootstrap_interval,
    seed_spread,
)
from arc_exp.tracking.table_specs import RowKey, TableSpec, same_value

PerTaskResults = Mapping[tuple[str, bool], PerTask]  # (run id, before training) -> its per-task results


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
    allowed = {"seed", *table.ignore, *table.keep_apart, *table.split_by,
               *(k for r in table.rows if r.only_when for k in r.keys)}
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
    members: list[list[RunRecord]] = field(default_factory=list)  # the runs of each record (not of metric_rows)
    titles: dict[str, str] = field(default_factory=dict)  # journal title -> what these runs hold (metric_titles)

    @property
    def header(self) -> list[str]:
        return [*(self.titles.get(t, t) for t in self.spec.header), "runs"]

    def title(self, column: Column) -> str:
        return self.titles.get(column.title, column.title)


def metric_titles(runs: Sequence[RunRecord], table: TableSpec) -> tuple[dict[str, str], list[str]]:
    """A column titled as the journal (``pass_64``) whose template found another metric in these runs (``pass_4`` at
    the smoke scale) is titled with what the runs made (``pass_4``), never with more than was run; when the runs
    made different numbers, ``pass_N``. Returns ``{journal title: title}`` and the notes under the table that say
    so (``pass_4: the journal's pass_64, at the predictions these runs made``)."""
    titles, notes = {}, []
    for column in table.columns:
        for key in column.metric.split("|"):
            if "{" not in key:
                continue
            found = sorted({re.sub(r"\{([^}]+)\}", lambda m: str(r.params.get(m.group(1), m.group(0))), key)
                            .split("/")[-1] for r in runs})
            if found and found != [column.title]:
                title = found[0] if len(found) == 1 else re.sub(r"\d+$", "N", column.title)
                titles[column.title] = title
                notes.append(f"{title}: the journal's {column.title}, at the predictions these runs made"
                             + (f" ({', '.join(found)})" if len(found) > 1 else ""))
            break
    return titles, notes


def column_per_task(run: RunRecord, column: Column, per_task: PerTaskResults) -> Optional[dict[str, float]]:
    """The per-task values behind a run's figure of ``column`` (the first alternative key the run has), from the
    run's ``per_task.csv`` (``step: first``: the one evaluated before training); ``None`` when there is none."""
    results = per_task.get((run.run_id, column.step == "first"))
    if results is None:
        return None
    for key in column.metric.split("|"):
        key = re.sub(r"\{([^}]+)\}", lambda m: str(run.params.get(m.group(1), m.group(0))), key)
        found = run.first_metrics.get(key) if column.step == "first" else run.value(key)
        if found is None:
            continue
        metric = per_task_metric(key)
        return results.values(metric) if metric else None
    return None


def from_per_task(column: Column) -> bool:
    """A column whose figure can come from per-task results (``eval/pass_{n}``, ``accuracy``): it has an interval."""
    return any(per_task_metric(re.sub(r"\{[^}]+\}", "1", key)) for key in column.metric.split("|"))


def row_statistics(members: Sequence[RunRecord], columns: Sequence[Column], per_task: PerTaskResults,
                   settings: SignificanceSettings) -> tuple[list[Optional[Interval]], list[Optional[float]]]:
    """Per column: the bootstrap interval over tasks of the row's figure (when every run of the row has per-task
    results for it) and the standard deviation over the row's runs (seeds; ``None`` for one run)."""
    intervals, deviations = [], []
    for column in columns:
        values = [column_per_task(m, column, per_task) for m in members]
        interval = None
        if values and all(values):
            interval = bootstrap_interval(values, settings.resamples, settings.seed, settings.level)
        intervals.append(interval)
        deviations.append(seed_spread([column_value(m, column) for m in members])[1])
    return intervals, deviations


def build_table(runs: Sequence[RunRecord], table: TableSpec, per_task: Optional[PerTaskResults] = None,
                settings: Optional[SignificanceSettings] = None) -> BuiltTable:
    """The table's rows from ``runs`` (all runs of the experiment: :func:`select_runs` picks the table's); with
    ``per_task`` (run id, before -> :class:`PerTask`), each figure from per-task results gets its interval."""
    per_task, settings = per_task or {}, settings or SignificanceSettings()
    chosen = select_runs(runs, table)
    if table.metric_rows:
        check_one_setting(chosen, table, "(all)")
        records = []
        for item in table.metric_rows:
            values = [_mean([column_value(r, Column(**{**c.__dict__, "metric": item["metric"]})) for r in chosen])
                      for c in table.columns]
            records.append({"keys": [item.get("name") or item["metric"]], "values": values, "runs": len(chosen),
                            "degraded": sum(r.degraded for r in chosen), "names": [r.name for r in chosen if r.degraded],
                            **_trained(chosen)})
        titles, notes = metric_titles(chosen, table)
        return BuiltTable(table, records if chosen else [], notes, titles=titles)
    keys = [*table.rows, *(RowKey(k) for k in table.keep_apart)]  # records keep rows first, then keep_apart
    splits = [RowKey(k, map=_in_order(table.where.get(k))) for k in table.split_by]  # in the where's order
    groups: dict[tuple, list[RunRecord]] = {}
    for run in chosen:  # "1e-4" and "0.0001" are one learning rate: grouped by value, shown as the first run has it;
        # degraded runs are never averaged with clean ones: a row of their own, after the clean row
        # and so are runs that scored outputs their model trained on (allowed on purpose, tagged)
        groups.setdefault((*(_canonical(k.raw(run)) for k in [*keys, *splits]), run.degraded,
                           run.trained_outputs > 0), []).append(run)
    records, split_values, row_members = [], [], []
    for members in sorted(groups.values(),
                          key=lambda m: (*(k.order(k.raw(m[0])) for k in [*keys, *splits]), m[0].degraded,
                                         m[0].trained_outputs > 0)):
        shown = [k.show(k.raw(members[0])) for k in keys]
        split_values.append([k.show(k.raw(members[0])) for k in splits])
        label = [*(f"{k.title}={v}" for k, v in zip(keys, shown)),
                 *(f"{k.title}={v}" for k, v in zip(splits, split_values[-1]))]
        check_one_setting(members, table, "(" + ", ".join(label) + ")")
        intervals, deviations = row_statistics(members, table.columns, per_task, settings)
        records.append({"keys": shown, "values": [_mean([column_value(m, c) for m in members]) for c in table.columns],
                        "runs": len(members), "degraded": sum(m.degraded for m in members),
                        "names": [m.name for m in members if m.degraded], "intervals": intervals,
                        "sd": deviations, **_trained(members)})
        row_members.append(members)
    looks = [(tuple(r["keys"]), bool(r["degraded"]), bool(r["trained"])) for r in records]
    for record, look, values in zip(records, looks, split_values):  # split rows that would look alike say their split
        if looks.count(look) > 1 and record["keys"]:
            record["keys"][0] = f"{record['keys'][0]} ({', '.join(values)})"
    titles, notes = metric_titles(chosen, table)
    return BuiltTable(table, records, notes, row_members, titles)


def _in_order(values: Any) -> Optional[dict]:
    """``where: {arm: [size_small, size_large]}`` as a map that keeps its order (rows split by arm follow it)."""
    return {str(v): str(v) for v in values} if isinstance(values, (list, tuple)) else None


def _canonical(raw: Optional[str]) -> Optional[str]:
    return repr(float(raw)) if raw is not None and is_number(raw) else raw


def _mean(values: Sequence[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    texts = [v for v in values if isinstance(v, str)]
    return mean(numbers) if numbers else (texts[0] if texts else None)


def _trained(members: Sequence[RunRecord]) -> dict:
    """How many of a row's runs scored test outputs their model trained on, and their names."""
    marked = [m for m in members if m.trained_outputs]
    return {"trained": len(marked), "trained_names": [f"{m.name} ({m.trained_outputs})" for m in marked]}


DAGGER = "†"
DOUBLE_DAGGER = "‡"


def table_markdown(built: BuiltTable) -> str:
    """The table as the journal prints it (plus ``runs``); a row with degraded runs has daggered cells, its count
    says how many degraded, and a note under the table names them."""
    lines = ["| " + " | ".join(built.header) + " |", "|" + "---|" * len(built.header)]
    for record in built.records:
        mark = (f" {DAGGER}" if record["degraded"] else "") + (f" {DOUBLE_DAGGER}" if record.get("trained") else "")
        values = [format_figure(v, c.kind(), interval, sd) + (mark if v is not None else "")
                  for v, c, interval, sd in zip(record["values"], built.spec.columns, *_statistics(record))]
        cells = _ordered(built.spec, record["keys"], values)
        cells.append(str(record["runs"]) + (" (degraded)" if record["degraded"] else "")
                     + (" (trained on scored outputs)" if record.get("trained") else ""))
        lines.append("| " + " | ".join(cells) + " |")
    if built.notes:
        lines.append("\n" + "; ".join(built.notes))
    degraded = [n for r in built.records for n in r["names"]]
    if degraded:
        lines.append(f"\n{DAGGER} degraded runs (tag degraded=true: a failed stage, fallback predictions), not clean "
                     f"results: {', '.join(sorted(set(degraded)))}")
    trained = [n for r in built.records for n in r.get("trained_names", ())]
    if trained:
        lines.append(f"\n{DOUBLE_DAGGER} runs that scored test outputs their model trained on (tag "
                     f"trained_on_evaluated_outputs, evaluation.allow_trained_outputs=true): they measure memory, not "
                     f"generalization: {', '.join(sorted(set(trained)))}")
    return "\n".join(lines)


def _statistics(record: Mapping) -> tuple[list, list]:
    n = len(record["values"])
    return record.get("intervals") or [None] * n, record.get("sd") or [None] * n


def _ordered(spec: TableSpec, keys: Sequence[Any], values: Sequence[Any]) -> list[Any]:
    """A record's cells in the header's order: keep_apart, then row keys and columns as the spec lays them out."""
    if spec.metric_rows:
        return [*keys, *values]
    rows, apart = keys[:len(spec.rows)], keys[len(spec.rows):]
    return [*apart, *(rows[i] if kind == "row" else values[i] for kind, i in spec.cells)]


def table_csv(built: BuiltTable) -> str:
    """Raw numbers (not formatted), for spreadsheets and pandas; ``degraded`` counts the degraded runs of a row,
    ``trained_on_evaluated_outputs`` those that scored outputs their model trained on."""
    out = io.StringIO()
    writer = csv.writer(out)
    spec = built.spec
    if spec.metric_rows:
        header = built.header
    else:  # each column followed by its interval (when it can come from per-task results) and its deviation
        header = [*spec.keep_apart]
        for kind, i in spec.cells:
            if kind == "row":
                header.append(spec.rows[i].title)
                continue
            column, title = spec.columns[i], built.title(spec.columns[i])
            header += [title, *((f"{title} low", f"{title} high") if from_per_task(column) else ()),
                       *((f"{title} sd",) if column.kind() != "text" else ())]
        header.append("runs")
    writer.writerow([*header, "degraded", "trained_on_evaluated_outputs"])
    for record in built.records:
        if spec.metric_rows:
            cells = _ordered(spec, record["keys"], ["" if v is None else v for v in record["values"]])
        else:
            cells = []
            for v, c, interval, sd in zip(record["values"], spec.columns, *_statistics(record)):
                cell = ["" if v is None else v]
                if from_per_task(c):
                    cell += ["", ""] if interval is None else [interval.low, interval.high]
                if c.kind() != "text":
                    cell.append("" if sd is None else sd)
                cells.append(cell)
            rows, apart = record["keys"][:len(spec.rows)], record["keys"][len(spec.rows):]
            cells = [*apart, *(x for kind, i in spec.cells for x in ([rows[i]] if kind == "row" else cells[i]))]
        writer.writerow([*cells, record["runs"], record["degraded"], record.get("trained", 0)])
    return out.getvalue()


def row_label(built: BuiltTable, index: int) -> str:
    """A row as its shown cells, ``SmolLM2-135M 4.00E-04`` (row keys and keep_apart values)."""
    record = built.records[index]
    return " ".join(str(k) for k in record["keys"] if str(k) not in ("", "-")) or f"row {index + 1}"


def baseline_row(built: BuiltTable) -> int:
    """The index of the table's baseline row: the spec's ``baseline`` (``{setting: value}`` its runs have, or the
    text of the row's first cell or of its label), else the first row; a baseline no row matches is a
    :class:`ReportError` naming the rows."""
    wanted = built.spec.baseline
    if wanted is None:
        return 0
    for index, members in enumerate(built.members):
        if isinstance(wanted, Mapping):
            if members and all(same_value(m.value(k), v) for m in members for k, v in wanted.items()):
                return index
        elif str(wanted) in (str(built.records[index]["keys"][0]) if built.records[index]["keys"] else "",
                             row_label(built, index)):
            return index
    rows = "; ".join(row_label(built, i) for i in range(len(built.records)))
    raise ReportError(f"table '{built.spec.name}': no row is the baseline {wanted} (its rows: {rows})")


def row_per_task(members: Sequence[RunRecord], metric: str, per_task: PerTaskResults) -> Optional[dict[str, float]]:
    """A row's per-task values of ``metric``: a task's mean over the row's runs (seeds) that evaluated it; ``None``
    when a run of the row has no per-task results with that metric."""
    found = [per_task.get((m.run_id, False)) for m in members]
    values = [r.values(metric) if r is not None else None for r in found]
    if not values or any(v is None for v in values):
        return None
    tasks = sorted({t for v in values for t in v})
    return {t: mean(v[t] for v in values if t in v) for t in tasks}


def row_plots(members: Sequence[RunRecord], per_task: PerTaskResults) -> dict[str, list[str]]:
    plots: dict[str, list[str]] = {}
    for member in members:
        results = per_task.get((member.run_id, False))
        for task_id, uris in (results.plots if results else {}).items():
            plots.setdefault(task_id, []).extend(uris)
    return plots


def row_arms(built: BuiltTable, metric: str, per_task: PerTaskResults) -> list[Arm]:
    """The table's rows as sides of a paired comparison (:mod:`arc_exp.tracking.comparison`)."""
    arms = []
    for index, members in enumerate(built.members):
        lacking = [m for m in members if per_task.get((m.run_id, False)) is None]
        lacks = (f"no per_task.csv in run(s) {', '.join(f'{m.name} ({m.run_id[:8]})' for m in lacking)}" if lacking
                 else f"no {metric} in the per_task.csv of its runs")
        arms.append(Arm(row_label(built, index), row_per_task(members, metric, per_task), row_plots(members, per_task),
                        lacks))
    return arms


def pair_rows(built: BuiltTable, per_task: PerTaskResults, settings: SignificanceSettings, folder: Path,
              stem: str) -> tuple[str, list[Path]]:
    """Each row against the table's baseline row, task by task (the spec's ``compare`` metric, else the settings'):
    the printed comparison and the files written (:func:`arc_exp.tracking.comparison.write_comparison`); nothing for
    a table of one row or of ``metric_rows``, one line when no run of the table has per-task results."""
    if len(built.records) < 2 or built.spec.metric_rows:
        return "", []
    base = baseline_row(built)
    arms = row_arms(built, built.spec.compare or settings.metric, per_task)
    if all(a.values is None for a in arms):
        return "no paired comparison: no run of this table has per-task results (per_task.csv)", []
    compared = compare_arms(arms[base], arms[:base] + arms[base + 1:], settings)
    return write_comparison(compared, folder, stem, built.spec.name, settings, "baseline", "row")


def write_tables(runs: Sequence[RunRecord], tables: Sequence[TableSpec], per_task: PerTaskResults,
                 settings: SignificanceSettings, folder: Path, experiment: str) -> tuple[list[str], list[Path]]:
    """Each table built from ``runs`` and written to ``folder`` as ``<experiment>.<table>.md`` and ``.csv``, each row
    paired with the baseline row task by task (:func:`pair_rows`): the texts to print and the files written. A
    table without runs yet prints the command that makes them."""
    printed, files = [], []
    for table in tables:
        built = build_table(runs, table, per_task, settings)
        paired, written = pair_rows(built, per_task, settings, folder, f"{experiment}.{table.name}")
        heading = f"## {table.name}" + (f": {table.title}" if table.title else "")
        if not built.records:
            printed.append(f"{heading}\n\n(no run yet{f': `{table.command}`' if table.command else ''})")
            continue
        markdown = table_markdown(built)
        printed.append(f"{heading}\n\n{markdown}")
        md, csv_file = (folder / f"{experiment}.{table.name}.{suffix}" for suffix in ("md", "csv"))
        md.write_text(f"{heading}\n\n{markdown}\n")
        csv_file.write_text(table_csv(built))
        files += [md, csv_file, *written]
        printed += [paired] if paired else []  # each row against the baseline row, task by task
    return printed, files
