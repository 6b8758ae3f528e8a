"""Generation: prompts in, answer texts out, each with the mean log-probability of its tokens.

A :class:`Generator` turns :class:`GenerationRequest` objects into :class:`Generation` objects. The evaluation
pipeline only knows this protocol, so tests plug in a stand-in (:class:`FunctionGenerator`) and other backends can
be added beside :class:`HFGenerator`::

    >>> echo = FunctionGenerator(lambda request: "```grid shape: 1x1\\n1 7\\n```")
    >>> echo.generate([GenerationRequest("<|im_start|>user ...", max_new_tokens=16)])[0].text
    '```grid shape: 1x1\\n1 7\\n```'

:class:`HFGenerator` runs a Hugging Face causal LM on CPU or GPU with its own decoding loop, because plain
``model.generate`` on left-padded prompts wastes most of its time on padding in the prefill:

- requests are sorted by prompt length and cut into batches of ``batch_size``; within a batch, prompts of too
  different lengths are prefilled separately (padding costs full compute) and joined for decoding;
- the longest token prefix shared by a batch (at least the system prompt, which every ARC prompt starts with) is run
  through the model once and its key/value cache copied to each row; such prefixes are kept and reused by later
  batches that share them (``reuse_prefix``);
- rows that finished (end of turn or their own ``max_new_tokens``) leave the batch, so one long answer does not make
  the others pay for its decoding steps;
- the prompt's logits are computed for the last position only (the LM head over 49k tokens is costly).

Besides ``generate``, :class:`HFGenerator` can ``score`` given answers (their log-probability after a prompt, one
forward pass, for product-of-experts selection) and ``search`` every answer above a probability threshold
(:func:`depth_first_search`, for ``sampler=dfs``); both reuse a prompt's key/value cache for all its answers.

``mean_logprob`` is the mean over the generated tokens (the end-of-turn token included) of their log-probability
under the model's own distribution (temperature 1, no top-p), whatever the sampling settings: it measures the model's
confidence and is comparable between greedy and sampling runs. :attr:`HFGenerator.stats` counts the prefill work.
"""
from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
SAMPLERS = ("greedy", "sampling", "dfs")
SELECTIONS = ("vote", "poe")
POE_REDUCTIONS = ("sum", "mean")


class InferenceConfigError(ValueError):
    """An ``inference.*`` setting that cannot be used; the message names the key."""


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


