"""Depth-first search over answers (inference.sampler=dfs): every continuation whose cumulative probability stays above
a threshold, as in the ARC Prize 2024 winners' sampler."""
from __future__ import annotations

import math
from typing import Callable

import torch


def depth_first_search(next_logprobs: Callable[[list[int]], torch.Tensor], threshold: float, stop_ids: set[int],
                       max_tokens: int, max_nodes: int) -> tuple[list[tuple[list[int], float]], int, bool]:
    """Every token sequence ending in a stop token whose probability is at least ``threshold``, most likely first.

    ``next_logprobs(answer)`` gives the log-probabilities of the next token after ``answer`` (the tokens so far, ``[]``
    at the start). The search goes depth first, the more likely token first, and never extends a sequence whose
    probability fell below ``threshold`` (probabilities only shrink along a path, so nothing above the threshold is
    missed). Sequences that reach ``max_tokens`` without a stop token are dropped. Returns ``(found, expanded,
    exhausted)``: the ``(tokens, logprob)`` pairs (stop token included), the ``next_logprobs`` calls made, and whether
    the ``max_nodes`` budget of calls stopped the search early.

    >>> table = {(): [0.6, 0.4, 0.0], (0,): [0.0, 0.5, 0.5], (1,): [0.0, 0.0, 1.0], (0, 1): [0.0, 0.0, 1.0]}
    >>> step = lambda answer: torch.tensor(table[tuple(answer)]).log()
    >>> [(tokens, round(math.exp(logprob), 2)) for tokens, logprob in depth_first_search(step, 0.25, {2}, 5, 99)[0]]
    [([1, 2], 0.4), ([0, 2], 0.3), ([0, 1, 2], 0.3)]
    """
    floor = math.log(threshold)
    found: list[tuple[list[int], float]] = []
    expanded = 0
    stack: list[tuple[list[int], float]] = [([], 0.0)]  # (answer so far, its log-probability)
    while stack:
        answer, logprob = stack.pop()
        if expanded >= max_nodes:
            return sorted(found, key=lambda item: -item[1]), expanded, True
        logprobs = next_logprobs(answer)
        expanded += 1
        totals = logprobs.double() + logprob
        keep = torch.nonzero(totals >= floor).flatten().tolist()
        children = []
        for token in sorted(keep, key=lambda t: (-float(totals[t]), t)):
            total = float(totals[token])
            if token in stop_ids:
                found.append((answer + [token], total))
            elif len(answer) + 1 < max_tokens:
                children.append((answer + [token], total))
        stack.extend(reversed(children))  # the most likely child is searched first
    return sorted(found, key=lambda item: -item[1]), expanded, False
