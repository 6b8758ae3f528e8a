"""Every command of the README's command block runs as written, so the README cannot drift from the code.

Each test takes its command from README.md (the test fails when the line is no longer there), fills the
placeholders (``<run id>``, ``<adapter>``, ...) from the runs made before it, and runs it at smoke scale: the
entry point's own arguments are appended (``debug=smoke``, the tiny random model where the model does not matter, 2
training steps, answers cut at 16 tokens), never changed. The runs happen in this process, from a temporary folder
that is also the project root (``ARC_EXP_ROOT``): outputs/, multirun/ and mlflow.db land there, which also checks
that outputs and the MLflow store follow one root. The parallel sweep runs in a subprocess (joblib's workers), and
the real SmolLM2 run that ``make run`` makes is ``slow``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, REPO, mlflow_runs, run_in_process

README = REPO / "README.md"
TINY_TRAIN = ["debug=smoke", "model=tiny-random", "trainer.max_steps=2", "trainer.enable_progress_bar=false",
              "inference.max_new_tokens=16"]
SMOKE = {  # entry point -> what "at smoke scale" appends
    "train.py": TINY_TRAIN,
    "evaluate.py": ["debug=smoke", "model=tiny-random", "inference.max_new_tokens=16", "progress=false"],
    "solve.py": ["debug=smoke", "model=tiny-random", "inference.max_new_tokens=16", "ttft.steps=2", "progress=false",
                 "trainer.enable_progress_bar=false"],
    "report.py": [],
    "run.py": [],
    "generate.py": ["debug=smoke"],
    "stats.py": [],
}
NEW_INPUTS_SMOKE = ["debug=smoke", "model=tiny-random", "generator.max_new_tokens=16"]


def readme_commands() -> list[str]:
    """The commands of the README's first bash block, without their comments."""
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    return [re.split(r"\s+#", line, maxsplit=1)[0].strip() for line in block.splitlines() if line.strip()]


class Readme:
    """Runs README commands in a temporary project root and remembers what they made."""

    def __init__(self, root: Path, cwd: Path):
        self.root, self.cwd = root, cwd
        self.uri = f"sqlite:///{root}/mlflow.db"
        self.values: dict[str, str] = {}

    def command(self, text: str) -> str:
        commands = readme_commands()
        assert text in commands, f"the README's command block no longer has: {text}"
        return text

    def run(self, text: str, capsys, placeholders: dict | None = None, extra: tuple = ()) -> str:
        """Run one README command in this process; returns its console output (stdout + stderr)."""
        code, out, err = run_in_process(self._args(text, placeholders, extra), capsys)
        assert code == 0, f"{text} exited with {code}:\n{out[-3000:]}\n{err[-3000:]}"
        return out + err

    def run_process(self, text: str, placeholders: dict | None = None, extra: tuple = ()
                    ) -> subprocess.CompletedProcess:
        args = self._args(text, placeholders, extra)
        if args[0] != "-m":  # the README runs from the project root; this run's cwd is the temporary root
            args[0] = str(REPO / args[0])
        env = {**os.environ, "ARC_EXP_ROOT": str(self.root)}
        env.pop("HYDRA_FULL_ERROR", None)
        return subprocess.run([PYTHON, *args], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=600)

    def _args(self, text: str, placeholders: dict | None, extra: tuple) -> list[str]:
        line = self.command(text)
        for placeholder, value in (placeholders or {}).items():
            assert placeholder in line, placeholder
            line = line.replace(placeholder, value)
        args = shlex.split(line)
        assert args[0] == ".venv/bin/python", line
        args = args[1:]
        entry = args[1] if args[0] == "-m" else args[0]
        if "--cfg" in args:  # prints the config, loads nothing: exactly as written
            return [*args, *extra]
        smoke = NEW_INPUTS_SMOKE if "generator=new_inputs" in args else SMOKE[entry]
        # the tiny model replaces a model choice the command makes (the model does not matter at smoke scale)
        chosen = {a.split("=", 1)[0] for a in args[1:] if "=" in a}
        args = ["model=tiny-random" if a.startswith("model=") and "model=tiny-random" in smoke else a for a in args]
        return [*args, *(s for s in smoke if s.split("=", 1)[0] not in chosen), *extra]

    def runs(self, run_type: str | None = None, **tags) -> list:
        found = [r for r in mlflow_runs(self.uri) if run_type in (None, r.data.tags.get("run_type"))]
        return [r for r in found if all(r.data.tags.get(k) == v for k, v in tags.items())]


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    root, cwd = tmp_path_factory.mktemp("project"), tmp_path_factory.mktemp("elsewhere")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARC_EXP_ROOT", str(root))
        patch.delenv("HYDRA_FULL_ERROR", raising=False)
        patch.chdir(cwd)  # commands run from another folder than the project root
        yield Readme(root, cwd)