@dataclass
class InferenceConfig:
    """How to generate (``conf/inference/*.yaml``).

    - ``sampler``: ``greedy`` (the most likely token), ``sampling`` (at ``temperature`` from the ``top_p`` nucleus,
      seeded with ``seed``) or ``dfs`` (every answer whose probability stays above ``dfs_threshold``, found depth
      first with the key/value cache reused along the path, at most ``dfs_max_nodes`` forward steps per prompt:
      :func:`depth_first_search`);
    - ``selection``: how a test input's candidate grids become its two attempts: ``vote`` (the seeds' count, then
      mean log-probability) or ``poe`` (product of experts: every candidate scored under every augmented view,
      ranked by the ``poe_reduce`` = ``sum`` or ``mean`` of its log-probabilities over the views; at most
      ``poe_max_candidates`` candidates, the most voted, are scored). ``score_batch_tokens`` caps rows x answer
      tokens of one scoring pass (its logits hold that many x vocabulary floats);
    - ``batch_size``: prompts decoded together; ``max_batch_tokens`` caps ``batch_size x longest prompt`` so long
      prompts come in smaller batches (prefill memory grows with it);
    - ``max_new_tokens``: a hard cap on answer tokens; ``null`` = the tokens of a 30x30 grid in the chosen encoder
      (evaluation bounds each prompt further from the sizes of its grids);
    - ``reuse_prefix``: compute the key/value cache of a shared prompt prefix once; ``min_prefix_tokens`` is the
      shortest new prefix worth caching;
    - ``max_prefill_padding``: prompts of a batch are prefilled together only while padding stays within this share
      of the tokens; longer or shorter ones get their own prefill and join the batch for decoding;
    - ``threads``: torch CPU threads while generating (``null`` = torch's default, one per core). On a CPU shared
      with other jobs, 1 thread can be several times faster than 2 that wait for each other;
    - ``backend``: ``hf`` (transformers, CPU or GPU); ``vllm`` is reserved for GPU machines and not built in.
    """

    backend: str = "hf"
    sampler: str = "greedy"
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 16
    max_batch_tokens: int = 32768
    max_new_tokens: Optional[int] = None
    reuse_prefix: bool = True
    min_prefix_tokens: int = 16
    max_prefill_padding: float = 0.05
    threads: Optional[int] = None
    seed: int = 0
    dfs_threshold: float = 0.1
    dfs_max_nodes: int = 4096
    selection: str = "vote"
    poe_reduce: str = "sum"
    poe_max_candidates: int = 8
    score_batch_tokens: int = 2048

    def __post_init__(self) -> None:
        for key, allowed in (("backend", BACKENDS), ("sampler", SAMPLERS), ("selection", SELECTIONS),
                             ("poe_reduce", POE_REDUCTIONS)):
            if getattr(self, key) not in allowed:
                raise InferenceConfigError(f"inference.{key}: unknown value '{getattr(self, key)}'; use one of "
                                           f"{', '.join(allowed)}")
        if isinstance(self.dfs_threshold, bool) or not 0 < self.dfs_threshold < 1:
            raise InferenceConfigError(f"inference.dfs_threshold must be a probability in (0, 1), got "
                                       f"{self.dfs_threshold!r}")
        for key in ("batch_size", "max_batch_tokens", "min_prefix_tokens", "max_new_tokens", "threads",
                    "dfs_max_nodes", "poe_max_candidates", "score_batch_tokens"):
            value = getattr(self, key)
            optional = key in ("max_new_tokens", "threads")
            if (value is not None or not optional) and (isinstance(value, bool) or not isinstance(value, int)
                                                        or value < 1):
                raise InferenceConfigError(f"inference.{key} must be an integer >= 1{' or null' if optional else ''}"
                                           f", got {value!r}")
        if not self.temperature > 0:
            raise InferenceConfigError(f"inference.temperature must be > 0, got {self.temperature!r}")
        if isinstance(self.max_prefill_padding, bool) or not 0 <= self.max_prefill_padding < 1:
            raise InferenceConfigError(f"inference.max_prefill_padding must be in [0, 1), got "
                                       f"{self.max_prefill_padding!r}")
        if not 0 < self.top_p <= 1:
            raise InferenceConfigError(f"inference.top_p must be in (0, 1], got {self.top_p!r}")

    @property
    def do_sample(self) -> bool:
        """Sampling: a repeated prompt gives a new answer (greedy and DFS answers are fixed by the prompt)."""
        return self.sampler == "sampling"


def create_generator(config: InferenceConfig, model, tokenizer) -> "HFGenerator":
    """The generator of ``config.backend`` for ``model``."""
    if config.backend == "vllm":
        raise InferenceConfigError("inference.backend=vllm is not available here: it needs a GPU machine with the "
                                   "vllm package and a merged model folder; use inference.backend=hf")
    return HFGenerator(model, tokenizer, config)


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


@dataclass
class _Prefix:
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


