"""Fine-tuning at test time: the model loaded from the starting checkpoint, trained on the TTFT dataset with Lightning
within a deadline, losses recorded, the adapter saved."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch

from arc_exp.data.datamodule import ARCDataModule, TrainingDataset, validation_samples
from arc_exp.data.samples import collate
from arc_exp.data.tasks import Task
from arc_exp.evaluation.checkpoints import Checkpoint
from arc_exp.model.adapters import AdapterConfig
from arc_exp.model.loader import ModelSpec, load_for_training
from arc_exp.model.vocabulary import check_checkpoint_vocabulary
from arc_exp.training.callbacks import RecordLosses, StopAtDeadline
from arc_exp.training.module import ARCLitModule, answer_loss
from arc_exp.training.recipe import build_trainer
from arc_exp.ttft.settings import TTFTSettings


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
    from arc_exp.training.recipe import seed_everything

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
    from arc_exp.training.recipe import seed_everything

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
    trainer = build_trainer(options, logger, [StopAtDeadline(deadline, clock), losses], root_dir, max_steps=steps,
                            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
                            val_check_interval=None, check_val_every_n_epoch=1, log_every_n_steps=1,
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
