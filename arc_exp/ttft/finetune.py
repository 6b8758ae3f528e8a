"""Fine-tuning at test time: the model loaded from the starting checkpoint, trained on the TTFT dataset with Lightning
within a deadline, losses recorded, the adapter saved; one shared adapter, or one per task (:class:`AdapterTraining`,
stage 2 of a solve run)."""
from __future__ import annotations

import dataclasses
import gc
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from arc_exp.data.datamodule import ARCDataModule, NoSampleFitsError, TrainingDataset, validation_samples
from arc_exp.data.samples import collate
from arc_exp.data.tasks import Task
from arc_exp.data.trained_outputs import TrainedOutputs
from arc_exp.evaluation.checkpoints import Checkpoint
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.model.adapters import AdapterConfig
from arc_exp.model.checkpoints import save_checkpoint
from arc_exp.model.loader import ModelSpec, load_for_training
from arc_exp.model.tokenizer import vocabulary_of
from arc_exp.model.vocabulary import check_checkpoint_vocabulary
from arc_exp.training.callbacks import RecordLosses, StopAtDeadline
from arc_exp.training.module import ARCLitModule, answer_loss
from arc_exp.training.trainer import build_trainer, seed_everything
from arc_exp.ttft.budget import Budget, steps_within
from arc_exp.ttft.dataset import TTFTDataset
from arc_exp.ttft.settings import TTFTSettings
from arc_exp.ttft.stages import read_marker, write_marker

log = logging.getLogger(__name__)


@dataclass
class FineTuneOutcome:
    """What one fine-tuning did: the adapter folder (``None``: nothing trained), steps, time and losses."""

    task_id: Optional[str]  # None for the shared adapter
    adapter: Optional[str] = None
    steps: int = 0
    planned_steps: int = 0
    seconds: float = 0.0
    stopped_by_budget: bool = False
    losses: list[float] = field(default_factory=list)
    holdout_before: dict[str, float] = field(default_factory=dict)  # held-out answer loss per task, before TTFT
    holdout_after: dict[str, float] = field(default_factory=dict)
    note: str = ""
    parameters: int = 0     # of the base model (an adapter's own not counted): the journal's timing table
    max_context: int = 0    # the model's max_position_embeddings

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _model_size(model) -> tuple[int, int]:
    """``(parameters of the base model, max context length)``; PEFT counts 4-bit weights at their full number."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        parameters = total - trainable
    else:
        parameters = sum(p.numel() for p in model.parameters())
    return int(parameters), int(getattr(getattr(model, "config", None), "max_position_embeddings", 0) or 0)


def answer_losses(model, tasks: Sequence[Task], encoder, prompt_version: str, tokenizer,
                  max_seq_len: int) -> dict[str, float]:
    """The answer loss (mean over answer tokens) of each task's test outputs, shown its train examples, without
    augmentation; tasks that do not fit ``max_seq_len`` are left out."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses = {}
    try:
        with torch.no_grad():
            for task in tasks:
                total, tokens = 0.0, 0
                for sample in validation_samples([task], encoder, prompt_version, tokenizer, max_seq_len):
                    batch = {k: v.to(device) for k, v in collate([sample], tokenizer.pad_token_id).items()}
                    loss, count = answer_loss(model, batch)
                    total, tokens = total + float(loss) * int(count), tokens + int(count)
                if tokens:
                    losses[task.task_id] = total / tokens
    finally:
        model.train(was_training)
    return losses


def load_model_for_ttft(spec: ModelSpec, adapter: AdapterConfig, checkpoint: Checkpoint, seed: int = 0,
                        vocabulary=None):
    """The model to fine-tune (:func:`arc_exp.model.loader.load_for_training`): the checkpoint's LoRA adapter made
    trainable on its base model, a new adapter on the base model (no checkpoint), or the checkpoint's full weights
    (``lora=full``). Seeded with ``seed``, so a new adapter starts from the same weights whatever ran before in the
    process. ``vocabulary`` (the checkpoint's own when it has a ``vocabulary.json``) reduces the base model first."""
    seed_everything(seed)  # a new adapter's initial weights come from the global RNG
    check_checkpoint_vocabulary(checkpoint.folder, vocabulary)
    return load_for_training(spec, adapter, checkpoint.folder, checkpoint.base_seed(seed), vocabulary)


