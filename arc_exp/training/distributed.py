"""Several processes training one model (Lightning DDP/FSDP): checks before anything loads, and the command that
starts the other processes.

Lightning's DDP starts processes 1..w-1 by running the entry point again (``python train.py <arguments>``), and each
re-enters Hydra. They must share the first process's run folder (adapters, last.ckpt and logs in one place) and run
that one job's overrides: Lightning's own command reuses ``hydra.run.dir``, whose ``${now:...}`` may resolve a second
later in the new process, and under ``-m`` it would start the whole sweep again in every process.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Optional, Sequence

import torch
from hydra.utils import get_class

GPU_ONLY_STRATEGIES = ("fsdp", "deepspeed")
GPU_ONLY_BACKENDS = ("nccl",)
# Hydra flags that take a value (as the next argument or after '='); kept in the command of the other processes
_HYDRA_VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


class ProcessConfigError(ValueError):
    """``trainer.devices`` / ``trainer.strategy`` / ``trainer.accelerator`` that this machine cannot run."""


def strategy_name(strategy: Any) -> str:
    """``"ddp"`` for ``strategy: ddp`` and for ``strategy: {_target_: ...DDPStrategy, ...}``; ``"fsdp"`` for
    ``{_target_: arc_exp.training.distributed.fsdp_strategy, ...}``."""
    if hasattr(strategy, "get"):
        target = str(strategy.get("_target_", "")).rsplit(".", 1)[-1].lower()
        return target.removesuffix("strategy").removesuffix("_")
    return str(strategy or "auto").lower()


def fsdp_strategy(decoder_layer: str, **options):
    """Lightning's FSDP that shards the model decoder layer by decoder layer (``decoder_layer``: a class path, e.g.
    ``transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer``; :func:`with_model_decoder_layer` fills it in
    from the loaded model); the state dict is gathered whole, so checkpoints are the single-process run's files."""
    # Lightning takes seconds to import: only when a strategy or launcher is built (train.py checks devices first)
    from pytorch_lightning.strategies import FSDPStrategy

    return FSDPStrategy(auto_wrap_policy={decoder_layer_class(decoder_layer)}, state_dict_type="full",
                        **options)


def decoder_layer_class(path: Optional[str], key: str = "model.decoder_layer") -> type:
    """The class ``path`` names; a clear error naming ``key`` when it is missing or does not import."""
    if not path:
        raise ProcessConfigError(f"trainer=fsdp needs {key}: the class of the model's decoder layer, e.g. "
                                 f"transformers.models.llama.modeling_llama.LlamaDecoderLayer")
    try:
        return get_class(path)
    except Exception as error:  # hydra raises ImportError or ValueError with its own wording
        raise ProcessConfigError(f"{key}={path}: no such class ({error})") from None


