"""The trained-outputs guard: every training run records the examples whose outputs it trained on (by content), each
checkpoint carries the record (through ``adapter_path`` continuations), and evaluate.py, solve.py and train.py's own
evaluation refuse to score those outputs unless ``evaluation.allow_trained_outputs=true``, which tags the run."""
import json
import shutil
from types import SimpleNamespace

import pytest

from arc_exp.data.tasks import Task
from arc_exp.data.trained_outputs import (
    RECORD_FILE,
    TrainedOutputs,
    TrainedOutputsError,
    check_scoring,
    example_hash,
    load_record,
)
from conftest import REPO, mlflow_runs, run_in_process, run_train

TINY_TASKS = REPO / "tests" / "fixtures" / "tiny_tasks"   # c01025a1 and c01025a2, each with 1 test output
PROMPT = "output-from-examples-v0"

A = Task.from_dict("0a1b2c3d", {"train": [{"input": [[1]], "output": [[2]]}, {"input": [[5]], "output": [[6]]}],
                                "test": [{"input": [[3]], "output": [[4]]}]})
B = Task.from_dict("4e5f6a7b", {"train": [{"input": [[7]], "output": [[8]]}], "test": [{"input": [[9]], "output": [[0]]}]})


# --- the record -------------------------------------------------------------------------------------------------

def test_a_record_holds_every_output_the_prompt_shows():
    record = TrainedOutputs.of_tasks([A, B], PROMPT, origin="run")
    assert len(record) == 5  # 3 train + 2 test examples
    assert record.matches([A, B]) == [("0a1b2c3d", 0), ("4e5f6a7b", 0)]
    # output-from-outputs shows the outputs too
    assert len(TrainedOutputs.of_tasks([A], "output-from-outputs-v0", origin="run")) == 3
    # input-from-inputs shows inputs only: learning the test inputs' distribution is legitimate
    assert len(TrainedOutputs.of_tasks([A, B], "input-from-inputs-v0", origin="run")) == 0


def test_test_outputs_removed_are_not_recorded():
    unsolved = A.replace(test=[A.test[0].__class__(A.test[0].input)])
    record = TrainedOutputs.of_tasks([unsolved], PROMPT, origin="run")
    assert len(record) == 2 and record.matches([A]) == []


def test_a_task_matches_by_content_under_another_id_or_in_another_order():
    record = TrainedOutputs.of_tasks([A], PROMPT, origin="run")
    renamed = A.replace(task_id="ffffffff", train=A.train[::-1])
    assert record.matches([renamed, B]) == [("ffffffff", 0)]
    # a test example that was a train example elsewhere is a trained-on output too
    moved = Task.from_dict("12345678", {"train": [{"input": [[0]], "output": [[0]]}],
                                        "test": [{"input": [[5]], "output": [[6]]}]})
    assert record.matches([moved]) == [("12345678", 0)]
    assert example_hash(A.test[0]) == example_hash(renamed.test[0])


def test_datasets_of_chats_add_nothing_and_records_unite():
    datasets = [SimpleNamespace(name="arc", tasks=[A], prompt=PROMPT, chats=None),
                SimpleNamespace(name="data/count", tasks=[], prompt="chat", chats=[[{"role": "user"}]]),
                SimpleNamespace(name="arc", tasks=[B], prompt="input-from-inputs-v0", chats=None)]
    record = TrainedOutputs.of_datasets(datasets, "run A")
    assert len(record) == 3 and len(record.origins) == 2
    assert record.origins[0] == "run A data.train[0] arc: 1 tasks (1 with test outputs), output-from-examples-v0, 3 examples"
    both = record | TrainedOutputs.of_tasks([B], PROMPT, origin="run B")
    assert len(both) == 5 and len(both.origins) == 3


def test_save_load_and_continuation(tmp_path):
    record = TrainedOutputs.of_tasks([A], PROMPT, origin="run A")
    path = record.save(tmp_path / "a")
    assert path.name == RECORD_FILE
    assert json.loads(path.read_text())["examples"] == 3
    assert load_record(tmp_path / "a") == record
    assert load_record(tmp_path / "nothing") is None
    continued = TrainedOutputs.of_tasks([B], "input-from-inputs-v0", origin="run B").continued_from(tmp_path / "a")
    assert continued.hashes == record.hashes and continued.unknown == ()
    unknown = TrainedOutputs().continued_from(tmp_path / "nothing")
    assert unknown.unknown == (f"adapter_path {tmp_path / 'nothing'}",)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / RECORD_FILE).write_text("[1, 2]")
    with pytest.raises(TrainedOutputsError, match=f"bad/{RECORD_FILE}: not a trained-outputs record"):
        load_record(tmp_path / "bad")


