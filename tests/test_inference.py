"""Generation: batching by length, shared-prefix reuse, stopping, log-probabilities and sampling, on the tiny model.

The tiny random Llama of conf/model/tiny-random.yaml answers every prompt with newlines at its default init (std
0.02), which would make "batched equals one at a time" trivially true; these tests build it with
``initializer_range=0.2`` so every prompt gets a different, varied token sequence.
"""
import pytest
import torch
from hydra.utils import instantiate

from arc_exp import schemas
from arc_exp.data.selection import select_tasks
from arc_exp.data.sources import load_source
from arc_exp.data.encoders import create_grid_encoder
from arc_exp.inference.generator import HFGenerator, greedy_reference
from arc_exp.inference.decoding import sample_token
from arc_exp.inference.batching import common_prefix_length, length_batches, prefill_groups
from arc_exp.inference.config import InferenceConfig, InferenceConfigError
from arc_exp.inference.requests import FunctionGenerator, Generation, GenerationRequest, Generator, finite_or_none
from arc_exp.model.loader import load_model
from arc_exp.data.prompts import build_messages, render_prompt
from conftest import CONF


@pytest.fixture(scope="module")
def varied_model():
    """tiny-random with initializer_range=0.2: varied greedy tokens instead of a run of newlines."""
    cfg = schemas.load_option(CONF / "model" / "tiny-random.yaml")
    cfg.tiny_random.initializer_range = 0.2
    return load_model(instantiate(cfg), seed=0)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    """Four real ARC prompts: the test inputs of the ARC-1 evaluation tasks whose grids are all at most 4x4."""
    encoder = create_grid_encoder("grid_shape_row_number")
    tasks = select_tasks(load_source("arc1-evaluation"), max_grid_side=4)
    return [render_prompt(build_messages(t, encoder, "output-from-examples-v0", i, include_answer=False), tokenizer)
            for t in tasks for i in range(len(t.test))]


def _ids(tokenizer, prompts):
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def test_common_prefix_and_length_batches():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[7, 8], [7, 8]]) == 2
    assert common_prefix_length([[1], [2]]) == 0
    assert common_prefix_length([]) == 0
    assert length_batches([5, 100, 7, 90, 6], batch_size=2, max_batch_tokens=1000) == [[0, 4], [2, 3], [1]]
    assert length_batches([5, 100, 7, 90, 6], batch_size=4, max_batch_tokens=150) == [[0, 4, 2], [3], [1]]
    assert length_batches([3, 3, 3], batch_size=8, max_batch_tokens=1) == [[0], [1], [2]]  # one prompt always fits


def test_batched_greedy_equals_one_at_a_time(varied_model, tokenizer, prompts):
    limits = [6, 9, 4, 7]  # rows leave the batch at different steps
    requests = [GenerationRequest(p, n) for p, n in zip(prompts, limits)]
    batched = HFGenerator(varied_model, tokenizer, InferenceConfig(batch_size=8)).generate(requests)
    single = HFGenerator(varied_model, tokenizer, InferenceConfig(batch_size=1, reuse_prefix=False)).generate(requests)
    assert [g.n_tokens for g in batched] == limits
    assert [g.finished for g in batched] == [False] * 4
    assert [g.text for g in batched] == [g.text for g in single]
    assert len(set(g.text for g in batched)) == 4  # four different answers: the comparison is not trivial
    for b, s in zip(batched, single):
        assert b.mean_logprob == pytest.approx(s.mean_logprob, abs=1e-4)
    # and both are what plain model.generate gives for each prompt alone
    for prompt, limit, generation in zip(prompts, limits, batched):
        assert tokenizer.decode(greedy_reference(varied_model, tokenizer, prompt, limit)) == generation.text


