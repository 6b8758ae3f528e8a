"""Which model folder a checkpoint= value means (an adapter or model folder, a training run folder, an MLflow run id),
whether it matches the config, and loading it for evaluation."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from arc_exp.data.encoders import ENCODER_COMPOSITIONS, EncoderSpecError, GridEncoder, encoder_from_config
from arc_exp.data.tasks import Task
from arc_exp.data.trained_outputs import SKIPPED_TAG, TAG, check_scoring, load_record, untrained_tasks
from arc_exp.evaluation import EvaluationError
from arc_exp.model.adapters import AdapterError
from arc_exp.model.checkpoints import list_checkpoints, read_checkpoint_config
from arc_exp.model.loader import load_for_inference
from arc_exp.model.vocabulary import VocabularyError, check_checkpoint_vocabulary
from arc_exp.tracking.runs import RunNotFoundError, resolve_run_ids

log = logging.getLogger(__name__)


class CheckpointError(EvaluationError):
    """A checkpoint that cannot be found or does not match the configured model or encoder."""


def encoder_override(encoder: GridEncoder) -> str:
    """The command-line override that selects ``encoder``: ``encoder=<name>`` for a known composition."""
    names = {spec: name for name, spec in ENCODER_COMPOSITIONS.items()}
    name = names.get(repr(encoder))
    return f"encoder={name}" if name else f"an encoder config building {encoder!r}"


@dataclass
class Checkpoint:
    """What to evaluate: a model folder (``None`` = the base model), its training step and training run."""

    folder: Optional[Path] = None
    step: Optional[int] = None
    training_run_id: Optional[str] = None
    config: Optional[dict] = None  # the checkpoint's arc_exp.yaml (the resolved training config)

    @property
    def label(self) -> str:
        return "base model" if self.folder is None else str(self.folder)

    def base_seed(self, seed: int) -> int:
        """The seed the checkpoint's base model was built with (it matters for the tiny random model), else ``seed``."""
        saved = (self.config or {}).get("seed")
        return saved if isinstance(saved, int) else seed


def _is_model_folder(path: Path) -> bool:
    return (path / "adapter_config.json").exists() or (path / "config.json").exists()


def _step_of(folder: Path) -> Optional[int]:
    name = folder.name
    if name.startswith("step-") and name[5:].isdigit():
        return int(name[5:])
    return None


def resolve_checkpoints(checkpoint: Optional[str], all_checkpoints: bool = False,
                        tracking_uri: Optional[str] = None) -> list[Checkpoint]:
    """The checkpoints that ``checkpoint=`` (and ``all_checkpoints=``) name, oldest step first.

    - ``None``: the base model;
    - a model folder (``adapter_config.json`` or ``config.json`` inside): that folder; with ``all_checkpoints``
      every step folder next to it;
    - a training run folder: its last ``checkpoints/step-*`` folder, or all of them;
    - otherwise an MLflow run id in ``tracking_uri``, or a unique prefix of one: the run's ``output_dir`` tag (a run
      folder) or ``adapter_path``; a prefix of several ids is refused naming them.

    The training run id is kept for the link between the evaluation run and the training run (looked up by
    ``output_dir`` when a folder is given). Raises :class:`CheckpointError` naming what was not found.
    """
    if checkpoint is None or str(checkpoint).strip() in ("", "null", "None"):
        if all_checkpoints:
            raise CheckpointError("all_checkpoints=true needs checkpoint=<run folder or MLflow run id>")
        return [Checkpoint()]

    text = str(checkpoint).strip()
    path = Path(text).expanduser()
    run_id = None
    if not path.exists():
        run_id, path = text, _folder_of_mlflow_run(text, tracking_uri)
    if _is_model_folder(path):
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
        if all_checkpoints:
            if run_dir is None:
                raise CheckpointError(f"all_checkpoints=true: '{path}' is a model folder outside a run's "
                                      f"checkpoints/ folder; give the run folder or its MLflow run id")
            folders = list_checkpoints(run_dir)
        else:
            folders = [(_step_of(path), path)]
    else:
        run_dir = path
        folders = [(step, folder) for step, folder in list_checkpoints(path) if _is_model_folder(folder)]
        if not folders:
            raise CheckpointError(f"checkpoint '{text}': '{path}' holds no adapter_config.json or config.json and no "
                                  f"checkpoints/step-* folders with a saved model")
        if not all_checkpoints:
            folders = folders[-1:]
    if run_id is None and run_dir is not None and tracking_uri:
        run_id = find_training_run(tracking_uri, run_dir)
    return [Checkpoint(Path(folder), step, run_id, read_checkpoint_config(folder)) for step, folder in folders]


def _folder_of_mlflow_run(run_id: str, tracking_uri: Optional[str]) -> Path:
    if not tracking_uri:
        raise CheckpointError(f"checkpoint '{run_id}': no such file or folder, and without a tracking store "
                              f"(logger=none) it cannot be looked up as an MLflow run id")
    # mlflow takes seconds to import: only when a run is looked up
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:  # not a full id: a unique prefix of one (the 8 characters report.py prints)?
        try:
            run = client.get_run(resolve_run_ids(client, [run_id], tracking_uri, what="checkpoint")[0])
        except RunNotFoundError as error:
            if "is the start of" in str(error):
                raise CheckpointError(str(error)) from None
            raise CheckpointError(f"checkpoint '{run_id}': no such file or folder, and no MLflow run with this id "
                                  f"in {tracking_uri}") from None
    tags = run.data.tags
    for key in ("output_dir", "adapter_path"):
        if tags.get(key) and Path(tags[key]).exists():
            return Path(tags[key])
    found = {key: tags[key] for key in ("output_dir", "adapter_path") if tags.get(key)}
    raise CheckpointError(f"checkpoint '{run_id}': the MLflow run has no existing output_dir or adapter_path "
                          f"folder (tags: {found or 'none'}); was it trained on another machine?")


