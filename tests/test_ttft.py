"""Test-time fine-tuning and solve.py: the TTFT dataset of hand-made tasks, the budget arithmetic, the ensemble order,
and solve.py's main with the tiny random model end to end (a shared adapter, one adapter per task, MLflow parent and
child runs, resume, a budget too small for anything but a submission, tasks without train examples).

The end-to-end runs call solve.py's ``main`` in this process (like conftest.run_train) on the three ARC-1 evaluation
tasks whose grids are at most 4x4: 4cd1b7b2 (3 train examples), 66e6c45b (2) and 6ea4a07e (6).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from arc_exp.data.tasks import Example, Task
from arc_exp.data.trained_outputs import load_record
from arc_exp.evaluation.submission import SubmissionError, build_submission, validate_submission
from arc_exp.ttft.ensemble import MODEL, ensemble_submission, load_ensemble
from arc_exp.ttft.stages import run_folder
from arc_exp.ttft.dataset import NO_EXAMPLES, SINGLE_EXAMPLE, TTFTDataset, build_ttft_dataset
from arc_exp.ttft.budget import Budget, predictions_for_next, steps_within
from arc_exp.ttft.settings import TTFTConfigError, TTFTSettings
from conftest import CONF, metric_history, mlflow_runs, run_recipe

SMALL = ["4cd1b7b2", "66e6c45b", "6ea4a07e"]
TINY_SOLVE = ("model=tiny-random", "data.eval.max_grid_side=4", "ttft=n1", "ttft.steps=2", "predictions_per_task=2",
              "augmentation=geometric", "inference=greedy", "encoder=grid_shape_row_number",
              "prompt=output-from-examples-v0", "progress=false", "plots.failures=0", "plots.successes=0", "seed=0",
              "torch_threads=1")  # on a shared CPU one thread is ~3x faster for the tiny model
# train/loss of the 2 TTFT steps of the shared adapter (seed 0, the 11 n-1 tasks, D8 + colors, batch 1, 1 thread)
PINNED_SHARED_LOSSES = [10.699857711791992, 10.609771728515625]
TOLERANCE = 1e-4
PINNED_VAL_LOSS = 10.692873160044352  # answer loss of the 3 small tasks' test outputs after the 2 steps
TINY_PARAMETERS = 3219776  # the tiny random model: 49152 x 64 tied embeddings + 2 layers of hidden 64


def pair(color: int) -> Example:
    return Example([[color]], [[color, color]])


A, B, C = pair(1), pair(2), pair(3)
TEST = (Example([[4]]),)


# ---------------------------------------------------------------------------------------------------------------------
# Stage 1: the TTFT dataset.


def test_n1_and_n2_tasks_of_a_hand_made_task():
    tasks = [Task("abc", (A, B, C), TEST), Task("one", (A,), TEST), Task("none", (), TEST)]
    dataset = build_ttft_dataset(tasks)
    n1 = dataset.tasks["abc"]
    assert [(t.task_id, t.train, t.test) for t in n1] == [
        ("abc:loo0", (B, C), (A,)), ("abc:loo1", (A, C), (B,)), ("abc:loo2", (A, B), (C,))]
    assert list(dataset.tasks) == ["abc"]
    assert dataset.skipped == {"one": SINGLE_EXAMPLE, "none": NO_EXAMPLES}
    assert dataset.summary() == {"tasks": 3, "tasks_with_ttft": 1, "ttft_tasks": 3, "n1_tasks": 3, "n2_tasks": 0,
                                 "single_example_tasks": 1, "no_example_tasks": 1, "holdout_tasks": 0}

    # n-2 (the seeds' "train with n-2 samples"): instead of the n-1 tasks, every target is shown one example fewer
    n2_dataset = build_ttft_dataset(tasks + [Task("two", (A, B), TEST)], n2=True)
    n2 = n2_dataset.tasks["abc"]
    assert [(t.task_id, t.train, t.test) for t in n2] == [
        ("abc:l2o0-1", (C,), (A,)), ("abc:l2o0-2", (B,), (A,)), ("abc:l2o1-0", (C,), (B,)),
        ("abc:l2o1-2", (A,), (B,)), ("abc:l2o2-0", (B,), (C,)), ("abc:l2o2-1", (A,), (C,))]
    # a task of 2 examples has no n-2 task (it would show none): it keeps its n-1 tasks
    assert [(t.task_id, t.train, t.test) for t in n2_dataset.tasks["two"]] == [
        ("two:loo0", (B,), (A,)), ("two:loo1", (A,), (B,))]
    assert n2_dataset.summary() == {"tasks": 4, "tasks_with_ttft": 2, "ttft_tasks": 8, "n1_tasks": 2, "n2_tasks": 6,
                                    "single_example_tasks": 1, "no_example_tasks": 1, "holdout_tasks": 0}
    # the test inputs are never a TTFT target
    assert all(t.test[0] in (A, B, C) for t in n2)


def test_holdout_keeps_the_last_example_out_of_the_ttft_tasks(tmp_path):
    tasks = [Task("abc", (A, B, C), TEST), Task("two", (A, B), TEST), Task("one", (A,), TEST)]
    dataset = build_ttft_dataset(tasks, holdout=True)
    assert (dataset.holdout["abc"].train, dataset.holdout["abc"].test) == ((A, B), (C,))
    assert [(t.task_id, t.train, t.test) for t in dataset.tasks["abc"]] == [("abc:loo0", (B,), (A,)),
                                                                            ("abc:loo1", (A,), (B,))]
    # "two" keeps a single example after its holdout: measured, not trained on; "one" has nothing to hold out
    assert list(dataset.holdout) == ["abc", "two"]
    assert dataset.skipped == {"two": SINGLE_EXAMPLE, "one": SINGLE_EXAMPLE}

    dataset.save(tmp_path)
    loaded = TTFTDataset.load(tmp_path)
    assert (loaded.task_ids, loaded.tasks, loaded.holdout, loaded.skipped) == \
        (["abc", "two", "one"], dataset.tasks, dataset.holdout, dataset.skipped)
    assert json.loads((tmp_path / "report.json").read_text())["ttft_tasks"] == {"abc": 2}


# ---------------------------------------------------------------------------------------------------------------------
# The budget, settings and ensembles.


def test_budget_arithmetic():
    now = [1000.0]
    budget = Budget(2, ttft_share=0.5, min_ttft_minutes=0.5, clock=lambda: now[0])
    assert (budget.seconds_left(), budget.ttft_seconds()) == (120.0, 60.0)
    now[0] += 100
    assert (budget.seconds_left(), budget.ttft_seconds()) == (20.0, 10.0)
    now[0] += 100
    assert budget.seconds_left() == 0.0
    assert Budget(None).seconds_left() == float("inf")

    assert [predictions_for_next(8, left, 2.0, 10, 1) for left in (1000, 100, 20, 19, 2, 1, 0)] == [8, 5, 1, 1, 1, 0, 0]
    assert predictions_for_next(8, 5, None, 10, 1) == 8  # nothing timed yet: as configured
    assert predictions_for_next(8, 3, 2.0, 10, 2) == 0  # one prediction for each of its 2 test inputs needs 4 s
    assert [steps_within(100, s, 0.5) for s in (100, 30, 0.4)] == [100, 60, 0]

    for kwargs, message in (({"minutes": 0}, "time_budget_minutes must be a number > 0 or null, got 0"),
                            ({"ttft_share": 1.5}, "budget.ttft_share must be a number in (0, 1], got 1.5"),
                            ({"min_ttft_minutes": -1}, "budget.min_ttft_minutes must be a number >= 0, got -1")):
        with pytest.raises(TTFTConfigError) as error:
            Budget(**kwargs)
        assert str(error.value) == message


def test_ttft_options_and_bad_settings():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="solve"):
        built = {name: instantiate(compose("solve", overrides=[f"ttft={name}"]).ttft)
                 for name in ("none", "n1_plain", "n1", "n1_geometric", "n1_color_keep_original", "n2")}
    described = {name: s.describe() for name, s in built.items()}
    assert described["n1"] == {
        "enabled": True, "per_task": False, "n2": False, "holdout": False, "steps": 100, "learning_rate": 1e-4,
        "weight_decay": 0.0, "batch_size": 1, "bucket_batches": 8,
        "scheduler": {"name": "linear", "warmup_ratio": 0.05},
        "augmentation": {"dihedral": True, "color_permutation": True, "keep_background": True,
                         "color_probability": 1.0, "shuffle_train": True, "task_augmentation_probability": 0.0,
                         "task_augmentations": ["geometric", "upscale", "padding", "mirror"]}}
    differences = {name: {k: v for k, v in d.items() if v != described["n1"][k]} for name, d in described.items()}
    n1_policy = described["n1"]["augmentation"]
    assert differences == {
        "none": {"enabled": False}, "n1": {}, "n2": {"n2": True},
        "n1_plain": {"augmentation": {**n1_policy, "dihedral": False, "color_permutation": False,
                                      "shuffle_train": False}},
        "n1_geometric": {"augmentation": {**n1_policy, "color_permutation": False}},
        "n1_color_keep_original": {"augmentation": {**n1_policy, "color_probability": 0.5}}}

    with pytest.raises(TTFTConfigError, match=r"^ttft.steps must be an integer >= 1, got 0$"):
        TTFTSettings(steps=0)
    with pytest.raises(TTFTConfigError, match=r"^ttft.learning_rate must be a number > 0, got 0$"):
        TTFTSettings(learning_rate=0)


def test_ensemble_merge_order(tmp_path):
    task = Task.from_dict("0a1b2c3d", {"train": [], "test": [{"input": [[5]]}, {"input": [[6]]}]})
    own = {"0a1b2c3d": [{"attempt_1": [[1]], "attempt_2": [[2]]}, {"attempt_1": [[6]], "attempt_2": [[0]]}]}
    other = tmp_path / "solver2020.json"
    other.write_text(json.dumps({"0a1b2c3d": [{"attempt_1": [[3]], "attempt_2": [[4]]},
                                              {"attempt_1": [[7]], "attempt_2": [[8]]}]}))

    model_first = load_ensemble([str(other)])
    assert [name for name, _ in model_first] == [MODEL, str(other)]
    # each attempt_1 by priority, then the attempt_2s; a fallback (a test input copy, [[0]]) counts as no answer
    assert ensemble_submission(own, model_first, [task]) == {"0a1b2c3d": [
        {"attempt_1": [[1]], "attempt_2": [[3]]}, {"attempt_1": [[7]], "attempt_2": [[8]]}]}
    assert ensemble_submission(own, load_ensemble([str(other), MODEL]), [task]) == {"0a1b2c3d": [
        {"attempt_1": [[3]], "attempt_2": [[1]]}, {"attempt_1": [[7]], "attempt_2": [[8]]}]}

    with pytest.raises(FileNotFoundError, match=r"^ensemble\[1\]: no such submission file 'missing.json'$"):
        load_ensemble([MODEL, "missing.json"])
    with pytest.raises(TTFTConfigError, match="ensemble lists 'model'"):
        load_ensemble([MODEL, MODEL])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SubmissionError, match=r"^ensemble\[1\] '.*bad.json': not a JSON submission"):
        load_ensemble([str(tmp_path / "bad.json")])


def test_run_folder_checks_resume(tmp_path):
    assert run_folder(None, tmp_path / "new") == tmp_path / "new"
    with pytest.raises(FileNotFoundError, match=r"^resume: no such run folder '/nonexistent/run'$"):
        run_folder("/nonexistent/run", tmp_path)
    with pytest.raises(TTFTConfigError, match="is not a solve.py run folder"):
        run_folder(str(tmp_path), tmp_path / "new")


# ---------------------------------------------------------------------------------------------------------------------
# solve.py end to end with the tiny model.


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A folder for the runs, its SQLite store; the working directory moves there so MLflow's artifacts do too."""
    import torch

    folder = tmp_path_factory.mktemp("solve")
    before, threads = os.getcwd(), torch.get_num_threads()  # solve.py's torch_threads=1 must not outlive this module
    os.chdir(folder)
    yield folder, f"sqlite:///{folder}/mlflow.db"
    os.chdir(before)
    torch.set_num_threads(threads)


