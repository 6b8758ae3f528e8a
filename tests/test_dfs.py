"""Depth-first candidate search (``inference.sampler=dfs``): exactly the answers above the probability threshold.

On a small stand-in distribution against brute-force enumeration; with the HF model's key/value cache (cut back on
every backtrack) against plain forward passes; in the evaluation pipeline (several candidates per view, a view with
none) and as a config option."""
import itertools
import math
import random

import pytest
import torch
from hydra.utils import instantiate

from arc_exp import schemas
from arc_exp.data.augmentation import Augmentation
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.tasks import Task
from arc_exp.data.encoders import create_grid_encoder
from arc_exp.evaluation.pipeline import evaluate_tasks
from arc_exp.evaluation import EvaluationError
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.inference.generator import HFGenerator
from arc_exp.inference.dfs import depth_first_search
from arc_exp.inference.config import InferenceConfig
from arc_exp.inference.requests import FunctionGenerator, GenerationRequest
from arc_exp.model.loader import load_model
from conftest import CONF, compose_train

STOP = 3  # token 3 ends an answer in the stand-in distribution


def stand_in(seed=0, vocab=4):
    """A fixed random next-token distribution for every prefix (seeded by the prefix): a small language model."""
    def next_logprobs(answer):
        rng = random.Random(f"{seed}:{answer}")
        weights = torch.tensor([rng.random() ** 3 for _ in range(vocab)], dtype=torch.float64)
        return torch.log(weights / weights.sum())
    return next_logprobs


def brute_force(next_logprobs, threshold, max_tokens, vocab=4):
    """Every answer of at most ``max_tokens`` tokens ending in STOP, with its probability, by enumeration."""
    out = {}
    for length in range(1, max_tokens + 1):
        for body in itertools.product([t for t in range(vocab) if t != STOP], repeat=length - 1):
            tokens = list(body) + [STOP]
            logprob = sum(float(next_logprobs(tokens[:i])[tokens[i]]) for i in range(len(tokens)))
            if logprob >= math.log(threshold):
                out[tuple(tokens)] = logprob
    return out


@pytest.mark.parametrize("seed, threshold", [(0, 0.1), (1, 0.05), (2, 0.01), (3, 0.2)])
def test_dfs_finds_exactly_the_answers_above_the_threshold(seed, threshold):
    step = stand_in(seed)
    found, expanded, exhausted = depth_first_search(step, threshold, {STOP}, 6, 10_000)
    expected = brute_force(step, threshold, 6)
    assert {tuple(t): round(l, 9) for t, l in found} == {t: round(l, 9) for t, l in expected.items()}
    assert len(found) >= 2  # not trivially one answer
    assert [l for _, l in found] == sorted((l for _, l in found), reverse=True)  # most likely first
    assert not exhausted and expanded <= 1 + sum(len(t) - 1 for t, _ in found) * 3 + 200


def test_dfs_pinned_stand_in_and_budget():
    step = stand_in(0)
    found, expanded, exhausted = depth_first_search(step, 0.1, {STOP}, 6, 10_000)
    assert [(t, round(math.exp(l), 4)) for t, l in found] == [([2, 1, 3], 0.2872), ([2, 3], 0.1217)]
    assert (expanded, exhausted) == (7, False)
    partial, used, stopped = depth_first_search(step, 0.1, {STOP}, 6, 2)  # a budget of 2 forward steps
    assert ([t for t, _ in partial], used, stopped) == ([[2, 3]], 2, True)
    # answers that need more than max_tokens tokens are dropped
    assert [t for t, _ in depth_first_search(step, 0.1, {STOP}, 2, 10_000)[0]] == [[2, 3]]


@pytest.fixture(scope="module")
def sharp_model():
    """tiny-random with larger weights (initializer_range=0.2, output layer x6): peaked next-token distributions."""
    cfg = schemas.load_option(CONF / "model" / "tiny-random.yaml")
    cfg.tiny_random.initializer_range = 0.2
    model = load_model(instantiate(cfg), seed=0)
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    return model


PROMPT = ("<|im_start|>system\nYou solve puzzles.<|im_end|>\n<|im_start|>user\nhello 1 2 3<|im_end|>\n"
          "<|im_start|>assistant\n")


