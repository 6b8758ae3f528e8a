"""Product-of-experts selection (``inference.selection=poe``): candidates rescored under every augmented view.

A hand-built case where the most voted grids are wrong and the grid the views find most likely is right; the HF
scorer against plain teacher forcing; the reductions; the outputs and the bad settings."""
import json
import math

import pytest
import torch
from hydra.utils import instantiate

from arc_exp import schemas
from arc_exp.data.augmentation import Augmentation, dihedral
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.tasks import Task
from arc_exp.data.encoders import create_grid_encoder
from arc_exp.evaluation.pipeline import evaluate_tasks
from arc_exp.evaluation import EvaluationError
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.outputs import write_outputs
from arc_exp.evaluation.poe import PoeScore, poe_rank, poe_scores
from arc_exp.inference.generator import HFGenerator
from arc_exp.inference.config import InferenceConfig
from arc_exp.inference.requests import FunctionGenerator, ScoreRequest
from arc_exp.model.loader import load_model
from arc_exp.evaluation.voting import VotedGrid
from conftest import CONF, compose_train

ENCODER = create_grid_encoder("grid_shape_row_number")
D8 = AugmentationPolicy(dihedral=True, color_permutation=False, shuffle_train=False)
TASK = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[8, 7], [6, 5]]}],
})
RIGHT = [[8, 7], [6, 5]]
WRONG_A = [[1, 1], [1, 1]]
WRONG_B = [[2, 2], [2, 2]]


def settings(selection="poe", n=6, **kwargs):
    return EvaluationSettings(encoder=ENCODER, prompt_version="output-from-examples-v0", policy=D8,
                              predictions_per_task=n, selection=selection, **kwargs)


def crowd_and_expert():
    """Views d0..d2 answer WRONG_A, d3 and d4 WRONG_B, d5 RIGHT (each written in its view's orientation): the vote
    ranks A, B, RIGHT. Under every view the scorer gives RIGHT log-probability -1, A -3 and B -2.5 (A is also
    checked to come in the view's orientation: reverted, it must be one of the three grids)."""
    by_view = {f"d{k}": WRONG_A if k < 3 else WRONG_B if k < 5 else RIGHT for k in range(8)}
    scored = []

    def answer(request):
        augmentation = Augmentation.from_name(request.key.augmentation)
        return ENCODER.encode(augmentation.apply_grid(by_view[request.key.augmentation]))

    def scorer(request: ScoreRequest) -> float:
        index, view = request.key
        grid = Augmentation.from_name(view).revert_grid(ENCODER.decode(request.answer))
        assert request.prompt_ids is not None
        scored.append((index, view))
        return {str(RIGHT): -1.0, str(WRONG_A): -3.0, str(WRONG_B): -2.5}[str(grid)]

    generator = FunctionGenerator(answer, logprob=-0.1, scorer=scorer)
    return generator, scored


def test_poe_picks_the_likely_grid_the_vote_misses(tokenizer, tmp_path):
    generator, scored = crowd_and_expert()
    result = evaluate_tasks([TASK], generator, tokenizer, settings(), progress=False)
    test = result.tasks[TASK.task_id].test_inputs[0]
    assert [(v.grid, v.count) for v in test.voted] == [(WRONG_A, 3), (WRONG_B, 2), (RIGHT, 1)]
    assert test.attempts == [RIGHT, WRONG_B]
    assert test.metrics["vote_2"] == 0.0 and test.metrics["pass_2"] == 1.0
    assert result.metrics["vote_2"] == 0.0 and result.metrics["pass_2"] == 1.0
    # every candidate under every view, in one batched call
    assert generator.score_calls == [18]
    assert sorted(scored) == sorted((i, f"d{k}") for i in range(3) for k in range(6))
    assert [s.score for s in test.poe] == [-18.0, -15.0, -6.0]
    paths = write_outputs(result, [TASK], tmp_path)
    candidates = json.loads(paths["predictions"].read_text())[TASK.task_id]["test_inputs"][0]["candidates"]
    assert [c["poe_score"] for c in candidates] == [-18.0, -15.0, -6.0]
    assert candidates[2]["view_logprobs"] == {f"d{k}": -1.0 for k in range(6)}
    assert json.loads(paths["predictions"].read_text())[TASK.task_id]["test_inputs"][0]["selection"] == "poe"


def test_vote_selection_keeps_the_seeds_attempts(tokenizer):
    generator, scored = crowd_and_expert()
    result = evaluate_tasks([TASK], generator, tokenizer, settings("vote"), progress=False)
    test = result.tasks[TASK.task_id].test_inputs[0]
    assert test.attempts == [WRONG_A, WRONG_B] and test.poe is None
    assert result.metrics["pass_2"] == result.metrics["vote_2"] == 0.0
    assert scored == [] and generator.score_calls == []