def run_solve(run_dir: Path, overrides) -> float:
    """``python solve.py <overrides> hydra.run.dir=<run_dir>`` in this process."""
    from hydra import compose, initialize_config_dir

    import solve

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="solve"):
        cfg = compose("solve", overrides=list(overrides), return_hydra_config=True)
    return run_recipe(solve.main, cfg, run_dir)


def small_tasks():
    from arc_exp.data.selection import select_tasks
    from arc_exp.data.sources import load_source

    return select_tasks(load_source("arc1-evaluation"), max_grid_side=4)


def read(path: Path):
    return json.loads(path.read_text())


def runs_by_name(uri: str, parent_id: str) -> dict:
    """The runs under the solve run ``parent_id`` (children and grandchildren), by run name."""
    runs = {r.info.run_id: r for r in mlflow_runs(uri)}
    found = {}
    for run in runs.values():
        ancestor = run.data.tags.get("mlflow.parentRunId")
        while ancestor is not None and ancestor != parent_id:
            ancestor = runs[ancestor].data.tags.get("mlflow.parentRunId") if ancestor in runs else None
        if ancestor == parent_id:
            found[run.info.run_name] = run
    return found


def solve_run(uri: str, run_dir: Path):
    matches = [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "solve"
               and r.data.tags.get("output_dir") == str(run_dir.resolve())]
    return matches[-1]


