"""The key/value cache of batched decoding, grown in place: the one adapter between arc_exp and transformers' cache API.

Why not a public cache class as it is: ``DynamicCache`` concatenates at every decode step (``torch.cat`` took a quarter
of a decode step at batch 8 with SmolLM2-135M on CPU), and ``StaticCache`` preallocates but for a batch size and
length fixed at creation, while here the batch is assembled from prefix groups prefilled apart (:func:`join_prefills`)
and shrinks as answers finish (``batch_select_indices``) or backtracks (DFS ``truncate``). :class:`GrowingCache` keeps
``DynamicCache``'s public interface and only replaces how a layer stores its keys and values; tests/test_inference.py
checks that decoding with it gives the tokens of plain ``generate`` (greedy reference).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Optional

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from arc_exp.inference.batching import Prefix, common_prefix_length
from arc_exp.inference.decoding import GenerationStats


def join_prefills(parts, reserve: int):
    """One batch from several prefilled groups: logits stacked, caches and masks left-padded to the longest."""
    total = max(mask.shape[1] for _, _, mask in parts)
    cache = GrowingCache(reserve)
    for index in range(len(parts[0][1].layers)):
        keys, values = ([torch.nn.functional.pad(getattr(part.layers[index], name), (0, 0, total - mask.shape[1], 0))
                         for _, part, mask in parts] for name in ("keys", "values"))
        cache.update(torch.cat(keys), torch.cat(values), index)
    mask = torch.cat([torch.nn.functional.pad(mask, (total - mask.shape[1], 0)) for _, _, mask in parts])
    return torch.cat([logits for logits, _, _ in parts]), cache, mask


class GrowingLayer(DynamicLayer):
    """A cache layer that writes new keys/values into a buffer with room for ``reserve`` positions instead of
    concatenating: a decode step copies one position, not the whole cache (``torch.cat`` in the stock layer took a
    quarter of a decode step at batch 8 with SmolLM2-135M). ``keys``/``values`` are views of the filled part."""

    def __init__(self, reserve: int = 0):
        super().__init__()
        self.reserve = reserve
        self.buffers: Optional[list[torch.Tensor]] = None
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if self.buffers is None or end > self.buffers[0].shape[-2]:
            capacity = max(end, self.reserve)
            grown = [states.new_empty(*states.shape[:-2], capacity, states.shape[-1])
                     for states in (key_states, value_states)]
            for old, new in zip(self.buffers or (), grown):
                new[..., :self.length, :] = old[..., :self.length, :]
            self.buffers = grown
        self.buffers[0][..., self.length:end, :] = key_states
        self.buffers[1][..., self.length:end, :] = value_states
        self.length = end
        self.keys, self.values = (buffer[..., :end, :] for buffer in self.buffers)
        return self.keys, self.values

    def truncate(self, length: int) -> None:
        """Forget the positions from ``length`` on (the buffer keeps its room)."""
        if self.buffers is not None and length < self.length:
            self.length = length
            self.keys, self.values = (buffer[..., :length, :] for buffer in self.buffers)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.buffers is not None:
            self.buffers = [buffer[indices] for buffer in self.buffers]
            self.keys, self.values = (buffer[..., :self.length, :] for buffer in self.buffers)


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` of :class:`GrowingLayer` layers (one per model layer, created on first use)."""

    def __init__(self, reserve: int):
        Cache.__init__(self, layer_class_to_replicate=lambda: GrowingLayer(reserve))


def new_cache(prefix: Optional[Prefix], rows: int, reserve: int) -> GrowingCache:
    """A key/value cache for ``rows`` sequences of up to ``reserve`` tokens, holding a copy of ``prefix``."""
    cache = GrowingCache(reserve)
    if prefix is not None:
        for index, (keys, values) in enumerate(prefix.layers):
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), index)
    return cache


class PrefixCache:
    """The shared prompt prefixes whose key/value caches a generator keeps (``size`` at most, the least recently used
    dropped first): a batch whose prompts start with one copies its cache instead of running those tokens again.
    ``forward(input_ids, mask, positions, cache)`` runs the model; ``stats`` counts the prefill work."""

    def __init__(self, forward: Callable, stats: GenerationStats, min_tokens: int, size: int = 4):
        self.forward = forward
        self.stats = stats
        self.min_tokens = min_tokens  # the shortest new shared prefix worth caching
        self.size = size
        self.prefixes: OrderedDict[tuple[int, ...], Prefix] = OrderedDict()

    def best_for(self, prompts: list[list[int]]) -> Optional[Prefix]:
        """The longest usable cached prefix of every prompt, extended (and cached) when the batch shares more.

        A prefix never covers a whole prompt: the last prompt token must run to give the first logits.
        """
        limit = min(len(p) for p in prompts) - 1
        best = None
        for cached in self.prefixes.values():
            n = len(cached.tokens)
            if n <= limit and (best is None or n > len(best.tokens)) and \
                    all(tuple(p[:n]) == cached.tokens for p in prompts):
                best = cached
        have = len(best.tokens) if best else 0
        shared = min(common_prefix_length(prompts), limit)
        if len(prompts) > 1 and shared - have >= self.min_tokens:
            best = self.build(tuple(prompts[0][:shared]), best)
        if best is not None:
            self.prefixes.move_to_end(best.tokens)
        return best

    def build(self, tokens: tuple[int, ...], start: Optional[Prefix]) -> Prefix:
        """The cache of ``tokens``, run on from the cached ``start`` (a prefix of them), kept for later batches."""
        have = len(start.tokens) if start else 0
        cache = new_cache(start, 1, reserve=len(tokens))
        new = torch.tensor([tokens[have:]], dtype=torch.long)
        mask = torch.ones((1, len(tokens)), dtype=torch.long)
        positions = torch.arange(have, len(tokens))[None, :]
        began = time.perf_counter()
        self.forward(new, mask, positions, cache)
        self.stats.prefill_seconds += time.perf_counter() - began
        self.stats.prefix_build_tokens += len(tokens) - have
        self.stats.prefill_tokens += len(tokens) - have
        prefix = Prefix(tokens, [(layer.keys, layer.values) for layer in cache.layers])
        self.prefixes[tokens] = prefix
        while len(self.prefixes) > self.size:
            self.prefixes.popitem(last=False)
        return prefix
