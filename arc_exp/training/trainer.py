"""The one Trainer builder (train.py and TTFT) and the seeding both share."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from arc_exp.training.callbacks import step_progress_bar
from arc_exp.training.distributed import strategy_name, with_model_decoder_layer


def seed_everything(seed: int) -> None:
    pl.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_trainer(trainer_cfg: Mapping, logger, callbacks: Sequence[pl.Callback], root_dir: str | Path,
                  model=None, **overrides) -> pl.Trainer:
    """The one Trainer builder (train.py and TTFT): ``conf/trainer`` holds Trainer arguments only and is instantiated
    as it is, with ``overrides`` (TTFT sets its own steps, validation and logging) and the run's logger (``None``: no
    logger), callbacks and root folder. ``model`` (the loaded model) gives ``trainer=fsdp`` its decoder layer."""
    config = OmegaConf.to_container(trainer_cfg, resolve=True) if OmegaConf.is_config(trainer_cfg) else trainer_cfg
    # use_distributed_sampler=False: under DDP the datamodule gives each process its share itself (a
    # DistributedSampler would pad the validation batches with repeats)
    config = {**config, "use_distributed_sampler": False, **overrides}
    if strategy_name(config.get("strategy")) == "fsdp" and hasattr(config["strategy"], "get"):
        if model is None:
            raise ValueError("build_trainer: trainer=fsdp needs the loaded model (its decoder layer is FSDP's unit)")
        config["strategy"] = with_model_decoder_layer(config["strategy"], model)
    progress = [step_progress_bar()] if config.get("enable_progress_bar", True) else []
    # Hydra's instantiate, below the entry points here only: the settings are Lightning's own Trainer arguments, a
    # nested _target_ (a strategy class a user may name), given as a plain dict (tests/test_import_direction.py)
    return instantiate(config, logger=logger if logger is not None else False,
                       callbacks=[*progress, *callbacks], default_root_dir=str(root_dir))