def find_training_run(tracking_uri: str, run_dir: Path) -> Optional[str]:
    """The id of the MLflow run whose ``output_dir`` tag is ``run_dir``, or ``None``."""
    # mlflow takes seconds to import: only when a run is looked up
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return None
        folder = str(Path(run_dir).resolve()).replace("'", "\\'")
        runs = client.search_runs(experiments, f"tags.output_dir = '{folder}'", max_results=1)
        return runs[0].info.run_id if runs else None
    except MlflowException as error:  # the link is a convenience: a store that cannot answer costs only the link
        log.warning("could not look up the training run of %s in %s: %s", run_dir, tracking_uri, error)
        return None


def check_checkpoint(checkpoint: Checkpoint, model_name: str, encoder: GridEncoder, method: str,
                     prompt_version: Optional[str] = None) -> None:
    """Fail when the checkpoint was trained with another base model, encoder or fine-tuning method than configured.

    The message says which override evaluates it. A different prompt version only warns (a model trained on a
    mixture of prompts may be evaluated with any of them).
    """
    saved = checkpoint.config
    if checkpoint.folder is None:
        return
    if saved is None:
        log.warning("checkpoint %s has no arc_exp.yaml: cannot check its model and encoder", checkpoint.folder)
        return
    where = f"checkpoint '{checkpoint.folder}'"
    saved_model = (saved.get("model") or {}).get("name")
    if saved_model and saved_model != model_name:
        raise CheckpointError(f"{where} was trained from model '{saved_model}' but the config asks for "
                              f"'{model_name}'; evaluate it with model={saved_model}")
    try:
        saved_encoder = encoder_from_config(saved["encoder"]) if saved.get("encoder") else None
    except EncoderSpecError as error:  # a project's own encoder class: the config's encoder is used unchecked
        log.warning("%s: cannot check its encoder: %s", where, error)
        saved_encoder = None
    if saved_encoder is not None:
        if repr(saved_encoder) != repr(encoder):
            raise CheckpointError(f"{where} was trained with encoder {saved_encoder!r} but the config uses "
                                  f"{encoder!r}; evaluate it with {encoder_override(saved_encoder)}")
    saved_method = (saved.get("lora") or {}).get("method")
    if saved_method and saved_method != method:
        raise CheckpointError(f"{where} was trained with lora.method={saved_method} but the config has "
                              f"lora.method={method}; evaluate it with lora={saved_method}")
    saved_prompt = (saved.get("prompt") or {}).get("version")
    if prompt_version and saved_prompt and saved_prompt != prompt_version:
        log.warning("%s was trained with prompt %s, evaluating with prompt %s", where, saved_prompt, prompt_version)


def check_trained_outputs(checkpoints: Sequence[Checkpoint], tasks: Sequence[Task], allow: bool = False,
                          skip: bool = False) -> tuple[list[Task], dict]:
    """Refuse to score a test output of ``tasks`` that a checkpoint trained on (its ``trained_outputs.json``, which
    follows its ``adapter_path`` continuations): a :class:`~arc_exp.data.trained_outputs.TrainedOutputsError` naming
    the checkpoint, the count and the first task ids, unless ``allow`` (``evaluation.allow_trained_outputs=true``)
    or ``skip`` (``evaluation.skip_trained_tasks=true``: those tasks are left out).

    Returns the tasks to score and the tags of the run: ``trained_on_evaluated_outputs=<n>`` (the most of any
    checkpoint) when allowed and found, ``skipped_trained_tasks=<n>`` when left out, ``trained_outputs=unknown`` when
    a checkpoint has no record (trained before arc_exp kept one, or elsewhere). The base model (no folder) trained on
    nothing of ours."""
    tags: dict = {}
    found: list = []  # the trained-on test outputs of each checkpoint
    for checkpoint in checkpoints:
        if checkpoint.folder is None:
            continue
        record = load_record(checkpoint.folder)
        found.append(check_scoring(record, tasks, f"checkpoint '{checkpoint.folder}'", allow, skip))
        if record is None or record.unknown:
            tags["trained_outputs"] = "unknown"
    if any(found) and skip:
        kept = untrained_tasks(tasks, [hit for hits in found for hit in hits])
        return kept, {**tags, SKIPPED_TAG: len(tasks) - len(kept)}
    if any(found):
        tags[TAG] = max(len(hits) for hits in found)
    return list(tasks), tags


def load_model_for_evaluation(spec, adapter_config, checkpoint: Checkpoint, seed: int = 0, vocabulary=None):
    """The model to evaluate, in eval mode (:func:`arc_exp.model.loader.load_for_inference`), seeded as the
    checkpoint's training run was. ``vocabulary`` (see ``resolve_vocabulary``) reduces the base model before the
    adapter loads; a checkpoint with a ``vocabulary.json`` must be given that vocabulary. A folder that does not hold
    what ``lora`` says is a :class:`CheckpointError`."""
    try:
        check_checkpoint_vocabulary(checkpoint.folder, vocabulary)
        return load_for_inference(spec, adapter_config, checkpoint.folder, checkpoint.base_seed(seed), vocabulary)
    except (VocabularyError, AdapterError) as error:
        raise CheckpointError(str(error)) from None
