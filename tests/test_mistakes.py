"""Every mistake is one line (issue 24), with and without ``-m``: a value of the wrong type, an unknown option, a
checkpoint that does not exist, a task file with no task, a resume of a finished or differently composed run. Each
prints ``<entry>.py: error: <message>`` once, exits with status 1, leaves no run or sweep folder (nor an empty date
folder) and no MLflow run RUNNING; a sweep stops at its first job's mistake.

The entry points run in this process through ``@hydra.main`` (``conftest.run_in_process``), as the command line
runs them.
"""
from pathlib import Path

import pytest

from conftest import run_in_process

EMPTY = "{root}/empty.json"  # a JSON file with no task: {}
SMOKE = ("model=tiny-random", "debug=smoke")

CASES = {  # name -> (command line, the one line printed); {root}: the project root of the test
    "train: learning_rate=fast": (
        ["train.py", *SMOKE, "learning_rate=fast"],
        "train.py: error: learning_rate: Value 'fast' of type 'str' could not be converted to Float "
        "(learning_rate=fast)"),
    "train: evaluation.enabled=maybe": (
        ["train.py", *SMOKE, "evaluation.enabled=maybe"],
        "train.py: error: evaluation.enabled: Value 'maybe' is not a valid bool (type str) "
        "(evaluation.enabled=maybe)"),
    "evaluate: predictions_per_task=many": (
        ["evaluate.py", *SMOKE, "predictions_per_task=many"],
        "evaluate.py: error: predictions_per_task: Value 'many' of type 'str' could not be converted to Integer "
        "(predictions_per_task=many)"),
    "solve: time_budget_minutes=soon": (
        ["solve.py", *SMOKE, "time_budget_minutes=soon"],
        "solve.py: error: time_budget_minutes: Value 'soon' of type 'str' could not be converted to Float "
        "(time_budget_minutes=soon)"),
    "train: model=qwen2-1.5": (
        ["train.py", "model=qwen2-1.5"],
        "train.py: error: model=qwen2-1.5: no such option; did you mean qwen2-1.5b? (options: llama-3.1-8b, "
        "phi-3-mini, phi-3-mini-128k, qwen2-0.5b, qwen2-1.5b, qwen2.5-0.5b, smollm2-135m, tiny-random)"),
    "evaluate: checkpoint=nope": (
        ["evaluate.py", *SMOKE, "checkpoint=nope"],
        "evaluate.py: error: checkpoint 'nope': no such file or folder, and no MLflow run with this id in "
        "sqlite:///{root}/mlflow.db"),
    "train: data.train of no task": (
        ["train.py", *SMOKE, f"data.train=[{{source: {EMPTY}, prompt: output-from-examples-v0}}]"],
        f"train.py: error: data.train[0]: source '{EMPTY}' with this selection holds no task"),
    "evaluate: data.eval of no task": (
        ["evaluate.py", *SMOKE, f"data.eval.source={EMPTY}"],
        f"evaluate.py: error: data.eval selects no tasks: {{'source': '{EMPTY}', 'task_ids': None, 'first_n': 4, "
        "'sample_n': None, 'seed': 0, 'split': None, 'val_fraction': 0.2, 'max_grid_side': 7, "
        "'test_outputs': True}"),
    "solve: data.eval of no task": (
        ["solve.py", *SMOKE, f"data.eval.source={EMPTY}"],
        f"solve.py: error: data.eval selects no tasks: {{'source': '{EMPTY}', 'task_ids': None, 'first_n': 4, "
        "'sample_n': None, 'seed': 0, 'split': None, 'val_fraction': 0.2, 'max_grid_side': 7, "
        "'test_outputs': True}"),
}

