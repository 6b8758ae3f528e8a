"""New task inputs (generator=new_inputs): the outcome of every sample, the files written, the bad settings refused
before a model loads, the generate.py recipe with the tiny model into a temporary MLflow store, and seeded output."""
import json
import logging
import random

import pytest

from arc_exp.data.augmentation import Augmentation
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.sources import UnknownSourceError, load_source
from arc_exp.data.tasks import Task
from arc_exp.data.encoders import ENCODER_COMPOSITIONS, GridEncoder, GridParseError, create_grid_encoder
from arc_exp.inference.requests import FunctionGenerator, Generation
from arc_exp.synthetic.new_inputs import (
    ANSWERED, NewInputsError, NewInputsGenerator, check_checkpoint_prompt, classify, generate_new_inputs,
    new_input_prompt, task_set, write_new_inputs,
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


class JsonGridEncoder(GridEncoder):
    """Grids as JSON lists, decoded without any check: lets a test hand the generator a color 10 or ragged rows
    as a parsed grid, the way a looser encoder could."""

    def encode(self, grid):
        return json.dumps(grid)

    def decode(self, text):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise GridParseError(str(error)) from None


def scripted(answers, encoder=ENCODER):
    """Answers the requests in turn with ``answers``; checks each prompt shows the task's inputs, not its outputs."""
    calls = iter(answers)

    def answer(request):
        assert encoder.encode([[7, 0], [0, 7]]) in request.prompt  # the test input is shown
        assert encoder.encode([[4, 3], [2, 1]]) not in request.prompt  # outputs are not
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
    paths = write_new_inputs([result], tmp_path / "out", {"seed": 0})
    # the written task reloads as a task source, with the new inputs beside it
    [reloaded] = load_source(str(tmp_path / "out" / "tasks"))
    assert reloaded == TASK
    record = json.loads((tmp_path / "out" / "tasks" / f"{TASK.task_id}.json").read_text())
    assert record["new_inputs"] == [NEW, [[3]]]
    assert record["new_input_samples"][1] == {"outcome": "unanswered", "augmentation": "d0", "shown_inputs": 3,
                                              "grid": None, "text": "I think the answer is blue"}
    assert record["new_input_samples"][3]["grid"] == NEW
    assert (tmp_path / "out" / "gallery" / f"{TASK.task_id}.png").stat().st_size > 1000
    summary = json.loads(paths["summary"].read_text())
    assert (summary["kept"], summary["generated"], summary["kept_rate"], summary["unanswered_rate"]) == (2, 8, 0.25,
                                                                                                        0.125)
    assert summary["per_task"] == {TASK.task_id: result.counts()} and summary["settings"] == {"seed": 0}


def test_parsed_grids_outside_arc_are_invalid(tokenizer):
    """(a) a copy, (b) garbage, (c) new, (d) new again, (e) a color 10 / ragged rows / an empty grid, through an
    encoder that parses them as grids: the grid check after decoding sorts them out."""
    encoder = JsonGridEncoder()
    answers = ["[[1, 2], [3, 4]]", "[[1, 2], [3", "[[8, 8]]", "[[8, 8]]", "[[10, 1]]", "[[1, 2], [3]]", "[]",
               "[[1.5]]", '"1 2"', "[[6]]"]
    [result] = generate_new_inputs([TASK], scripted(answers, encoder), tokenizer, encoder, IDENTITY,
                                   NewInputsGenerator(samples_per_task=len(answers)))
    assert [s.outcome for s in result.samples] == [
        "duplicate_of_existing", "unanswered", "kept", "duplicate_of_new", "invalid", "invalid", "invalid",
        "invalid", "invalid", "kept"]
    assert result.kept == [[[8, 8]], [[6]]]
    assert result.counts() == {"generated": 10, "kept": 2, "unanswered": 1, "invalid": 5, "duplicate_of_existing": 1,
                               "duplicate_of_new": 1, "skipped": 0}


def test_an_answer_cut_short_is_unanswered():
    grid = classify(Generation(ENCODER.encode(NEW), 0.0, finished=True), Augmentation(), ENCODER, set(), set())
    assert grid == ("kept", NEW)
    assert classify(Generation(ENCODER.encode(NEW), 0.0, finished=False), Augmentation(), ENCODER, set(), set()) \
        == ("unanswered", None)


def test_an_encoder_bug_is_not_counted_as_unanswered():
    """Only a GridParseError means the text is not a grid; any other error of the encoder is a bug and surfaces."""

    class BrokenEncoder(JsonGridEncoder):
        def decode(self, text):
            return {"0": 1}[text]  # KeyError: a bug, not a verdict on the text

    with pytest.raises(KeyError):
        classify(Generation("[[1]]", 0.0), Augmentation(), BrokenEncoder(), set(), set())
    assert classify(Generation("[[1]", 0.0), Augmentation(), JsonGridEncoder(), set(), set()) == ("unanswered", None)
    assert classify(Generation("[[1, 10]]", 0.0), Augmentation(), JsonGridEncoder(), set(), set()) == ("invalid", None)


def test_no_model_output_raises():
    """Seeded mutations of encoded grids (and plain noise) through every encoder: always one of the outcomes."""
    rng = random.Random(0)
    alphabet = "0123456789 \n`x:gridshape|,[]ñòû-"
    for name in ENCODER_COMPOSITIONS:
        encoder = create_grid_encoder(name)
        outcomes = set()
        for _ in range(300):
            grid = [[rng.randrange(10) for _ in range(rng.randint(1, 4))] for _ in range(rng.randint(1, 3))]
            text = list(encoder.encode(grid) if rng.random() < 0.8 else "")
            for _ in range(rng.randint(0, 3)):
                text.insert(rng.randrange(len(text) + 1), rng.choice(alphabet))
            outcome, _ = classify(Generation("".join(text), 0.0), Augmentation(rng.randrange(8)), encoder, set(),
                                  set())
            outcomes.add(outcome)
        assert outcomes <= set(ANSWERED) and {"kept", "unanswered"} <= outcomes, name


def test_new_inputs_are_reverted_to_the_tasks_orientation(tokenizer):
    """Under rotations and color permutations, a model that writes one fixed input in each view's frame gives the
    grid of each view mapped back: kept once per distinct view, repeats otherwise; the prompts all differ."""
    policy = AugmentationPolicy(dihedral=True, color_permutation=True, shuffle_train=True)
    seen = []

    def answer(request):
        seen.append(request.prompt)
        return ENCODER.encode(NEW)  # written in the view's frame: reverted, a different grid per view

    [result] = generate_new_inputs([TASK], FunctionGenerator(answer), tokenizer, ENCODER, policy,
                                   NewInputsGenerator(samples_per_task=6), seed=3)
    assert len(set(seen)) == 6  # every prompt differs (augmentation, shuffled order)
    for sample in result.samples:
        assert sample.grid == Augmentation.from_name(sample.augmentation).revert_grid(NEW)
    assert result.counts()["kept"] == len({json.dumps(s.grid) for s in result.samples})
    assert result.counts()["kept"] + result.counts()["duplicate_of_new"] == 6


def test_prompts_follow_the_policy_and_the_seed(tokenizer):
    def prompts(policy, seed):
        seen = []
        generate_new_inputs([TASK], FunctionGenerator(lambda r: seen.append(r.prompt) or "x"), tokenizer, ENCODER,
                            policy, NewInputsGenerator(samples_per_task=4), seed=seed)
        return seen

    assert len(set(prompts(IDENTITY, 0))) == 1  # augmentation=none: one view, repeated
    shuffled = AugmentationPolicy(dihedral=False, color_permutation=False, shuffle_train=True)
    assert len(set(prompts(shuffled, 0))) > 1
    assert prompts(shuffled, 0) == prompts(shuffled, 0) != prompts(shuffled, 1)


def test_prompts_drop_inputs_to_fit(tokenizer):
    full, shown = new_input_prompt(TASK, Augmentation(), ENCODER, tokenizer, 8192, None)
    answer_tokens = len(tokenizer(ENCODER.encode([[1, 2], [3, 4]]), add_special_tokens=False)["input_ids"])
    assert shown == 3 and full.max_new_tokens == 2 * answer_tokens + 1
    limit = len(full.prompt_ids) + full.max_new_tokens - 1  # one token short: an input is dropped
    smaller, kept = new_input_prompt(TASK, Augmentation(), ENCODER, tokenizer, limit, None)
    assert kept == 2 and len(smaller.prompt_ids) < len(full.prompt_ids)
    assert new_input_prompt(TASK, Augmentation(), ENCODER, tokenizer, 20, None) == (None, 0)
    # a task none of whose prompts fit: every sample is skipped, none generated
    [result] = generate_new_inputs([TASK], FunctionGenerator(lambda r: "x"), tokenizer, ENCODER, IDENTITY,
                                   NewInputsGenerator(samples_per_task=2, max_seq_len=20))
    assert result.counts() == {"generated": 0, "kept": 0, "unanswered": 0, "invalid": 0,
                               "duplicate_of_existing": 0, "duplicate_of_new": 0, "skipped": 2}


def test_bad_settings():
    with pytest.raises(NewInputsError, match="generator.samples_per_task must be an integer >= 1, got 0"):
        NewInputsGenerator(samples_per_task=0)
    with pytest.raises(NewInputsError, match="generator.max_new_tokens must be an integer >= 1 or null, got 0"):
        NewInputsGenerator(max_new_tokens=0)
    with pytest.raises(NewInputsError, match="new inputs are written with 'input-from-inputs-v0'"):
        NewInputsGenerator(prompt="output-from-examples-v0")
    assert task_set({"source": "arc1-evaluation", "first_n": 2}).first_n == 2
    assert task_set("some/folder").source == "some/folder"
    with pytest.raises(NewInputsError, match="tasks: a source name or path, or a mapping"):
        task_set(None)
    with pytest.raises(NewInputsError, match="tasks: unknown task set key 'frist_n'"):
        task_set({"source": "arc1-training", "frist_n": 2})


def test_checkpoint_trained_on_another_prompt_is_warned(caplog):
    config = {"prompt": {"version": "output-from-examples-v0"},
              "data": {"train": [{"source": "arc1-training", "prompt": "output-from-examples-v0"}]}}
    with caplog.at_level(logging.WARNING):
        assert not check_checkpoint_prompt(config, "checkpoint 'x'")
    assert "checkpoint 'x' was trained with prompts ['output-from-examples-v0'], not input-from-inputs-v0" \
        in caplog.text
    mixed = {"data": {"train": [{"prompt": "output-from-examples-v0"}, {"prompt": "input-from-inputs-v0"}]}}
    assert check_checkpoint_prompt(mixed, "checkpoint 'y'")


# ---------------------------------------------------------------------------------------------------------------------
# generate.py


def run_generate(run_dir, overrides):
    """``generate.py``'s main in this process, its output under ``run_dir``."""
    from hydra import compose, initialize_config_dir

    import generate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3", job_name="generate"):
        cfg = compose("generate", overrides=list(overrides), return_hydra_config=True)
    return run_recipe(generate.main, cfg, run_dir)


TINY_RUN = ["generator=new_inputs", "model=tiny-random", "generator.samples_per_task=2",
            "tasks.first_n=2", "tasks.max_grid_side=4", "generator.max_new_tokens=6"]


def test_generate_main_with_the_tiny_model(tmp_path, tracking_uri):
    """The recipe end to end: the tiny random model writes no grid, so every sample is unanswered; the files and the
    MLflow run are there, and the same seed gives the same files."""
    import mlflow

    overrides = [*TINY_RUN, "checkpoint=null", f"logger.tracking_uri={tracking_uri}"]
    summary = run_generate(tmp_path / "a", overrides)
    out = tmp_path / "a" / "new_inputs"  # the default out: the run folder's new_inputs/
    assert json.loads((out / "summary.json").read_text())["per_task"] == summary["per_task"]
    assert (summary["tasks"], summary["generated"], summary["unanswered"], summary["kept"]) == (2, 4, 4, 0)
    task_ids = sorted(summary["per_task"])
    assert [t.task_id for t in load_source(str(out / "tasks"))] == task_ids
    assert sorted(p.name for p in (out / "gallery").iterdir()) == [f"{t}.png" for t in task_ids]
    [run] = [r for r in mlflow_runs(tracking_uri) if r.data.tags.get("run_type") == "generate"]
    assert run.info.status == "FINISHED" and run.data.tags["generator"] == "new_inputs"
    assert (run.data.metrics["unanswered_rate"], run.data.metrics["kept_rate"]) == (1.0, 0.0)
    assert run.data.params["generator.samples_per_task"] == "2"
    client = mlflow.MlflowClient(tracking_uri)
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["config.yaml", "new_inputs"]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "new_inputs")) == [
        "new_inputs/gallery", "new_inputs/summary.json", "new_inputs/tasks"]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "new_inputs/gallery")) == [
        f"new_inputs/gallery/{t}.png" for t in task_ids]
    # the same seed again (without MLflow): the same texts sampled, the same files
    run_generate(tmp_path / "b", [*TINY_RUN, "checkpoint=null", "logger=none"])
    files = sorted(p.relative_to(out) for p in out.rglob("*.json"))
    assert len(files) == 3
    for name in files:
        assert (out / name).read_text() == (tmp_path / "b" / "new_inputs" / name).read_text()


