"""Fine-tuning at test time: the model loaded from the starting checkpoint, trained on the TTFT dataset with Lightning within a deadline, losses recorded, the adapter saved."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import pytorch_lightning as pl
import torch

from arc_exp.data.datamodule import ARCDataModule, TrainingDataset, validation_samples
from arc_exp.data.samples import collate
from arc_exp.data.tasks import Task
from arc_exp.evaluation.checkpoints import Checkpoint
from arc_exp.model.adapters import AdapterConfig, AdapterError, apply_adapter
from arc_exp.model.loader import ModelSpec, load_model, resolve_dtype
from arc_exp.model.vocabulary import (
    apply_vocabulary,
    check_checkpoint_vocabulary,
)
from arc_exp.training.module import ARCLitModule, answer_loss
from arc_exp.ttft.settings import TTFTSettings


class _StopAtDeadline(pl.Callback):
    """Stop training when the clock passes ``deadline`` (the budget shrinks the steps; the adapter is still saved)."""

    def __init__(self, deadline: Optional[float], clock: Callable[[], float]):
        self.deadline = deadline
        self.clock = clock

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.deadline is not None and self.clock() >= self.deadline:
            trainer.should_stop = True


class _RecordLosses(pl.Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        self.losses.append(float(loss))


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


def base_seed(checkpoint: Checkpoint, seed: int) -> int:
    """The seed the checkpoint's base model was built with (matters for the tiny random model), else ``seed``."""
    saved = (checkpoint.config or {}).get("seed")
    return saved if isinstance(saved, int) else seed


def load_model_for_ttft(spec: ModelSpec, adapter: AdapterConfig, checkpoint: Checkpoint, seed: int = 0,
                        vocabulary=None):
    """The model to fine-tune: the checkpoint's LoRA adapter made trainable on its base model, a new adapter on the
    base model (no checkpoint), or the checkpoint's full weights (``lora=full``). Seeded with ``seed``, so a new
    adapter starts from the same weights whatever ran before in the process. ``vocabulary`` (a reduced vocabulary,
    the checkpoint's own when it has a ``vocabulary.json``) reduces the base model before the adapter."""
    from arc_exp.training.recipe import seed_everything

    seed_everything(seed)  # a new adapter's initial weights come from the global RNG
    folder = checkpoint.folder
    seed = base_seed(checkpoint, seed)
    check_checkpoint_vocabulary(folder, vocabulary)
    if folder is not None and not (folder / "adapter_config.json").exists():
        if adapter.is_peft:
            raise AdapterError(f"checkpoint '{folder}' holds full model weights, not a LoRA adapter: fine-tune it "
                               f"with lora=full")
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=resolve_dtype(spec.dtype))
        return apply_adapter(apply_vocabulary(model, vocabulary), adapter)
    base = apply_vocabulary(load_model(spec, quantization_config=adapter.quantization_config(), seed=seed), vocabulary)
    return apply_adapter(base, adapter, str(folder) if folder is not None else None)


def fine_tune(model, tokenizer, datasets: Sequence[TrainingDataset], settings: TTFTSettings, encoder,
              prompt_version: str, max_seq_len: int, seed: int, options: Mapping, steps: int, root_dir: str | Path,
              deadline: Optional[float] = None, clock: Callable[[], float] = time.monotonic, logger=None,
              holdout: Sequence[Task] = (), progress: bool = True, task_id: Optional[str] = None) -> FineTuneOutcome:
    """Train ``model`` in place for ``steps`` optimizer steps (fewer when ``deadline`` passes) on ``datasets``.

    Raises ``ValueError`` when no TTFT sample fits ``max_seq_len`` (from :class:`ARCDataModule`).
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
    losses = _RecordLosses()
    trainer = pl.Trainer(**dict(options), max_steps=steps, logger=logger if logger is not None else False,
                         callbacks=[_StopAtDeadline(deadline, clock), losses], enable_checkpointing=False,
                         limit_val_batches=0, num_sanity_val_steps=0, log_every_n_steps=1,
                         enable_progress_bar=progress and options.get("enable_progress_bar", True),
                         default_root_dir=str(root_dir))
    began = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    outcome.seconds = time.perf_counter() - began
    outcome.steps = trainer.global_step
    outcome.stopped_by_budget = outcome.steps < steps
    outcome.losses = losses.losses
    if holdout:
        outcome.holdout_after = answer_losses(model, holdout, encoder, prompt_version, tokenizer, max_seq_len)
    return outcome