@pytest.fixture(scope="module")
def shared(store) -> Path:
    folder, uri = store
    score = run_solve(folder / "shared", [*TINY_SOLVE, f"logger.tracking_uri={uri}"])
    assert score == 0.0
    return folder / "shared"


@pytest.fixture(scope="module")
def per_task(store) -> Path:
    folder, uri = store
    run_solve(folder / "per_task", [*TINY_SOLVE, "ttft.per_task=true", "ttft.holdout=true",
                                    f"logger.tracking_uri={uri}"])
    return folder / "per_task"


def test_shared_adapter_end_to_end(shared, store):
    _, uri = store
    tasks = small_tasks()
    submission = read(shared / "submission.json")
    validate_submission(submission, tasks)
    # the tiny random model writes no grid: every attempt is a fallback (a copy of the test input, then [[0]])
    assert submission == build_submission({}, tasks)
    assert read(shared / "score.json") == {"score": 0.0, "n_tasks": 3, "per_task": dict.fromkeys(SMALL, 0.0),
                                           "parts": {MODEL: 0.0}}

    report = read(shared / "dataset" / "report.json")
    assert (report["task_ids"], report["ttft_tasks"], report["skipped"]) == (
        SMALL, {"4cd1b7b2": 3, "66e6c45b": 2, "6ea4a07e": 6}, {})
    ttft = read(shared / "ttft" / "stage.json")
    adapter = str(shared / "ttft" / "adapter")
    assert (ttft["mode"], ttft["adapters"]) == ("shared", dict.fromkeys(SMALL, adapter))
    outcome = ttft["outcomes"][0]
    assert (outcome["steps"], outcome["planned_steps"], outcome["stopped_by_budget"]) == (2, 2, False)
    assert outcome["losses"] == pytest.approx(PINNED_SHARED_LOSSES, abs=TOLERANCE)
    assert sorted(os.listdir(adapter)) == ["README.md", "adapter_config.json", "adapter_model.safetensors",
                                          "arc_exp.yaml", "chat_template.jinja", "tokenizer.json",
                                          "tokenizer_config.json", "trained_outputs.json"]
    # the TTFT adapter trained on the tasks' train examples (3 + 2 + 6), never on their test outputs
    record = load_record(adapter)
    assert len(record) == 11 and record.matches(tasks) == []
    predictions = read(shared / "predict" / "predictions.json")
    assert {task_id: [[p["augmentation"] for p in t["predictions"]] for t in entry["test_inputs"]]
            for task_id, entry in predictions.items()} == {
        "4cd1b7b2": [["d0", "d1"]], "66e6c45b": [["d0", "d1"]], "6ea4a07e": [["d0", "d1"], ["d0", "d1"]]}

    parent = solve_run(uri, shared)
    children = runs_by_name(uri, parent.info.run_id)
    assert sorted(children) == ["dataset", "predict", "ttft"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    assert children["dataset"].data.metrics["ttft_tasks"] == 11.0
    losses = metric_history(uri, children["ttft"].info.run_id, "train/loss")
    assert list(losses) == [0, 1] and list(losses.values()) == pytest.approx(PINNED_SHARED_LOSSES, abs=TOLERANCE)
    assert children["predict"].data.metrics["pass_2"] == 0.0
    assert (parent.data.metrics["score"], parent.data.tags["ttft"], parent.info.status) == (0.0, "n1", "FINISHED")
    # a clean run: nothing failed, nothing worked around (the unanswered attempts are the model's answers)
    assert (parent.data.tags["degraded"], "errors" in parent.data.tags) == ("false", False)
    assert {k: parent.data.metrics[k] for k in ("errors", "failed_tasks", "fallback_attempts")} == dict.fromkeys(
        ("errors", "failed_tasks", "fallback_attempts"), 0.0)
    # measured step time and model size for iteration 4's timing table, in the parent run
    metrics = parent.data.metrics
    assert (metrics["ttft/steps"], metrics["ttft/max_context_length"]) == (2.0, 8192.0)
    assert metrics["ttft/parameters"] == outcome["parameters"] == TINY_PARAMETERS
    assert metrics["ttft/seconds_per_step"] == pytest.approx(outcome["seconds"] / 2)
    # the journal's val loss: the answer loss of the 3 tasks' known test outputs, under the TTFT adapter
    assert metrics["val_loss"] == pytest.approx(PINNED_VAL_LOSS, abs=TOLERANCE)


def test_one_adapter_per_task_end_to_end(per_task, store):
    _, uri = store
    tasks = small_tasks()
    validate_submission(read(per_task / "submission.json"), tasks)
    ttft = read(per_task / "ttft" / "stage.json")
    # with the last example held out, 66e6c45b keeps a single example: no TTFT, predicted with the base model
    assert ttft["adapters"] == {"4cd1b7b2": str(per_task / "ttft" / "tasks" / "4cd1b7b2" / "adapter"),
                                "66e6c45b": None,
                                "6ea4a07e": str(per_task / "ttft" / "tasks" / "6ea4a07e" / "adapter")}
    assert [(o["task_id"], o["steps"]) for o in ttft["outcomes"]] == [("4cd1b7b2", 2), ("6ea4a07e", 2)]
    held_out = ttft["holdout_loss"]["per_task"]
    assert sorted(held_out) == ["4cd1b7b2", "6ea4a07e"]
    assert all(before != after for before, after in held_out.values())
    assert read(per_task / "dataset" / "report.json")["skipped"] == {"66e6c45b": SINGLE_EXAMPLE}

    parent = solve_run(uri, per_task)
    runs = runs_by_name(uri, parent.info.run_id)
    assert sorted(runs) == ["dataset", "predict", "ttft", "ttft:4cd1b7b2", "ttft:6ea4a07e"]
    for task_id in ("4cd1b7b2", "6ea4a07e"):
        assert runs[f"ttft:{task_id}"].data.tags["mlflow.parentRunId"] == runs["ttft"].info.run_id
        assert list(metric_history(uri, runs[f"ttft:{task_id}"].info.run_id, "train/loss")) == [0, 1]
    assert runs["ttft"].data.metrics["adapters"] == 2.0


def test_resume_skips_finished_stages_and_applies_a_new_ensemble(shared, store, caplog):
    folder, uri = store
    adapter_file = shared / "ttft" / "adapter" / "adapter_model.safetensors"
    trained_at = adapter_file.stat().st_mtime_ns
    other = folder / "other.json"
    tasks = small_tasks()
    other_attempts = {t.task_id: [{"attempt_1": [[7]], "attempt_2": [[8]]} for _ in t.test] for t in tasks}
    other.write_text(json.dumps(other_attempts))
    with caplog.at_level(logging.INFO, logger="arc_exp.ttft"):
        run_solve(folder / "resumed", [*TINY_SOLVE, f"logger.tracking_uri={uri}", f"resume={shared}",
                                       f"ensemble=[{other},model]"])
    assert [m for m in caplog.messages if "done in an earlier run" in m] == [
        f"dataset: done in an earlier run ({shared / 'dataset'}), skipped",
        f"ttft: done in an earlier run ({shared / 'ttft'}), skipped",
        f"predict: done in an earlier run ({shared / 'predict'}), skipped"]
    assert adapter_file.stat().st_mtime_ns == trained_at
    # the other submission comes first now; the model's attempts (fallbacks here) only fill what is left
    final = read(shared / "submission.json")
    assert final["4cd1b7b2"] == [{"attempt_1": [[7]], "attempt_2": [[8]]}]
    assert read(shared / "predict" / "submission.json") == build_submission({}, tasks)
    parent = solve_run(uri, shared)
    assert parent.data.tags["skipped_stages"] == "dataset,ttft,predict"
    assert parent.data.tags["resumed"] == "True"

    # other prediction settings: the predictions are made again, the adapter is reused
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arc_exp.ttft"):
        run_solve(folder / "resumed_again", [*TINY_SOLVE, "logger=none", f"resume={shared}", "predictions_per_task=1",
                                             "ttft.steps=3"])
    assert caplog.messages == ["resume: stage ttft ran with other ttft settings (ttft.steps differ); its outputs are "
                               "reused, start a new run to apply the new settings"]
    assert adapter_file.stat().st_mtime_ns == trained_at
    predictions = read(shared / "predict" / "predictions.json")
    assert [[p["augmentation"] for p in t["predictions"]] for t in predictions["6ea4a07e"]["test_inputs"]] == \
        [["d0"], ["d0"]]

    with pytest.raises(TTFTConfigError, match="resume: the run folder's dataset was built for tasks 4cd1b7b2, "
                                              "66e6c45b, 6ea4a07e but this run selects 6ea4a07e"):
        run_solve(folder / "mismatch", [*TINY_SOLVE, "logger=none", f"resume={shared}", "data.eval.max_grid_side=3"])


def test_resume_trains_only_the_tasks_left(per_task, store):
    folder, _ = store
    kept = per_task / "ttft" / "tasks" / "4cd1b7b2" / "adapter" / "adapter_model.safetensors"
    redone = per_task / "ttft" / "tasks" / "6ea4a07e" / "adapter" / "adapter_model.safetensors"
    kept_at, redone_at = kept.stat().st_mtime_ns, redone.stat().st_mtime_ns
    # as if the run had been killed while training 6ea4a07e
    for marker in ("ttft/tasks/6ea4a07e/stage.json", "ttft/stage.json", "predict/stage.json"):
        (per_task / marker).unlink()
    run_solve(folder / "per_task_resumed", [*TINY_SOLVE, "ttft.per_task=true", "ttft.holdout=true", "logger=none",
                                            f"resume={per_task}"])
    assert kept.stat().st_mtime_ns == kept_at
    assert redone.stat().st_mtime_ns != redone_at
    assert (per_task / "ttft" / "stage.json").exists() and (per_task / "predict" / "stage.json").exists()


def test_a_tiny_budget_still_writes_a_submission(store, caplog):
    folder, _ = store
    run_dir = folder / "tiny_budget"
    with caplog.at_level(logging.INFO, logger="arc_exp.ttft"):
        score = run_solve(run_dir, [*TINY_SOLVE, "logger=none", "time_budget_minutes=0.0001"])
    tasks = small_tasks()
    assert score == 0.0
    assert read(run_dir / "submission.json") == build_submission({}, tasks)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("ttft: time budget: 0 s left gives TTFT 0 s, less than budget.min_ttft_minutes=0.5: "
                            "TTFT skipped, predicting with the checkpoint") for m in warnings)
    assert "predict: time budget: 3 of 3 tasks got no prediction (fallback attempts): 4cd1b7b2, 66e6c45b, 6ea4a07e" \
        in warnings
    # neither cut stage is marked done: a resume with more time runs them
    assert not (run_dir / "ttft" / "stage.json").exists() and not (run_dir / "predict" / "stage.json").exists()
    predictions = read(run_dir / "predict" / "predictions.json")
    assert [len(t["predictions"]) for entry in predictions.values() for t in entry["test_inputs"]] == [0, 0, 0, 0]


