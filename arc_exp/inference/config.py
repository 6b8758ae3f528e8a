"""Inference settings (conf/inference/): sampler (greedy, sampling, dfs), temperature, batching, selection; checked when
composed. Settings only (no torch): the config schemas import them; the generator they build is
:func:`arc_exp.inference.generator.create_generator`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


BACKENDS = ("hf",)  # the only one implemented; a new backend is added here with its generator


SAMPLERS = ("greedy", "sampling", "dfs")


SELECTIONS = ("vote", "poe")


POE_REDUCTIONS = ("sum", "mean")


class InferenceConfigError(ValueError):
    """An ``inference.*`` setting that cannot be used; the message names the key."""


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
    - ``backend``: ``hf`` (transformers, CPU or GPU), the only backend implemented.
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
        if self.sampler == "sampling" and self.temperature == 0:
            self.sampler = "greedy"  # the seeds' temperature 0.0: the most likely token (iteration 24's table)
        if not self.temperature >= 0:
            raise InferenceConfigError(f"inference.temperature must be >= 0 (0.0 with sampling = greedy), got "
                                       f"{self.temperature!r}")
        if isinstance(self.max_prefill_padding, bool) or not 0 <= self.max_prefill_padding < 1:
            raise InferenceConfigError(f"inference.max_prefill_padding must be in [0, 1), got "
                                       f"{self.max_prefill_padding!r}")
        if not 0 < self.top_p <= 1:
            raise InferenceConfigError(f"inference.top_p must be in (0, 1], got {self.top_p!r}")

    @property
    def do_sample(self) -> bool:
        """Sampling: a repeated prompt gives a new answer (greedy and DFS answers are fixed by the prompt)."""
        return self.sampler == "sampling"
