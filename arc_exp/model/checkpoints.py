"""Checkpoints a user can inspect: a folder per save with the PEFT adapter (or full weights), tokenizer and config.

``<run dir>/checkpoints/step-000100/`` holds ``adapter_config.json`` + ``adapter_model.safetensors`` for LoRA runs
(``config.json`` + ``model.safetensors`` for full fine-tuning), the tokenizer files, and ``arc_exp.yaml``: the resolved
run config (model, encoder, prompt), which evaluation reads to check it is given a matching model and encoder.
A run with ``model.reduce_vocab=true`` adds ``vocabulary.json``: the kept token ids of the base tokenizer
(:mod:`arc_exp.model.vocabulary`), written by the reduced tokenizer's ``save_pretrained``; evaluation and solving
reduce the base model with it before loading the adapter. The adapter itself never holds embedding rows (they are
the base model's, selected by ``vocabulary.json``).
The Lightning ``last.ckpt`` next to them (optimizer, scheduler, step, RNG) is what ``resume=`` continues from.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import yaml

from arc_exp.model.tokenizer import vocabulary_of

log = logging.getLogger(__name__)

CONFIG_NAME = "arc_exp.yaml"


def save_checkpoint(model, tokenizer, folder: str | Path, config: Optional[dict] = None,
                    state_dict: Optional[dict] = None) -> Path:
    """``state_dict``: the model's whole state gathered from its shards (FSDP), when ``model`` holds only a shard."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = {} if state_dict is None else {"state_dict": state_dict}
    if hasattr(model, "peft_config") and vocabulary_of(tokenizer) is not None:
        # PEFT would save the embedding rows of a reduced vocabulary into the adapter ("resized embeddings"): they are
        # the base model's rows, restored from vocabulary.json
        model.save_pretrained(folder, save_embedding_layers=False, **options)
    else:
        model.save_pretrained(folder, **options)
    tokenizer.save_pretrained(folder)  # a ReducedTokenizer writes vocabulary.json too
    if config is not None:
        (folder / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def read_checkpoint_config(folder: str | Path) -> Optional[dict]:
    path = Path(folder) / CONFIG_NAME
    return yaml.safe_load(path.read_text()) if path.exists() else None


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The saved ``step-NNNNNN`` folders of a run, by step."""
    found = []
    for folder in sorted((Path(run_dir) / "checkpoints").glob("step-*")):
        try:
            found.append((int(folder.name.split("-", 1)[1]), folder))
        except ValueError:
            continue
    return sorted(found)


