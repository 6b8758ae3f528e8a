"""Building blocks of the training recipe (train.py): each turns one config section into objects.

Functions take config sections and plain values, never Hydra globals, so tests call them directly.
"""
from __future__ import annotations

import logging
import math
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arc_exp.data.datamodule import ARCDataModule, TrainingDataset
from arc_exp.data.entries import train_entries
from arc_exp.data.prompts import NEW_GRID_VERSIONS, UnknownPromptError, check_prompt_version
from arc_exp.data.selection import TaskSetSpec
from arc_exp.data.trained_outputs import SKIPPED_TAG, TAG
from arc_exp.evaluation.outputs import write_outputs
from arc_exp.evaluation.pipeline import evaluate_tasks, load_eval_tasks
from arc_exp.evaluation.settings import settings_from_config
from arc_exp.evaluation.unanswered import unanswered_reason
from arc_exp.inference.generator import create_generator
from arc_exp.model.adapters import AdapterConfig, trainable_parameters
from arc_exp.model.loader import ModelSpec, load_for_training, load_tokenizer
from arc_exp.model.vocabulary import (
    CHATS_FOR_VOCABULARY,
    ReducedVocabulary,
    build_reduced_vocabulary,
)
from arc_exp.synthetic import load_chats, load_records
from arc_exp.synthetic.qa_eval import CountQASettings, count_qa_accuracy, count_qa_settings
from arc_exp.synthetic.questions import chat_from_record, count_qa_probe_chats
from arc_exp.tracking.runs import MLflowRun, flatten
from arc_exp.training.callbacks import AdapterCheckpoint, EvaluateEvery
from arc_exp.training.trainer import build_trainer, seed_everything  # noqa: F401 - train.py composes them with these

log = logging.getLogger(__name__)


def logs_adapter(log_adapter: Optional[bool], method: str) -> bool:
    """Whether the final adapter is copied into MLflow too (``callbacks.log_adapter``; null: a LoRA-style adapter
    yes, a few MB; full fine-tuned weights no: the whole model, stored once, in the run folder)."""
    return method != "full" if log_adapter is None else bool(log_adapter)


def build_tokenizer(spec: ModelSpec):
    """The tokenizer of the configured model (small and quick: the data can be checked before the model loads)."""
    return load_tokenizer(spec)


def build_vocabulary(cfg: DictConfig, tokenizer, encoder) -> Optional[ReducedVocabulary]:
    """``model.reduce_vocab=true``: the tokens that the run's encoder, prompt versions (of ``data.train``,
    ``data.val`` and ``prompt``, the evaluation's) and chats (the first ones of every ``chats:`` entry and of
    ``evaluation.count_qa``) can produce; ``None`` otherwise (the whole vocabulary)."""
    if not cfg.model.reduce_vocab:
        return None
    entries = train_entries(cfg.data.train)
    val = OmegaConf.to_container(cfg.data.val, resolve=True) if cfg.data.val else {}
    prompts = {f"data.train[{i}].prompt": e.prompt for i, e in enumerate(entries) if not e.is_chats}
    prompts.update({"data.val.prompt": val.get("prompt") or cfg.prompt.version, "prompt.version": cfg.prompt.version})
    for key, version in prompts.items():
        try:
            check_prompt_version(version)
        except UnknownPromptError as error:
            raise UnknownPromptError(f"{key}: {error}") from None
    chats = [chat for e in entries if e.is_chats
             for chat in islice(load_chats(e.chats, encoder=encoder), CHATS_FOR_VOCABULARY)]
    count_qa = count_qa_settings(cfg.evaluation.count_qa)
    if count_qa:
        # every held-out chat evaluate_count_qa asks (its n_chats first records)
        chats += [chat_from_record(record, encoder)
                  for record in islice(load_records(count_qa.chats), count_qa.n_chats)]
    probes = count_qa_probe_chats(encoder) if chats else []  # every question type, beyond the chats read
    vocabulary = build_reduced_vocabulary(tokenizer, encoder, list(prompts.values()), chats=[*chats, *probes],
                                          base_model=cfg.model.name)
    log.info("reduced vocabulary: %d of %d tokens (encoder %s, prompts %s%s)", len(vocabulary), len(tokenizer),
             vocabulary.encoder, ", ".join(vocabulary.prompt_versions), f", {len(chats)} chats" if chats else "")
    return vocabulary