def test_poe_scores_only_the_most_voted_candidates(tokenizer):
    generator, scored = crowd_and_expert()
    result = evaluate_tasks([TASK], generator, tokenizer, settings(poe_max_candidates=2), progress=False)
    test = result.tasks[TASK.task_id].test_inputs[0]
    assert generator.score_calls == [12]
    assert [s.score for s in test.poe][:2] == [-18.0, -15.0] and math.isnan(test.poe[2].score)
    assert test.attempts == [WRONG_B, WRONG_A]  # RIGHT was not rescored: it ranks last


def test_poe_reductions_and_rank():
    candidates = [VotedGrid([[1]], 2, -0.1), VotedGrid([[2]], 1, -0.3)]
    logprobs = {(0, "d0"): -1.0, (0, "d1"): -5.0, (1, "d0"): -2.0}  # candidate 1 not scored under d1
    total = poe_scores(candidates, ["d0", "d1"], logprobs, "sum")
    mean = poe_scores(candidates, ["d0", "d1"], logprobs, "mean")
    assert [s.score for s in total] == [-6.0, -2.0] and [s.score for s in mean] == [-3.0, -2.0]
    assert total[1].view_logprobs == {"d0": -2.0, "d1": None}
    ranked = poe_rank([PoeScore([[1]], 3, {}, float("nan")), PoeScore([[2]], 1, {}, -2.0),
                       PoeScore([[3]], 1, {}, -2.0), PoeScore([[4]], 1, {}, -0.5)])
    assert [s.grid for s in ranked] == [[[4]], [[2]], [[3]], [[1]]]  # ties keep vote order, NaN last


def test_poe_needs_a_scorer(tokenizer):
    class GenerateOnly:
        def generate(self, requests):
            return []

    with pytest.raises(EvaluationError, match="inference.selection=poe needs a generator that scores answers"):
        evaluate_tasks([TASK], GenerateOnly(), tokenizer, settings(), progress=False)
    with pytest.raises(EvaluationError, match="inference.selection: unknown selection 'best'"):
        settings("best")


@pytest.fixture(scope="module")
def varied_model():
    cfg = schemas.load_option(CONF / "model" / "tiny-random.yaml")
    cfg.tiny_random.initializer_range = 0.2
    return load_model(instantiate(cfg), seed=0)


def teacher_forced(model, tokenizer, prompt, answer):
    """The answer's log-probability (end-of-turn token included) by one plain forward pass over prompt + answer."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
    return float(logprobs.gather(-1, torch.tensor(answer_ids)[:, None]).sum())


def test_hf_scores_equal_teacher_forcing(varied_model, tokenizer):
    from arc_exp.data.prompts import build_messages, render_prompt

    views = [Augmentation(dihedral=k) for k in (0, 1, 5)]
    prompts = [render_prompt(build_messages(v.apply_task(TASK), ENCODER, "output-from-examples-v0", 0,
                                            include_answer=False), tokenizer) for v in views]
    answers = [ENCODER.encode(g) for g in (RIGHT, WRONG_A, dihedral(RIGHT, 3), [[3]], [[1, 2, 3], [4, 5, 6]])]
    requests = [ScoreRequest(p, a, (i, j)) for i, p in enumerate(prompts) for j, a in enumerate(answers)]
    # score_batch_tokens small: several scoring passes per prompt, rows of different widths in one pass
    scorer = HFGenerator(varied_model, tokenizer, InferenceConfig(score_batch_tokens=40))
    scores = scorer.score(requests)
    expected = [teacher_forced(varied_model, tokenizer, prompts[i], answers[j]) for i, j in (r.key for r in requests)]
    assert scores == pytest.approx(expected, abs=2e-4)
    assert len(set(round(s, 3) for s in scores)) == len(scores)  # not trivially equal
    assert scorer.stats.scored_answers == 15
    assert scorer.stats.reused_prefix_tokens > 0  # the system prompt's cache served the later prompts
    # one pass over all the answers of a prompt gives the same numbers
    wide = HFGenerator(varied_model, tokenizer, InferenceConfig(score_batch_tokens=4096, reuse_prefix=False))
    assert wide.score(requests) == pytest.approx(scores, abs=2e-4)


def test_poe_config_option():
    cfg = compose_train(["inference=poe"])
    inference = instantiate(cfg.inference)
    assert (inference.selection, inference.sampler, inference.poe_reduce) == ("poe", "greedy", "sum")
    assert instantiate(compose_train(["inference.selection=poe", "inference.poe_reduce=mean"]).inference).poe_reduce \
        == "mean"
