"""New task inputs (generator=new_inputs): the outcome of every sample, the files written, the generate.py recipe
with the tiny model into a temporary MLflow store, and seeded output."""
import json

import pytest

from arc_exp.augmentation import Augmentation, AugmentationPolicy
from arc_exp.data.sources import load_source
from arc_exp.data.tasks import Task
from arc_exp.encoders import create_grid_encoder
from arc_exp.inference import FunctionGenerator
from arc_exp.synthetic.new_inputs import (
    NewInputsError, NewInputsGenerator, generate_new_inputs, new_input_prompt, write_new_inputs,
)
from conftest import REPO, mlflow_runs, run_recipe

ENCODER = create_grid_encoder("grid_shape_row_number")
IDENTITY = AugmentationPolicy(dihedral=False, color_permutation=False, shuffle_train=False)
TASK = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]},
              {"input": [[5, 5], [0, 5]], "output": [[5, 0], [5, 5]]}],
    "test": [{"input": [[7, 0], [0, 7]], "output": [[0, 7], [7, 0]]}],
})
NEW = [[1, 1, 1], [0, 2, 0]]


def scripted(answers):
    """Answers the requests in turn with ``answers``; checks each prompt shows the task's inputs, not its outputs."""
    calls = iter(answers)

    def answer(request):
        assert ENCODER.encode([[7, 0], [0, 7]]) in request.prompt  # the test input is shown
        assert ENCODER.encode([[4, 3], [2, 1]]) not in request.prompt  # outputs are not
        return next(calls)

    return FunctionGenerator(answer)


def test_each_outcome_is_counted(tokenizer, tmp_path):
    answers = [ENCODER.encode([[5, 5], [0, 5]]),                   # a copy of a train input
               "I think the answer is blue",                       # no grid
               ENCODER.encode(NEW),                                # new
               ENCODER.encode(NEW),                                # the same new grid again
               "```grid shape: 2x2\n1 12\n2 345\n```",             # ragged rows
               "```grid shape: 1x31\n1 " + "1" * 31 + "\n```",     # larger than 30x30
               ENCODER.encode([[7, 0], [0, 7]]),                   # a copy of the test input
               ENCODER.encode([[3]])]                              # new
    settings = NewInputsGenerator(samples_per_task=8)
    [result] = generate_new_inputs([TASK], scripted(answers), tokenizer, ENCODER, IDENTITY, settings)
    assert [s.outcome for s in result.samples] == [
        "duplicate_of_existing", "unanswered", "kept", "duplicate_of_new", "invalid", "invalid",
        "duplicate_of_existing", "kept"]
    assert result.kept == [NEW, [[3]]]
    assert result.counts() == {"generated": 8, "kept": 2, "unanswered": 1, "invalid": 2, "duplicate_of_existing": 2,
                               "duplicate_of_new": 1, "skipped": 0}
    paths = write_new_inputs([result], tmp_path / "out")
    # the written task reloads as a task source, with the new inputs beside it
    [reloaded] = load_source(str(tmp_path / "out" / "tasks"))
    assert reloaded.task_id == TASK.task_id and reloaded.train == TASK.train
    record = json.loads((tmp_path / "out" / "tasks" / f"{TASK.task_id}.json").read_text())
    assert record["new_inputs"] == [NEW, [[3]]]
    assert record["samples"][1] == {"outcome": "unanswered", "augmentation": "d0", "shown_inputs": 3, "grid": None,
                                    "text": "I think the answer is blue"}
    assert (tmp_path / "out" / "gallery" / f"{TASK.task_id}.png").stat().st_size > 1000
    summary = json.loads(paths["summary"].read_text())
    assert (summary["kept"], summary["generated"], summary["kept_rate"]) == (2, 8, 0.25)


def test_new_inputs_are_reverted_to_the_tasks_orientation(tokenizer):
    """Under rotations and color permutations, a model that writes one fixed input in each view's frame gives the
    same reverted grid every time: one kept, the rest repeats of it."""
    policy = AugmentationPolicy(dihedral=True, color_permutation=True, shuffle_train=True)
    seen = []

    def answer(request):
        seen.append(request.prompt)
        return ENCODER.encode(NEW)  # written in the view's frame: reverted, a different grid per view

    [result] = generate_new_inputs([TASK], FunctionGenerator(answer), tokenizer, ENCODER, policy,
                                   NewInputsGenerator(samples_per_task=6), seed=3)
    assert len(set(seen)) == 6  # every prompt differs (augmentation, shuffled order)
    assert len({s.augmentation for s in result.samples}) > 1
    assert all(s.grid is not None for s in result.samples)
    assert result.counts()["kept"] + result.counts()["duplicate_of_new"] == 6


def test_prompts_drop_inputs_to_fit(tokenizer):
    full, shown = new_input_prompt(TASK, Augmentation(), ENCODER, tokenizer,
                                   8192, None)
    assert shown == 3 and full.max_new_tokens == 2 * len(tokenizer(ENCODER.encode([[1, 2], [3, 4]]),
                                                                   add_special_tokens=False)["input_ids"]) + 1
    limit = len(full.prompt_ids) + full.max_new_tokens - 1  # one token short: an input is dropped
    smaller, kept = new_input_prompt(TASK, Augmentation(), ENCODER, tokenizer,
                                     limit, None)
    assert kept == 2 and len(smaller.prompt_ids) < len(full.prompt_ids)
    assert new_input_prompt(TASK, Augmentation(), ENCODER, tokenizer, 20, None) \
        == (None, 0)


def test_bad_settings():
    with pytest.raises(NewInputsError, match="generator.samples_per_task must be an integer >= 1, got 0"):
        NewInputsGenerator(samples_per_task=0)
    with pytest.raises(NewInputsError, match="new inputs are written with 'input-from-inputs-v0'"):
        NewInputsGenerator(prompt="output-from-examples-v0")


def run_generate(run_dir, overrides):
    """``generate.py``'s main in this process, its output under ``run_dir``."""
    from hydra import compose, initialize_config_dir

    import generate

    overrides = [*overrides, f"out={run_dir / 'new_inputs'}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3", job_name="generate"):
        cfg = compose("generate", overrides=overrides, return_hydra_config=True)
    return run_recipe(generate.main, cfg, run_dir)


def test_generate_main_with_the_tiny_model(tmp_path, tracking_uri):
    """The recipe end to end: the tiny random model writes no grid, so every sample is unanswered; the files and the
    MLflow run are there, and the same seed gives the same files."""
    overrides = ["generator=new_inputs", "model=tiny-random", "checkpoint=null", f"logger.tracking_uri={tracking_uri}",
                 "generator.samples_per_task=2", "generator.tasks.first_n=2", "generator.tasks.max_grid_side=4",
                 "generator.max_new_tokens=6"]
    run_generate(tmp_path / "a", overrides)
    summary = json.loads((tmp_path / "a" / "new_inputs" / "summary.json").read_text())
    assert (summary["tasks"], summary["generated"], summary["unanswered"]) == (2, 4, 4)
    [run] = [r for r in mlflow_runs(tracking_uri) if r.data.tags.get("run_type") == "generate"]
    assert run.info.status == "FINISHED" and run.data.metrics["unanswered_rate"] == 1.0
    assert run.data.params["generator.samples_per_task"] == "2"
    import mlflow

    artifacts = [a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(run.info.run_id, "new_inputs")]
    assert "new_inputs/summary.json" in artifacts and "new_inputs/gallery" in artifacts
    run_generate(tmp_path / "b", overrides)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "new_inputs").rglob("*.json"))
    assert len(files) == 3
    for name in files:
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
