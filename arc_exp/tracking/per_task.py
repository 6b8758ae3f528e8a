"""A run's per-task results, read back from its MLflow artifacts: the ``per_task.csv`` an evaluation writes
(arc_exp/evaluation/outputs.py) and the failure/success plots beside it.

Where an evaluation's files are in a run: ``evaluate.py`` logs them at the artifact root (``all_checkpoints=true``:
one ``step-NNNNNN/`` folder per checkpoint, the last one is taken), ``train.py evaluation.enabled=true`` under
``evaluation/`` (and the base model's, ``evaluation.before=true``, under ``evaluation-before/``), ``solve.py`` in its
``predict`` stage's child run.
"""
from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

FILE = "per_task.csv"
TASK_COLUMNS = ("task_id", "source", "test_inputs", "predictions")  # the other columns are metrics


@dataclass
class PerTask:
    """One evaluation's per-task metrics, ``{metric: {task_id: value}}`` (tasks without known outputs left out),
    where it was found (``folder``: an artifact folder, ``""`` for the root) and the plots of each task
    (``{task_id: [artifact URI, ...]}``)."""

    metrics: dict[str, dict[str, float]]
    folder: str = ""
    plots: dict[str, list[str]] = field(default_factory=dict)

    def values(self, metric: str) -> Optional[dict[str, float]]:
        """The per-task values of ``metric`` (``accuracy``, ``pass_2``, ...), or ``None`` when the file lacks it."""
        return self.metrics.get(metric)


def parse_per_task_csv(text: str) -> dict[str, dict[str, float]]:
    """``per_task.csv`` as ``{metric: {task_id: value}}``; an empty cell (a task without known outputs) is left out.

    >>> parse_per_task_csv("task_id,source,test_inputs,predictions,accuracy,pass_2\\n"
    ...                    "0a1b2c3d,arc1,1,2,0.5,1\\n4e5f6a7b,arc1,1,2,,\\n")
    {'accuracy': {'0a1b2c3d': 0.5}, 'pass_2': {'0a1b2c3d': 1.0}}
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    metrics = [k for k in (rows[0] if rows else {}) if k not in TASK_COLUMNS]
    return {m: {r["task_id"]: float(r[m]) for r in rows if r.get(m) not in (None, "")} for m in metrics}


def per_task_metric(key: str) -> Optional[str]:
    """The ``per_task.csv`` column of an MLflow metric key: ``eval/pass_8`` -> ``pass_8``; ``None`` for a metric
    that does not come from per-task results (``train/loss``, ``qa/count``, ``eval/n_tasks``).

    >>> per_task_metric("eval/accuracy"), per_task_metric("pass_2"), per_task_metric("val/loss")
    ('accuracy', 'pass_2', None)
    """
    prefix, _, base = key.rpartition("/")
    if prefix not in ("", "eval"):
        return None
    known = ("accuracy", "correct_pixels", "correct_size", "max_correct_pixels", "any_correct_size", "vote_2",
             "unanswered")
    return base if base in known or re.fullmatch(r"pass_\d+", base) else None


def fetch_per_task(tracking_uri: str, run_id: str, before: bool = False) -> Optional[PerTask]:
    """The run's per-task results (``before=True``: of its ``evaluation-before/`` files), or ``None`` when it has
    none (a training run without evaluation)."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    folder = "evaluation-before" if before else _evaluation_folder(client, run_id)
    if folder is None and not before:  # solve.py: the files are its predict stage's, a child run
        experiment = client.get_run(run_id).info.experiment_id
        stages = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{run_id}' and tags.stage = 'predict'")
        return fetch_per_task(tracking_uri, stages[0].info.run_id) if stages else None
    if folder is None:
        return None
    path = f"{folder}/{FILE}" if folder else FILE
    if not any(a.path == path for a in client.list_artifacts(run_id, folder or None)):
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per small file says nothing
    with tempfile.TemporaryDirectory() as scratch:
        text = Path(client.download_artifacts(run_id, path, scratch)).read_text()
    artifact_uri = client.get_run(run_id).info.artifact_uri.rstrip("/")
    plots: dict[str, list[str]] = {}
    for kind in ("failures", "successes"):
        base = f"{folder}/plots/{kind}" if folder else f"plots/{kind}"
        for item in client.list_artifacts(run_id, base):
            task_id = Path(item.path).name.rsplit("-", 1)[0]  # <task_id>-<test index>.png
            plots.setdefault(task_id, []).append(f"{artifact_uri}/{item.path}")
    return PerTask(parse_per_task_csv(text), folder, plots)


def _evaluation_folder(client, run_id: str) -> Optional[str]:
    """``""`` (the root), ``evaluation``, the last ``step-NNNNNN`` or ``None``: where the run's per_task.csv is."""
    names = {Path(a.path).name: a for a in client.list_artifacts(run_id)}
    if FILE in names:
        return ""
    if "evaluation" in names and names["evaluation"].is_dir:
        return "evaluation"
    steps = sorted(n for n, a in names.items() if a.is_dir and re.fullmatch(r"step-\d+", n))
    return steps[-1] if steps else None


def fetch_results(tracking_uri: str, run_ids: Iterable[str], before: bool = False) -> dict[tuple[str, bool], PerTask]:
    """``(run id, before) -> PerTask`` of the runs that have per-task results (the others are left out)."""
    found = {}
    for run_id in dict.fromkeys(run_ids):
        results = fetch_per_task(tracking_uri, run_id, before)
        if results is not None:
            found[(run_id, before)] = results
    return found