def build_model(spec: ModelSpec, adapter: AdapterConfig, adapter_path: Optional[str], seed: int,
                vocabulary: Optional[ReducedVocabulary] = None):
    """The base model (reduced to ``vocabulary`` when given) wrapped for training as ``adapter`` (``lora``) says.
    Checks the adapter settings before loading weights."""
    if adapter_path and not Path(adapter_path).exists():
        raise FileNotFoundError(f"adapter_path '{adapter_path}' does not exist")
    model = load_for_training(spec, adapter, adapter_path, seed, vocabulary)
    trainable, total = trainable_parameters(model)
    log.info("model %s, %s: %s trainable of %s parameters (%.2f%%)", spec.name, adapter.describe(), f"{trainable:,}",
             f"{total:,}", 100 * trainable / total)
    return model


def build_datamodule(data_cfg: DictConfig, encoder, tokenizer, policy, seed: int) -> ARCDataModule:
    entries = train_entries(data_cfg.train, data_cfg.limit)
    datasets = [TrainingDataset.from_config(entry, where=f"data.train[{i}]", encoder=encoder,
                                            read_chats=load_chats)
                for i, entry in enumerate(entries)]
    val = dict(OmegaConf.to_container(data_cfg.val, resolve=True)) if data_cfg.val else None
    default_prompt = next((d.prompt for d in datasets if d.chats is None), "output-from-examples-v0")
    val_prompt = (val.pop("prompt", None) if val else None) or default_prompt
    val_tasks = TaskSetSpec.from_config(val).load() if val else []
    return ARCDataModule(datasets, val_tasks, val_prompt, encoder, tokenizer, policy,
                         max_seq_len=data_cfg.max_seq_len, batch_size=data_cfg.batch_size, seed=seed,
                         bucket_batches=data_cfg.bucket_batches,
                         drop_examples_to_fit=data_cfg.drop_examples_to_fit)


def steps_for_task_of_interest(entries: Sequence, steps: int) -> int:
    """``trainer.max_steps`` for ``data.task_of_interest_steps=steps``: the run trains ``steps`` steps (in expectation,
    entries are drawn by ``weight``) on the task of interest, the output-from-examples entries of ``data.train``,
    plus the steps its other entries (new-input and new-output tasks, chats) take on top. Seed iteration 22's fair
    comparison: "the same number of steps on the task of interest", so extra tasks add steps instead of taking them.
    ``entries`` are ``data.train``'s (:class:`~arc_exp.data.entries.TrainEntry` objects or mappings of their keys).

    >>> steps_for_task_of_interest([{"source": "a", "prompt": "output-from-examples-v0", "weight": 1.0},
    ...                             {"source": "a", "prompt": "input-from-inputs-v0", "weight": 0.5},
    ...                             {"source": "a", "prompt": "output-from-outputs-v0", "weight": 0.5}], 5000)
    10000
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"data.task_of_interest_steps must be an integer >= 1 or null, got {steps!r}")
    entries = train_entries(entries)
    total = sum(entry.weight for entry in entries)
    interest = sum(entry.weight for entry in entries
                   if not entry.is_chats and entry.prompt not in NEW_GRID_VERSIONS)
    if not interest:
        raise ValueError("data.task_of_interest_steps: data.train has no output-from-examples entry (the task of "
                         "interest); set it to null and give trainer.max_steps")
    return math.ceil(round(steps * total / interest, 6))


def resume_checkpoint(resume: Optional[str]) -> Optional[str]:
    """``resume=<run dir>`` or ``resume=<path to last.ckpt>`` -> the Lightning checkpoint file to continue from."""
    if not resume:
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at '{path}' (give a run folder or its checkpoints/last.ckpt)")
    return str(path)


class ResumeError(ValueError):
    """``resume=`` naming a run that cannot continue: finished, or composed with other settings than this run's."""


# keys a resumed run may set otherwise: where it logs, how it shows progress, and what it resumes
RESUME_MAY_DIFFER = ("resume", "logger.", "hydra.", "project_root", "trainer.enable_progress_bar")