def fine_tune(model, tokenizer, datasets: Sequence[TrainingDataset], settings: TTFTSettings, encoder,
              prompt_version: str, max_seq_len: int, seed: int, options: Mapping, steps: int, root_dir: str | Path,
              deadline: Optional[float] = None, clock: Callable[[], float] = time.monotonic, logger=None,
              holdout: Sequence[Task] = (), progress: bool = True, task_id: Optional[str] = None) -> FineTuneOutcome:
    """Train ``model`` in place for ``steps`` optimizer steps (fewer when ``deadline`` passes) on ``datasets``.

    Raises :class:`~arc_exp.data.datamodule.NoSampleFitsError` when no TTFT sample fits ``max_seq_len``.
    """
    seed_everything(seed)
    datamodule = ARCDataModule(datasets, [], prompt_version, encoder, tokenizer, settings.augmentation,
                               max_seq_len=max_seq_len, batch_size=settings.batch_size, seed=seed,
                               bucket_batches=settings.bucket_batches)
    outcome = FineTuneOutcome(task_id, planned_steps=steps)
    if holdout:
        outcome.holdout_before = answer_losses(model, holdout, encoder, prompt_version, tokenizer, max_seq_len)
    module = ARCLitModule(model, settings.learning_rate, settings.weight_decay, settings.scheduler, total_steps=steps)
    losses = RecordLosses()
    # conf/trainer as train.py uses it (accelerator, precision, clipping...); steps, validation, checkpoints and
    # logging are this stage's own
    trainer = build_trainer(options, logger, [StopAtDeadline(deadline, clock), losses], root_dir, model,
                            max_steps=steps, enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
                            val_check_interval=None, check_val_every_n_epoch=1,
                            log_every_n_steps=options.get("log_every_n_steps", 1),
                            enable_progress_bar=progress and options.get("enable_progress_bar", True))
    began = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    outcome.seconds = time.perf_counter() - began
    outcome.steps = trainer.global_step
    outcome.parameters, outcome.max_context = _model_size(model)
    outcome.stopped_by_budget = outcome.steps < steps
    outcome.losses = losses.losses
    if holdout:
        outcome.holdout_after = answer_losses(model, holdout, encoder, prompt_version, tokenizer, max_seq_len)
    return outcome


