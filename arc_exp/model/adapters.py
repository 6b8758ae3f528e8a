"""Fine-tuning methods (``conf/lora/``): LoRA and its variants through PEFT, QLoRA, or full fine-tuning.

``AdapterConfig(method="lora", r=32)`` wraps a causal LM in a PEFT LoRA adapter; ``method="full"`` trains every
weight (the seeds' ``--no-use_lora``). ``load_in_4bit`` (QLoRA) quantizes the base model with bitsandbytes first.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch

log = logging.getLogger(__name__)

METHODS = ("lora", "full")


class AdapterError(ValueError):
    """An adapter setting or adapter folder that cannot be used; the message names the key or the folder."""


@dataclass
class AdapterConfig:
    method: str = "lora"
    r: int = 32
    alpha: Optional[float] = None  # None: follows r, 2 x r (the scale alpha/r stays 2 at every rank)
    dropout: float = 0.0
    target_modules: Union[str, list] = "all-linear"
    use_dora: bool = False
    use_rslora: bool = False
    load_in_4bit: bool = False
    extra: dict = field(default_factory=dict)  # any other peft.LoraConfig argument

    def __post_init__(self):
        if self.method not in METHODS:
            raise AdapterError(f"lora.method: unknown method '{self.method}'; use one of {', '.join(METHODS)}")
        if self.method == "lora" and self.r < 1:
            raise AdapterError(f"lora.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise AdapterError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if self.load_in_4bit and self.method != "lora":
            raise AdapterError("lora.load_in_4bit (QLoRA) needs lora.method=lora")
        if self.alpha is None:
            self.alpha = 2 * self.r

    @property
    def scale(self) -> float:
        """The factor LoRA's update is multiplied by: alpha / r, or alpha / sqrt(r) with rsLoRA.

        >>> AdapterConfig(r=128).scale, AdapterConfig(r=128, alpha=64).scale, AdapterConfig(r=16, use_rslora=True).scale
        (2.0, 0.5, 8.0)
        """
        return self.alpha / (self.r ** 0.5 if self.use_rslora else self.r)

    def describe(self) -> str:
        """``"LoRA r=32, alpha=64, scale 2 (alpha/r)"``: what a run log says about the adapter."""
        if not self.is_peft:
            return "full fine-tuning (no adapter)"
        kind = "DoRA" if self.use_dora else "LoRA"
        rule = "alpha/sqrt(r), rsLoRA" if self.use_rslora else "alpha/r"
        return f"{kind} r={self.r}, alpha={self.alpha:g}, scale {self.scale:g} ({rule})"

    @property
    def is_peft(self) -> bool:
        return self.method == "lora"

    def check_device(self) -> None:
        """Refuse (:class:`AdapterError`, one line) ``lora=qlora`` on a machine without a CUDA GPU, before a model
        loads: bitsandbytes' 4-bit layers are a GPU feature (its CPU path, where it imports at all, is slow and
        partial)."""
        if self.load_in_4bit and not torch.cuda.is_available():
            raise AdapterError("lora.load_in_4bit=true (lora=qlora) needs a CUDA GPU and this machine has none; "
                               "use lora=lora")

    def quantization_config(self):
        """The bitsandbytes 4-bit config for QLoRA, or None. Fails early when bitsandbytes cannot run here."""
        if not self.load_in_4bit:
            return None
        self.check_device()
        check_bitsandbytes()
        # transformers takes seconds to import: only when a model or tokenizer loads
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute)

    def peft_config(self):
        # peft takes seconds to import (~7 s with its imports): only when an adapter is built or loaded
        from peft import LoraConfig, TaskType

        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, use_dora=self.use_dora, use_rslora=self.use_rslora,
                          **self.extra)


def check_bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except (ImportError, OSError, RuntimeError) as error:  # not installed, no native library, no usable backend
        raise AdapterError(
            f"lora=qlora needs a usable bitsandbytes backend, and importing it failed ({error}); "
            "install bitsandbytes (`pip install bitsandbytes`) or use lora=lora") from None


def apply_adapter(model, config: AdapterConfig, adapter_path: Optional[str] = None):
    """Wrap ``model`` for training: a new LoRA adapter, an earlier one to continue from, or every weight trainable."""
    if not config.is_peft:
        if adapter_path:
            raise AdapterError("adapter_path continues a LoRA adapter; with lora=full load the weights as model.path")
        model.requires_grad_(True)
        return model
    # peft takes seconds to import (~7 s with its imports): only when an adapter is built or loaded
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if config.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if adapter_path:
        check_adapter_folder(adapter_path, model)
        return PeftModel.from_pretrained(model, adapter_path, is_trainable=True)
    return get_peft_model(model, config.peft_config())


def check_adapter_folder(adapter_path: str, model=None) -> dict:
    """Check a PEFT adapter folder exists and fits ``model``; returns its ``adapter_config.json``."""
    folder = Path(adapter_path)
    config_file = folder / "adapter_config.json"
    if not config_file.exists():
        raise AdapterError(f"adapter_path '{adapter_path}' is not a PEFT adapter folder (no adapter_config.json)")
    adapter = json.loads(config_file.read_text())
    if model is not None:
        full_names = {name for name, _ in model.named_modules()}
        names = {name.rsplit(".", 1)[-1] for name in full_names}
        targets = adapter.get("target_modules") or []
        if isinstance(targets, str):
            targets = [] if targets == "all-linear" else [targets]
        # PEFT saves "all-linear" expanded to full module paths ("model.layers.0.mlp.up_proj"), short names otherwise
        missing = [t for t in targets if t not in names and t not in full_names]
        if missing:
            raise AdapterError(f"adapter_path '{adapter_path}' targets modules {missing} that the model "
                               f"'{type(model).__name__}' does not have: it was trained on another base model")
        saved_model = adapter.get("base_model_name_or_path")
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        saved_hidden = _adapter_hidden_size(folder)
        if hidden and saved_hidden and hidden != saved_hidden:
            raise AdapterError(f"adapter_path '{adapter_path}' was trained on a model with hidden size "
                               f"{saved_hidden} ({saved_model}), the configured model has {hidden}")
    return adapter


def _adapter_hidden_size(folder: Path) -> Optional[int]:
    """The input size of the adapter's first q_proj LoRA A matrix, to catch an adapter from another base model."""
    weights = folder / "adapter_model.safetensors"
    if not weights.exists():
        return None
    # safetensors: only when an adapter's weights are read
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            if "q_proj" in key and "lora_A" in key:
                return handle.get_slice(key).get_shape()[1]
    return None


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