def test_generate_main_with_a_checkpoint(tmp_path, tracking_uri, tokenizer, caplog):
    """A LoRA checkpoint of the tiny model trained (here: saved) with another prompt: warned, then generated from;
    the MLflow run links to the training run."""
    import mlflow
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from arc_exp.model.adapters import AdapterConfig, apply_adapter
    from arc_exp.model.checkpoints import save_checkpoint
    from arc_exp.model.loader import load_model

    from conftest import compose_train

    resolved = OmegaConf.to_container(compose_train(["model=tiny-random"]), resolve=True)
    config = {key: resolved[key] for key in ("model", "lora", "encoder", "prompt", "data", "seed")}
    run = tmp_path / "train_run"
    model = apply_adapter(load_model(instantiate(config["model"]), seed=0), AdapterConfig(r=2))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.fill_(0.01)
    save_checkpoint(model, tokenizer, run / "checkpoints" / "step-000002", config)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    training_run_id = client.create_run(client.create_experiment("training"),
                                        tags={"output_dir": str(run.resolve())}).info.run_id

    with caplog.at_level(logging.WARNING):
        summary = run_generate(tmp_path / "gen", [*TINY_RUN, f"checkpoint={training_run_id}",
                                                  f"logger.tracking_uri={tracking_uri}", "tasks.first_n=1"])
    assert "was trained with prompts ['output-from-examples-v0'], not input-from-inputs-v0" in caplog.text
    assert (summary["tasks"], summary["generated"]) == (1, 2)
    [run_info] = [r for r in mlflow_runs(tracking_uri) if r.data.tags.get("run_type") == "generate"]
    assert run_info.data.tags["training_run_id"] == training_run_id and run_info.info.status == "FINISHED"


@pytest.mark.parametrize("override, error, message", [
    ("generator.samples_per_task=0", NewInputsError, "generator.samples_per_task must be an integer >= 1, got 0"),
    ("tasks=no-such-source", UnknownSourceError, "unknown task source 'no-such-source'"),
    ("inference=dfs", NewInputsError, "inference.sampler=dfs is not supported"),
    ("tasks.task_ids=[ffffffff]", ValueError, "ffffffff"),
    ("+tasks.frist_n=3", NewInputsError, "tasks: unknown task set key 'frist_n'"),
])
def test_generate_main_fails_before_the_model_loads(tmp_path, tracking_uri, override, error, message):
    with pytest.raises(error, match=message):
        run_generate(tmp_path, [*TINY_RUN, "checkpoint=null", f"logger.tracking_uri={tracking_uri}", override])
    assert not (tmp_path / "new_inputs").exists()
