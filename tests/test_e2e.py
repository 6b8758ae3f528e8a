"""End to end: the entry points learn. Two tiny hand-made tasks (tests/fixtures/tiny_tasks, grids 1x1..3x3, each
swapping its two colors), trained on and then solved.

- the tiny random model (conf/model/tiny-random.yaml) overfits one task until greedy decoding writes its test
  output exactly (seconds; default suite);
- SmolLM2-135M, a short ``train.py`` run: the trained model solves a task the base model does not (marker ``e2e``,
  and ``slow``: minutes on CPU);
- SmolLM2-135M, ``solve.py`` with TTFT on the two tasks: a submission with a correct attempt that is the model's, not
  a fallback copy of the test input (``e2e``, ``slow``).

A color swap is chosen because solve.py's fallback attempt (a copy of the test input) would answer an identity task.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CONF, REPO, run_recipe, run_train

TINY_TASKS = REPO / "tests" / "fixtures" / "tiny_tasks"
SWAP_1_2, SWAP_3_5 = "c01025a1", "c01025a2"
# the real model, one thread: on a CPU shared with other jobs, two threads that wait for each other are slower
REAL = ("model=smollm2-135m", "trainer.enable_progress_bar=false", "data.val=null", "trainer.limit_val_batches=0",
        "data.max_seq_len=1024", f"data.eval.source={TINY_TASKS}")


def read(path: Path):
    return json.loads(path.read_text())


def train_entry(task_ids=None, swap_train_test=True) -> str:
    ids = "" if task_ids is None else f", task_ids: [{', '.join(task_ids)}]"
    return (f"data.train=[{{source: {TINY_TASKS}{ids}, prompt: output-from-examples-v0, weight: 1.0, "
            f"loss_weight: 1.0, swap_train_test: {str(swap_train_test).lower()}}}]")


@pytest.mark.e2e
def test_tiny_random_model_overfits_one_task_until_greedy_reproduces_it(tmp_path, tracking_uri):
    # one task, no augmentation and its test input as the only target: every step shows the model the same sample
    # that greedy decoding then answers (scoring the trained-on output is the point: allowed, and the run tagged)
    run_dir = tmp_path / "run"
    run_train(run_dir, ["model=tiny-random", "lora=full", "model.reduce_vocab=true", "augmentation=none",
                        train_entry([SWAP_1_2], swap_train_test=False), "data.val=null", "trainer.limit_val_batches=0",
                        "data.batch_size=1", "learning_rate=3e-3", "scheduler=constant", "trainer.max_steps=60",
                        "callbacks.checkpoint_every_n_steps=0", "trainer.enable_progress_bar=false",
                        "evaluation.enabled=true", "evaluation.before=true", "evaluation.predictions_per_task=1",
                        "evaluation.allow_trained_outputs=true", f"data.eval.source={TINY_TASKS}",
                        f"++data.eval.task_ids=[{SWAP_1_2}]", f"logger.tracking_uri={tracking_uri}"])
    predictions = read(run_dir / "evaluation" / "predictions.json")
    [prediction] = predictions[SWAP_1_2]["test_inputs"][0]["predictions"]
    assert prediction["grid"] == [[1, 0], [2, 2]]
    assert read(run_dir / "evaluation" / "metrics.json")["metrics"]["accuracy"] == 1.0
    assert read(run_dir / "evaluation-before" / "metrics.json")["metrics"]["accuracy"] == 0.0


@pytest.mark.e2e
@pytest.mark.slow
def test_short_training_run_solves_a_task_the_base_model_does_not(tmp_path, tracking_uri):
    run_dir = tmp_path / "run"
    run_train(run_dir, [*REAL, train_entry(), "data.batch_size=2", "learning_rate=1e-3", "trainer.max_steps=24",
                        "callbacks.checkpoint_every_n_steps=0", "evaluation.enabled=true", "evaluation.before=true",
                        "evaluation.predictions_per_task=1", f"logger.tracking_uri={tracking_uri}"])
    before = read(run_dir / "evaluation-before" / "predictions.json")
    after = read(run_dir / "evaluation" / "predictions.json")
    solved_before = {task_id for task_id, task in before.items() if task["metrics"]["accuracy"] == 1.0}
    solved_after = {task_id for task_id, task in after.items() if task["metrics"]["accuracy"] == 1.0}
    assert solved_after - solved_before, (solved_before, solved_after)


@pytest.mark.e2e
@pytest.mark.slow
def test_solve_with_ttft_writes_a_submission_with_a_correct_attempt(tmp_path, tracking_uri):
    import torch
    from hydra import compose, initialize_config_dir

    import solve

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="solve"):
        cfg = compose("solve", overrides=[
            "model=smollm2-135m", f"challenges={TINY_TASKS}", "checkpoint=null", "ttft=n1", "ttft.steps=40",
            "ttft.learning_rate=1e-3", "predictions_per_task=2", "data.max_seq_len=1024", "progress=false",
            "trainer.enable_progress_bar=false", "torch_threads=1", f"logger.tracking_uri={tracking_uri}"],
            return_hydra_config=True)
    run_dir, threads = tmp_path / "solve", torch.get_num_threads()
    try:
        run_recipe(solve.main, cfg, run_dir)
    finally:  # solve.py's torch_threads=1 must not outlive this test
        torch.set_num_threads(threads)
    submission = read(run_dir / "submission.json")
    expected = {SWAP_1_2: [[1, 0], [2, 2]], SWAP_3_5: [[0, 5], [3, 5]]}
    assert set(submission) == set(expected)
    # a copy of the test input (the fallback attempt) is never right for a color swap: a right attempt is the model's
    correct = [task_id for task_id, [attempts] in submission.items() if expected[task_id] in attempts.values()]
    assert correct, submission
    assert read(run_dir / "score.json")["score"] == len(correct) / 2
