"""The evaluation pipeline with stand-in generators (oracle, garbage, un-reverted answers), its checks and outputs,
and one run of evaluate.py's main with the tiny model into a temporary MLflow store."""
import csv
import json
import random

import pytest
import yaml

from arc_exp.data.augmentation import Augmentation
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.selection import select_tasks
from arc_exp.data.sources import load_source
from arc_exp.data.tasks import Task
from arc_exp.data.encoders import GridParseError, create_grid_encoder, encoder_config
from arc_exp.evaluation.pipeline import evaluate_tasks, load_eval_tasks
from arc_exp.evaluation import EvaluationError
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.outputs import metric_keys, write_outputs
from arc_exp.evaluation.views import (
    answer_token_bound,
    answer_token_cap,
    check_predictions_per_task,
    inference_views,
    view_prompt,
)
from arc_exp.evaluation.checkpoints import (
    Checkpoint, CheckpointError, check_checkpoint, find_training_run, resolve_checkpoints,
)
from arc_exp.inference.requests import FunctionGenerator
from arc_exp.evaluation.submission import validate_submission
from conftest import CONF, metric_history, mlflow_runs, run_recipe

ENCODER = create_grid_encoder("grid_shape_row_number")
D8 = AugmentationPolicy(dihedral=True, color_permutation=False, shuffle_train=False)
PROMPT = "output-from-examples-v0"

# a task whose output has 4 different cells: its 8 rotations and flips are 8 different grids
ASYMMETRIC = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[8, 7], [6, 5]]}],
})
UNSOLVED = Task.from_dict("4e5f6a7b", {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3, 3]]}]})