def model_decoder_layers(model) -> list[type]:
    """The classes of ``model``'s decoder layers (the blocks Hugging Face never splits across devices, its
    ``_no_split_modules``, found among its modules); the class of its decoder's ``layers`` otherwise. Works through
    a PEFT wrapper and on a model built on the meta device."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    found = list(dict.fromkeys(type(m) for m in base.modules() if type(m).__name__ in names))
    if not found and hasattr(base, "get_decoder") and hasattr(base.get_decoder(), "layers"):
        found = list(dict.fromkeys(type(layer) for layer in base.get_decoder().layers))
    return found


def with_model_decoder_layer(strategy: Mapping, model, key: str = "model.decoder_layer") -> dict:
    """``trainer.strategy`` of ``trainer=fsdp`` with ``decoder_layer`` the class path of ``model``'s decoder layer.

    ``model.decoder_layer`` null (every model option): the loaded model's own class, so a preset that sets another
    model by value (``model: {name: qwen2-0.5b, path: ...}``) wraps that model's layers. Named: it must be a class
    of the model's layers, or FSDP would wrap nothing and shard no weight: a :class:`ProcessConfigError` naming it.
    """
    layers = model_decoder_layers(model)
    named = strategy.get("decoder_layer")
    if named:
        wanted = decoder_layer_class(named, key)
        if not any(issubclass(layer, wanted) for layer in layers):
            raise ProcessConfigError(
                f"{key}={named}: the model ({type(model).__name__}) has no such layer, FSDP would wrap nothing; its "
                f"decoder layers are {', '.join(_class_path(c) for c in layers) or 'not found'} (leave {key} unset "
                f"to wrap them)")
        return dict(strategy)
    if len(layers) != 1:
        raise ProcessConfigError(f"trainer=fsdp: cannot tell the decoder layer of {type(model).__name__} (found "
                                 f"{', '.join(c.__name__ for c in layers) or 'none'}); set {key}=<class path>")
    return {**strategy, "decoder_layer": _class_path(layers[0])}


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def available_devices(accelerator: str) -> int:
    """Devices this machine has for ``accelerator``: GPUs, or CPU cores (one process each)."""
    if accelerator in ("gpu", "cuda"):
        return torch.cuda.device_count()
    return os.cpu_count() or 1


def requested_devices(devices: Any, available: int, accelerator: str = "gpu") -> int:
    """Lightning's ``devices``: a count, -1 / "auto" (all GPUs; one process on CPU), or a list of indices such as
    ``[0, 1]`` or ``"0,1"``."""
    if devices in ("auto", None) and accelerator not in ("gpu", "cuda"):
        return 1
    if devices in (-1, "-1", "auto", None):
        return available
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") and not isinstance(devices, str):
        return len(devices)
    return int(devices)


def check_processes(trainer_cfg: dict, key: str = "trainer") -> int:
    """The number of processes per node ``trainer_cfg`` asks for; a clear error if this machine cannot run it
    (more devices than exist, a GPU-only strategy or backend without a GPU). Call it before a model loads."""
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    strategy = trainer_cfg.get("strategy")
    name = strategy_name(strategy)
    has_gpu = torch.cuda.is_available()
    if accelerator in ("gpu", "cuda") and not has_gpu:
        raise ProcessConfigError(f"{key}.accelerator={accelerator} but this machine has no GPU; "
                                 f"use trainer=cpu or trainer=ddp_cpu")
    precision = str(trainer_cfg.get("precision", "32-true"))
    if (precision.startswith("bf16") and accelerator in ("gpu", "cuda") and has_gpu
            and not torch.cuda.is_bf16_supported(including_emulation=False)):
        raise ProcessConfigError(f"{key}.precision={precision} but this GPU ({torch.cuda.get_device_name()}) has no "
                                 f"bf16; use {key}.precision=16-mixed (fp16 with loss scaling)")
    if name in GPU_ONLY_STRATEGIES and not has_gpu:
        raise ProcessConfigError(f"{key}.strategy={name} needs GPUs and this machine has none; "
                                 f"on CPU use trainer=ddp_cpu (DDP with gloo)")
    if hasattr(strategy, "get") and strategy.get("decoder_layer"):  # null: the loaded model's own, found later
        decoder_layer_class(strategy["decoder_layer"])
    backend = strategy.get("process_group_backend") if hasattr(strategy, "get") else None
    if backend in GPU_ONLY_BACKENDS and accelerator not in ("gpu", "cuda"):
        raise ProcessConfigError(f"{key}.strategy.process_group_backend={backend} needs GPUs; on CPU use gloo")
    available = available_devices(accelerator)
    wanted = requested_devices(trainer_cfg.get("devices", 1), available, accelerator)
    if wanted < 1 or wanted > available:
        what = "GPUs" if accelerator in ("gpu", "cuda") else "CPU cores"
        raise ProcessConfigError(f"{key}.devices={trainer_cfg.get('devices')} asks for {wanted} processes but this "
                                 f"machine has {available} {what}")
    return wanted


def is_distributed(trainer_cfg: dict) -> bool:
    """More than one process in all (devices x nodes)."""
    accelerator = str(trainer_cfg.get("accelerator", "cpu")).lower()
    devices = requested_devices(trainer_cfg.get("devices", 1), available_devices(accelerator), accelerator)
    return devices * int(trainer_cfg.get("num_nodes", 1) or 1) > 1


def child_command(run_dir: str, overrides: Sequence[str], local_rank: int, argv: Optional[Sequence[str]] = None,
                  ) -> list[str]:
    """``python <script> [config flags] <this job's overrides> hydra.run.dir=<run_dir> ...`` for process
    ``local_rank``: a single run (never ``-m``) in the first process's run folder, which writes no ``.hydra/``."""
    argv = list(sys.argv if argv is None else argv)
    flags, i = [], 1
    while i < len(argv):
        arg = argv[i]
        if arg in _HYDRA_VALUE_FLAGS and i + 1 < len(argv):
            flags += [arg, argv[i + 1]]
            i += 1
        elif arg.split("=", 1)[0] in _HYDRA_VALUE_FLAGS:
            flags.append(arg)
        i += 1
    return [sys.executable, os.path.abspath(argv[0]), *flags, *overrides, f'hydra.run.dir="{os.path.abspath(run_dir)}"',
            "hydra.output_subdir=null", f"hydra.job.name=rank_{local_rank}"]


def setup_processes(trainer_cfg: dict, run_dir: str, overrides: Sequence[str]) -> int:
    """:func:`check_processes`, then (several processes) :func:`start_other_processes_in` ``run_dir``; returns the
    number of processes per node."""
    count = check_processes(trainer_cfg)
    if is_distributed(trainer_cfg):
        start_other_processes_in(run_dir, overrides)
    return count


def start_other_processes_in(run_dir: str, overrides: Sequence[str]) -> None:
    """Make Lightning's DDP launcher start processes 1..n-1 with :func:`child_command` (see the module doc)."""
    # Lightning takes seconds to import: only when a strategy or launcher is built (train.py checks devices first)
    from pytorch_lightning.strategies.launchers import subprocess_script

    def command(local_rank: int) -> tuple[list[str], str]:
        return child_command(run_dir, overrides, local_rank), os.getcwd()

    subprocess_script._hydra_subprocess_cmd = command