def test_hf_search_reuses_the_cache_exactly(sharp_model, tokenizer):
    """The cached search (cache cut back on each backtrack) finds what plain full forward passes find. A tenth of
    the vocabulary ends an answer, so answers of several lengths come out."""
    generator = HFGenerator(sharp_model, tokenizer, InferenceConfig(dfs_threshold=0.005, dfs_max_nodes=500))
    generator.stop_ids = set(random.Random(0).sample(range(len(tokenizer)), len(tokenizer) // 10))
    found = generator.search([GenerationRequest(PROMPT, 6)])[0]
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]

    def plain(answer):
        with torch.no_grad():
            return torch.log_softmax(sharp_model(torch.tensor([ids + answer])).logits[0, -1].float(), dim=-1)

    reference, expanded, _ = depth_first_search(plain, 0.005, generator.stop_ids, 6, 500)
    assert [g.n_tokens for g in found] == [len(t) for t, _ in reference] == [1, 3, 1, 6, 3, 6, 4, 5, 2]
    assert [g.logprob for g in found] == pytest.approx([l for _, l in reference], abs=1e-4)
    assert [g.text for g in found] == [tokenizer.decode(t[:-1], skip_special_tokens=True) for t, _ in reference]
    assert all(g.mean_logprob == pytest.approx(g.logprob / g.n_tokens) for g in found)
    assert generator.stats.dfs_nodes == expanded == 71
    assert math.exp(found[0].logprob) >= 0.005


def test_hf_search_budget(sharp_model, tokenizer):
    generator = HFGenerator(sharp_model, tokenizer, InferenceConfig(dfs_threshold=0.005, dfs_max_nodes=10))
    generator.stop_ids = set(random.Random(0).sample(range(len(tokenizer)), len(tokenizer) // 10))
    found = generator.search([GenerationRequest(PROMPT, 6), GenerationRequest(PROMPT + "x", 6)])
    assert generator.stats.dfs_exhausted == 2 and generator.stats.dfs_nodes == 20
    assert len(found) == 2 and all(len(f) < 9 for f in found)


ENCODER = create_grid_encoder("grid_shape_row_number")
TASK = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[8, 7], [6, 5]]}],
})


def test_dfs_candidates_in_the_evaluation(tokenizer):
    """d0 finds the right grid and a wrong one, d1 only the right one, d2 nothing: 3 predictions + 1 unanswered."""
    right, wrong = [[8, 7], [6, 5]], [[0, 0], [0, 0]]

    def search(request):
        view = Augmentation.from_name(request.key.augmentation)
        answers = {"d0": [(right, -0.2), (wrong, -1.9)], "d1": [(right, -0.4)], "d2": []}[view.name]
        return [(ENCODER.encode(view.apply_grid(grid)), logprob) for grid, logprob in answers]

    generator = FunctionGenerator(lambda r: "unused", searcher=search)
    settings = EvaluationSettings(encoder=ENCODER, prompt_version="output-from-examples-v0", search=True,
                                  policy=AugmentationPolicy(dihedral=True, color_permutation=False,
                                                            shuffle_train=False), predictions_per_task=3)
    result = evaluate_tasks([TASK], generator, tokenizer, settings, progress=False)
    test = result.tasks[TASK.task_id].test_inputs[0]
    assert [(p.augmentation, p.grid) for p in test.predictions] == [
        ("d0", right), ("d0", wrong), ("d1", right), ("d2", None)]
    assert [(v.grid, v.count) for v in test.voted] == [(right, 2), (wrong, 1)]
    assert test.metrics["pass_2"] == 1.0 and test.metrics["unanswered"] == 0.25
    assert test.predictions[3].text == "(no answer above inference.dfs_threshold)"

    class GenerateOnly:
        def generate(self, requests):
            return []

    with pytest.raises(EvaluationError, match="inference.sampler=dfs needs a generator that searches"):
        evaluate_tasks([TASK], GenerateOnly(), tokenizer, settings, progress=False)


def test_dfs_config_option():
    inference = instantiate(compose_train(["inference=dfs"]).inference)
    assert (inference.sampler, inference.dfs_threshold, inference.do_sample) == ("dfs", 0.1, False)
    inference = instantiate(compose_train(["inference.sampler=dfs", "inference.dfs_threshold=0.05"]).inference)
    assert (inference.sampler, inference.dfs_threshold) == ("dfs", 0.05)


def test_evaluate_main_with_dfs_and_poe(tmp_path, tracking_uri):
    """evaluate.py with inference=dfs inference.selection=poe on the tiny random model: its answers are no grids, so
    every view is unanswered; the search's counters reach MLflow and the run finishes."""
    from test_evaluation import run_evaluate

    from conftest import metric_history, mlflow_runs

    overrides = ["model=tiny-random", "debug=smoke", f"logger.tracking_uri={tracking_uri}", "predictions_per_task=2",
                 "progress=false", "data.eval.first_n=1", "data.eval.max_grid_side=4", "inference=dfs",
                 "inference.selection=poe", "inference.max_new_tokens=4", "inference.dfs_threshold=0.001"]
    assert run_evaluate(tmp_path / "eval", overrides) == 0.0
    [run] = [r for r in mlflow_runs(tracking_uri) if r.data.tags.get("run_type") == "evaluation"]
    assert run.info.status == "FINISHED"
    assert (run.data.params["inference.sampler"], run.data.params["inference.selection"]) == ("dfs", "poe")
    assert metric_history(tracking_uri, run.info.run_id, "unanswered") == {0: 1.0}
    assert metric_history(tracking_uri, run.info.run_id, "generation/dfs_nodes")[0] >= 2
