"""Batching for generation and scoring: requests grouped by shared prompt prefix and by length so padding and
recomputation stay small."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class Prefix:
    """The key/value cache (batch of 1) of a token prefix: one (keys, values) pair per layer."""

    tokens: tuple[int, ...]
    layers: list[tuple[torch.Tensor, torch.Tensor]] = field(repr=False)


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """The number of leading tokens all ``sequences`` share.

    >>> common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
    2
    """
    if not sequences:
        return 0
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for other in sequences[1:]:
        n = 0
        while n < length and other[n] == first[n]:
            n += 1
        length = n
    return length


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: sorted by length, at most ``batch_size`` per batch and at
    most ``max_batch_tokens`` = rows x longest length (a single longer prompt still gets its own batch).

    >>> length_batches([5, 100, 7, 90, 6], batch_size=2, max_batch_tokens=1000)
    [[0, 4], [2, 3], [1]]
    >>> length_batches([5, 100, 7, 90, 6], batch_size=4, max_batch_tokens=150)
    [[0, 4, 2], [3], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current and len(current) < batch_size and (len(current) + 1) * lengths[index] <= max_batch_tokens:
            current.append(index)
        else:
            batches.append([index])
    return batches


def prefill_groups(lengths: Sequence[int], max_padding: float) -> list[list[int]]:
    """Indices sorted by length and cut into groups prefilled together: a group takes the next longer prompt while
    its padding share, (rows x longest - tokens) / (rows x longest), stays at most ``max_padding``.

    >>> prefill_groups([100, 98, 60, 61, 99], max_padding=0.05)
    [[2, 3], [1, 4, 0]]
    >>> prefill_groups([100, 98, 60], max_padding=0.5)
    [[2, 1, 0]]
    """
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        if groups:
            rows, longest = len(groups[-1]) + 1, lengths[index]
            padding = rows * longest - sum(lengths[i] for i in groups[-1]) - longest
            if padding <= max_padding * rows * longest:
                groups[-1].append(index)
                continue
        groups.append([index])
    return groups


def score_batches(widths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped (by width) so that rows x widest row stays within ``max_tokens`` (one row at least)."""
    return length_batches(widths, batch_size=max(1, max_tokens), max_batch_tokens=max_tokens)