def single(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def test_the_layout_lists_every_model_option():
    layout = README.read_text().split("  model/", 1)[1].split("\n  lora/", 1)[0]
    options = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
    assert sorted(re.findall(r"[a-z0-9.-]+(?=[ ,(\n]|$)", layout.replace("(default)", ""))) == options


def test_every_command_is_covered():
    """A new README command needs a test here (the MLflow UI command is tests/test_mlflow_ui.py's)."""
    covered = {c for name, c in globals().items() if name.isupper() and isinstance(c, str) and c.startswith(".venv")}
    assert set(readme_commands()) - covered == {".venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --workers 1"}


TRAIN_QWEN = ".venv/bin/python train.py model=qwen2-1.5b lora.r=128"
SWEEP = ".venv/bin/python train.py -m lora.r=16,32,64,128 encoder=minimal,grid_shape_row_number"
JOBLIB = ".venv/bin/python train.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 lora.r=16,32"
SMOKE_RUN = ".venv/bin/python train.py debug=smoke"
CFG_JOB = ".venv/bin/python train.py model=qwen2-1.5b lora.r=128 --cfg job"
STATS = ".venv/bin/python stats.py data=arc1-training max_seq_len=4096"
EVALUATE = ".venv/bin/python evaluate.py checkpoint=<run folder | adapter folder | MLflow run id> predictions_per_task=8"
ALL_CHECKPOINTS = ".venv/bin/python evaluate.py checkpoint=<run id> all_checkpoints=true"
SOLVE = ".venv/bin/python solve.py challenges=<x_challenges.json> checkpoint=<adapter> ttft=n1 time_budget_minutes=600"
EXPERIMENT = ".venv/bin/python train.py -m experiment=iter12_grid_representation"
RUN_PLAN = ".venv/bin/python run.py experiment=iter12_grid_representation plan=true"
REPORT = ".venv/bin/python report.py experiment=iter12_grid_representation"
COMPARE = ".venv/bin/python report.py runs=[<id>,<id>]"
COUNT = ".venv/bin/python generate.py generator=count n=1000000 out=data/count seed=0"
NEW_INPUTS = ".venv/bin/python generate.py generator=new_inputs checkpoint=<run id>"
DFS_POE = ".venv/bin/python evaluate.py checkpoint=<run id> inference=dfs inference.selection=poe"
REDUCE_VOCAB = ".venv/bin/python train.py debug=smoke model.reduce_vocab=true"
BEFORE_AFTER = (".venv/bin/python train.py debug=smoke evaluation.enabled=true evaluation.before=true "
                "evaluation.predictions_per_task=2")


def test_train(readme, capsys):
    output = readme.run(TRAIN_QWEN, capsys)
    run = single(readme.runs("training"))
    assert (run.info.status, run.data.params["lora.r"], run.data.params["model.name"]) == (
        "FINISHED", "128", "tiny-random")
    assert run.data.params["lora.scale"] == "2.0"  # alpha followed r: 256
    folder = single(list((readme.root / "outputs" / "train").glob("*/*")))
    assert (folder / "checkpoints" / "step-000002" / "adapter_config.json").exists()
    assert run.data.tags["output_dir"] == str(folder)
    # printed at the start and at the end: the run folder and the MLflow run id
    assert output.count(f"run folder {folder}, MLflow run {run.info.run_id}") == 2
    readme.values.update(folder=str(folder), run_id=run.info.run_id)


@pytest.mark.slow  # 8 training runs
def test_sweep(readme, capsys):
    readme.run(SWEEP, capsys)
    sweep = single(list((readme.root / "multirun" / "train").glob("*/*")))
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [str(i) for i in range(8)]
    runs = readme.runs("training", sweep_id=str(sweep))
    assert sorted((int(r.data.params["lora.r"]), r.data.tags["choice/encoder"]) for r in runs) == \
        sorted((r, e) for r in (16, 32, 64, 128) for e in ("grid_shape_row_number", "minimal"))
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_outputs_and_the_store_follow_the_project_root(readme):
    """Run from another folder: outputs/, mlflow.db and the artifacts (mlruns/) land in the project root
    (ARC_EXP_ROOT), nothing in the current folder; the recorded artifact location says so too."""
    import mlflow

    # the state test_train left (and the slow sweep, when it ran)
    assert {p.name for p in readme.root.iterdir()} - {"multirun"} == {"mlflow.db", "mlruns", "outputs"}
    assert list(readme.cwd.iterdir()) == []
    client = mlflow.MlflowClient(tracking_uri=readme.uri)
    run = readme.runs("training")[-1]
    location = client.get_experiment(run.info.experiment_id).artifact_location
    assert location.removeprefix("file://") == str(readme.root / "mlruns")
    assert run.info.artifact_uri.removeprefix("file://").startswith(str(readme.root / "mlruns"))


@pytest.mark.slow  # two trainings in joblib workers (~16 s); tests/test_cli.py checks the [job N] prefix with joblib
def test_parallel_sweep_prefixes_log_lines_with_the_job_number(readme):
    result = readme.run_process(JOBLIB)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for job in (0, 1):
        assert re.search(rf"^\[job {job}\] \[.*\]\[arc_exp\]\[INFO\] - run folder .*multirun/train/.*/{job}, MLflow run",
                         output, re.M), output[-3000:]
    assert "Deprecat" not in output and "💡" not in output


def test_smoke_training_as_make_run_does_with_the_tiny_model(readme, capsys):
    output = readme.run(SMOKE_RUN, capsys)
    assert "steps" in output or "final metrics" in output
    last = readme.runs("training")[-1]
    assert last.info.status == "FINISHED" and last.data.params["trainer.max_steps"] == "2"


@pytest.mark.slow
def test_smoke_training_with_the_real_model(tmp_path):
    """``make run``: the command exactly as written, SmolLM2-135M and all (minutes on CPU)."""
    env = {**os.environ, "ARC_EXP_ROOT": str(tmp_path)}
    env.pop("HYDRA_FULL_ERROR", None)
    script, *args = shlex.split(Readme(tmp_path, tmp_path).command(SMOKE_RUN))[1:]
    result = subprocess.run([PYTHON, str(REPO / script), *args], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Deprecat" not in result.stderr and "💡" not in result.stdout + result.stderr
    assert re.search(r"final metrics:\n  train/loss +[0-9.]+.*\n  train/lr +4e-05", result.stdout + result.stderr)


def test_cfg_job(readme, capsys):
    from omegaconf import OmegaConf

    output = readme.run(CFG_JOB, capsys)
    printed = OmegaConf.create(output)
    assert (printed.model.name, printed.model.path, printed.lora.r) == ("qwen2-1.5b", "Qwen/Qwen2-1.5B-Instruct", 128)


@pytest.mark.slow
def test_token_stats(readme, capsys):
    output = readme.run(STATS, capsys)
    assert "400 tasks of arc1-training" in output and "| grid_shape_row_number | 400 |" in output


def test_evaluate(readme, capsys):
    output = readme.run(EVALUATE, capsys, {"<run folder | adapter folder | MLflow run id>": readme.values["folder"]})
    run = readme.runs("evaluation")[-1]
    assert run.info.status == "FINISHED" and run.data.tags["training_run_id"] == readme.values["run_id"]
    folder = Path(run.data.tags["output_dir"])
    assert folder.parent.parent == readme.root / "outputs" / "evaluate" and (folder / "metrics.json").exists()
    assert json.loads((folder / "metrics.json").read_text())["metrics"]["unanswered"] == 1.0
    # a random model answers nothing: said once, with the probable cause
    assert output.count("is unanswered (no grid): probably the model never wrote a complete grid") == 1
    assert output.count(f"run folder {folder}, MLflow run {run.info.run_id}") == 2


def test_all_checkpoints(readme, capsys):
    readme.run(ALL_CHECKPOINTS, capsys, {"<run id>": readme.values["run_id"]})
    run = readme.runs("evaluation")[-1]
    assert run.info.status == "FINISHED" and run.data.params["all_checkpoints"] == "True"


def test_solve(readme, capsys):
    from arc_exp.data.selection import TaskSetSpec

    tasks = TaskSetSpec(source="arc1-evaluation", max_grid_side=7, first_n=2).load()
    challenges = readme.cwd / "x_challenges.json"
    challenges.write_text(json.dumps({t.task_id: {"train": t.to_dict()["train"],
                                                  "test": [{"input": grid} for grid in t.test_inputs]}
                                      for t in tasks}))
    adapter = Path(readme.values["folder"]) / "checkpoints" / "step-000002"
    readme.run(SOLVE, capsys, {"<x_challenges.json>": str(challenges), "<adapter>": str(adapter)})
    run = readme.runs("solve")[-1]
    assert run.info.status == "FINISHED"
    submission = json.loads((Path(run.data.tags["output_dir"]) / "submission.json").read_text())
    assert sorted(submission) == sorted(t.task_id for t in tasks)


def test_experiment(readme, capsys):
    readme.run(EXPERIMENT, capsys)
    runs = readme.runs("training", experiment="iter12_grid_representation")
    assert len(runs) >= 2 and {r.info.status for r in runs} == {"FINISHED"}  # the preset's smoke-scale arms
    # the preset's scales: and arms: are composed, not logged (arc_exp.presets.drop_options in every entry point)
    assert not [key for r in runs for key in r.data.params if key.startswith(("arms.", "scales."))]
    assert {r.data.params["arm"] for r in runs} >= {"base", "size_small"}


def test_experiment_report(readme, capsys):
    runs = readme.runs("training", experiment="iter12_grid_representation")
    output = readme.run(REPORT, capsys)
    assert f"iter12_grid_representation: {len(runs)} runs" in output
    # the tiny model ran both model-size arms (model=tiny-random, 2 steps): still the journal's two rows, each named
    assert "| tiny-random (size_small) | 2 |" in output and "| tiny-random (size_large) | 2 |" in output
    tables = list((readme.root / "outputs" / "report").glob("*/*/iter12_grid_representation.*.md"))
    assert tables and all(t.with_suffix(".csv").exists() for t in tables)


def test_iteration_plan(readme, capsys):
    output = readme.run(RUN_PLAN, capsys)
    assert "[1/4] train (would run): python train.py -m experiment=iter12_grid_representation scale=smoke" in output
    assert "[4/4] report (would run): python report.py experiment=iter12_grid_representation scale=smoke" in output


def test_compare_runs_by_id_prefix(readme, capsys):
    first, second = (r.info.run_id for r in readme.runs("training")[:2])
    output = readme.run(COMPARE, capsys, {"<id>,<id>": f"{unquoted_prefix(first)},{unquoted_prefix(second)}"})
    assert f"({first[:8]})" in output and f"({second[:8]})" in output
    markdown = max((readme.root / "outputs" / "report").glob("*/*/comparison.md"))
    assert markdown.read_text().splitlines()[0] == output.strip().splitlines()[0]
    header = markdown.with_suffix(".csv").read_text().splitlines()[0]
    assert header == f"key,{first},{second}"


def unquoted_prefix(run_id: str) -> str:
    """The shortest prefix of 8 or more characters that Hydra reads as text (one with a hex letter other than e):
    ``12e45678`` or ``01234567`` would be read as numbers and need quotes (``runs=['01234567']``)."""
    return next(run_id[:n] for n in range(8, len(run_id) + 1) if re.search("[a-df]", run_id[:n]))


def test_generate_count(readme, capsys):
    output = readme.run(COUNT, capsys)
    manifest = json.loads((readme.cwd / "data" / "count" / "manifest.json").read_text())  # out= is the user's path
    assert manifest["n"] == 200 and "debug=smoke: 200 samples instead of n=1000000" in output
    assert "run folder" in output and "no MLflow run" in output


def test_generate_new_inputs(readme, capsys):
    readme.run(NEW_INPUTS, capsys, {"<run id>": readme.values["run_id"]})
    run = readme.runs("generate")[-1]
    assert run.info.status == "FINISHED"
    summary = json.loads((Path(run.data.tags["output_dir"]) / "new_inputs" / "summary.json").read_text())
    assert summary["generated"] == 2 * 4  # debug=smoke: 2 samples of each of the 4 small evaluation tasks


def test_dfs_and_product_of_experts(readme, capsys):
    readme.run(DFS_POE, capsys, {"<run id>": readme.values["run_id"]})
    run = readme.runs("evaluation")[-1]
    assert run.info.status == "FINISHED"
    assert (run.data.params["inference.sampler"], run.data.params["inference.selection"]) == ("dfs", "poe")


def test_reduced_vocabulary(readme, capsys):
    readme.run(REDUCE_VOCAB, capsys)
    run = readme.runs("training")[-1]
    assert run.info.status == "FINISHED" and run.data.params["model.reduce_vocab"] == "True"
    assert (Path(run.data.tags["output_dir"]) / "checkpoints" / "step-000002" / "vocabulary.json").exists()


def test_evaluation_before_and_after_training(readme, capsys):
    output = readme.run(BEFORE_AFTER, capsys)
    run = readme.runs("training")[-1]
    assert run.info.status == "FINISHED" and "data.eval before and after training" in output



def test_the_make_run_line_is_the_makefiles():
    run = next(line for line in (REPO / "Makefile").read_text().splitlines() if "train.py debug=smoke" in line)
    assert run.strip().replace("$(PY)", ".venv/bin/python") == BEFORE_AFTER