def test_challenges_without_train_examples_are_predicted_anyway(store, caplog):
    folder, _ = store
    challenges = folder / "no_examples.json"
    challenges.write_text(json.dumps({"0a1b2c3d": {"train": [], "test": [{"input": [[1, 2], [3, 4]]}]},
                                      "4e5f6a7b": {"train": [], "test": [{"input": [[5]]}]}}))
    run_dir = folder / "no_examples"
    with caplog.at_level(logging.INFO, logger="arc_exp.ttft"):
        score = run_solve(run_dir, [*TINY_SOLVE, "logger=none", f"challenges={challenges}"])
    assert score != score  # NaN: no solutions to score against
    assert "dataset: no task has 2 or more train examples: there is nothing to fine-tune on" in caplog.messages
    assert read(run_dir / "dataset" / "report.json")["skipped"] == {"0a1b2c3d": NO_EXAMPLES, "4e5f6a7b": NO_EXAMPLES}
    assert read(run_dir / "ttft" / "stage.json")["adapters"] == {"0a1b2c3d": None, "4e5f6a7b": None}
    predictions = read(run_dir / "predict" / "predictions.json")
    assert [len(entry["test_inputs"][0]["predictions"]) for entry in predictions.values()] == [2, 2]
    submission = read(run_dir / "submission.json")
    assert list(submission) == ["0a1b2c3d", "4e5f6a7b"]
    assert not (run_dir / "score.json").exists()


