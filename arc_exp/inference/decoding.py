"""Decoding steps: one token drawn from logits (greedy, temperature, top-p) and the counters of a generator's work."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class GenerationStats:
    """Counters of the work done, to see where time goes.

    ``prompt_tokens`` = the prompts' tokens; ``prefill_tokens`` = the tokens actually run through the model before
    decoding (padding and building shared prefixes included); ``reused_prefix_tokens`` = prompt tokens served from a
    cached prefix instead; ``prefill_tokens_saved`` = reused minus the tokens spent building the prefixes.
    """

    prompts: int = 0
    batches: int = 0
    prompt_tokens: int = 0
    prefill_tokens: int = 0
    padding_tokens: int = 0
    reused_prefix_tokens: int = 0
    prefix_build_tokens: int = 0
    generated_tokens: int = 0
    decode_steps: int = 0
    scored_answers: int = 0  # answers scored (product-of-experts selection)
    score_tokens: int = 0  # tokens run by the scoring passes (padding included)
    dfs_nodes: int = 0  # forward steps of depth-first searches
    dfs_exhausted: int = 0  # searches stopped by their node budget
    score_seconds: float = 0.0
    prefill_seconds: float = 0.0  # prompt (and prefix) forward passes
    decode_seconds: float = 0.0  # one-token steps
    seconds: float = 0.0  # all of generate(), tokenizing and detokenizing included

    @property
    def prefill_tokens_saved(self) -> int:
        return self.reused_prefix_tokens - self.prefix_build_tokens

    def as_dict(self) -> dict[str, float]:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values["prefill_tokens_saved"] = self.prefill_tokens_saved
        return values


def sample_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token id per row of ``logits`` (batch, vocab), sampled at ``temperature`` from the top-p nucleus."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest set of tokens whose mass reaches top_p (the most likely token always stays)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@contextmanager
def torch_threads(threads: Optional[int]):
    """Run with ``threads`` torch CPU threads, then restore the previous number (``None``: leave it)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


def stop_token_ids(model, tokenizer) -> set[int]:
    """The tokens that end an answer: the tokenizer's end-of-sequence token and the model's configured ones."""
    ids = set()
    for value in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError("the tokenizer has no end-of-sequence token; generation would never stop")
    return ids
