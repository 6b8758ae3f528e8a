"""MLflow bookkeeping: the store, run names from overrides, flattened params, git commit, the resolved config.

The tracking URI defaults to ``sqlite:///mlflow.db`` at the project root (current MLflow refuses the plain
``./mlruns`` file store). The first use of a SQLite store creates its schema, and several processes doing that at once
fail, so a multirun creates it (and the experiment) once in :class:`MLflowStoreCallback` before its jobs start.
"""
from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from arc_exp.evaluation.results import EvaluationResult

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"lora": {"r": 32}}`` -> ``{"lora.r": 32}``; lists are kept as their string form."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            text = str(value)
            flat[name] = text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
    return flat


def run_name_from_overrides(overrides: Iterable[str], default: str = "default") -> str:
    """``["lora.r=128", "model=qwen2-1.5b"]`` -> ``"lora.r=128,model=qwen2-1.5b"`` (the run's distinguishing knobs)."""
    kept = [o.lstrip("+~") for o in overrides if not o.startswith(("hydra.", "logger.", "experiment_name"))]
    return ",".join(sorted(kept)) or default


def git_commit(folder: str | os.PathLike = ".") -> Optional[str]:
    """The commit of the code that ran, with ``-dirty`` when the tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def ensure_store(tracking_uri: str) -> None:
    """Create the tracking store (and a SQLite schema) once, before any parallel job touches it."""
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)


def ensure_experiment(tracking_uri: str, experiment_name: str) -> str:
    """The id of the named experiment, created if missing; another process creating it first is not an error."""
    import mlflow
    from mlflow.exceptions import MlflowException

    ensure_store(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(experiment_name)
    except MlflowException:  # lost a race with a parallel job: the experiment exists now
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


def log_artifact_files(logger, paths: Iterable[str | os.PathLike], artifact_path: Optional[str] = None) -> None:
    """Log files to the run behind a Lightning ``MLFlowLogger`` (a no-op for other loggers)."""
    run_id = getattr(logger, "run_id", None)
    if run_id is None:
        return
    for path in paths:
        if Path(path).is_dir():
            logger.experiment.log_artifacts(run_id, str(path), artifact_path)
        elif Path(path).exists():
            logger.experiment.log_artifact(run_id, str(path), artifact_path)


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency; keep the library importable without it
    _HydraCallback = object


class MLflowStoreCallback(_HydraCallback):
    """Hydra callback: create the MLflow store and experiment once when a multirun starts, so parallel jobs do not
    race to create them."""

    def __init__(self, tracking_uri: str, experiment_name: Optional[str] = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name

    def on_multirun_start(self, config, **kwargs) -> None:
        if self.experiment_name:
            ensure_experiment(self.tracking_uri, self.experiment_name)
        else:
            ensure_store(self.tracking_uri)
        log.info("MLflow store ready at %s", self.tracking_uri)


class EvaluationTracker:
    """An MLflow run of an evaluation, through ``MlflowClient`` (no Lightning): params, tags, metrics per step
    (the training step of the checkpoint, so several checkpoints draw a curve) and artifacts."""

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str, tags: Optional[Mapping] = None):
        import mlflow

        from arc_exp.tracking.runs import ensure_experiment

        experiment_id = ensure_experiment(tracking_uri, experiment_name)
        self.tracking_uri = tracking_uri
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        tags = {str(k): str(v) for k, v in (tags or {}).items() if v is not None and v != ""}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id

    @classmethod
    def start(cls, cfg, resolved: Mapping, overrides: Sequence[str], run_type: str, name_prefix: str,
              config_file: str | Path, **tags: Any) -> Optional["EvaluationTracker"]:
        """The MLflow run of an ``evaluate.py`` / ``solve.py`` / ``generate.py`` job, or ``None`` with ``logger=none``.

        Tagged with ``run_type``, the logger's tags, the git commit, the overrides, ``experiment`` and ``tags``;
        named ``logger.run_name`` or ``<name_prefix>:<overrides>``; the resolved config is logged as params and the
        already written ``config_file`` as an artifact."""
        from arc_exp.tracking.runs import flatten, git_commit, run_name_from_overrides

        if cfg.logger.get("_target_") is None:
            return None
        tags = {**(resolved["logger"].get("tags") or {}), "run_type": run_type,
                "git_commit": git_commit(cfg.project_root) or "unknown", "overrides": " ".join(overrides),
                "experiment": str(cfg.get("experiment") or ""), **tags}
        run_name = cfg.logger.get("run_name") or f"{name_prefix}:{run_name_from_overrides(overrides)}"
        tracker = cls(cfg.logger.get("tracking_uri"), cfg.logger.experiment_name, run_name, tags)
        tracker.log_params(flatten(resolved))
        tracker.client.log_artifact(tracker.run_id, str(config_file))
        return tracker

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            if value is not None and value != "":
                self.client.set_tag(self.run_id, key, str(value))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()
                 if isinstance(value, (int, float)) and math.isfinite(value)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def log_artifacts(self, folder: str | Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_result(self, result: EvaluationResult, paths: Mapping[str, Path], step: int = 0,
                   artifact_path: Optional[str] = None) -> None:
        """Metrics, counts and generation counters at ``step``; the files of :func:`write_outputs` as artifacts
        (under ``artifact_path`` when several checkpoints share the run)."""
        generation = {f"generation/{k}": v for k, v in result.generation_stats.items()}
        self.log_metrics({**result.metrics, **result.summary(), **generation}, step=step)
        for name, path in paths.items():
            if path.is_dir():
                self.log_artifacts(path, f"{artifact_path}/{path.name}" if artifact_path else path.name)
            elif path.exists():
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)
