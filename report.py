"""Rebuild an iteration's results table from MLflow, or compare chosen runs.

    python report.py experiment=iter12_grid_representation     # Markdown + CSV + curves, logged to MLflow
    python report.py runs=3f2a...,9c1b...                       # side by side
"""
import logging
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("ARC_EXP_ROOT", str(ROOT))

import hydra  # noqa: E402
import mlflow  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from arc_exp.tracking import report, runs as tracking  # noqa: E402

log = logging.getLogger("report")


@hydra.main(config_path="conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    uri = cfg.logger.tracking_uri
    if cfg.runs:
        runs = report.fetch_runs(uri, run_ids=str(cfg.runs).split(","))
        print(report.compare_runs(runs))
        return
    if not cfg.get("experiment") or not cfg.get("report"):
        known = ", ".join(sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")))
        raise SystemExit(f"report.py: give experiment=<name> (one of: {known}) or runs=<id>,<id>")
    spec = OmegaConf.to_container(cfg.report, resolve=False)
    rows, columns = spec["rows"], [report.Column(**c) for c in spec["columns"]]
    entry = {"solve": "solve.py", "evaluation": "evaluate.py"}.get(spec.get("run_type"), "train.py")
    runs = report.fetch_runs(uri, experiment=cfg.experiment, run_type=spec.get("run_type", "training"))
    if not runs:
        raise SystemExit(f"report.py: no {spec.get('run_type', 'training')} run tagged experiment={cfg.experiment} in {uri}; "
                         f"run `python {entry} -m experiment={cfg.experiment}` first")
    table = report.iteration_table(runs, rows, columns, spec.get("only_when"))
    markdown = report.to_markdown(table, rows, columns)
    print(f"{cfg.experiment}: {len(runs)} runs\n\n{markdown}")
    files = [output_dir / f"{cfg.experiment}.md", output_dir / f"{cfg.experiment}.csv"]
    files[0].write_text(markdown + "\n")
    files[1].write_text(report.to_csv(table, rows, columns))
    files.append(report.plot_metric_curves(uri, runs, list(cfg.plot_metrics), output_dir / f"{cfg.experiment}.png",
                                           label_keys=rows))
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = tracking.ensure_experiment(uri, cfg.logger.experiment_name)
    run = client.create_run(experiment_id, run_name=f"report:{cfg.experiment}",
                            tags={"run_type": "report", "experiment": cfg.experiment})
    for path in files:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    log.info("table written to %s and logged to MLflow run %s", files[0], run.info.run_id)


if __name__ == "__main__":
    main()
