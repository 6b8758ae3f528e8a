"""What inference exchanges: generation and scoring requests, their results, the protocols a generator, scorer or
searcher implements, and a function-backed generator for tests."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable


@dataclass
class GenerationRequest:
    """One prompt to answer. ``key`` identifies it for the caller (e.g. task id, test index, augmentation);
    ``prompt_ids`` are its token ids when the caller already tokenized it (saves tokenizing twice)."""

    prompt: str
    max_new_tokens: int
    key: Any = None
    prompt_ids: Optional[list[int]] = None


@dataclass
class Generation:
    """The answer to one request: its text (without the end-of-turn token), the mean token log-probability, how many
    tokens were generated and whether the model ended its turn (``False``: stopped by ``max_new_tokens``)."""

    text: str
    mean_logprob: float
    n_tokens: int = 0
    finished: bool = True
    logprob: float = float("nan")  # the sum over the tokens: the log-probability of the whole answer


@dataclass
class ScoreRequest:
    """An answer to score under a prompt: the log-probability the model gives ``answer`` (its text, the end-of-turn
    token appended) after ``prompt``, by one forward pass (no generation). Used to rescore candidate grids."""

    prompt: str
    answer: str
    key: Any = None
    prompt_ids: Optional[list[int]] = None


@runtime_checkable
class Generator(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One :class:`Generation` per request, in request order."""


@runtime_checkable
class Scorer(Protocol):
    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """The log-probability of each request's answer (end-of-turn token included), in request order."""


@runtime_checkable
class Searcher(Protocol):
    def search(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        """Every answer of each request above the search's probability threshold, most likely first."""


class FunctionGenerator:
    """A stand-in generator that answers each request with ``answer(request)`` (a string), log-probability 0.

    Used by tests (an oracle that knows the answers, a generator of garbage) and for dry runs of the pipeline.
    """

    def __init__(self, answer: Callable[[GenerationRequest], str], logprob: float = 0.0,
                 scorer: Optional[Callable[[ScoreRequest], float]] = None,
                 searcher: Optional[Callable[[GenerationRequest], Sequence[tuple[str, float]]]] = None):
        self.answer = answer
        self.logprob = logprob
        self.scorer = scorer  # optional: ``score()`` answers with scorer(request)
        self.searcher = searcher  # optional: ``search()`` answers with searcher(request) = [(text, logprob), ...]
        self.calls: list[int] = []  # the size of each generate() call, for tests of the batching
        self.score_calls: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls.append(len(requests))
        return [Generation(self.answer(r), self.logprob, n_tokens=0, finished=True, logprob=self.logprob)
                for r in requests]

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        if self.scorer is None:
            raise TypeError("this FunctionGenerator has no scorer")
        self.score_calls.append(len(requests))
        return [float(self.scorer(r)) for r in requests]

    def search(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        if self.searcher is None:
            raise TypeError("this FunctionGenerator has no searcher")
        self.calls.append(len(requests))
        return [[Generation(text, logprob, finished=True, logprob=logprob) for text, logprob in self.searcher(r)]
                for r in requests]


def finite_or_none(value: float) -> Optional[float]:
    """``value`` for JSON: NaN and infinities become ``None``."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