def test_check_scoring_refuses_with_one_line_or_allows():
    record = TrainedOutputs.of_tasks([A, B], PROMPT, origin="run")
    with pytest.raises(TrainedOutputsError) as error:
        check_scoring(record, [A, B], "checkpoint 'x'")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("checkpoint 'x' trained on 2 of the 2 evaluated test outputs (tasks 0a1b2c3d, 4e5f6a7b)")
    assert "evaluation.allow_trained_outputs=true" in message
    assert check_scoring(record, [A, B], "checkpoint 'x'", allow=True) == [("0a1b2c3d", 0), ("4e5f6a7b", 0)]
    other = Task.from_dict("99999999", {"train": [{"input": [[1]], "output": [[2]]}],
                                        "test": [{"input": [[3]], "output": [[5]]}]})
    assert check_scoring(record, [other], "checkpoint 'x'") == []
    assert check_scoring(None, [A], "checkpoint 'x'") == []  # no record: warned, nothing to compare


# --- the guard through the entry points ----------------------------------------------------------------------------

TRAIN = ["model=tiny-random", "debug=smoke", "trainer.enable_progress_bar=false", "trainer.max_steps=2",
         "trainer.val_check_interval=1", "callbacks.checkpoint_every_n_steps=0", "data.batch_size=1",
         "data.max_seq_len=1024"]


def _data(source: str, prompt: str = PROMPT, **keys) -> str:
    extra = "".join(f", {key}: {value}" for key, value in keys.items())
    return f"data.train=[{{source: {source}, prompt: {prompt}, swap_train_test: false{extra}}}]"