def check_resume(checkpoint_path: Optional[str], resolved: Mapping, max_steps: int) -> None:
    """Refuse to resume (:class:`ResumeError`) a finished run (its checkpoint at ``trainer.max_steps``) or one whose
    resolved config (``config.yaml`` of its run folder) differs from this run's, naming the keys that differ:
    it would train nothing, or continue another experiment under this one's name.

    ``encoder._target_: arc_exp.data.encoders.GridShapeEncoder (this run: arc_exp.data.encoders.MinimalEncoder)``.
    """
    if checkpoint_path is None:
        return
    run_dir = Path(checkpoint_path).parent.parent  # <run>/checkpoints/last.ckpt
    config_file = run_dir / "config.yaml"
    if config_file.exists():
        before = flatten(OmegaConf.to_container(OmegaConf.load(config_file), resolve=True))
        now = flatten(resolved)
        differ = [key for key in sorted({*before, *now}) if not key.startswith(RESUME_MAY_DIFFER)
                  and before.get(key, "<absent>") != now.get(key, "<absent>")]
        if differ:
            shown = "; ".join(f"{key}: {before.get(key, '<absent>')} (this run: {now.get(key, '<absent>')})"
                              for key in differ[:2])
            raise ResumeError(f"resume: the run in {run_dir} was composed with other values of "
                              f"{', '.join(differ)} ({shown}{'; ...' if len(differ) > 2 else ''}); resume it with "
                              f"its own settings (its config.yaml) or start a new run")
    step = int(torch.load(checkpoint_path, map_location="cpu", weights_only=False, mmap=True).get("global_step", 0))
    if step >= max_steps:
        raise ResumeError(f"resume: the run in {run_dir} is finished (step {step} of trainer.max_steps={max_steps}); "
                          f"nothing is left to train: continue its adapter in a new run with adapter_path=")


def batches_done(checkpoint_path: Optional[str]) -> int:
    """How many training batches a checkpoint has consumed, so the data stream can continue exactly after them."""
    if checkpoint_path is None:
        return 0
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    loops = state.get("loops", {}).get("fit_loop", {})
    progress = loops.get("epoch_loop.batch_progress", {}).get("total", {})
    # "processed", not "completed": a checkpoint saved in on_train_batch_end (every_n_train_steps) is written before
    # Lightning counts that batch as completed, so "completed" is one short and the resumed run would repeat a batch
    return int(progress.get("processed", state.get("global_step", 0)))


def start_run(logger_cfg: Mapping, resolved: dict, overrides: Sequence[str], output_dir: str | Path,
              project_root: str | Path, tags: Mapping[str, Any],
              files: Sequence[str | Path] = ()) -> Optional[MLflowRun]:
    """The training run's MLflow run (``None`` with ``logger=none``): ``config.yaml`` (resolved) and ``overrides.txt``
    written to the run folder and logged with ``files`` (the trained-outputs record), the flattened config as params,
    the git commit, overrides and run folder as tags. Lightning logs into it through :meth:`MLflowRun.lightning_logger`."""
    output_dir = Path(output_dir)
    config_file, overrides_file = output_dir / "config.yaml", output_dir / "overrides.txt"
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    overrides_file.write_text("\n".join(overrides) + "\n")
    return MLflowRun.start(logger_cfg, resolved, overrides, "training", [config_file, overrides_file, *files],
                           project_root, output_dir=str(output_dir.resolve()), **tags)


def finish_run(run: Optional[MLflowRun], trainer: pl.Trainer, datamodule: ARCDataModule,
               adapter_cb: AdapterCheckpoint, log_adapter: bool = True) -> dict:
    """Log the counters and the final adapter (``log_adapter``: a copy as the MLflow artifact ``adapter``; the tag
    ``adapter_path`` names the run folder's either way), return the final metrics."""
    skips = datamodule.train_stream.skips
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update({"train/skipped_tasks": skips.skipped_tasks,
                    "val/skipped_test_inputs": datamodule.val_skips.skipped_tasks})
    if skips.skipped_tasks:
        fit = "with a single example" if datamodule.train_stream.drop_examples_to_fit else \
            "with all their examples (data.drop_examples_to_fit=false)"
        log.warning("%d sampled tasks did not fit max_seq_len %s and were skipped (%s)", skips.skipped_tasks, fit,
                    ", ".join(sorted(skips.skipped_ids)[:10]))
    if run is not None:
        run.log_metrics({key: metrics[key] for key in ("train/skipped_tasks", "val/skipped_test_inputs")},
                        step=trainer.global_step)
        if adapter_cb.saved:
            final = adapter_cb.saved[-1]
            if log_adapter:
                run.log_artifacts(final, "adapter")
            run.set_tags({"adapter_path": str(final.resolve())})
    return metrics