def test_prefix_reuse_counts_and_keeps_the_answers(varied_model, tokenizer, prompts):
    ids = _ids(tokenizer, prompts)
    lengths = [len(i) for i in ids]
    assert lengths == [438, 344, 590, 590]
    shared = common_prefix_length(ids)
    assert shared == 118  # the ChatML system prompt and the start of the user turn
    requests = [GenerationRequest(p, 3) for p in prompts]
    reuse = HFGenerator(varied_model, tokenizer, InferenceConfig(batch_size=4))
    plain = HFGenerator(varied_model, tokenizer, InferenceConfig(batch_size=4, reuse_prefix=False))
    assert [g.text for g in reuse.generate(requests)] == [g.text for g in plain.generate(requests)]
    assert reuse.stats.prompt_tokens == plain.stats.prompt_tokens == sum(lengths)
    assert reuse.stats.reused_prefix_tokens == 4 * shared
    assert reuse.stats.prefix_build_tokens == shared
    assert reuse.stats.prefill_tokens_saved == 3 * shared
    # prefill groups [344], [438], [590, 590]: no padding; their caches are joined for decoding
    assert prefill_groups(lengths, 0.05) == [[1], [0], [2, 3]]
    assert reuse.stats.prefill_tokens == sum(lengths) - 4 * shared + shared
    assert plain.stats.prefill_tokens == sum(lengths)
    assert plain.stats.padding_tokens == reuse.stats.padding_tokens == 0
    assert (reuse.stats.batches, reuse.stats.decode_steps) == (1, 3)
    # a second call reuses the cached prefix without building it again
    reuse.generate(requests[:2])
    assert reuse.stats.prefix_build_tokens == shared
    assert reuse.stats.reused_prefix_tokens == 6 * shared


def test_one_padded_prefill_when_lengths_are_close(varied_model, tokenizer, prompts):
    """With a padding allowance, prompts of 344 and 438 tokens share one prefill pass (94 pads)."""
    requests = [GenerationRequest(prompts[0], 4), GenerationRequest(prompts[1], 4)]
    padded = HFGenerator(varied_model, tokenizer, InferenceConfig(max_prefill_padding=0.2, reuse_prefix=False))
    apart = HFGenerator(varied_model, tokenizer, InferenceConfig(max_prefill_padding=0.0, reuse_prefix=False))
    assert [g.text for g in padded.generate(requests)] == [g.text for g in apart.generate(requests)]
    assert (padded.stats.prefill_tokens, padded.stats.padding_tokens) == (2 * 438, 438 - 344)
    assert (apart.stats.prefill_tokens, apart.stats.padding_tokens) == (344 + 438, 0)
    assert prefill_groups([438, 344], 0.2) == [[1, 0]]  # 94 / 876 = 11% padding
    assert prefill_groups([438, 344], 0.05) == [[1], [0]]


def test_stops_at_the_end_token_and_drops_it(varied_model, tokenizer, prompts):
    generator = HFGenerator(varied_model, tokenizer, InferenceConfig(batch_size=4))
    free = generator.generate([GenerationRequest(prompts[0], 8)])[0]
    tokens = tokenizer(free.text, add_special_tokens=False)["input_ids"]
    generator.stop_ids = {tokens[2]}  # pretend the third generated token ends the turn
    stopped = generator.generate([GenerationRequest(prompts[0], 8), GenerationRequest(prompts[1], 5)])
    first_stop = tokens.index(tokens[2])
    assert stopped[0].finished is True
    assert stopped[0].n_tokens == first_stop + 1  # the end token counts in n_tokens and the log-probability
    assert stopped[0].text == tokenizer.decode(tokens[:first_stop])


def test_mean_logprob_is_the_models_token_logprob(varied_model, tokenizer, prompts):
    generation = HFGenerator(varied_model, tokenizer, InferenceConfig()).generate([GenerationRequest(prompts[0], 5)])[0]
    prompt_ids = tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    answer_ids = greedy_reference(varied_model, tokenizer, prompts[0], 5)
    with torch.inference_mode():
        logits = varied_model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0]
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
    expected = logprobs[torch.arange(5), torch.tensor(answer_ids)].mean().item()
    assert generation.mean_logprob == pytest.approx(expected, abs=1e-4)