def _score_batches(widths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped (by width) so that rows x widest row stays within ``max_tokens`` (one row at least)."""
    return length_batches(widths, batch_size=max(1, max_tokens), max_batch_tokens=max_tokens)


class HFGenerator:
    """Batched greedy or sampled generation with a Hugging Face causal LM (see the module docstring).

    >>> generator = HFGenerator(model, tokenizer, InferenceConfig(batch_size=16))        # doctest: +SKIP
    >>> generator.generate([GenerationRequest(prompt, max_new_tokens=200)])[0].text   # doctest: +SKIP
    '```grid shape: 3x3\\n1 000\\n2 010\\n3 000\\n```'
    """

    max_cached_prefixes = 4

    def __init__(self, model, tokenizer, config: Optional[InferenceConfig] = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or InferenceConfig()
        self.stats = GenerationStats()
        self.stop_ids = _stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.device = next(model.parameters()).device
        self._prefixes: "OrderedDict[tuple[int, ...], _Prefix]" = OrderedDict()
        self._rng = torch.Generator(device="cpu").manual_seed(self.config.seed)

    # -- public -------------------------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        start = time.perf_counter()
        prompt_ids = [list(r.prompt_ids) if r.prompt_ids is not None else self.encode(r.prompt) for r in requests]
        limits = [int(r.max_new_tokens) for r in requests]
        for request, limit in zip(requests, limits):
            if limit < 1:
                raise ValueError(f"max_new_tokens must be >= 1, got {limit} for request {request.key!r}")
        results: list[Optional[Generation]] = [None] * len(requests)
        batches = length_batches([len(p) for p in prompt_ids], self.config.batch_size, self.config.max_batch_tokens)
        with torch.inference_mode(), _torch_threads(self.config.threads):
            for batch in batches:
                outputs = self._generate_batch([prompt_ids[i] for i in batch], [limits[i] for i in batch])
                for index, (tokens, logprobs, finished) in zip(batch, outputs):
                    answer = tokens[:-1] if finished else tokens  # drop the end-of-turn token
                    text = self.tokenizer.decode(answer, skip_special_tokens=True)
                    total = sum(logprobs)
                    mean = total / len(logprobs) if logprobs else float("nan")
                    results[index] = Generation(text, mean, len(tokens), finished, total)
        self.stats.seconds += time.perf_counter() - start
        return results  # type: ignore[return-value]

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids exactly as training tokenizes the prompt segment (no extra special tokens)."""
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    @property
    def end_of_turn_id(self) -> int:
        """The token that ends an answer in training (the tokenizer's end-of-sequence token, e.g. ``<|im_end|>``)."""
        eos = self.tokenizer.eos_token_id
        return eos if eos in self.stop_ids else min(self.stop_ids)

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """The log-probability of each answer (its tokens, then the end-of-turn token) after its prompt.

        Requests are grouped by prompt: the prompt (less its last token) runs once, through a cached shared prefix
        when there is one, and its key/value cache serves all the answers of that prompt, scored in batches of at
        most ``score_batch_tokens`` rows x tokens by one forward pass each.
        """
        start = time.perf_counter()
        groups: "OrderedDict[tuple[int, ...], list[int]]" = OrderedDict()
        answers: list[list[int]] = []
        for index, request in enumerate(requests):
            prompt = tuple(request.prompt_ids) if request.prompt_ids is not None else tuple(self.encode(request.prompt))
            if not prompt:
                raise ValueError(f"score request {request.key!r}: empty prompt")
            groups.setdefault(prompt, []).append(index)
            answers.append(self.encode(request.answer) + [self.end_of_turn_id])
        scores: list[float] = [float("nan")] * len(requests)
        with torch.inference_mode(), _torch_threads(self.config.threads):
            if self.config.reuse_prefix and len(groups) > 1:
                self._prefix_for([list(prompt) for prompt in groups])  # cache what the prompts share, once
            for prompt, members in groups.items():
                for index, value in zip(members, self._score_prompt(list(prompt), [answers[i] for i in members])):
                    scores[index] = value
        self.stats.scored_answers += len(requests)
        self.stats.score_seconds += time.perf_counter() - start
        self.stats.seconds += time.perf_counter() - start
        return scores

    def search(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        """Every answer of each request whose probability is at least ``dfs_threshold``, most likely first, found by
        :func:`depth_first_search` over this model's next-token distributions (temperature 1)."""
        start = time.perf_counter()
        prompts = [list(r.prompt_ids) if r.prompt_ids is not None else self.encode(r.prompt) for r in requests]
        for request in requests:
            if int(request.max_new_tokens) < 1:
                raise ValueError(f"max_new_tokens must be >= 1, got {request.max_new_tokens} for request "
                                 f"{request.key!r}")
        results = []
        with torch.inference_mode(), _torch_threads(self.config.threads):
            if self.config.reuse_prefix and len(prompts) > 1:
                self._prefix_for(prompts)  # cache what the prompts share, once
            for request, ids in zip(requests, prompts):
                results.append(self._search_one(ids, int(request.max_new_tokens), request.key))
        self.stats.seconds += time.perf_counter() - start
        return results

    # -- one batch ----------------------------------------------------------------------------------------------------

    def _generate_batch(self, prompts: list[list[int]], limits: list[int]):
        """Prefill (reusing a cached prefix when possible), then decode all rows together until each stops.

        Rows whose lengths differ too much for one padded forward pass are prefilled in separate groups (on CPU a
        prompt alone runs about as fast as in a batch, while padding costs full compute) and their caches are joined,
        left-padded, for the batched decoding.
        """
        rows = len(prompts)
        self.stats.prompts += rows
        self.stats.batches += 1
        self.stats.prompt_tokens += sum(len(p) for p in prompts)

        prefix = self._prefix_for(prompts) if self.config.reuse_prefix else None
        start = len(prefix.tokens) if prefix else 0
        self.stats.reused_prefix_tokens += rows * start
        suffixes = [p[start:] for p in prompts]
        groups = prefill_groups([len(s) for s in suffixes], self.config.max_prefill_padding)
        order = [row for group in groups for row in group]
        reserve = max(len(p) for p in prompts) + max(limits)

        began = time.perf_counter()
        if len(groups) == 1:
            logits, cache, mask = self._prefill(prefix, [suffixes[row] for row in order], reserve)
        else:
            parts = [self._prefill(prefix, [suffixes[row] for row in group], 0) for group in groups]
            logits, cache, mask = _join_prefills(parts, reserve)
        decoding = time.perf_counter()
        self.stats.prefill_seconds += decoding - began
        outputs = self._decode(logits, cache, mask, mask.sum(-1), [limits[row] for row in order])
        self.stats.decode_seconds += time.perf_counter() - decoding
        by_row = [None] * rows
        for row, output in zip(order, outputs):
            by_row[row] = output
        return by_row

    def _prefill(self, prefix: Optional[_Prefix], suffixes: list[list[int]], reserve: int):
        """Run the suffixes after a copy of the prefix cache: last-position logits, the cache and the attention mask.

        Suffixes are left-padded: pads sit between prefix and suffix, masked, and positions skip them.
        """
        rows, start = len(suffixes), len(prefix.tokens) if prefix else 0
        width = max(len(s) for s in suffixes)
        cache = self._new_cache(prefix, rows, reserve)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, start + width), dtype=torch.long)
        mask[:, :start] = 1
        for row, suffix in enumerate(suffixes):
            input_ids[row, width - len(suffix):] = torch.tensor(suffix, dtype=torch.long)
            mask[row, start + width - len(suffix):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self.stats.prefill_tokens += rows * width
        self.stats.padding_tokens += rows * width - sum(len(s) for s in suffixes)
        return self._forward(input_ids, mask, positions[:, start:], cache), cache, mask

    def _decode(self, logits, cache, mask, next_position, limits):
        rows = len(limits)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        logprobs: list[list[float]] = [[] for _ in range(rows)]
        finished = [False] * rows
        active = list(range(rows))  # original row of each batch row still decoding
        while True:
            chosen, chosen_logprob = self._choose(logits)
            self.stats.decode_steps += 1
            keep = []
            for batch_row, row in enumerate(active):
                token = int(chosen[batch_row])
                tokens[row].append(token)
                logprobs[row].append(float(chosen_logprob[batch_row]))
                if token in self.stop_ids:
                    finished[row] = True
                elif len(tokens[row]) < limits[row]:
                    keep.append(batch_row)
            self.stats.generated_tokens += len(active)
            if not keep:
                break
            if len(keep) < len(active):  # drop finished rows from the cache and the batch
                index = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(index.to(self.device))
                chosen, mask, next_position = chosen[index], mask[index], next_position[index]
                active = [active[i] for i in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
            logits = self._forward(chosen[:, None], mask, next_position[:, None], cache)
            next_position = next_position + 1
        return [(tokens[r], logprobs[r], finished[r]) for r in range(rows)]

    def _choose(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next token of each row and its log-probability under the model (temperature 1)."""
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        if self.config.do_sample:
            chosen = sample_token(logits, self.config.temperature, self.config.top_p, self._rng)
        else:
            chosen = logprobs.argmax(dim=-1)
        return chosen, logprobs.gather(-1, chosen[:, None]).squeeze(-1)

    def _forward(self, input_ids, mask, positions, cache) -> torch.Tensor:
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=positions.to(self.device), cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].cpu()

    # -- scoring and search -------------------------------------------------------------------------------------------

    def _prompt_cache(self, prompt: list[int], reserve: int) -> tuple[_Prefix, int]:
        """The key/value cache (batch of 1) of ``prompt`` without its last token, built on a cached shared prefix
        when one fits; returns it as a :class:`_Prefix` and the number of tokens it holds."""
        self.stats.prompts += 1
        self.stats.prompt_tokens += len(prompt)
        prefix = self._prefix_for([prompt]) if self.config.reuse_prefix else None
        have = len(prefix.tokens) if prefix else 0
        self.stats.reused_prefix_tokens += have
        body = prompt[have:-1]
        cache = self._new_cache(prefix, 1, reserve)
        if body:
            began = time.perf_counter()
            mask = torch.ones((1, len(prompt) - 1), dtype=torch.long)
            self._forward(torch.tensor([body], dtype=torch.long), mask,
                          torch.arange(have, len(prompt) - 1)[None, :], cache)
            self.stats.prefill_seconds += time.perf_counter() - began
            self.stats.prefill_tokens += len(body)
        layers = [(layer.keys, layer.values) for layer in cache.layers] if cache.layers else []
        return _Prefix(tuple(prompt[:-1]), layers), len(prompt) - 1

    def _score_prompt(self, prompt: list[int], answers: list[list[int]]) -> list[float]:
        cached, length = self._prompt_cache(prompt, reserve=0)
        scores: list[float] = [float("nan")] * len(answers)
        for rows in _score_batches([len(a) + 1 for a in answers], self.config.score_batch_tokens):
            width = max(len(answers[i]) for i in rows) + 1
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), length + width), dtype=torch.long)
            mask[:, :length] = 1
            for row, index in enumerate(rows):
                tokens = [prompt[-1]] + answers[index]  # the last prompt token predicts the first answer token
                input_ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                mask[row, length:length + len(tokens)] = 1
            cache = self._new_cache(cached if cached.layers else None, len(rows), length + width)
            positions = torch.arange(length, length + width)[None, :].expand(len(rows), -1)
            out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), cache=cache, use_cache=True)
            logprobs = torch.log_softmax(out.logits.float().cpu(), dim=-1)
            for row, index in enumerate(rows):
                n = len(answers[index])
                targets = torch.tensor(answers[index], dtype=torch.long)
                scores[index] = float(logprobs[row, :n].gather(-1, targets[:, None]).sum())
            self.stats.score_tokens += len(rows) * width
        return scores

    def _search_one(self, prompt: list[int], limit: int, key: Any) -> list[Generation]:
        cached, length = self._prompt_cache(prompt, reserve=0)
        cache = self._new_cache(cached if cached.layers else None, 1, length + 1 + limit)
        began = time.perf_counter()

        def step(path: Sequence[int]) -> torch.Tensor:
            """Log-probabilities after ``path`` (the prompt's last token, then the answer tokens so far): the cache
            is cut back to the path's parent and the path's last token runs."""
            for layer in cache.layers:
                layer.truncate(length + len(path) - 1)
            mask = torch.ones((1, length + len(path)), dtype=torch.long)
            position = torch.tensor([[length + len(path) - 1]])
            logits = self._forward(torch.tensor([[path[-1]]], dtype=torch.long), mask, position, cache)
            return torch.log_softmax(logits[0].float(), dim=-1)

        found, expanded, exhausted = depth_first_search(
            lambda answer: step([prompt[-1], *answer]), self.config.dfs_threshold, self.stop_ids, limit,
            self.config.dfs_max_nodes)
        self.stats.decode_seconds += time.perf_counter() - began
        self.stats.dfs_nodes += expanded
        self.stats.generated_tokens += expanded
        if exhausted:
            self.stats.dfs_exhausted += 1
            log.warning("request %r: the depth-first search stopped at inference.dfs_max_nodes=%d forward steps "
                        "with %d answer(s) found", key, self.config.dfs_max_nodes, len(found))
        generations = []
        for tokens, logprob in found:
            text = self.tokenizer.decode(tokens[:-1], skip_special_tokens=True)
            generations.append(Generation(text, logprob / len(tokens), len(tokens), True, logprob))
        return generations

    # -- shared prefixes ----------------------------------------------------------------------------------------------

    def _prefix_for(self, prompts: list[list[int]]) -> Optional[_Prefix]:
        """The longest usable cached prefix of every prompt, extended (and cached) when the batch shares more.

        A prefix never covers a whole prompt: the last prompt token must run to give the first logits.
        """
        limit = min(len(p) for p in prompts) - 1
        best = None
        for cached in self._prefixes.values():
            n = len(cached.tokens)
            if n <= limit and (best is None or n > len(best.tokens)) and \
                    all(tuple(p[:n]) == cached.tokens for p in prompts):
                best = cached
        have = len(best.tokens) if best else 0
        shared = min(common_prefix_length(prompts), limit)
        if len(prompts) > 1 and shared - have >= self.config.min_prefix_tokens:
            best = self._build_prefix(tuple(prompts[0][:shared]), best)
        if best is not None:
            self._prefixes.move_to_end(best.tokens)
        return best

    def _build_prefix(self, tokens: tuple[int, ...], start: Optional[_Prefix]) -> _Prefix:
        have = len(start.tokens) if start else 0
        cache = self._new_cache(start, 1, reserve=len(tokens))
        new = torch.tensor([tokens[have:]], dtype=torch.long)
        mask = torch.ones((1, len(tokens)), dtype=torch.long)
        positions = torch.arange(have, len(tokens))[None, :]
        began = time.perf_counter()
        self._forward(new, mask, positions, cache)
        self.stats.prefill_seconds += time.perf_counter() - began
        self.stats.prefix_build_tokens += len(tokens) - have
        self.stats.prefill_tokens += len(tokens) - have
        prefix = _Prefix(tokens, [(layer.keys, layer.values) for layer in cache.layers])
        self._prefixes[tokens] = prefix
        while len(self._prefixes) > self.max_cached_prefixes:
            self._prefixes.popitem(last=False)
        return prefix

    def _new_cache(self, prefix: Optional[_Prefix], rows: int, reserve: int):
        """A key/value cache for ``rows`` sequences of up to ``reserve`` tokens, holding a copy of ``prefix``."""
        cache = _GrowingCache(reserve)
        if prefix is not None:
            for index, (keys, values) in enumerate(prefix.layers):
                cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), index)
        return cache


def _join_prefills(parts, reserve: int):
    """One batch from several prefilled groups: logits stacked, caches and masks left-padded to the longest."""
    total = max(mask.shape[1] for _, _, mask in parts)
    cache = _GrowingCache(reserve)
    for index in range(len(parts[0][1].layers)):
        keys, values = ([torch.nn.functional.pad(getattr(part.layers[index], name), (0, 0, total - mask.shape[1], 0))
                         for _, part, mask in parts] for name in ("keys", "values"))
        cache.update(torch.cat(keys), torch.cat(values), index)
    mask = torch.cat([torch.nn.functional.pad(mask, (total - mask.shape[1], 0)) for _, _, mask in parts])
    return torch.cat([logits for logits, _, _ in parts]), cache, mask


class _GrowingLayer(DynamicLayer):
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


class _GrowingCache(DynamicCache):
    """A ``DynamicCache`` of :class:`_GrowingLayer` layers (one per model layer, created on first use)."""

    def __init__(self, reserve: int):
        Cache.__init__(self, layer_class_to_replicate=lambda: _GrowingLayer(reserve))


@contextmanager
def _torch_threads(threads: Optional[int]):
    """Run with ``threads`` torch CPU threads, then restore the previous number (``None``: leave it)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


def _stop_token_ids(model, tokenizer) -> set[int]:
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


def greedy_reference(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy token ids for one prompt with plain ``model.generate`` (no batching, no prefix): a reference for tests
    and the benchmark's one-at-a-time baseline."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], dtype=torch.long)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=sorted(_stop_token_ids(model, tokenizer)))
    return out[0, ids.shape[1]:].tolist()


def finite_or_none(value: float) -> Optional[float]:
    """``value`` for JSON: NaN and infinities become ``None``."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
