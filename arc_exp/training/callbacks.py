"""Lightning callbacks: adapter folders every N steps (training), an evaluation every N steps, a deadline and a loss record (test-time
fine-tuning), a progress bar counting optimizer steps."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Mapping, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import _RICH_AVAILABLE
from pytorch_lightning.strategies import FSDPStrategy
import torch

from arc_exp.data.trained_outputs import TrainedOutputs
from arc_exp.model.checkpoints import save_checkpoint

log = logging.getLogger(__name__)


class AdapterCheckpoint(pl.Callback):
    """Save the adapter every ``every_n_steps`` optimizer steps and at the end of training. Under DDP process 0
    alone writes (the processes hold the same weights); under FSDP every process first sends its shard to process 0,
    which writes the adapter (or the full weights, ``lora=full``) as a single-process run does."""

    def __init__(self, tokenizer, folder: str | Path, every_n_steps: int = 0, config: Optional[dict] = None,
                 trained_outputs: Optional[TrainedOutputs] = None):
        self.tokenizer = tokenizer
        self.trained_outputs = trained_outputs  # written into every step folder: what evaluations of it check
        self.folder = Path(folder)
        self.every_n_steps = every_n_steps
        self.config = config
        self.saved: list[Path] = []
        self._steps: set[int] = set()

    def _save(self, trainer, pl_module, step: int) -> None:
        target = self.folder / f"step-{step:06d}"
        if step in self._steps:  # the last periodic save was at the last step (kept on every process alike)
            return
        self._steps.add(step)
        state = _gathered_state(trainer)  # every process takes part
        if not trainer.is_global_zero:
            return
        self.saved.append(save_checkpoint(pl_module.model, self.tokenizer, target, self.config, state))
        if self.trained_outputs is not None:
            self.trained_outputs.save(target)
        log.info("saved checkpoint %s", target)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self._save(trainer, pl_module, step)

    def on_train_end(self, trainer, pl_module):
        self._save(trainer, pl_module, trainer.global_step)


def _gathered_state(trainer) -> Optional[dict]:
    """Under FSDP, the model's whole state dict (on process 0; keys of the model, not of the LightningModule);
    None for strategies whose processes hold the whole model."""
    if not isinstance(trainer.strategy, FSDPStrategy):
        return None
    state = trainer.strategy.lightning_module_state_dict()  # state_dict_type="full": gathered on process 0
    return {key.removeprefix("model."): value for key, value in state.items()}


class StopAtDeadline(pl.Callback):
    """Stop training when the clock passes ``deadline`` (the budget shrinks the steps; the adapter is still saved)."""

    def __init__(self, deadline: Optional[float], clock: Callable[[], float]):
        self.deadline = deadline
        self.clock = clock

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.deadline is not None and self.clock() >= self.deadline:
            trainer.should_stop = True


class EvaluateEvery(pl.Callback):
    """Call ``evaluate(step)`` every ``every_n_steps`` optimizer steps during training, on process 0 (the count-QA
    accuracy curve of ``evaluation.count_qa.every_n_steps``); the step training ends at is left to the recipe, which
    evaluates after training anyway."""

    def __init__(self, every_n_steps: int, evaluate: Callable[[int], object]):
        self.every_n_steps = every_n_steps
        self.evaluate = evaluate

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if (self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != trainer.max_steps
                and trainer.is_global_zero):
            self.evaluate(step)


class RecordLosses(pl.Callback):
    """The loss of every training batch (test-time fine-tuning's first and last loss). Kept on the device during
    training and read once at the end: a ``float(loss)`` per step would make the host wait for the GPU every step."""

    def __init__(self):
        self._losses: list = []

    @property
    def losses(self) -> list[float]:
        return torch.stack(self._losses).tolist() if self._losses else []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        self._losses.append(loss.detach().float())


def training_callbacks(checkpoint_every_n_steps: int, tokenizer, output_dir: str | Path,
                       config: Optional[dict] = None, trained_outputs: Optional[TrainedOutputs] = None,
                       ) -> tuple[pl.callbacks.ModelCheckpoint, AdapterCheckpoint]:
    """The callbacks of a training run (``conf/callbacks``): Lightning's ``last.ckpt`` (what ``resume=`` continues
    from) and the adapter folders ``step-N``, both every ``checkpoint_every_n_steps`` optimizer steps and at the end;
    each adapter folder gets the run's ``trained_outputs`` record."""
    folder = Path(output_dir) / "checkpoints"
    lightning = pl.callbacks.ModelCheckpoint(dirpath=str(folder), save_last=True, save_top_k=0,
                                             every_n_train_steps=checkpoint_every_n_steps or None)
    return lightning, AdapterCheckpoint(tokenizer, folder, checkpoint_every_n_steps, config, trained_outputs)


def step_progress_bar() -> pl.Callback:
    """Lightning's progress bar counting optimizer steps out of ``trainer.max_steps`` (``steps 3/10``), not batches
    of an epoch that never ends (``Epoch 0/-2``), without the logger's version number."""
    if not _RICH_AVAILABLE:
        return TQDMProgressBar()

    class StepProgressBar(RichProgressBar):
        @property
        def total_train_batches(self):
            return self.trainer.max_steps if self.trainer.max_steps > 0 else super().total_train_batches

        def _get_train_description(self, current_epoch: int) -> str:
            return f"{'steps':{len(self.validation_description)}}"

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if not self.is_disabled and self.train_progress_bar_id is None:
                self._initialize_train_progress_bar_id()
            self._update(self.train_progress_bar_id, trainer.global_step)
            self._update_metrics(trainer, pl_module)
            self.refresh()

        def get_metrics(self, trainer, pl_module):
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            return metrics

    return StepProgressBar()

