"""TTFT settings (conf/ttft/): steps, learning rate, batch, augmentation and which TTFT tasks (n-1, n-2); checked when
composed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

from arc_exp.data.augmentation_policy import AugmentationPolicy


# Trainer settings of conf/trainer that the TTFT stage sets itself (steps, no validation, no Lightning checkpoints)
class TTFTConfigError(ValueError):
    """A ``ttft.*``, ``budget.*``, ``ensemble`` or ``resume`` setting that cannot be used; names the key."""


@dataclass
class TTFTSettings:
    """How to fine-tune at test time (``conf/ttft/<name>.yaml``, built with ``hydra.utils.instantiate``).

    - ``enabled``: false (``ttft=none``) predicts with the checkpoint as it is;
    - ``per_task``: one adapter per task instead of one shared by all tasks;
    - ``n2``: train on the n-2 tasks instead of the n-1 tasks (tasks with 2 train examples keep their n-1 tasks);
      ``holdout``: hold out each task's last train example and report its answer loss before and after TTFT;
    - ``steps``: optimizer steps of each fine-tuning (the shared adapter's, or each task's);
    - ``learning_rate``, ``weight_decay``, ``scheduler`` (a partial of :mod:`arc_exp.training.schedulers`),
      ``batch_size``,
      ``bucket_batches``: as in training;
    - ``augmentation``: the :class:`AugmentationPolicy` sampled for every TTFT sample (D8, colors, example order).
    """

    enabled: bool = True
    per_task: bool = False
    n2: bool = False
    holdout: bool = False
    steps: int = 100
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 1
    bucket_batches: int = 8
    scheduler: Optional[Callable] = None
    augmentation: AugmentationPolicy = field(default_factory=AugmentationPolicy)

    def __post_init__(self) -> None:
        # the types of enabled, per_task, n2 and holdout are checked when the config is composed (schemas.py)
        for key in ("steps", "batch_size", "bucket_batches"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TTFTConfigError(f"ttft.{key} must be an integer >= 1, got {value!r}")
        for key in ("learning_rate", "weight_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                    (key == "learning_rate" and value == 0):
                raise TTFTConfigError(f"ttft.{key} must be a number {'> 0' if key == 'learning_rate' else '>= 0'}"
                                      f", got {value!r}")
        if not isinstance(self.augmentation, AugmentationPolicy):
            raise TTFTConfigError(f"ttft.augmentation must build an AugmentationPolicy "
                                  f"(arc_exp.data.augmentation_policy), got "
                                  f"{type(self.augmentation).__name__}")

    def describe(self) -> dict:
        """The settings as plain values: stored with the stage outputs, compared on resume."""
        scheduler = self.scheduler
        name = getattr(getattr(scheduler, "func", scheduler), "__name__", str(scheduler))
        keywords = dict(getattr(scheduler, "keywords", {}) or {})
        policy = dataclasses.asdict(self.augmentation)
        policy["task_augmentations"] = list(policy["task_augmentations"])
        values = {k: getattr(self, k) for k in ("enabled", "per_task", "n2", "holdout", "steps", "learning_rate",
                                                 "weight_decay", "batch_size", "bucket_batches")}
        return {**values, "scheduler": {"name": name, **keywords}, "augmentation": policy}


def set_torch_threads(threads: Optional[int]) -> None:
    """Use ``threads`` torch CPU threads from now on (``None``: leave torch's default, one per core)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise TTFTConfigError(f"torch_threads must be an integer >= 1 or null, got {threads!r}")
    import torch  # here, not at the top: the config schemas import this module before anything heavy

    torch.set_num_threads(threads)
