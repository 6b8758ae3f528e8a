"""A user's mistake at the command line (a malformed task file, an unknown task id, a checkpoint or run that does not
exist) prints one line naming it and exits with status 1, without a traceback, from every entry point; with
``HYDRA_FULL_ERROR=1`` the exception and its traceback come through; the run leaves no empty folder behind.

The entry points run in this process through ``@hydra.main`` (``conftest.run_in_process``), as the command line
runs them; tests/test_training.py checks the same in a real subprocess.
"""
from pathlib import Path

import pytest

from conftest import REPO, run_in_process

MALFORMED = REPO / "tests" / "fixtures" / "sources" / "bad" / "malformed.json"
MALFORMED_MESSAGE = f"{MALFORMED}: invalid JSON at line 2 column 30: Expecting ',' delimiter"

CASES = {  # name -> (command line, the one line printed, the exception HYDRA_FULL_ERROR=1 shows)
    "train: malformed task file": (
        ["train.py", "model=tiny-random", "debug=smoke", f"data.train=[{{source: {MALFORMED}, prompt: "
                                                          f"output-from-examples-v0}}]"],
        f"train.py: error: {MALFORMED_MESSAGE}", "TaskFormatError"),
    "evaluate: checkpoint that does not exist": (
        ["evaluate.py", "model=tiny-random", "debug=smoke", "checkpoint=outputs/train/no-such-run"],
        "evaluate.py: error: checkpoint 'outputs/train/no-such-run': no such file or folder, and no MLflow run "
        "with this id in sqlite:///{root}/mlflow.db", "CheckpointError"),
    "solve: unknown task id": (
        ["solve.py", "model=tiny-random", "debug=smoke", "data.eval.task_ids=[0000dead]", "data.eval.first_n=null"],
        "solve.py: error: {unknown}", "UnknownTaskIdError"),
    "report: unknown run id": (
        ["report.py", "runs=[0000dead]"],
        "report.py: error: runs: no MLflow run '0000dead' in sqlite:///{root}/mlflow.db", "RunNotFoundError"),
    "generate: malformed task file": (
        ["generate.py", "generator=new_inputs", "checkpoint=null", "model=tiny-random", "debug=smoke",
         f"tasks.source={MALFORMED}"],
        f"generate.py: error: {MALFORMED_MESSAGE}", "TaskFormatError"),
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("ARC_EXP_ROOT", str(tmp_path))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def unknown_task_message() -> str:
    from arc_exp.data.selection import TaskSetSpec, UnknownTaskIdError

    with pytest.raises(UnknownTaskIdError) as error:
        TaskSetSpec(source="arc1-evaluation", task_ids=["0000dead"], max_grid_side=7).load()
    return str(error.value)


@pytest.mark.parametrize("name", list(CASES))
def test_a_mistake_prints_one_line_and_exits_1(name, root, capsys):
    args, line, _ = CASES[name]
    code, out, err = run_in_process(args, capsys)
    assert code == 1
    expected = line.format(root=root, unknown=unknown_task_message() if "{unknown}" in line else "")
    assert err.strip().splitlines()[-1] == expected, err
    assert [x for x in err.splitlines() if x.startswith(args[0])] == [expected]  # once
    assert "Traceback" not in out + err and "HYDRA_FULL_ERROR" not in err
    # nothing was done: no run folder is left behind
    entry = Path(args[0]).stem
    assert not list((root / "outputs" / entry).glob("*/*")), list((root / "outputs").rglob("*"))


@pytest.mark.parametrize("name", ["train: malformed task file", "report: unknown run id"])
def test_hydra_full_error_shows_the_exception(name, root, capsys, monkeypatch):
    args, _, exception = CASES[name]
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(Exception) as error:  # Hydra re-raises it with its traceback
        run_in_process(args, capsys)
    assert type(error.value).__name__ == exception


def test_a_bug_keeps_its_traceback(root, capsys, monkeypatch):
    """Only mistakes are shortened: an error that is not one (here a ZeroDivisionError inside the recipe) keeps
    Hydra's report with the traceback."""
    import arc_exp.tracking.report

    monkeypatch.setattr(arc_exp.tracking.report, "fetch_runs", lambda *a, **k: 1 / 0)
    code, out, err = run_in_process(["report.py", "runs=[0000dead]"], capsys)
    assert code == 1
    assert "Traceback" in err and "ZeroDivisionError: division by zero" in err


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")  # runpy, in-process
def test_token_statistics_of_a_chats_entry_is_one_line(root, capsys):
    """python stats.py on a data option whose first entry is generated chats: one line, exit 1."""
    code, out, err = run_in_process(["stats.py", "data=count-qa"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"stats.py: error: data.train[0] is a chats entry ({root}/data/count); the statistics are of ARC "
        "tasks: choose a data option whose first entry is a task source"]
    assert "Traceback" not in out + err


# Settings that need a GPU, on a machine without one: one line naming the key, before a model loads
NO_GPU = {
    "train: trainer=gpu": (["train.py", "model=tiny-random", "debug=smoke", "trainer=gpu"],
                           "train.py: error: trainer.accelerator=gpu but this machine has no GPU; use trainer=cpu or "
                           "trainer=ddp_cpu"),
    "train: lora=qlora": (["train.py", "model=tiny-random", "debug=smoke", "lora=qlora"],
                          "train.py: error: lora.load_in_4bit=true (lora=qlora) needs a CUDA GPU and this machine "
                          "has none; use lora=lora"),
    "evaluate: lora=qlora": (["evaluate.py", "model=tiny-random", "debug=smoke", "lora=qlora", "checkpoint=null"],
                             "evaluate.py: error: lora.load_in_4bit=true (lora=qlora) needs a CUDA GPU and this "
                             "machine has none; use lora=lora"),
    "solve: trainer=gpu": (["solve.py", "model=tiny-random", "debug=smoke", "trainer=gpu"],
                           "solve.py: error: trainer.accelerator=gpu but this machine has no GPU; use trainer=cpu or "
                           "trainer=ddp_cpu"),
}


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("name", list(NO_GPU))
def test_gpu_settings_without_a_gpu_fail_in_one_line(name, root, capsys, monkeypatch):
    from arc_exp.model import loader

    def no_model(*args, **kwargs):
        raise AssertionError("a model loaded")

    monkeypatch.setattr(loader, "load_model", no_model)
    args, line = NO_GPU[name]
    code, out, err = run_in_process(args, capsys)
    assert code == 1 and err.strip().splitlines()[-1] == line, err
    assert "Traceback" not in out + err


def test_bf16_on_a_gpu_without_bf16_names_the_fix(monkeypatch):
    """A GPU before Ampere: trainer=gpu (bf16-mixed) is refused naming trainer.precision; model.dtype=auto falls
    back to fp32 weights (fp16 autocast with 16-mixed), and says so."""
    import torch

    from arc_exp.model.loader import resolve_dtype
    from arc_exp.training import distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-16GB")
    with pytest.raises(distributed.ProcessConfigError) as error:
        distributed.check_processes({"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"})
    assert str(error.value) == ("trainer.precision=bf16-mixed but this GPU (Tesla V100-SXM2-16GB) has no bf16; use "
                                "trainer.precision=16-mixed (fp16 with loss scaling)")
    assert distributed.check_processes({"accelerator": "gpu", "devices": 1, "precision": "16-mixed"}) == 1
    assert resolve_dtype("auto") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype("auto") == torch.bfloat16