def check_validation(trained, val_tasks: Sequence) -> int:
    """How many validation test outputs the run's data (or the adapter it continues) trains on, warned: their
    ``val/loss`` measures memory, not generalization (the run is tagged ``val_trained_outputs=<n>``)."""
    found = trained.matches(val_tasks)
    if found:
        ids = list(dict.fromkeys(task_id for task_id, _ in found))
        log.warning("data.val: the run trains on %d of its validation test outputs (tasks %s%s): val/loss includes "
                    "answers it has seen", len(found), ", ".join(ids[:5]), " ..." if len(ids) > 5 else "")
    return len(found)


def trained_outputs_tags(scored_trained: Sequence[tuple[str, int]], skipped: bool, val_trained: int = 0
                         ) -> dict[str, int]:
    """The tags of a run whose evaluation met test outputs it trained on: ``skipped_trained_tasks=<tasks>`` when
    they were left out, else ``trained_on_evaluated_outputs=<outputs>`` (scored, allowed); and
    ``val_trained_outputs=<n>`` when its validation holds outputs it trains on.

    >>> trained_outputs_tags([("a", 0), ("a", 1)], skipped=True), trained_outputs_tags([("a", 0)], skipped=False)
    ({'skipped_trained_tasks': 1}, {'trained_on_evaluated_outputs': 1})
    >>> trained_outputs_tags([], skipped=False, val_trained=3)
    {'val_trained_outputs': 3}
    """
    tags = {"val_trained_outputs": val_trained} if val_trained else {}
    if scored_trained and skipped:
        tags[SKIPPED_TAG] = len({task_id for task_id, _ in scored_trained})
    elif scored_trained:
        tags[TAG] = len(scored_trained)
    return tags


def prepare_evaluation(cfg: DictConfig, encoder, policy):
    """``(inference config, evaluation settings, eval tasks)`` for the evaluation after training, built before
    training starts so a bad evaluation setting or an empty ``data.eval`` fails before hours of training; ``encoder``
    and ``policy`` (augmentation) are the run's, built once by train.py."""
    inference = instantiate(cfg.inference, seed=cfg.inference.seed + cfg.seed)  # the run's seed moves the sampler's
    settings = settings_from_config(encoder, cfg.prompt.version, policy,
                                    inference, cfg.evaluation.predictions_per_task, cfg.seed,
                                    cfg.data.max_seq_len)
    tasks = load_eval_tasks(OmegaConf.to_container(cfg.data.eval, resolve=True))
    return inference, settings, tasks


