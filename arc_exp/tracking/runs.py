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
from typing import Any, Iterable, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


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


def artifact_location(tracking_uri: str) -> Optional[str]:
    """Where a new experiment keeps its artifacts: ``mlruns/`` beside a SQLite store's file (MLflow's default is
    ``./mlruns`` of whatever folder the experiment happened to be created from); None for other stores.

    >>> artifact_location("sqlite:////work/arc/mlflow.db")
    '/work/arc/mlruns'
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return str(Path(tracking_uri[len("sqlite:///"):]).resolve().parent / "mlruns")


def ensure_store(tracking_uri: str) -> None:
    """Create the tracking store (and a SQLite schema) once, before any parallel job touches it."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)


def ensure_experiment(tracking_uri: str, experiment_name: str) -> str:
    """The id of the named experiment, created if missing; another process creating it first is not an error."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow
    from mlflow.exceptions import MlflowException

    ensure_store(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        # a model-training experiment: the MLflow UI opens on its runs, not on its GenAI (traces) view
        return client.create_experiment(experiment_name, artifact_location=artifact_location(tracking_uri),
                                        tags={EXPERIMENT_KIND_TAG: "custom_model_development"})
    except MlflowException:  # lost a race with a parallel job: the experiment exists now
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


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


def choice_tags(choices: Mapping[str, Any], resolved: Optional[Mapping] = None) -> dict[str, str]:
    """``choice/<group>`` tags from Hydra's ``runtime.choices`` (which option of each config group ran), the same for
    every run type, so the MLflow UI can filter any run by ``tags.`choice/lora` = 'dora'``.

    A group whose resolved config names itself (``model.name``) is tagged with that name when it differs from the
    option: a preset sets the model by value where Hydra lets it choose no group (a preset's ``scales.gpu``, loaded
    through an interpolated default, may override no group), and the tag says the model that ran, not the default.

    >>> choice_tags({"lora": "dora", "hydra/launcher": "basic", "debug": None})
    {'choice/lora': 'dora', 'choice/debug': 'None'}
    >>> choice_tags({"model": "smollm2-135m"}, {"model": {"name": "qwen2-0.5b"}})
    {'choice/model': 'qwen2-0.5b'}
    """
    tags = {f"choice/{group}": str(option) for group, option in choices.items() if not group.startswith("hydra")}
    for group in choices:
        section = (resolved or {}).get(group)
        if isinstance(section, Mapping) and section.get("name") is not None:
            tags[f"choice/{group}"] = str(section["name"])
    return tags


class RunNotFoundError(ValueError):
    """A ``runs=`` id (or id prefix) that names no MLflow run, or more than one."""


def resolve_run_ids(client, run_ids: Iterable[str], tracking_uri: str, what: str = "runs") -> list[str]:
    """Full MLflow run ids from full ids or unique prefixes (the 8 characters ``compare_runs`` prints); ``what``:
    the key that gave them (``runs``, ``checkpoint``), as the errors name it."""
    wanted = [str(run_id).strip() for run_id in run_ids]
    known: Optional[list[str]] = None
    resolved = []
    for run_id in wanted:
        if known is None:
            ids = [e.experiment_id for e in client.search_experiments()]
            known = [r.info.run_id for r in client.search_runs(ids, max_results=50000)] if ids else []
        matches = [k for k in known if k.startswith(run_id)] if run_id else []
        if not matches:
            raise RunNotFoundError(f"{what}: no MLflow run '{run_id}' in {tracking_uri}")
        if len(matches) > 1:
            raise RunNotFoundError(f"{what}: '{run_id}' is the start of {len(matches)} run ids ({', '.join(matches[:4])}"
                                   f"{', ...' if len(matches) > 4 else ''}); give more characters")
        resolved.append(matches[0])
    return resolved


class MLflowRun:
    """One MLflow run, through MLflow's own ``MlflowClient``: the single path by which every run type (training,
    evaluation, solve and its stage children, generate) logs params (in batches), tags, metrics per step and artifacts.
    Training hands :meth:`lightning_logger` to Lightning, which then logs its per-step metrics into this same run."""

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str, tags: Optional[Mapping] = None):
        # mlflow takes seconds to import: only when a run is read or written
        import mlflow

        experiment_id = ensure_experiment(tracking_uri, experiment_name)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        # empty values are left out, but for sweep_id: a run outside a sweep is tagged sweep_id='' so the UI's
        # filter tags.sweep_id = '' finds the single runs
        tags = {str(k): str(v) for k, v in (tags or {}).items() if v is not None and (v != "" or k == "sweep_id")}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id

    @classmethod
    def start(cls, logger_cfg: Optional[Mapping], resolved: Mapping, overrides: Sequence[str], run_type: str,
              files: Sequence[str | Path] = (), project_root: str | Path = ".", name_prefix: Optional[str] = None,
              **tags: Any) -> Optional["MLflowRun"]:
        """The MLflow run of a job, or ``None`` with ``logger=none`` (``logger_cfg`` without ``_target_``).

        Tagged with ``run_type``, the logger's tags (nested under ``logger.parent_run_id`` when set: run.py's
        stage), the git commit, the overrides, ``experiment`` and ``tags``; named
        ``logger.run_name`` or ``[<name_prefix>:]<overrides>``; the resolved config is logged as params and the
        already written ``files`` (config.yaml, ...) as artifacts."""
        if not logger_cfg or logger_cfg.get("_target_") is None:
            return None
        parent = {"mlflow.parentRunId": logger_cfg["parent_run_id"]} if logger_cfg.get("parent_run_id") else {}
        tags = {**(logger_cfg.get("tags") or {}), **parent, "run_type": run_type,
                "git_commit": git_commit(project_root) or "unknown", "overrides": " ".join(overrides),
                "experiment": str(resolved.get("experiment") or ""), **tags}
        name = run_name_from_overrides(overrides)
        run_name = logger_cfg.get("run_name") or (f"{name_prefix}:{name}" if name_prefix else name)
        run = cls(logger_cfg.get("tracking_uri"), logger_cfg.get("experiment_name"), run_name, tags)
        run.log_params(flatten(resolved))
        run.log_files(files)
        return run

    def child(self, name: str, **tags: Any) -> "MLflowRun":
        """A nested run (tag ``mlflow.parentRunId``) in the same experiment: solve.py's stages and per-task TTFT."""
        return MLflowRun(self.tracking_uri, self.experiment_name, name, {"mlflow.parentRunId": self.run_id, **tags})

    def lightning_logger(self):
        """A Lightning ``MLFlowLogger`` that writes into this run (never creates one of its own)."""
        # Lightning takes seconds to import: only when training
        from pytorch_lightning.loggers import MLFlowLogger

        return MLFlowLogger(experiment_name=self.experiment_name, tracking_uri=self.tracking_uri, run_id=self.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        # mlflow takes seconds to import: only when a run is read or written
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            if value is not None and value != "":
                self.client.set_tag(self.run_id, key, str(value))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        # mlflow takes seconds to import: only when a run is read or written
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()
                 if isinstance(value, (int, float)) and math.isfinite(value)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def log_files(self, paths: Iterable[str | os.PathLike], artifact_path: Optional[str] = None) -> None:
        """Files as artifacts under ``artifact_path``; a folder keeps its name (``<artifact_path>/<folder>/...``)."""
        for path in map(Path, paths):
            if path.is_dir():
                self.log_artifacts(path, f"{artifact_path}/{path.name}" if artifact_path else path.name)
            elif path.exists():
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: str | Path, artifact_path: Optional[str] = None) -> None:
        """The content of ``folder`` under ``artifact_path``."""
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_result(self, result, paths: Mapping[str, Path], step: int = 0,
                   artifact_path: Optional[str] = None, prefix: str = "") -> dict[str, float]:
        """An evaluation's metrics, counts and generation counters at ``step`` (named ``<prefix><metric>``), and the
        files of :func:`~arc_exp.evaluation.outputs.write_outputs` as artifacts (under ``artifact_path`` when several
        checkpoints share the run). Returns the logged metrics. ``result``: an
        :class:`~arc_exp.evaluation.results.EvaluationResult`, read by its fields (``metrics``, ``summary()``,
        ``generation_stats``): MLflow plumbing sits below the stages and knows none of them."""
        generation = {f"generation/{k}": v for k, v in result.generation_stats.items()}
        metrics = {f"{prefix}{k}": float(v) for k, v in {**result.metrics, **result.summary(), **generation}.items()
                   if isinstance(v, (int, float))}
        self.log_metrics(metrics, step=step)
        self.log_files(paths.values(), artifact_path)
        return metrics

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)

    def __getstate__(self) -> dict:
        """Pickled without its client (another process, solve.py's shards, logs into the same run with its own)."""
        return {k: v for k, v in self.__dict__.items() if k != "client"}

    def __setstate__(self, state: dict) -> None:
        # mlflow takes seconds to import: only when a run is read or written
        import mlflow

        self.__dict__.update(state)
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