# mistakes whose sweep path the cases above already cover: run once, without -m (the default suite's time)
ONE_RUN_CASES = {
    "train: encoder=spec, a block inside a row encoder": (
        ["train.py", *SMOKE, "encoder=spec", "encoder.spec='RowNumberEncoder(GridShapeEncoder(MinimalGridEncoder()))'"],
        "train.py: error: encoder spec 'RowNumberEncoder(GridShapeEncoder(MinimalGridEncoder()))': RowNumberEncoder "
        "wraps a row encoder (MinimalGridEncoder, RowNumberEncoder, ReplaceNumberEncoder), got "
        "GridShapeEncoder(MinimalGridEncoder())"),
    "train: encoder=spec without its spec": (
        ["train.py", *SMOKE, "encoder=spec"],
        "train.py: error: encoder.spec is required: give encoder.spec=<value>"),
    "train: evaluation.count_qa with a misspelt key": (
        ["train.py", *SMOKE, "evaluation.count_qa={chats: held-out, n_chat: 3}"],
        "train.py: error: evaluation.count_qa.n_chat: Key 'n_chat' not in 'CountQASettings'"),
    "train: evaluation.count_qa without chats": (
        ["train.py", *SMOKE, "evaluation.count_qa={n_chats: 3}"],
        "train.py: error: evaluation.count_qa.chats is required: the held-out chats folder (python generate.py "
        "generator=count n=2000 out=data/count-heldout seed=1)"),
    "report: significance.resamples=many": (
        ["report.py", "significance.resamples=many"],
        "report.py: error: significance.resamples: Value 'many' of type 'str' could not be converted to Integer "
        "(significance.resamples=many)"),
    "report: significance.level=2": (
        ["report.py", "significance.level=2", "runs=[a,b]"],
        "report.py: error: significance: significance.level must be between 0 and 1, got 2.0"),
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("ARC_EXP_ROOT", str(tmp_path))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.json").write_text("{}")
    return tmp_path


def sweep(args: list, *swept: str) -> list:
    """The command line as a sweep of two jobs: ``-m`` and ``seed=0,1`` (the mistake is in both)."""
    return [args[0], "-m", *args[1:], *swept]


def assert_one_line_and_nothing_left(root: Path, args: list, line: str, code: int, out: str, err: str) -> None:
    assert code == 1, err[-3000:]
    assert [x for x in err.splitlines() if "error" in x.lower()] == [line], err[-3000:]
    assert "Traceback" not in out + err and "HYDRA_FULL_ERROR" not in err
    left = [p for top in ("outputs", "multirun") for p in (root / top).rglob("*")]
    assert not left, left
    if (root / "mlflow.db").exists():
        from conftest import mlflow_runs

        assert [r.info.status for r in mlflow_runs(f"sqlite:///{root}/mlflow.db")
                if r.info.status == "RUNNING"] == []


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "-m"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_mistake_is_one_line_with_and_without_multirun(name, multirun, root, capsys):
    args, line = CASES[name]
    args = [a.replace("{root}", str(root)) for a in args]
    line = line.replace("{root}", str(root))
    if multirun:
        args = sweep(args, "seed=0,1")
    code, out, err = run_in_process(args, capsys)
    assert_one_line_and_nothing_left(root, args, line, code, out, err)
    assert "#1 :" not in out + err  # a sweep stops at its first job: the second is never launched


@pytest.mark.parametrize("name", list(ONE_RUN_CASES))
def test_a_mistake_is_one_line(name, root, capsys):
    args, line = ONE_RUN_CASES[name]
    code, out, err = run_in_process(args, capsys)
    assert_one_line_and_nothing_left(root, args, line, code, out, err)


def test_a_sweep_stops_at_its_first_jobs_mistake(root, capsys):
    """checkpoint=nope,nope2: the first job's mistake is printed once and the second job is never run."""
    code, out, err = run_in_process(["evaluate.py", "-m", *SMOKE, "checkpoint=nope,nope2"], capsys)
    line = (f"evaluate.py: error: checkpoint 'nope': no such file or folder, and no MLflow run with this id in "
            f"sqlite:///{root}/mlflow.db")
    assert_one_line_and_nothing_left(root, [], line, code, out, err)
    assert "#0 : " in out + err and "#1 : " not in out + err


def test_cfg_job_refuses_a_wrong_type_of_a_top_level_key(root, capsys):
    code, out, err = run_in_process(["train.py", "learning_rate=fast", "--cfg", "job"], capsys)
    assert (code, err.strip()) == (1, CASES["train: learning_rate=fast"][1])


def test_an_unknown_key_names_how_to_add_it(root, capsys):
    code, out, err = run_in_process(["train.py", "lorra.r=3"], capsys)
    assert (code, err.strip()) == (1, "train.py: error: Could not override 'lorra.r'. To append to your config use "
                                      "+lorra.r=3 (Key 'lorra' not in 'TrainSchema')")


def test_a_preset_may_still_add_keys_of_its_own():
    """The root schemas are open: a preset's own keys (experiment, arm, report) compose."""
    from conftest import compose_train

    cfg = compose_train(["experiment=iter24_overfit"])
    assert "report" in cfg and "arm" in cfg


def test_a_checkpoint_prefix_names_its_run_and_an_ambiguous_one_its_candidates(tmp_path):
    import mlflow

    from arc_exp.evaluation.checkpoints import CheckpointError, _folder_of_mlflow_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("prefixes")
    ids = []
    while True:  # until two ids share their first character
        run = client.create_run(experiment, tags={"output_dir": str(tmp_path)})
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
        shared = [i for i in ids if i[0] == ids[-1][0]]
        if len(shared) == 2:
            break
    unique = next(i for i in ids if sum(j.startswith(i[:8]) for j in ids) == 1)
    assert _folder_of_mlflow_run(unique[:8], uri) == tmp_path
    with pytest.raises(CheckpointError) as error:
        _folder_of_mlflow_run(shared[0][0], uri)
    assert str(error.value) in (f"checkpoint: '{shared[0][0]}' is the start of 2 run ids ({a}, {b}); give more "
                                f"characters" for a, b in (shared, shared[::-1]))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny training run of 2 steps, finished (logger=none)."""
    from conftest import TINY, run_train

    folder = tmp_path_factory.mktemp("finished") / "run"
    run_train(folder, [*TINY, "logger=none", "trainer.max_steps=2"])
    return folder


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "-m"])
@pytest.mark.parametrize("change, line", [
    ((), "train.py: error: resume: the run in {run} is finished (step 2 of trainer.max_steps=2); nothing is left to "
         "train: continue its adapter in a new run with adapter_path="),
    (("encoder=minimal",), "train.py: error: resume: the run in {run} was composed with other values of "
                           "encoder._target_, encoder.inner._target_, encoder.inner.inner._target_ (encoder._target_: "
                           "arc_exp.data.encoders.GridShapeEncoder (this run: arc_exp.data.encoders.MinimalGridEncoder)"
                           "; encoder.inner._target_: arc_exp.data.encoders.RowNumberEncoder (this run: <absent>); "
                           "...); resume it with its own settings (its config.yaml) or start a new run"),
], ids=["finished", "another encoder"])
def test_resume_refuses_a_finished_or_differently_composed_run(finished_run, change, line, multirun, root, capsys):
    from conftest import TINY

    args = ["train.py", *TINY, "logger=none", "trainer.max_steps=2", *change, f"resume={finished_run}"]
    if multirun:
        args = sweep(args, "weight_decay=0.0")
    code, out, err = run_in_process(args, capsys)
    line = line.format(run=finished_run)
    lines = [x for x in err.splitlines() if "error" in x.lower()]
    assert code == 1 and len(lines) == 1 and lines[0] == line, err[-3000:]
    assert "Traceback" not in out + err
    assert not [p for top in ("outputs", "multirun") for p in (root / top).rglob("*")]


def test_a_misspelt_key_in_an_option_file_is_one_line_naming_the_file(root, tmp_path, capsys):
    import shutil

    from conftest import CONF

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    with open(conf / "callbacks" / "default.yaml", "a") as f:
        f.write("checkpoint_evry_n_steps: 5\n")
    code, out, err = run_in_process(["train.py", "--config-path", str(conf), "--cfg", "job"], capsys)
    assert (code, err.strip()) == (1, "train.py: error: in 'callbacks/default': callbacks.checkpoint_evry_n_steps: "
                                      "Key 'checkpoint_evry_n_steps' not in 'CallbacksSchema'")


def test_a_report_of_an_evaluation_preset_without_runs_suggests_its_command(root, capsys):
    code, out, err = run_in_process(["report.py", "experiment=poe_dfs"], capsys)
    assert not list((root / "outputs").glob("*/*"))
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"report.py: error: no finished run tagged experiment=poe_dfs for this table in sqlite:///{root}/mlflow.db; run "
        "`python evaluate.py -m experiment=poe_dfs checkpoint=<adapter>` first")


@pytest.mark.parametrize("args, line", [
    (["generate.py", "n=abc", "out=x"],
     "generate.py: error: n: Value 'abc' of type 'str' could not be converted to Integer (n=abc)"),
    (["generate.py", "generator=count"], "generate.py: error: out is required: give out=<value>"),
    (["run.py", "experiment=iter24_overfit", "plan=maybe"],
     "run.py: error: plan: Value 'maybe' is not a valid bool (type str) (plan=maybe)"),
    (["run.py"], "run.py: error: experiment is required: give experiment=<value>"),
], ids=["generate", "generate-out", "run", "run-experiment"])
def test_the_other_entry_points_type_their_keys_too(args, line, root, capsys):
    """generate.py and run.py: a wrong type or a missing required key is one line, nothing left."""
    code, out, err = run_in_process(args, capsys)
    assert_one_line_and_nothing_left(root, args, line, code, out, err)