def evaluate_after_training(model, tokenizer, cfg: DictConfig, prepared, output_dir: str, run: Optional[MLflowRun],
                            step: int, folder: str = "evaluation") -> dict:
    """Predict ``data.eval`` with the model just trained (``evaluation.enabled=true``) and log ``eval/*`` metrics
    into the training run, so one MLflow run holds a whole row of an iteration table (losses and accuracies).

    With ``evaluation.before=true`` train.py also calls it at step 0, before training (the adapter is still the
    identity, so this is the base model), writing ``evaluation-before/``: the metrics' first point is the baseline.
    """
    inference, settings, tasks = prepared
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = evaluate_tasks(tasks, create_generator(inference, model, tokenizer), tokenizer, settings,
                                    progress=cfg.trainer.enable_progress_bar)
    finally:
        model.train(was_training)  # before training, dropout must come back on
    paths = write_outputs(result, tasks, Path(output_dir) / folder, cfg.evaluation.plots.failures,
                          cfg.evaluation.plots.successes, cfg.seed)
    metrics = {f"eval/{k}": float(v) for k, v in {**result.metrics, **result.summary()}.items()
               if isinstance(v, (int, float))}
    if run is not None:
        run.log_metrics(metrics, step=step)
        run.log_files(paths.values(), folder)  # folders keep their name: evaluation/plots/...
    log.info("evaluation on %d tasks at step %d: %s", len(tasks), step, {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def evaluate_before_training(model, tokenizer, cfg: DictConfig, prepared, output_dir: str,
                             run: Optional[MLflowRun], encoder) -> dict:
    """The step-0 points of a new training run: ``data.eval`` with the base model (``evaluation.before=true``; a new
    LoRA adapter changes nothing yet) and the held-out count questions (``evaluation.count_qa.before``), so the
    run shows before and after. Returns the ``eval/*`` metrics of the base model ({} when not asked)."""
    before = {}
    if prepared is not None and cfg.evaluation.before:
        before = evaluate_after_training(model, tokenizer, cfg, prepared, output_dir, run, step=0,
                                         folder="evaluation-before")
    count_qa = count_qa_settings(cfg.evaluation.count_qa)
    if count_qa and count_qa.before:
        evaluate_count_qa(model, tokenizer, cfg, count_qa, run, step=0, encoder=encoder)
    return before


def evaluate_trained(model, tokenizer, cfg: DictConfig, prepared, output_dir: str, run: Optional[MLflowRun],
                     step: int, before: dict, encoder) -> dict:
    """The evaluations after training (``data.eval`` when ``evaluation.enabled``, the count questions when
    ``evaluation.count_qa``): their metrics, the before/after table in the log, and, when every prediction is
    unanswered, the probable reason, once."""
    metrics = {}
    if prepared is not None:
        metrics = evaluate_after_training(model, tokenizer, cfg, prepared, output_dir, run, step)
        if before:
            log.info("data.eval before and after training:\n%s", before_after_table(before, metrics, step))
        if metrics.get("eval/unanswered") == 1.0:
            log.warning("every prediction of the evaluation after training is unanswered (no grid): probably %s",
                        unanswered_reason(OmegaConf.to_container(cfg, resolve=True), cfg.prompt.version,
                                          cfg.inference.sampler, cfg.inference.dfs_threshold, is_base_model=False))
    count_qa = count_qa_settings(cfg.evaluation.count_qa)
    if count_qa:
        metrics.update(evaluate_count_qa(model, tokenizer, cfg, count_qa, run, step, encoder))
    return metrics


def evaluation_callbacks(cfg: DictConfig, model, tokenizer, get_run: Callable[[], Optional[MLflowRun]],
                         encoder) -> list:
    """Evaluations during training: the count-QA accuracy every ``evaluation.count_qa.every_n_steps`` steps (the
    learning curve), logged into the run ``get_run()`` returns once training starts."""
    count_qa = count_qa_settings(cfg.evaluation.count_qa)
    if not (count_qa and count_qa.every_n_steps):
        return []
    return [EvaluateEvery(count_qa.every_n_steps, lambda step: evaluate_count_qa(model, tokenizer, cfg, count_qa,
                                                                                  get_run(), step, encoder))]


def before_after_table(before: dict, after: dict, step: int,
                       keys: Sequence[str] = ("eval/accuracy", "eval/correct_pixels")) -> str:
    """The base model's and the trained model's metrics side by side (what ``make run`` prints).

    >>> print(before_after_table({"eval/accuracy": 0.0, "eval/correct_pixels": 0.25},
    ...                          {"eval/accuracy": 0.5, "eval/correct_pixels": 0.75}, step=10))
    model               accuracy  correct_pixels
    base                   0.000           0.250
    trained (step 10)      0.500           0.750
    """
    names = [key.split("/", 1)[-1] for key in keys]
    lines = [f"{'model':<18}" + "".join(f"  {name:>{max(8, len(name))}}" for name in names)]
    for label, metrics in (("base", before), (f"trained (step {step})", after)):
        lines.append(f"{label:<18}" + "".join(f"  {metrics.get(key, float('nan')):>{max(8, len(name))}.3f}"
                                              for key, name in zip(keys, names)))
    return "\n".join(lines)


def evaluate_count_qa(model, tokenizer, cfg: DictConfig, settings: CountQASettings, run: Optional[MLflowRun],
                      step: int, encoder) -> dict:
    """Count-QA accuracy per question type on held-out generated chats (``settings.chats``, the caller's typed
    ``evaluation.count_qa``) whose grids ``encoder`` (the run's) writes, logged as ``qa/<type>`` metrics into the
    training run (seed iteration 2)."""
    records = list(islice(load_records(settings.chats), settings.n_chats))
    if not records:
        raise ValueError(f"evaluation.count_qa.chats: no chats at '{settings.chats}'")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # max_new_tokens bounds each answer: a base model that never writes its end token costs that many steps
            metrics = count_qa_accuracy(records, create_generator(instantiate(cfg.inference), model, tokenizer),
                                        tokenizer, encoder=encoder,
                                        max_new_tokens=settings.max_new_tokens)
    finally:
        model.train(was_training)  # before training (evaluation.count_qa.before), dropout must come back on
    if run is not None:
        run.log_metrics(metrics, step=step)
    log.info("count QA on %d chats: %s", len(records), {k: round(v, 3) for k, v in metrics.items()})
    return metrics
