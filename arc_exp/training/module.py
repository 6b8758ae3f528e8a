"""The LightningModule: a Hugging Face causal LM (optionally inside a PEFT adapter) trained on answer tokens only."""
from __future__ import annotations

import time
from typing import Callable, Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from arc_exp.data.samples import IGNORE_INDEX


def answer_loss_sums(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over answer tokens of the cross-entropy times its sample's ``loss_weight``, number of answer tokens).

    The output layer runs only on positions whose next token is an answer token: ARC prompts are mostly examples, so
    this skips most of the (batch x length x vocabulary) logits without changing the loss.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    per_token = F.cross_entropy(logits, targets[keep], reduction="none")
    weights = batch["loss_weight"].to(per_token.dtype)[:, None].expand_as(targets)[keep]
    return (per_token * weights).sum(), keep.sum()


def answer_loss(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over answer tokens, each token's term times its sample's ``loss_weight``, divided by the number
    of answer tokens (not by the weights, so a weight of 2 doubles a sample's gradient even alone in its batch);
    returns (loss, number of answer tokens). With all weights 1 it is the plain mean over answer tokens."""
    loss_sum, count = answer_loss_sums(model, batch)
    return loss_sum / count.clamp_min(1), count


class ARCLitModule(pl.LightningModule):
    def __init__(self, model, learning_rate: float = 1e-4, weight_decay: float = 0.0,
                 scheduler: Optional[Callable] = None, total_steps: int = 1000,
                 betas: tuple[float, float] = (0.9, 0.999)):
        super().__init__()
        self.model = model
        # from_pretrained returns the model in eval mode; Lightning keeps modes as it finds them (dropout matters)
        self.model.train()
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.scheduler_factory = scheduler
        self.total_steps = total_steps
        self.betas = tuple(betas)
        # checkpoints keep only trainable weights (the adapter); the frozen base model is reloaded from its source
        self.strict_loading = False
        self._val_loss_sum = 0.0
        self._val_tokens = 0
        # train/* metrics are logged every trainer.log_every_n_steps steps; between two logs the tokens trained
        # add up on the device and nothing waits for it (a host synchronisation per step stalls a GPU)
        self._window_start: Optional[float] = None
        self._window_tokens: Optional[torch.Tensor] = None
        self._logs_now = False

    def forward(self, batch: dict) -> torch.Tensor:
        return answer_loss(self.model, batch)[0]

    def on_train_batch_start(self, batch, batch_idx):
        if self._window_start is None:
            self._window_start = time.perf_counter()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss_sum, count = answer_loss_sums(self.model, batch)
        mask = batch["attention_mask"]
        # this process's batch is a share of the global one: totals over all processes in one all-reduce
        totals = self._sum_over_processes(torch.stack([
            loss_sum.detach(), count.float(), batch["dropped_examples"].float(), mask.sum().float(),
            mask.new_full((), mask.numel(), dtype=torch.float32)]))
        if self._world_size() > 1:
            # DDP averages gradients over processes: scaled so that the average is the gradient of the global
            # batch's loss (over all its answer tokens), as one process with the whole batch computes it
            loss = loss_sum * self._world_size() / totals[1].clamp_min(1)
        else:
            loss = loss_sum / count.clamp_min(1)
        self._window_tokens = totals[3] if self._window_tokens is None else self._window_tokens + totals[3]
        self._logs_now = self._logs_this_step()
        if self._logs_now:
            loss_sum, count, dropped, real, padded = totals.cpu()  # the host synchronisation, once per log
            self.log("train/loss", loss_sum / count.clamp_min(1), prog_bar=True, on_step=True, on_epoch=False)
            self.log("train/lr", torch.tensor(self.trainer.optimizers[0].param_groups[0]["lr"]), on_step=True,
                     on_epoch=False)
            self.log("train/real_token_share", real / padded, on_step=True, on_epoch=False)
            self.log("train/dropped_examples", dropped, on_step=True, on_epoch=False, reduce_fx="sum")
        return loss

    def _logs_this_step(self) -> bool:
        """Whether Lightning hands this batch's metrics to the loggers (the last batch of an optimizer step, every
        ``trainer.log_every_n_steps`` steps), or it ends the last step (the run's final metrics); always outside a
        Trainer. Lightning's own tests (private), so that the step it logs holds this step's values."""
        if self._trainer is None:
            return True
        trainer = self.trainer
        if trainer.fit_loop._should_accumulate():
            return False
        return (trainer._logger_connector.should_update_logs
                or trainer.max_steps > 0 and trainer.global_step + 1 >= trainer.max_steps)

    def _world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def _sum_over_processes(self, values: torch.Tensor) -> torch.Tensor:
        if self._world_size() == 1:
            return values
        return self.trainer.strategy.reduce(values, reduce_op="sum")

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if not self._logs_now or self._window_start is None or self._window_tokens is None:
            return
        tokens = self._window_tokens.cpu()  # waits for the device: the seconds below are the steps' real time
        seconds = time.perf_counter() - self._window_start
        # tokens of all processes (the global batches) per second, over the steps since the last log
        self.log("train/tokens_per_s", tokens / max(seconds, 1e-9), on_step=True, on_epoch=False)
        self._window_start, self._window_tokens = time.perf_counter(), None

    def on_validation_epoch_start(self):
        self._val_loss_sum, self._val_tokens = 0.0, 0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, count = answer_loss(self.model, batch)
        # token-weighted over the whole validation set, so batching does not change the number
        self._val_loss_sum += float(loss) * int(count)
        self._val_tokens += int(count)

    def on_validation_epoch_end(self):
        # every process validates its share of the batches: the loss is over all tokens of all processes
        loss_sum, tokens = self._sum_over_processes(torch.tensor([self._val_loss_sum, float(self._val_tokens)],
                                                                 dtype=torch.float64)).tolist()
        if tokens:
            # the same value on every process already; sync_dist only keeps Lightning from warning about it
            self.log("val/loss", loss_sum / tokens, prog_bar=True, sync_dist=self._world_size() > 1)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay,
                                      betas=self.betas)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, total_steps=self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # under FSDP the parameter names carry the wrappers' prefix, the (gathered) state dict's keys do not
        trainable = {name.replace("_fsdp_wrapped_module.", "") for name, p in self.named_parameters()
                     if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            torch.set_rng_state(checkpoint["rng_states"]["torch"])