@pytest.fixture(scope="module")
def trained_on_tiny_tasks(tmp_path_factory):
    """A run that trained 2 steps on the two tiny tasks with their test outputs (swap off: the test outputs are the
    targets), and its last checkpoint folder."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run_train(run_dir, [*TRAIN, _data(str(TINY_TASKS)), "logger=none"])
    checkpoint = run_dir / "checkpoints" / "step-000002"
    assert (checkpoint / RECORD_FILE).exists() and (run_dir / RECORD_FILE).exists()
    return run_dir, checkpoint


EVAL = ["model=tiny-random", "predictions_per_task=1", "progress=false", "inference.max_new_tokens=4"]


def test_evaluate_refuses_the_trained_outputs_and_allows_them_tagged(trained_on_tiny_tasks, tmp_path, capsys):
    run_dir, checkpoint = trained_on_tiny_tasks
    record = load_record(checkpoint)
    assert len(record) == 8  # 3 + 3 train examples and 2 test outputs
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["evaluate.py", *EVAL, f"data.eval.source={TINY_TASKS}", f"checkpoint={run_dir}",
            f"logger.tracking_uri={uri}", f"hydra.run.dir={tmp_path / 'refused'}"]
    code, _, err = run_in_process(args, capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("evaluate.py: error:")]
    assert lines == [f"evaluate.py: error: checkpoint '{checkpoint}' trained on 2 of the 2 evaluated test outputs "
                     f"(tasks c01025a1, c01025a2): its score would count answers it has seen; leave those tasks out "
                     f"(evaluation.skip_trained_tasks=true), or set evaluation.allow_trained_outputs=true to score "
                     f"them anyway (the run is tagged trained_on_evaluated_outputs=2)"]
    assert not (tmp_path / "refused").exists()  # refused before anything was written
    assert [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "evaluation"] == []

    code, _, err = run_in_process([*args[:-1], "evaluation.allow_trained_outputs=true",
                                   f"hydra.run.dir={tmp_path / 'allowed'}"], capsys)
    assert code == 0, err
    runs = [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "evaluation"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["trained_on_evaluated_outputs"] == "2"


def test_evaluate_refuses_the_same_tasks_under_other_ids_or_leaves_them_out(trained_on_tiny_tasks, tmp_path,
                                                                            capsys):
    _, checkpoint = trained_on_tiny_tasks
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    shutil.copy(TINY_TASKS / "c01025a1.json", renamed / "deadbeef.json")
    args = ["evaluate.py", *EVAL, f"data.eval.source={renamed}", f"checkpoint={checkpoint}"]
    code, _, err = run_in_process([*args, "logger=none", f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 1
    assert "trained on 1 of the 1 evaluated test outputs (tasks deadbeef)" in err
    code, _, err = run_in_process([*args, "evaluation.skip_trained_tasks=true", "logger=none",
                                   f"hydra.run.dir={tmp_path / 'skip'}"], capsys)
    assert code == 1
    assert "evaluation.skip_trained_tasks=true leaves no task to evaluate" in err
    # beside a task it did not train on: that one alone is scored, and the run says how many were left out
    other = json.loads((TINY_TASKS / "c01025a2.json").read_text())
    other["test"][0]["output"] = [[9, 9], [9, 9]]
    (renamed / "feedf00d.json").write_text(json.dumps(other))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code, _, err = run_in_process([*args, "evaluation.skip_trained_tasks=true", f"logger.tracking_uri={uri}",
                                   f"hydra.run.dir={tmp_path / 'kept'}"], capsys)
    assert code == 0, err
    log_file = (tmp_path / "kept" / "evaluate.log").read_text()
    assert "1 tasks left out of the evaluation (evaluation.skip_trained_tasks=true)" in log_file
    run = [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "evaluation"][0]
    assert run.data.tags["skipped_trained_tasks"] == "1" and run.data.metrics["n_tasks"] == 1.0


def test_solve_refuses_to_score_the_trained_outputs(trained_on_tiny_tasks, tmp_path, capsys):
    _, checkpoint = trained_on_tiny_tasks
    code, _, err = run_in_process(["solve.py", "model=tiny-random", f"challenges={TINY_TASKS}",
                                   f"checkpoint={checkpoint}", "ttft=n1", "logger=none", "progress=false",
                                   f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 1
    assert f"solve.py: error: checkpoint '{checkpoint}' trained on 2 of the 2 evaluated test outputs" in err
    assert not (tmp_path / "run").exists()


def test_the_record_follows_an_adapter_path_continuation(trained_on_tiny_tasks, tmp_path, capsys):
    """Run B learns only the inputs of the tiny tasks (legitimate) from run A's adapter: B's checkpoint carries A's
    record, so an evaluation of B on the tiny tasks is refused all the same."""
    _, checkpoint_a = trained_on_tiny_tasks
    run_b = tmp_path / "b"
    run_train(run_b, [*TRAIN, _data(str(TINY_TASKS), "input-from-inputs-v0"), f"adapter_path={checkpoint_a}",
                      "logger=none"])
    checkpoint_b = run_b / "checkpoints" / "step-000002"
    assert load_record(checkpoint_b).hashes == load_record(checkpoint_a).hashes
    code, _, err = run_in_process(["evaluate.py", *EVAL, f"data.eval.source={TINY_TASKS}",
                                   f"checkpoint={checkpoint_b}", "logger=none", f"hydra.run.dir={tmp_path / 'e'}"],
                                  capsys)
    assert code == 1
    assert f"checkpoint '{checkpoint_b}' trained on 2 of the 2 evaluated test outputs" in err


def test_train_refuses_to_evaluate_what_it_trains_on_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from arc_exp.training import recipe

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(recipe, "build_model", no_model)
    code, _, err = run_in_process(["train.py", *TRAIN, _data(str(TINY_TASKS)), "evaluation.enabled=true",
                                   f"data.eval.source={TINY_TASKS}", "logger=none",
                                   f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 1
    assert ("train.py: error: this run (data.train and adapter_path) trained on 2 of the 2 evaluated test outputs "
            "(tasks c01025a1, c01025a2)") in err
    # learning the evaluation tasks' inputs is allowed: the evaluation goes ahead (the model is asked for)
    with pytest.raises(AssertionError, match="the model was loaded"):
        run_train(tmp_path / "inputs", [*TRAIN, _data(str(TINY_TASKS), "input-from-inputs-v0"),
                                        "evaluation.enabled=true", f"data.eval.source={TINY_TASKS}", "logger=none"])


def test_train_allowed_to_score_its_training_set_is_tagged(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_train(tmp_path / "run", [*TRAIN, "trainer.max_steps=1", _data(str(TINY_TASKS)), "evaluation.enabled=true",
                                 "evaluation.allow_trained_outputs=true", "evaluation.predictions_per_task=1",
                                 "inference.max_new_tokens=4", f"data.eval.source={TINY_TASKS}",
                                 f"data.val.source={TINY_TASKS}", f"logger.tracking_uri={uri}"])
    runs = [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "training"]
    assert len(runs) == 1 and runs[0].data.tags["trained_on_evaluated_outputs"] == "2"
    assert runs[0].data.tags["val_trained_outputs"] == "2"  # its val/loss is on trained outputs too: said