@dataclass
class AdapterTraining:
    """Stage 2 of a solve run, the fine-tuning itself: one shared adapter for all tasks (:meth:`shared`), or one per
    task within an equal share of the time left (:meth:`per_task`, a shard's tasks in its process), each saved with
    the tokenizer and ``config`` (the resolved run config, ``arc_exp.yaml``) so evaluation can check it."""

    spec: ModelSpec
    adapter: AdapterConfig
    tokenizer: Any
    checkpoint: Checkpoint
    ttft: TTFTSettings
    evaluation: EvaluationSettings
    trainer_options: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    progress: bool = True

    def shared(self, dataset: TTFTDataset, folder: Path, budget: Budget, deadline: Optional[float],
                run) -> FineTuneOutcome:
        # one training dataset per test task, all of weight 1: each task weighs the same, whatever its examples
        datasets = [TrainingDataset(task_id, ttft_tasks, self.evaluation.prompt_version, swap_train_test=False)
                    for task_id, ttft_tasks in dataset.tasks.items()]
        model = load_model_for_ttft(self.spec, self.adapter, self.checkpoint, self.evaluation.seed,
                                    vocabulary_of(self.tokenizer))
        log.info("ttft: fine-tuning one shared adapter on %d tasks, %d steps%s", len(datasets), self.ttft.steps,
                 "" if deadline is None else f", at most {deadline - budget.clock():.0f} s")
        outcome = fine_tune(model, self.tokenizer, datasets, self.ttft, self.evaluation.encoder,
                            self.evaluation.prompt_version, self.evaluation.max_seq_len, self.evaluation.seed,
                            self.trainer_options, self.ttft.steps, folder, deadline, budget.clock,
                            run and run.lightning_logger(), list(dataset.holdout.values()), self.progress)
        outcome.adapter = str(self.save(model, folder / "adapter", datasets))
        self.log_outcome(outcome, "shared adapter")
        del model
        gc.collect()
        return outcome

    def per_task(self, task_ids: Sequence[str], dataset: TTFTDataset, folder: Path, budget: Budget,
                  deadline: Optional[float], run, part) -> None:
        """One adapter for each of ``task_ids`` that has TTFT tasks, each within an equal share of the time left, into
        ``part`` (a :class:`~arc_exp.ttft.parts.SolvePart`: adapters, outcomes, notes; ``complete`` turns False when
        the budget leaves a task untrained). A task already trained (its ``stage.json``, on resume) is reused."""
        todo = [task_id for task_id in task_ids if task_id in dataset.tasks]
        spent, steps_done = 0.0, 0
        for number, task_id in enumerate(todo, start=1):
            task_folder = folder / "tasks" / task_id
            done = read_marker(task_folder)
            if done is not None:  # resumed: this task's adapter is already trained
                part.adapters[task_id] = done["adapter"]
                part.outcomes.append(FineTuneOutcome(**{k: v for k, v in done.items()
                                                        if k in FineTuneOutcome.__dataclass_fields__}))
                continue
            seconds = None if deadline is None else (deadline - budget.clock()) / (len(todo) - number + 1)
            steps = steps_within(self.ttft.steps, seconds, spent / steps_done if steps_done else None)
            if steps < 1 or (seconds is not None and seconds <= 0):
                part.complete = False
                log.warning("ttft %d/%d task %s: no time left in the budget, predicted with the checkpoint", number,
                            len(todo), task_id)
                continue
            task_run = run and run.child(f"ttft:{task_id}", stage="ttft", task_id=task_id)
            status = "FAILED"
            try:
                model = load_model_for_ttft(self.spec, self.adapter, self.checkpoint, self.evaluation.seed,
                                            vocabulary_of(self.tokenizer))
                datasets = [TrainingDataset(task_id, dataset.tasks[task_id], self.evaluation.prompt_version,
                                            swap_train_test=False)]
                holdout = [dataset.holdout[task_id]] if task_id in dataset.holdout else []
                task_deadline = None if seconds is None else budget.clock() + seconds
                outcome = fine_tune(model, self.tokenizer, datasets, self.ttft, self.evaluation.encoder,
                                    self.evaluation.prompt_version, self.evaluation.max_seq_len,
                                    self.evaluation.seed, self.trainer_options, steps, task_folder, task_deadline,
                                    budget.clock, task_run and task_run.lightning_logger(), holdout, progress=False,
                                    task_id=task_id)
                outcome.planned_steps = self.ttft.steps
                outcome.adapter = str(self.save(model, task_folder / "adapter", datasets))
                del model
                status = "FINISHED"
            except NoSampleFitsError as error:  # no TTFT sample of this task fits data.max_seq_len
                log.warning("ttft %d/%d task %s: %s; predicted with the checkpoint", number, len(todo), task_id, error)
                part.notes.append(f"task {task_id}: no TTFT ({error})")
                outcome = FineTuneOutcome(task_id, note=str(error))
                status = "FINISHED"
            finally:
                if task_run is not None:
                    task_run.finish(status)
                gc.collect()
            spent, steps_done = spent + outcome.seconds, steps_done + outcome.steps
            part.adapters[task_id] = outcome.adapter
            part.outcomes.append(outcome)
            write_marker(task_folder, outcome.to_dict())
            self.log_outcome(outcome, f"{number}/{len(todo)} task {task_id}")

    def save(self, model, folder: Path, datasets: Sequence[TrainingDataset]) -> Path:
        """The adapter (or full weights) with the tokenizer and the run config, seeded like its base model, and the
        record of the outputs it trained on: its TTFT tasks' (the test tasks' train examples) and its checkpoint's."""
        config = {**self.config, "seed": self.checkpoint.base_seed(self.evaluation.seed)}
        saved = save_checkpoint(model, self.tokenizer, folder, config)
        TrainedOutputs.of_datasets(datasets, "ttft").continued_from(self.checkpoint.folder, "checkpoint").save(saved)
        return saved

    @staticmethod
    def log_outcome(outcome: FineTuneOutcome, what: str) -> None:
        first, last = (outcome.losses[0], outcome.losses[-1]) if outcome.losses else (math.nan, math.nan)
        budget = f" (stopped by the time budget, {outcome.planned_steps} planned)" if outcome.stopped_by_budget else ""
        log.info("ttft %s: %d steps%s in %.1f s, loss %.4f -> %.4f", what, outcome.steps, budget, outcome.seconds,
                 first, last)