def test_a_failing_task_gets_fallback_attempts(store, caplog, monkeypatch):
    """A generation error in one task (say, out of memory on its long prompt) costs that task only."""
    failing_generator(monkeypatch, {"66e6c45b"})
    folder, _ = store
    run_dir = folder / "failing"
    with caplog.at_level(logging.ERROR, logger="arc_exp.ttft"):
        run_solve(run_dir, [*TINY_SOLVE, "logger=none", "ttft=none"])
    assert [r.getMessage() for r in caplog.records] == [
        "predict: task 66e6c45b failed; its attempts are the fallbacks",
        "worked around: predict 66e6c45b: RuntimeError: out of memory"]
    predictions = read(run_dir / "predict" / "predictions.json")
    assert [len(entry["test_inputs"][0]["predictions"]) for entry in predictions.values()] == [2, 0, 2]
    assert read(run_dir / "submission.json") == build_submission({}, small_tasks())
    assert not (run_dir / "predict" / "stage.json").exists()  # a resume tries the failed task again
    assert not (run_dir / "dataset").exists() and not (run_dir / "ttft").exists()  # ttft=none


def failing_generator(monkeypatch, failing: set):
    """Predictions raise for the tasks in ``failing`` (say, out of memory on their long prompts); the other tasks get
    an answer that is not a grid (unanswered: a model's answer, not a failure)."""
    import arc_exp.inference.generator
    from arc_exp.inference.requests import FunctionGenerator

    def answer(request):
        if request.key.task_id in failing:
            raise RuntimeError("out of memory")
        return "not a grid"

    monkeypatch.setattr(arc_exp.inference.generator, "create_generator",
                        lambda config, model, tokenizer: FunctionGenerator(answer))


