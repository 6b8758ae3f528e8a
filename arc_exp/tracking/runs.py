"""MLflow bookkeeping: the store, run names from overrides, flattened params, git commit, the resolved config.

The tracking URI defaults to ``sqlite:///mlflow.db`` at the project root (current MLflow refuses the plain
``./mlruns`` file store). The first use of a SQLite store creates its schema, and several processes doing that at once
fail, so a multirun creates it (and the experiment) once in :class:`MLflowStoreCallback` before its jobs start.
"""
from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

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
