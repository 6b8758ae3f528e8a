"""Rebuild an iteration's tables from MLflow, or compare chosen runs.

    python report.py experiment=iter12_grid_representation                  # every table: Markdown + CSV, one MLflow run
    python report.py experiment=iter12_grid_representation table=lora_rank  # one table
    python report.py experiment=iter12_grid_representation scale=gpu        # the runs of scale=gpu
    python report.py 'runs=[3f2a9c1b,9c1b07de]'                             # side by side (ids or unique prefixes)
    python report.py sweep=multirun/evaluate/2026-12-04/18-55-00            # a sweep's runs (seed=0,1,2: their spread)

Figures from per-task results carry 95% bootstrap intervals over tasks; compared runs (and each table row against
the table's baseline row) are paired task by task: solved by both / one / neither, the difference with its paired
interval and an exact McNemar p-value; the task ids of each group and a PNG of the tasks that differ are logged.
"""
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from arc_exp import cli
from arc_exp.tracking import per_task, report, runs as tracking, side_by_side
from arc_exp.tracking.significance import SignificanceError, SignificanceSettings
from arc_exp.tracking.table_specs import table_specs
from arc_exp.tracking.tables import select_runs, write_tables

log = logging.getLogger("report")
ROOT = Path(__file__).resolve().parent


@cli.main(__file__, "report")
def main(cfg: DictConfig) -> None:
    try:  # before the output folder: a mistake leaves nothing behind
        settings = SignificanceSettings(**OmegaConf.to_container(cfg.significance, resolve=True))
    except SignificanceError as error:
        raise cli.UserError(f"significance: {error}") from None
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    uri = cfg.logger.tracking_uri
    if cfg.runs or cfg.sweep:
        return compare(cfg, uri, output_dir, settings)
    if not cfg.get("experiment") or not cfg.get("report"):
        known = ", ".join(sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")))
        raise SystemExit(f"report.py: give experiment=<name> (one of: {known}) or runs=[<id>,<id>]")
    try:
        tables = table_specs(OmegaConf.to_container(cfg.report, resolve=True), cfg.experiment)
    except report.ReportError as error:
        raise SystemExit(f"report.py: experiment={cfg.experiment}: {error}") from None
    if cfg.get("scale"):  # a preset's smoke and gpu runs never share a table: scale=gpu reports the gpu runs
        for table in tables:
            table.where.setdefault("scale", cfg.scale)
    if cfg.iteration:  # run.py's rerun of the iteration: its runs alone
        for table in tables:
            table.where.setdefault("tag:iteration", cfg.iteration)
    if cfg.table:
        chosen = [t for t in tables if t.name == cfg.table]
        if not chosen:
            raise SystemExit(f"report.py: experiment={cfg.experiment} has no table '{cfg.table}'; "
                             f"its tables: {', '.join(t.name for t in tables)}")
        tables = chosen
    first = sorted({k for t in tables for c in t.columns if c.step == "first" for k in c.metric.split("|")}
                   | {k for t in tables for m in t.metric_rows if any(c.step == "first" for c in t.columns)
                      for k in m["metric"].split("|")})
    runs = [r for r in report.fetch_runs(uri, experiment=cfg.experiment, run_type=None, first_step_metrics=first)
            if r.tags.get("run_type") not in ("report", "iteration", "stage")]
    if not any(select_runs(runs, t) for t in tables):
        raise cli.UserError(f"no finished run tagged experiment={cfg.experiment} for "
                         f"{'these tables' if len(tables) > 1 else 'this table'} in {uri}; "
                         f"run `{tables[0].command or first_command(tables[0].run_types, cfg.experiment)}` first")
    ids = [r.run_id for t in tables for r in select_runs(runs, t)]
    results = per_task.fetch_results(uri, ids)
    if first:
        results.update(per_task.fetch_results(uri, ids, before=True))
    try:
        printed, files = write_tables(runs, tables, results, settings, output_dir, cfg.experiment)
    except report.ReportError as error:
        raise SystemExit(f"report.py: experiment={cfg.experiment}: {error}") from None
    printed.insert(0, f"{cfg.experiment}: {len(runs)} runs")
    print("\n\n".join(printed))
    training = [r for r in runs if r.tags.get("run_type") == "training"]
    if training and cfg.plot_metrics:
        files.append(report.plot_metric_curves(uri, training, list(cfg.plot_metrics),
                                               output_dir / f"{cfg.experiment}.png"))
    run = tracking.MLflowRun(uri, cfg.logger.experiment_name, f"report:{cfg.experiment}",
                             {"run_type": "report", "experiment": cfg.experiment,
                              "tables": ",".join(t.name for t in tables)})
    cli.run_started(run.run_id, uri)
    run.log_files(files)
    run.finish()
    log.info("tables written to %s and logged to MLflow run %s", output_dir, run.run_id)


def first_command(run_types, experiment: str) -> str:
    """The command that makes the runs of a table of ``run_types`` (a preset that names none: this guess)."""
    if "evaluation" in run_types:
        return f"python evaluate.py -m experiment={experiment} checkpoint=<adapter>"
    if "solve" in run_types:
        return f"python solve.py -m experiment={experiment}"
    return f"python train.py -m experiment={experiment}"


def compare(cfg: DictConfig, uri: str, output_dir: Path, settings: SignificanceSettings) -> None:
    """``runs=[<id>,<id>,...]`` (full ids or unique prefixes) or ``sweep=<multirun folder>``: side by side
    (comparison.md and .csv), each run paired with the first task by task (comparison.paired.md, .tasks.md, .csv,
    .png); logged to one report run."""
    from omegaconf import ListConfig

    if cfg.sweep:  # a multirun's folder: its runs, in job order
        folder = Path(cfg.sweep) if Path(cfg.sweep).exists() else Path(cfg.project_root) / cfg.sweep
        ids = report.runs_under(uri, folder)
    else:
        ids = list(cfg.runs) if isinstance(cfg.runs, (list, ListConfig)) else str(cfg.runs).split(",")
    for run_id in ids:
        if not isinstance(run_id, str):  # Hydra reads 12e45678 or 01234567 as a number (and drops the leading 0)
            raise cli.UserError(f"runs: an id was read as the number {run_id}; quote it: runs=['<id>',...]")
    records = side_by_side.one_name_per_quantity(report.fetch_runs(uri, run_ids=[str(i) for i in ids]))
    results = per_task.fetch_results(uri, [r.run_id for r in records])
    metrics = list(cfg.metrics) if cfg.metrics else None
    printed, files = side_by_side.write_side_by_side(records, results, metrics, settings, output_dir)
    print(printed)
    run = tracking.MLflowRun(uri, cfg.logger.experiment_name, "report:runs",
                             {"run_type": "report", "runs": ",".join(r.run_id for r in records)})
    cli.run_started(run.run_id, uri)
    run.log_files(files)
    run.finish()
    log.info("comparison written to %s and logged to MLflow run %s", output_dir, run.run_id)


if __name__ == "__main__":
    main()