def test_a_failed_ttft_stage_and_a_failed_task_mark_the_run_degraded(store, caplog, monkeypatch):
    """TTFT raises (injected) and one task's prediction raises: the run still predicts from the checkpoint and
    submits, but it is tagged degraded=true with the counts, never a clean FINISHED result."""
    import arc_exp.ttft.finetune

    def fine_tune(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(arc_exp.ttft.finetune, "fine_tune", fine_tune)
    failing_generator(monkeypatch, {"66e6c45b"})
    folder, uri = store
    run_dir = folder / "degraded"
    with caplog.at_level(logging.WARNING, logger="arc_exp.ttft.solver"):
        score = run_solve(run_dir, [*TINY_SOLVE, f"logger.tracking_uri={uri}"])
    assert score == 0.0
    assert read(run_dir / "submission.json") == build_submission({}, small_tasks())
    assert [m for m in caplog.messages if m.startswith(("TTFT failed", "solve "))] == [
        "TTFT failed; predicting with the checkpoint instead",
        "solve degraded: 2 errors worked around (1 tasks failed, 2 fallback attempts); the run is tagged degraded=true"]

    parent = solve_run(uri, run_dir)
    assert parent.info.status == "FINISHED"
    assert (parent.data.tags["degraded"], parent.data.tags["errors"]) == (
        "true", "ttft: RuntimeError: CUDA error: an illegal memory access was encountered | "
                "predict 66e6c45b: RuntimeError: out of memory")
    # unanswered: the two predicted tasks' answers are not grids, and the failed task has no prediction at all (the
    # metrics' convention); failed_tasks and the degraded tag tell the failure apart from the model's answers
    assert {k: parent.data.metrics[k] for k in ("errors", "failed_tasks", "fallback_attempts", "unanswered")} == {
        "errors": 2.0, "failed_tasks": 1.0, "fallback_attempts": 2.0, "unanswered": 1.0}
    children = runs_by_name(uri, parent.info.run_id)
    assert {name: run.info.status for name, run in children.items()} == {
        "dataset": "FINISHED", "ttft": "FAILED", "predict": "FINISHED"}
    assert children["predict"].data.tags["degraded"] == "true"
    assert (children["predict"].data.metrics["failed_tasks"], children["predict"].data.metrics["fallback_attempts"]) \
        == (1.0, 2.0)
    assert read(run_dir / "predict" / "predictions.json")["4cd1b7b2"]["test_inputs"][0]["predictions"][0]["text"] \
        == "not a grid"  # predicted, with the checkpoint: an unanswered answer, not a fallback
    # report.py's tables mark it
    from arc_exp.tracking.report import Column, fetch_runs, iteration_table, to_markdown

    table = iteration_table(fetch_runs(uri, run_ids=[parent.info.run_id]), ["ttft"], [Column("score")])
    assert to_markdown(table, ["ttft"], [Column("score")]).splitlines()[-1] == "| n1 (degraded) | 0.0% | 1 |"


def test_when_every_task_fails_the_run_is_failed_and_still_submits(store, caplog, monkeypatch):
    failing_generator(monkeypatch, set(SMALL))
    folder, uri = store
    run_dir = folder / "all_failed"
    with caplog.at_level(logging.ERROR, logger="arc_exp.ttft.solver"):
        run_solve(run_dir, [*TINY_SOLVE, f"logger.tracking_uri={uri}", "ttft=none"])
    assert read(run_dir / "submission.json") == build_submission({}, small_tasks())
    assert caplog.messages[-1] == (f"solve FAILED: no task was predicted by the model (3 errors); "
                                   f"{run_dir / 'submission.json'} holds fallback attempts")
    parent = solve_run(uri, run_dir)
    assert (parent.info.status, parent.data.tags["degraded"]) == ("FAILED", "true")
    assert {k: parent.data.metrics[k] for k in ("failed_tasks", "fallback_attempts")} == {
        "failed_tasks": 3.0, "fallback_attempts": 8.0}  # 6ea4a07e has two test inputs
    assert runs_by_name(uri, parent.info.run_id)["predict"].info.status == "FAILED"