@pytest.fixture(scope="module")
def small_tasks():
    """The three ARC-1 evaluation tasks whose grids are all at most 4x4 (4 test inputs)."""
    tasks = select_tasks(load_source("arc1-evaluation"), max_grid_side=4)
    assert [t.task_id for t in tasks] == ["4cd1b7b2", "66e6c45b", "6ea4a07e"]
    return tasks


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One temporary SQLite MLflow store for this module (creating a schema takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def evaluation_runs(tracking_uri):
    return [r for r in mlflow_runs(tracking_uri) if r.data.tags.get("run_type") == "evaluation"]


def settings(n=8, policy=D8, **kwargs):
    return EvaluationSettings(encoder=ENCODER, prompt_version=PROMPT, policy=policy, predictions_per_task=n, **kwargs)


def oracle(tasks):
    """Answers each augmented prompt with the augmented true output, after checking the prompt shows the augmented
    test input (so the pipeline really built the prompt from that view)."""
    by_id = {t.task_id: t for t in tasks}

    def answer(request):
        key = request.key
        example = by_id[key.task_id].test[key.test_index]
        augmentation = Augmentation.from_name(key.augmentation)
        assert ENCODER.encode(augmentation.apply_grid(example.input)) in request.prompt
        assert request.prompt_ids is not None and request.max_new_tokens >= 1
        return ENCODER.encode(augmentation.apply_grid(example.output))

    return FunctionGenerator(answer, logprob=-0.25)


def test_oracle_scores_everything(small_tasks, tokenizer):
    result = evaluate_tasks(small_tasks, oracle(small_tasks), tokenizer, settings(), progress=False)
    assert result.metrics == {"accuracy": 1.0, "correct_pixels": 1.0, "correct_size": 1.0, "max_correct_pixels": 1.0,
                              "any_correct_size": 1.0, "pass_8": 1.0, "vote_2": 1.0, "pass_2": 1.0,
                              "unanswered": 0.0}
    for task in small_tasks:
        for example, test in zip(task.test, result.tasks[task.task_id].test_inputs):
            assert test.attempts[0] == example.output
            assert test.voted[0].count == 8
            assert test.voted[0].augmentations == ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"]
    assert result.summary()["n_predictions"] == 32
    assert result.summary()["n_test_inputs"] == 4


def test_garbage_is_unanswered_with_a_valid_submission(small_tasks, tokenizer, tmp_path):
    garbage = FunctionGenerator(lambda request: "I think the answer is blue.")
    result = evaluate_tasks(small_tasks, garbage, tokenizer, settings(n=2), progress=False)
    assert result.metrics["unanswered"] == 1.0
    assert (result.metrics["accuracy"], result.metrics["vote_2"], result.metrics["pass_2_predictions"]) == (0, 0, 0)
    paths = write_outputs(result, small_tasks, tmp_path)
    submission = json.loads(paths["submission"].read_text())
    validate_submission(submission, small_tasks)
    # every attempt falls back: a copy of the test input, then [[0]]
    for task in small_tasks:
        assert submission[task.task_id] == [{"attempt_1": e.input, "attempt_2": [[0]]} for e in task.test]
    predictions = json.loads(paths["predictions"].read_text())
    first = predictions["4cd1b7b2"]["test_inputs"][0]
    assert first["candidates"] == []
    assert first["predictions"][0] == {"augmentation": "d0", "grid": None, "logprob": 0.0, "n_tokens": 0,
                                       "finished": True, "dropped_examples": 0,
                                       "text": "I think the answer is blue."}


def test_unreverted_answers_show_that_views_are_reverted(tokenizer, tmp_path):
    """Answering the original output to every view: only the identity view is right once reverted, and it wins the
    tie of 8 single votes because it comes first."""
    expected = ASYMMETRIC.test[0].output
    result = evaluate_tasks([ASYMMETRIC, UNSOLVED], FunctionGenerator(lambda r: ENCODER.encode(expected)), tokenizer,
                            settings(), progress=False)
    task = result.tasks["0a1b2c3d"]
    # correct_pixels: identity 4/4, the two transposes keep a diagonal (2/4), rotations and flips 0/4
    assert task.metrics == {"accuracy": 0.125, "correct_pixels": 0.25, "correct_size": 1.0,
                            "max_correct_pixels": 1.0, "any_correct_size": 1.0, "pass_8": 1.0, "vote_2": 1.0,
                            "pass_2": 1.0, "unanswered": 0.0}
    test = task.test_inputs[0]
    assert [v.count for v in test.voted] == [1] * 8
    assert test.attempts == [expected, Augmentation(1).revert_grid(expected)] == [[[8, 7], [6, 5]], [[7, 5], [8, 6]]]
    # a task without a known output gets predictions and a submission entry, no scores
    assert result.tasks["4e5f6a7b"].metrics is None
    assert result.metrics["accuracy"] == 0.125  # the mean over scored tasks only
    paths = write_outputs(result, [ASYMMETRIC, UNSOLVED], tmp_path, max_failure_plots=4, max_success_plots=4)
    rows = list(csv.reader(paths["per_task"].open()))
    assert rows[0] == ["task_id", "source", "test_inputs", "predictions", *metric_keys(8)]
    assert rows[1] == ["0a1b2c3d", "<memory>", "1", "8", "0.125", "0.25", "1", "1", "1", "1", "1", "1", "0"]
    assert rows[2] == ["4e5f6a7b", "<memory>", "1", "8"] + [""] * 9
    assert sorted(p.name for p in paths["plots"].rglob("*.png")) == ["0a1b2c3d-0.png"]
    assert (paths["plots"] / "successes" / "0a1b2c3d-0.png").exists()


def test_answer_length_bounds(tokenizer):
    # 30 rows of "N " + 30 digits + newline, the shape header and the fences: 1023 tokens, plus the end token
    assert answer_token_cap(ENCODER, tokenizer) == 1024
    assert answer_token_cap(ENCODER, tokenizer, limit=100) == 100
    assert answer_token_cap(create_grid_encoder("minimal"), tokenizer) == 930
    # "```grid shape: 2x2\n1 87\n2 65\n```" is 20 tokens: twice that, plus the end token
    assert answer_token_bound(ASYMMETRIC, 0, ENCODER, tokenizer, cap=1024) == 41
    assert answer_token_bound(ASYMMETRIC, 0, ENCODER, tokenizer, cap=30) == 30


def test_prompts_drop_examples_to_fit_or_skip(small_tasks, tokenizer):
    task = small_tasks[2]  # 6 train examples
    full = view_prompt(task, 0, Augmentation(), 0, ENCODER, PROMPT, tokenizer, cap=1024, max_seq_len=8192)
    assert full.dropped_examples == 0
    assert task.test[0].output is not None and ENCODER.encode(task.test[0].output) not in full.request.prompt
    length = len(full.request.prompt_ids)
    bound = full.request.max_new_tokens
    assert bound == answer_token_bound(task, 0, ENCODER, tokenizer, 1024)
    tight = view_prompt(task, 0, Augmentation(), 0, ENCODER, PROMPT, tokenizer, cap=1024,
                        max_seq_len=length + bound - 1)
    assert tight.dropped_examples == 1
    assert len(tight.request.prompt_ids) + bound <= length + bound - 1
    none = view_prompt(task, 0, Augmentation(), 0, ENCODER, PROMPT, tokenizer, cap=1024, max_seq_len=bound + 100)
    assert none.request is None
    result = evaluate_tasks([task], FunctionGenerator(lambda r: "x"), tokenizer,
                            settings(n=2, max_seq_len=bound + 100), progress=False)
    assert result.summary()["n_skipped_prompts"] == 4
    assert result.metrics["unanswered"] == 1.0


def test_views_and_predictions_per_task():
    assert [v.name for v in inference_views(D8, 3, False, random.Random(0))] == ["d0", "d1", "d2"]
    none = AugmentationPolicy(dihedral=False, color_permutation=False)
    assert [v.name for v in inference_views(none, 2, True, random.Random(0))] == ["d0", "d0"]
    with pytest.raises(EvaluationError, match=r"predictions_per_task=2 but the augmentation \(dihedral=False, "
                                              r"color_permutation=False\) gives only 1 distinct view"):
        inference_views(none, 2, False, random.Random(0))
    colors = inference_views(AugmentationPolicy(), 9, False, random.Random(0))
    assert [v.name for v in colors[:8]] == [f"d{k}" for k in range(8)]
    assert colors[8].dihedral == 0 and not colors[8].is_identity
    for bad in (0, -1, 1.5, True, "8"):
        with pytest.raises(EvaluationError, match="predictions_per_task must be an integer >= 1"):
            check_predictions_per_task(bad)


def test_eval_task_set_errors():
    with pytest.raises(EvaluationError, match="no 'eval' task set"):
        load_eval_tasks(None)
    with pytest.raises(EvaluationError, match="data.eval selects no tasks"):
        load_eval_tasks({"source": "arc1-evaluation", "max_grid_side": 1})
    assert [t.task_id for t in load_eval_tasks({"source": "arc1-evaluation", "first_n": 2})] == ["00576224",
                                                                                                  "009d5c81"]


def _fake_run(tmp_path, steps=(2, 4), model="tiny-random", encoder=ENCODER):
    """A training run's folder with a checkpoint per step; ``encoder``: an encoder, or the config its runs recorded."""
    run = tmp_path / "run"
    config = {"model": {"name": model}, "lora": {"method": "lora"}, "prompt": {"version": PROMPT}, "seed": 0,
              "encoder": encoder if isinstance(encoder, dict) else encoder_config(encoder)}
    for step in steps:
        folder = run / "checkpoints" / f"step-{step:06d}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        (folder / "arc_exp.yaml").write_text(yaml.safe_dump(config))
    return run


def test_resolve_checkpoints(tmp_path, store):
    tracking_uri = store
    run = _fake_run(tmp_path)
    last = resolve_checkpoints(str(run))
    assert [(c.step, c.folder.name, c.training_run_id) for c in last] == [(4, "step-000004", None)]
    assert last[0].config["model"] == {"name": "tiny-random"}
    assert [c.step for c in resolve_checkpoints(str(run), all_checkpoints=True)] == [2, 4]
    step2 = run / "checkpoints" / "step-000002"
    assert [c.folder for c in resolve_checkpoints(str(step2))] == [step2]
    assert [c.step for c in resolve_checkpoints(str(step2), all_checkpoints=True)] == [2, 4]
    assert resolve_checkpoints(None) == [Checkpoint()]

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run_id = client.create_run(client.create_experiment("train"), tags={"output_dir": str(run.resolve())}).info.run_id
    by_id = resolve_checkpoints(run_id, all_checkpoints=True, tracking_uri=tracking_uri)
    assert [(c.step, c.training_run_id) for c in by_id] == [(2, run_id), (4, run_id)]
    assert resolve_checkpoints(str(run), tracking_uri=tracking_uri)[0].training_run_id == run_id  # found by folder

    with pytest.raises(CheckpointError, match=f"no MLflow run with this id in {tracking_uri}"):
        resolve_checkpoints("0123456789abcdef0123456789abcdef", tracking_uri=tracking_uri)
    with pytest.raises(CheckpointError, match="without a tracking store"):
        resolve_checkpoints(str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="holds no adapter_config.json or config.json"):
        resolve_checkpoints(str(tmp_path))
    with pytest.raises(CheckpointError, match="all_checkpoints=true needs checkpoint="):
        resolve_checkpoints(None, all_checkpoints=True)


def test_a_training_run_lookup_that_the_store_refuses_is_a_warning(tmp_path, tracking_uri, caplog):
    """The link to the training run is a convenience: a store that cannot answer (here the file store current MLflow
    refuses) costs the link with a warning; a bug in the lookup is not hidden."""
    import logging

    import mlflow

    uri = f"file://{tmp_path}/mlruns"
    with caplog.at_level(logging.WARNING, logger="arc_exp.evaluation"):
        assert find_training_run(uri, tmp_path) is None
    assert [m.split(": ")[0] for m in caplog.messages] == [f"could not look up the training run of {tmp_path} in {uri}"]
    mlflow.MlflowClient(tracking_uri=tracking_uri).create_experiment("train")
    with pytest.raises(TypeError):
        find_training_run(tracking_uri, None)  # a bug (no folder given) is not a missing link


def test_checkpoint_mismatch_names_the_override(tmp_path):
    checkpoint = resolve_checkpoints(str(_fake_run(tmp_path)))[0]
    check_checkpoint(checkpoint, "tiny-random", ENCODER, "lora", PROMPT)  # matches: no error
    with pytest.raises(CheckpointError, match="was trained from model 'tiny-random' but the config asks for "
                                              "'smollm2-135m'; evaluate it with model=tiny-random"):
        check_checkpoint(checkpoint, "smollm2-135m", ENCODER, "lora")
    with pytest.raises(CheckpointError, match=r"was trained with encoder GridShapeEncoder\(RowNumberEncoder\("
                                              r"MinimalGridEncoder\(\)\)\) but the config uses MinimalGridEncoder\(\); "
                                              r"evaluate it with encoder=grid_shape_row_number"):
        check_checkpoint(checkpoint, "tiny-random", create_grid_encoder("minimal"), "lora")
    with pytest.raises(CheckpointError, match="evaluate it with lora=lora"):
        check_checkpoint(checkpoint, "tiny-random", ENCODER, "full")


@pytest.mark.parametrize("saved, checked", [
    ({"_target_": "arc_exp.encoders.create_grid_encoder", "spec": "minimal"}, True),  # before the stage packages
    ({"_target_": "arc_exp.encoders.MinimalGridEncoder"}, True),
    ({"_target_": "my_project.encoders.DiagonalEncoder"}, False),  # a project's own class: not built here
])
def test_a_checkpoint_encoder_recorded_otherwise(tmp_path, caplog, saved, checked):
    checkpoint = resolve_checkpoints(str(_fake_run(tmp_path, encoder=saved)))[0]
    if checked:
        check_checkpoint(checkpoint, "tiny-random", create_grid_encoder("minimal"), "lora")
        with pytest.raises(CheckpointError, match="evaluate it with encoder=minimal"):
            check_checkpoint(checkpoint, "tiny-random", ENCODER, "lora")
    else:
        check_checkpoint(checkpoint, "tiny-random", ENCODER, "lora")
        assert "cannot check its encoder: encoder config names 'my_project.encoders.DiagonalEncoder'" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# evaluate.py end to end: two LoRA checkpoints of the tiny model, two tiny tasks, a temporary MLflow store.


def compose_evaluate(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="evaluate"):
        return compose("evaluate", overrides=list(overrides), return_hydra_config=True)


def run_evaluate(run_dir, overrides):
    """``evaluate.py``'s main in this process, as ``python evaluate.py <overrides> hydra.run.dir=<run_dir>``."""
    import evaluate

    return run_recipe(evaluate.main, compose_evaluate(overrides), run_dir)


@pytest.fixture
def tiny_training_run(tmp_path, tokenizer, store):
    """A training run folder with LoRA checkpoints at steps 2 and 4 and its MLflow run (tag output_dir)."""
    import mlflow
    import torch

    from arc_exp.model.adapters import AdapterConfig, apply_adapter
    from arc_exp.model.checkpoints import save_checkpoint
    from arc_exp.model.loader import load_model
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_container(compose_evaluate(["model=tiny-random"]), resolve=False)
    config = {key: resolved[key] for key in ("model", "lora", "encoder", "prompt")}
    config["seed"] = 0
    run = tmp_path / "train_run"
    model = apply_adapter(load_model(instantiate(config["model"]), seed=0), AdapterConfig(r=2))
    for step in (2, 4):
        with torch.no_grad():  # a different adapter per step
            for name, weight in model.named_parameters():
                if "lora_B" in name:
                    weight.fill_(0.01 * step)
        save_checkpoint(model, tokenizer, run / "checkpoints" / f"step-{step:06d}", config)
    client = mlflow.MlflowClient(tracking_uri=store)
    found = client.get_experiment_by_name("arc_exp-training")  # the module's store: another test may have made it
    experiment = found.experiment_id if found else client.create_experiment("arc_exp-training")
    run_id = client.create_run(experiment, tags={"output_dir": str(run.resolve())}).info.run_id
    return run, run_id


def test_evaluate_main_logs_metrics_and_artifacts_per_step(tmp_path, store, tiny_training_run):
    import mlflow

    tracking_uri = store
    run, training_run_id = tiny_training_run
    overrides = ["model=tiny-random", "debug=smoke", f"checkpoint={training_run_id}", "all_checkpoints=true",
                 f"logger.tracking_uri={tracking_uri}", "predictions_per_task=2", "progress=false",
                 "data.eval.first_n=2", "data.eval.max_grid_side=4", "inference.max_new_tokens=12"]
    out = tmp_path / "eval_run"
    assert run_evaluate(out, overrides) == 0.0
    evaluation_run = [r for r in evaluation_runs(tracking_uri) if r.data.tags["training_run_id"] == training_run_id]
    assert len(evaluation_run) == 1
    info = evaluation_run[0]
    assert info.info.status == "FINISHED"
    assert info.data.tags["training_run_id"] == training_run_id
    assert info.data.tags["model"] == "tiny-random"
    assert info.data.params["predictions_per_task"] == "2"
    assert metric_history(tracking_uri, info.info.run_id, "unanswered") == {2: 1.0, 4: 1.0}
    assert metric_history(tracking_uri, info.info.run_id, "n_tasks") == {2: 2.0, 4: 2.0}
    assert metric_history(tracking_uri, info.info.run_id, "n_predictions") == {2: 4.0, 4: 4.0}
    assert set(metric_history(tracking_uri, info.info.run_id, "vote_2")) == {2, 4}
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    top = sorted(a.path for a in client.list_artifacts(info.info.run_id))
    assert top == ["config.yaml", "step-000002", "step-000004"]
    step = sorted(a.path for a in client.list_artifacts(info.info.run_id, "step-000004"))
    assert step == ["step-000004/metrics.json", "step-000004/per_task.csv", "step-000004/plots",
                    "step-000004/predictions.json", "step-000004/submission.json"]
    plots = client.list_artifacts(info.info.run_id, "step-000004/plots/failures")
    assert sorted(a.path.rsplit("/", 1)[1] for a in plots) == ["4cd1b7b2-0.png", "66e6c45b-0.png"]
    submission = json.loads((out / "step-000004" / "submission.json").read_text())
    assert sorted(submission) == ["4cd1b7b2", "66e6c45b"]


def test_evaluate_main_fails_before_generation(tmp_path, store):
    tracking_uri = store
    before = len(evaluation_runs(tracking_uri))
    with pytest.raises(EvaluationError, match="predictions_per_task must be an integer >= 1, got 0"):
        run_evaluate(tmp_path / "a", ["model=tiny-random", "predictions_per_task=0", "logger=none"])
    with pytest.raises(CheckpointError, match="no MLflow run with this id"):
        run_evaluate(tmp_path / "b", ["model=tiny-random", "checkpoint=feedbeef",
                                      f"logger.tracking_uri={tracking_uri}"])
    run = _fake_run(tmp_path, model="smollm2-135m")
    with pytest.raises(CheckpointError, match="evaluate it with model=smollm2-135m"):
        run_evaluate(tmp_path / "c", ["model=tiny-random", f"checkpoint={run}", "logger=none"])
    assert len(evaluation_runs(tracking_uri)) == before  # nothing was logged: each run failed before it started


def test_garbage_text_never_stops_the_run():
    with pytest.raises(GridParseError):
        ENCODER.decode("not a grid")  # what the pipeline catches and counts as unanswered


def test_the_run_seed_moves_the_sampler(tmp_path, tiny_training_run):
    """evaluate.py -m seed=0,1,2 with sampling: each seed another draw (inference.seed is an offset: seed=1 draws as
    inference.seed=1 does), so the spread over seeds measures the sampling. The checkpoint's base model is rebuilt
    from its own run's seed, so only the draws differ."""
    run, _ = tiny_training_run
    base = ["model=tiny-random", "debug=smoke", "logger=none", f"checkpoint={run}", "inference=sampling",
            "inference.temperature=1.0",
            "inference.top_p=1.0", "predictions_per_task=1", "progress=false", "data.eval.first_n=1",
            "data.eval.max_grid_side=4", "inference.max_new_tokens=12", "plots.failures=0", "plots.successes=0"]
    texts = {}
    for name, extra in (("seed0", ["seed=0"]), ("seed1", ["seed=1"]), ("offset1", ["inference.seed=1"])):
        run_evaluate(tmp_path / name, [*base, *extra])
        predictions = json.loads((tmp_path / name / "predictions.json").read_text())
        texts[name] = [p.get("text") for task in predictions.values() for t in task["test_inputs"]
                       for p in t["predictions"]]
    assert texts["seed0"] != texts["seed1"] and texts["seed1"] == texts["offset1"]
