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
from conftest import CONF, mlflow_runs, run_recipe

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
