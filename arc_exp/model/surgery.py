"""Model surgery for the reduced vocabulary: the embedding and output layers cut to the kept rows, special token ids
remapped, and a parameter summary."""
from __future__ import annotations

import logging
from typing import Optional

import torch

from arc_exp.model.vocabulary import ReducedVocabulary, VocabularyError

log = logging.getLogger(__name__)


def reduce_model_vocabulary(model, vocabulary: ReducedVocabulary):
    """Keep only the embedding and output-layer rows of ``vocabulary``'s tokens, in place; returns ``model``.

    The input embedding keeps rows ``kept_ids`` in order, so reduced id ``i`` embeds as original id
    ``kept_ids[i]``; the output layer keeps the same rows (a tied output layer stays tied to the new embedding), so
    the logits of the reduced model are the full model's logits of the kept tokens. ``config.vocab_size`` and the
    special token ids of ``config`` and ``generation_config`` become reduced ids. Apply it to the base model, before a
    PEFT adapter.
    """
    if hasattr(model, "peft_config"):
        raise VocabularyError("reduce the vocabulary of the base model before applying the PEFT adapter")
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    rows = embeddings.weight.shape[0]
    if vocabulary.kept_ids[-1] >= rows:
        raise VocabularyError(f"the model has {rows} embedding rows, the vocabulary keeps token id "
                              f"{vocabulary.kept_ids[-1]} ({vocabulary.where or 'built for ' + vocabulary.base_model})"
                              f": is the model already reduced, or another model?")
    tied = head is not None and head.weight is embeddings.weight
    index = torch.tensor(vocabulary.kept_ids, device=embeddings.weight.device)
    with torch.no_grad():
        old = embeddings.weight
        embeddings.weight = torch.nn.Parameter(old.index_select(0, index).clone(), requires_grad=old.requires_grad)
        if hasattr(embeddings, "num_embeddings"):
            embeddings.num_embeddings = len(vocabulary)
        if getattr(embeddings, "padding_idx", None) is not None:
            embeddings.padding_idx = vocabulary.reduced_id(embeddings.padding_idx)
        if head is not None:
            if tied:
                head.weight = embeddings.weight
            else:
                head.weight = torch.nn.Parameter(head.weight.index_select(0, index.to(head.weight.device)).clone(),
                                                 requires_grad=head.weight.requires_grad)
            if getattr(head, "bias", None) is not None:
                head.bias = torch.nn.Parameter(head.bias.index_select(0, index.to(head.bias.device)).clone(),
                                               requires_grad=head.bias.requires_grad)
            if hasattr(head, "out_features"):
                head.out_features = len(vocabulary)
    for module in (model, getattr(model, "model", None)):
        if module is not None and getattr(module, "vocab_size", None) == rows:
            module.vocab_size = len(vocabulary)
    model.config.vocab_size = len(vocabulary)
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None:
            _map_special_ids(config, vocabulary)
    return model


def _map_special_ids(config, vocabulary: ReducedVocabulary) -> None:
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
        value = getattr(config, name, None)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            mapped = [m for m in (vocabulary.reduced_id(v) for v in value) if m is not None]
            new = mapped if mapped else None
        else:
            new = vocabulary.reduced_id(value)
        if new is None or (isinstance(value, (list, tuple)) and len(new) < len(value)):
            log.warning("%s.%s=%s: token(s) not in the reduced vocabulary, dropped", type(config).__name__, name,
                        value)
        setattr(config, name, new)


def apply_vocabulary(model, vocabulary: Optional[ReducedVocabulary]):
    """``model`` with ``vocabulary``: unchanged when ``vocabulary`` is None or the model already has its size (full
    fine-tuned weights saved by a reduced run), else :func:`reduce_model_vocabulary`."""
    if vocabulary is None or model.get_input_embeddings().weight.shape[0] == len(vocabulary):
        return model
    return reduce_model_vocabulary(model, vocabulary)


def parameter_summary(model) -> dict[str, float]:
    """Parameters (shared tensors counted once) and their memory in MB, of the whole model and of its embedding and
    output layers."""
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    vocab = {id(p): p for module in (embeddings, head) if module is not None for p in module.parameters()}
    every = {id(p): p for p in model.parameters()}

    def total(params) -> tuple[int, float]:
        return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params) / 2 ** 20

    (n, mb), (n_vocab, mb_vocab) = total(every.values()), total(vocab.values())
    return {"parameters": n, "parameters_mb": mb, "vocab_parameters": n_vocab, "vocab_parameters_mb": mb_vocab}