def test_sampling_is_seeded_and_tiny_top_p_is_greedy(varied_model, tokenizer, prompts):
    requests = [GenerationRequest(prompts[0], 6)]
    sample = lambda seed, top_p=1.0: [g.text for g in HFGenerator(  # noqa: E731
        varied_model, tokenizer, InferenceConfig(sampler="sampling", temperature=1.0, top_p=top_p, seed=seed)
    ).generate(requests)]
    greedy = [g.text for g in HFGenerator(varied_model, tokenizer, InferenceConfig()).generate(requests)]
    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    assert sample(1) != greedy
    assert sample(3, top_p=1e-6) == greedy  # the nucleus keeps only the most likely token


def test_sample_token_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1, 0.0], [0.1, 0.1, 0.1, 0.7]]))
    rng = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_token(logits, 1.0, 0.8, rng) for _ in range(200)])
    assert set(draws[:, 0].tolist()) == {0, 1}  # 0.6 + 0.3 reaches 0.8: token 2 is outside the nucleus
    assert torch.equal(sample_token(logits, 1.0, 0.5, rng), torch.tensor([0, 3]))  # the top token alone
    hot = torch.stack([sample_token(logits, 100.0, 1.0, rng) for _ in range(200)])
    assert set(hot[:, 0].tolist()) == {0, 1, 2}  # a high temperature flattens; probability 0 stays 0


def test_function_generator_is_a_generator():
    generator = FunctionGenerator(lambda r: r.prompt.upper(), logprob=-0.5)
    assert isinstance(generator, Generator)
    out = generator.generate([GenerationRequest("ab", 4), GenerationRequest("c", 4)])
    assert out == [Generation("AB", -0.5, 0, True, -0.5), Generation("C", -0.5, 0, True, -0.5)]
    assert generator.calls == [2]


def test_sampling_at_temperature_zero_is_greedy():
    """The seeds' temperature table starts at 0.0: the most likely token, with no sampling."""
    config = InferenceConfig(sampler="sampling", temperature=0.0)
    assert config.sampler == "greedy" and not config.do_sample
    assert InferenceConfig(sampler="sampling", temperature=0.1).sampler == "sampling"


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "inference.batch_size must be an integer >= 1, got 0"),
    ({"max_new_tokens": 0}, "inference.max_new_tokens must be an integer >= 1 or null, got 0"),
    ({"temperature": -1.0}, "inference.temperature must be >= 0 (0.0 with sampling = greedy), got -1.0"),
    ({"top_p": 1.5}, "inference.top_p must be in (0, 1], got 1.5"),
    ({"threads": 0}, "inference.threads must be an integer >= 1 or null, got 0"),
    ({"max_prefill_padding": 1.0}, "inference.max_prefill_padding must be in [0, 1), got 1.0"),
    ({"backend": "tgi"}, "inference.backend: unknown value 'tgi'; use one of hf"),
    ({"backend": "vllm"}, "inference.backend: unknown value 'vllm'; use one of hf"),  # not implemented: no option
    ({"sampler": "beam"}, "inference.sampler: unknown value 'beam'; use one of greedy, sampling, dfs"),
    ({"selection": "best"}, "inference.selection: unknown value 'best'; use one of vote, poe"),
    ({"poe_reduce": "max"}, "inference.poe_reduce: unknown value 'max'; use one of sum, mean"),
    ({"dfs_threshold": 1.0}, "inference.dfs_threshold must be a probability in (0, 1), got 1.0"),
    ({"dfs_max_nodes": 0}, "inference.dfs_max_nodes must be an integer >= 1, got 0"),
    ({"poe_max_candidates": 0}, "inference.poe_max_candidates must be an integer >= 1, got 0"),
])
def test_bad_inference_settings(kwargs, message):
    with pytest.raises(InferenceConfigError) as error:
        InferenceConfig(**kwargs)
    assert str(error.value) == message


def test_inference_configs_build():
    greedy = instantiate(schemas.load_option(CONF / "inference" / "greedy.yaml"))
    assert greedy == InferenceConfig()
    assert (finite_or_none(float("nan")), finite_or_none(-1.5)) == (None, -1.5)
