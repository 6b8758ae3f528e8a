"""A solve run's folder and stages: stage markers (stage.json) that make a run resumable, and the MLflow child run of each stage."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Optional

from arc_exp.files import write_json
from arc_exp.tracking.runs import EvaluationTracker
from arc_exp.ttft.settings import TTFTConfigError

MARKER = "stage.json"


def read_marker(folder: str | Path) -> Optional[dict]:
    """The ``stage.json`` of a finished stage (or task), ``None`` when it has not finished."""
    path = Path(folder) / MARKER
    return json.loads(path.read_text()) if path.exists() else None


def write_marker(folder: str | Path, info: Mapping) -> None:
    write_json(Path(folder) / MARKER, {**info, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1)


def run_folder(resume: Optional[str], output_dir: str | Path) -> Path:
    """The run folder: ``resume`` (an earlier solve run folder, checked) or this run's ``output_dir``."""
    if not resume:
        return Path(output_dir)
    folder = Path(resume).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"resume: no such run folder '{resume}'")
    if not (folder / "submission.json").exists():
        raise TTFTConfigError(f"resume: '{resume}' is not a solve.py run folder (no submission.json)")
    return folder


def child_run(parent: Optional[EvaluationTracker], name: str, **tags) -> Optional[EvaluationTracker]:
    """A child MLflow run of ``parent`` (tag ``mlflow.parentRunId``) in the same experiment; ``None`` without one."""
    if parent is None:
        return None
    experiment = parent.client.get_experiment(parent.client.get_run(parent.run_id).info.experiment_id)
    return EvaluationTracker(parent.tracking_uri, experiment.name, name,
                             {"mlflow.parentRunId": parent.run_id, **tags})


def lightning_logger(run: Optional[EvaluationTracker]):
    """A Lightning MLflow logger that writes into the existing child run ``run`` (the TTFT losses per step)."""
    if run is None:
        return None
    from pytorch_lightning.loggers import MLFlowLogger

    experiment = run.client.get_experiment(run.client.get_run(run.run_id).info.experiment_id)
    return MLFlowLogger(experiment_name=experiment.name, tracking_uri=run.tracking_uri, run_id=run.run_id)


def finish_child_run(run: Optional[EvaluationTracker], status: str = "FINISHED") -> None:
    if run is not None:
        run.finish(status)
