"""Predictions split over processes (``shards=2``) or jobs (``shard=i/2`` then ``merge=``): the merged files are
the unsharded run's. The tiny random model writes text that is rarely a grid; a stand-in generator that solves
some tasks gives the merge non-zero metrics to get right."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.encoders import create_grid_encoder
from arc_exp.data.selection import select_tasks
from arc_exp.data.sources import load_source
from arc_exp.evaluation import shards as sharding
from arc_exp.evaluation.pipeline import evaluate_tasks
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.shards import Shard, ShardError
from arc_exp.inference.requests import FunctionGenerator
from conftest import CONF, metric_history, mlflow_runs, run_recipe

ENCODER = create_grid_encoder("grid_shape_row_number")
EVAL = ["model=tiny-random", "debug=smoke", "predictions_per_task=2", "progress=false", "inference.max_new_tokens=12",
        "data.eval.first_n=3", "data.eval.max_grid_side=6"]


def run_evaluate(run_dir: Path, overrides):
    from hydra import compose, initialize_config_dir

    import evaluate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="evaluate"):
        cfg = compose("evaluate", overrides=list(overrides), return_hydra_config=True)
    return run_recipe(evaluate.main, cfg, run_dir)


def rounded(value, places: int = 5):
    """Floats rounded: a process with 1 thread instead of 2 sums in another order (log-probabilities differ by
    ~1e-7)."""
    if isinstance(value, float):
        return round(value, places)
    if isinstance(value, dict):
        return {k: rounded(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, places) for v in value]
    return value


def outputs(folder: Path) -> dict:
    """What one evaluation writes and must not depend on sharding (timings left out)."""
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"predictions": rounded(json.loads((folder / "predictions.json").read_text())),
            "submission": json.loads((folder / "submission.json").read_text()),
            "per_task": list(csv.reader(open(folder / "per_task.csv"))),
            "metrics": metrics["metrics"], "n_predictions": metrics["n_predictions"],
            "plots": sorted(p.relative_to(folder).as_posix() for p in (folder / "plots").rglob("*.png"))}


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """The same evaluation unsharded, in 2 processes, and as 2 jobs merged."""
    folder = tmp_path_factory.mktemp("shards")
    uri = f"sqlite:///{folder}/mlflow.db"
    common = [*EVAL, f"logger.tracking_uri={uri}"]
    run_evaluate(folder / "one", common)
    run_evaluate(folder / "processes", [*common, "shards=2"])
    for i in (0, 1):
        run_evaluate(folder / "jobs" / str(i), [*common, f"shard={i}/2"])
    run_evaluate(folder / "merged", [*common, f"merge={folder / 'jobs'}"])
    return folder, uri


def test_two_processes_write_what_one_writes(evaluations):
    folder, _ = evaluations
    one = outputs(folder / "one")
    assert len(one["submission"]) == 3 and one["n_predictions"] == 8
    assert outputs(folder / "processes") == one


def test_merged_jobs_write_what_one_writes(evaluations):
    folder, uri = evaluations
    one = outputs(folder / "one")
    assert outputs(folder / "merged") == one
    shard_ids = [sorted(json.loads((folder / "jobs" / str(i) / "submission.json").read_text())) for i in (0, 1)]
    order = list(one["submission"])
    assert shard_ids == [sorted(order[0::2]), sorted(order[1::2])]
    # the jobs log nothing; unsharded, 2 processes and the merge: one MLflow run each
    runs = [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "evaluation"]
    assert sorted(Path(r.data.tags["output_dir"]).name for r in runs) == ["merged", "one", "processes"]


def test_merge_restores_order_and_metrics_of_a_partly_solved_evaluation(tokenizer):
    """A stand-in solves the tasks whose id starts with a digit below 8: merged metrics = unsharded ones."""
    tasks = select_tasks(load_source("arc1-evaluation"), max_grid_side=6, first_n=9)
    by_id = {t.task_id: t for t in tasks}

    def answer(request):
        key = request.key
        if key.task_id[0] < "8":
            from arc_exp.data.augmentation import Augmentation

            return ENCODER.encode(Augmentation.from_name(key.augmentation).apply_grid(
                by_id[key.task_id].test[key.test_index].output))
        return "not a grid"

    settings = EvaluationSettings(encoder=ENCODER, prompt_version="output-from-examples-v0", predictions_per_task=2,
                                  policy=AugmentationPolicy(dihedral=True, color_permutation=False,
                                                            shuffle_train=False))
    one = evaluate_tasks(tasks, FunctionGenerator(answer), tokenizer, settings, progress=False)
    parts = [evaluate_tasks(Shard(i, 3).tasks(tasks), FunctionGenerator(answer), tokenizer, settings, progress=False)
             for i in range(3)]
    merged = sharding.merge_results(parts, [t.task_id for t in tasks])
    assert list(merged.tasks) == [t.task_id for t in tasks]
    assert 0 < one.metrics["pass_2"] < 1
    assert merged.metrics == one.metrics and merged.submission == one.submission
    assert merged.summary()["n_predictions"] == one.summary()["n_predictions"]


@pytest.mark.parametrize("value, message", [
    ("2/2", r"shard=2/2: the index must be in 0..1 for 2 shards"),
    ("0/0", r"shard=0/0: the index must be in 0..0 for 0 shards"),
    ("1of2", r"shard=1of2: expected i/N, e.g. shard=0/2"),
])
def test_bad_shard(value, message):
    with pytest.raises(ShardError, match=message):
        sharding.check_sharding(None, value, None, n_tasks=4)


def test_bad_sharding(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(sharding, "available_devices", lambda: (2, "CPU cores"))
    with pytest.raises(ShardError, match=r"shards=3: this machine has 2 CPU cores"):
        sharding.check_sharding(3, None, None, n_tasks=4)
    with pytest.raises(ShardError, match=r"shards=2: more processes than the 1 tasks of data.eval"):
        sharding.check_sharding(2, None, None, n_tasks=1)
    with pytest.raises(ShardError, match=r"shard=3/4: 4 shards for 3 tasks"):
        sharding.check_sharding(None, "3/4", None, n_tasks=3)
    with pytest.raises(ShardError, match=r"shards and shard given together"):
        sharding.check_sharding(2, "0/2", None, n_tasks=4)
    assert sharding.check_sharding(None, "1/2", None, n_tasks=4) == Shard(1, 2)
    assert sharding.check_sharding(2, None, None, n_tasks=4) is None


def test_bad_shards_fail_before_the_model_loads(tmp_path, caplog):
    with pytest.raises(ShardError, match=r"shard=5/2: the index must be in 0..1"):
        run_evaluate(tmp_path / "a", [*EVAL, "shard=5/2", "logger=none"])
    with pytest.raises(ShardError, match=r"shards=64: this machine has"):
        run_evaluate(tmp_path / "b", [*EVAL, "shards=64", "logger=none"])
    assert not (tmp_path / "a" / "config.yaml").exists()


def test_merge_of_incomplete_shards_names_what_is_missing(tmp_path, evaluations):
    folder, _ = evaluations
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "shard-0-of-2.pkl").write_bytes((folder / "jobs" / "0" / "shard-0-of-2.pkl").read_bytes())
    with pytest.raises(ShardError, match=r"expected shards 0..1 once each, found \[0\]"):
        run_evaluate(tmp_path / "m", [*EVAL, f"merge={tmp_path / 'jobs'}", "logger=none"])
    with pytest.raises(ShardError, match=r"no shard-<i>-of-<n>.pkl files"):
        run_evaluate(tmp_path / "n", [*EVAL, f"merge={tmp_path}/nothing", "logger=none"])


# ---------------------------------------------------------------------------------------------------------------------
# solve.py: the per-task TTFT and the predictions split the same way.


def solve_outputs(folder: Path) -> dict:
    """What one solve run writes and must not depend on sharding: its predictions (timings left out), the final
    submission and score."""
    found = outputs(folder / "predict")
    found["metrics"] = rounded(found["metrics"])
    found["final"] = json.loads((folder / "submission.json").read_text())
    found["score"] = json.loads((folder / "score.json").read_text())
    return found


@pytest.fixture(scope="module")
def solve_store(tmp_path_factory):
    """A folder for the solve runs and its SQLite store; the working directory moves there (MLflow's artifacts)."""
    import torch

    folder = tmp_path_factory.mktemp("solve_shards")
    before, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(folder)
    yield folder, f"sqlite:///{folder}/mlflow.db"
    os.chdir(before)
    torch.set_num_threads(threads)


def solve_three_ways(folder: Path, overrides, ways=("one", "processes", "jobs")) -> dict[str, Path]:
    """The same solve unsharded, in 2 processes (``shards=2``) and as 2 jobs merged (``shard=i/2``, ``merge=``)."""
    from test_ttft import TINY_SOLVE, run_solve

    common = [*TINY_SOLVE, *overrides]
    runs = {"one": folder / "one", "processes": folder / "processes", "jobs": folder / "merged"}
    if "one" in ways:
        run_solve(runs["one"], common)
    if "processes" in ways:
        run_solve(runs["processes"], [*common, "shards=2"])
    if "jobs" in ways:
        for i in (0, 1):
            run_solve(folder / "jobs" / str(i), [*common, f"shard={i}/2"])
        run_solve(runs["jobs"], [*common, f"merge={folder / 'jobs'}"])
    return {way: runs[way] for way in ways}


@pytest.mark.slow  # 4 solves of the tiny model (~10 s); test_failed_tasks_and_fallbacks_survive_the_merge merges jobs
def test_a_solve_merged_from_jobs_without_ttft_writes_what_one_process_writes(solve_store):
    folder, uri = solve_store
    runs = solve_three_ways(folder / "none", ["ttft=none", f"logger.tracking_uri={uri}"], ways=("one", "jobs"))
    one = solve_outputs(runs["one"])
    assert (one["n_predictions"], one["score"]["n_tasks"]) == (8, 3)
    assert 10 < one["metrics"]["val_loss"] < 12  # the tiny random model's answer loss: a figure the merge must keep
    assert solve_outputs(runs["jobs"]) == one
    # each job solved its tasks (shard 0: the 1st and 3rd); the jobs log no MLflow run, the merge logs one
    jobs = [sorted(json.loads((folder / "none" / "jobs" / str(i) / "submission.json").read_text())) for i in (0, 1)]
    assert jobs == [["4cd1b7b2", "6ea4a07e"], ["66e6c45b"]]
    solves = [r for r in mlflow_runs(uri)
              if r.data.tags.get("run_type") == "solve" and "/none/" in r.data.tags["output_dir"]]
    assert sorted(Path(r.data.tags["output_dir"]).name for r in solves) == ["merged", "one"]
    merged = next(r for r in solves if r.data.tags["output_dir"].endswith("merged"))
    assert merged.data.metrics["val_loss"] == pytest.approx(one["metrics"]["val_loss"], abs=1e-5)
    assert (merged.data.metrics["score"], merged.data.tags["degraded"]) == (0.0, "false")


@pytest.mark.slow  # 3 solves (~27 s); test_ttft.py::test_shared_adapter_end_to_end runs the shared adapter in one
def test_a_shared_ttft_adapter_is_trained_once_then_predictions_split(solve_store):
    folder, uri = solve_store
    runs = solve_three_ways(folder / "shared", ["ttft.steps=2", "logger=none"])
    one = solve_outputs(runs["one"])
    assert solve_outputs(runs["processes"]) == one
    assert solve_outputs(runs["jobs"]) == one  # each job trained the same shared adapter
    stages = [json.loads((runs[way] / "ttft" / "stage.json").read_text()) for way in ("one", "processes")]
    stages += [json.loads((folder / "shared" / "jobs" / str(i) / "ttft" / "stage.json").read_text()) for i in (0, 1)]
    assert [len(s["outcomes"]) for s in stages] == [1, 1, 1, 1]
    for stage in stages[1:]:
        assert stage["outcomes"][0]["losses"] == pytest.approx(stages[0]["outcomes"][0]["losses"], abs=1e-5)


@pytest.mark.slow  # 3 solves of 3 tasks with an adapter each (~50 s); tests/test_ttft.py runs per-task TTFT end to end
def test_per_task_ttft_runs_in_the_shards_processes(solve_store):
    """ttft.per_task=true with shards=2: each process trains the adapters of its tasks, into the run folder."""
    folder, uri = solve_store
    runs = solve_three_ways(folder / "per_task", ["ttft.steps=2", "ttft.per_task=true", f"logger.tracking_uri={uri}"])
    one = solve_outputs(runs["one"])
    assert solve_outputs(runs["processes"]) == one
    assert solve_outputs(runs["jobs"]) == one
    stages = {way: json.loads((runs[way] / "ttft" / "stage.json").read_text()) for way in ("one", "processes")}
    for way, stage in stages.items():
        assert stage["adapters"] == {task_id: str(runs[way] / "ttft" / "tasks" / task_id / "adapter")
                                     for task_id in ("4cd1b7b2", "66e6c45b", "6ea4a07e")}
        assert [(o["task_id"], o["steps"]) for o in stage["outcomes"]] == [
            ("4cd1b7b2", 2), ("66e6c45b", 2), ("6ea4a07e", 2)]
    assert [x for o in stages["processes"]["outcomes"] for x in o["losses"]] == pytest.approx(
        [x for o in stages["one"]["outcomes"] for x in o["losses"]], abs=1e-5)
    solves = {Path(r.data.tags["output_dir"]).name: r for r in mlflow_runs(uri)
              if r.data.tags.get("run_type") == "solve" and "per_task" in r.data.tags["output_dir"]}
    assert sorted(solves) == ["merged", "one", "processes"]
    for run in solves.values():  # the merge reports the jobs' TTFT as the others report their own
        assert (run.data.metrics["ttft/steps"], run.data.metrics["ttft/adapters"]) == (6.0, 3.0)
    # each process logged its tasks' TTFT runs under the one ttft run, as one process does
    from test_ttft import runs_by_name

    for way in ("one", "processes"):
        children = runs_by_name(uri, solves[way].info.run_id)
        assert sorted(children) == ["dataset", "predict", "ttft", "ttft:4cd1b7b2", "ttft:66e6c45b", "ttft:6ea4a07e"]
        for task_id in ("4cd1b7b2", "66e6c45b", "6ea4a07e"):
            run = children[f"ttft:{task_id}"]
            assert run.data.tags["mlflow.parentRunId"] == children["ttft"].info.run_id
            assert run.info.status == "FINISHED"
            assert list(metric_history(uri, run.info.run_id, "train/loss")) == [0, 1]

    # as if the 2-process run had been killed while shard 1 trained 66e6c45b: a resume trains that task only
    from test_ttft import TINY_SOLVE, run_solve

    processes = runs["processes"]
    adapter = processes / "ttft" / "tasks" / "{}" / "adapter" / "adapter_model.safetensors"
    trained_at = {t: Path(str(adapter).format(t)).stat().st_mtime_ns for t in ("4cd1b7b2", "66e6c45b", "6ea4a07e")}
    for marker in ("ttft/tasks/66e6c45b/stage.json", "ttft/stage.json", "predict/stage.json"):
        (processes / marker).unlink()
    run_solve(folder / "per_task" / "resumed", [*TINY_SOLVE, "ttft.steps=2", "ttft.per_task=true", "logger=none",
                                                "shards=2", f"resume={processes}"])
    assert [Path(str(adapter).format(t)).stat().st_mtime_ns == at for t, at in trained_at.items()] == [
        True, False, True]
    assert solve_outputs(processes) == one


def test_failed_tasks_and_fallbacks_survive_the_merge(solve_store, monkeypatch):
    """A stand-in solves 4cd1b7b2, raises on 66e6c45b (shard 1) and answers 6ea4a07e with no grid: the merged run
    has the unsharded run's score, metrics and degraded accounting."""
    import arc_exp.inference.generator
    from arc_exp.data.augmentation import Augmentation
    from arc_exp.inference.requests import FunctionGenerator

    by_id = {t.task_id: t for t in select_tasks(load_source("arc1-evaluation"), max_grid_side=4)}

    def answer(request):
        key = request.key
        if key.task_id == "66e6c45b":
            raise RuntimeError("out of memory")
        if key.task_id == "4cd1b7b2":
            return ENCODER.encode(Augmentation.from_name(key.augmentation).apply_grid(
                by_id[key.task_id].test[key.test_index].output))
        return "not a grid"

    monkeypatch.setattr(arc_exp.inference.generator, "create_generator",
                        lambda config, model, tokenizer: FunctionGenerator(answer))
    folder, uri = solve_store
    runs = solve_three_ways(folder / "degraded", ["ttft=none", f"logger.tracking_uri={uri}"], ways=("one", "jobs"))
    one = solve_outputs(runs["one"])
    assert one["score"]["per_task"] == {"4cd1b7b2": 1.0, "66e6c45b": 0.0, "6ea4a07e": 0.0}
    assert solve_outputs(runs["jobs"]) == one
    # each job solved its tasks (shard 0: the 1st and 3rd); the jobs log no MLflow run, the merge logs one
    jobs = [sorted(json.loads((folder / "degraded" / "jobs" / str(i) / "submission.json").read_text())) for i in (0, 1)]
    assert jobs == [["4cd1b7b2", "6ea4a07e"], ["66e6c45b"]]
    solves = {Path(r.data.tags["output_dir"]).name: r for r in mlflow_runs(uri)
              if r.data.tags.get("run_type") == "solve" and "degraded" in r.data.tags["output_dir"]}
    assert sorted(solves) == ["merged", "one"]
    for run in solves.values():
        assert (run.info.status, run.data.tags["degraded"], run.data.tags["errors"]) == (
            "FINISHED", "true", "predict 66e6c45b: RuntimeError: out of memory")
        assert {k: run.data.metrics[k] for k in ("score", "errors", "failed_tasks", "fallback_attempts")} == {
            "score": 1 / 3, "errors": 1.0, "failed_tasks": 1.0, "fallback_attempts": 2.0}


def test_bad_solve_shards_fail_before_the_model_loads(tmp_path):
    from test_ttft import TINY_SOLVE, run_solve

    with pytest.raises(ShardError, match=r"shard=2/2: the index must be in 0..1 for 2 shards"):
        run_solve(tmp_path / "a", [*TINY_SOLVE, "shard=2/2", "logger=none"])
    with pytest.raises(ShardError, match=r"shard=0/4: 4 shards for 3 tasks \(data.eval\)"):
        run_solve(tmp_path / "b", [*TINY_SOLVE, "shard=0/4", "logger=none"])
    assert not (tmp_path / "a" / "config.yaml").exists() and not (tmp_path / "b" / "submission.json").exists()
    with pytest.raises(ShardError, match=r"merge=.*evaluate.py, not by this entry point"):
        (tmp_path / "evaluated").mkdir()
        sharding.save_shard(tmp_path / "evaluated", Shard(0, 1),
                            select_tasks(load_source("arc1-evaluation"), max_grid_side=4), {None: None})
        run_solve(tmp_path / "c", [*TINY_SOLVE, f"merge={tmp_path / 'evaluated'}", "logger=none", "ttft=none"])
    assert not (tmp_path / "c" / "config.yaml").exists()  # checked before the run starts
