"""run.py: an iteration's stages in order, their inputs resolved from MLflow by reference, resumed after a kill, and
the tables at the end; the plan of every preset at both scales; the stages: list and references refused when wrong."""
import os
import re
import signal
import subprocess
import time

import pytest

from arc_exp.tracking.iteration import StageError, _is_sweep, parse_stages
from arc_exp.tracking.references import Reference, RunReferenceError, resolve
from conftest import PYTHON, REPO, mlflow_runs, run_in_process

ITERATIONS = ["iter02_learn_to_count", "iter04_ttft", "iter12_grid_representation", "iter22_inputs_distribution",
              "iter24_overfit"]
GPU_GIVEN = {"iter24_overfit": ['overrides=["model.path=/m","++datasets.re_arc=/r","++datasets.mini_arc=/x"]']}
REDUCED = REPO / "tests" / "fixtures" / "iterations" / "iter24_reduced.yaml"


# --- the stages: list and references -------------------------------------------------------------------------------

def test_stages_are_checked_naming_the_stage():
    ok = [{"name": "train", "entry": "train", "sweep": True},
          {"name": "eval", "entry": "evaluate", "inputs": {"checkpoint": "run:stage:train/arm:lora"}}]
    stages = parse_stages(ok, "x.yaml")
    assert [(s.name, s.entry, s.sweep, s.upstream) for s in stages] == [("train", "train", True, []),
                                                                       ("eval", "evaluate", False, ["train"])]
    cases = [
        ([{"name": "a", "entry": "fit"}], "x.yaml stages[0] (a): unknown entry point 'fit'; one of generate, train, "
                                          "evaluate, solve, report"),
        ([{"name": "a", "entry": "train", "inputs": {"adapter_path": "run:stage:b"}}, {"name": "b", "entry": "train"}],
         "x.yaml stages[0] (a): input adapter_path=run:stage:b reads a later stage (a cycle); stages run in order"),
        ([{"name": "a", "entry": "train", "inputs": {"adapter_path": "run:stage:a"}}],
         "reads itself (a cycle)"),
        ([{"name": "a", "entry": "train", "inputs": {"adapter_path": "run:stage:zzz"}}], "reads no earlier stage"),
        ([{"name": "a", "entry": "train", "inputs": {"adapter_path": "outputs/x"}}],
         "input adapter_path must be a reference run:stage:<stage>/..., got 'outputs/x'"),
        ([{"name": "a", "entry": "train"}, {"name": "a", "entry": "report"}], "a second stage named 'a'"),
        ([{"name": "a", "entry": "train", "preset": "nope"}], "unknown preset 'nope'"),
        ([{"name": "a", "entry": "train", "when": 1}], "unknown key when"),
        ([], "no stages: list"),
    ]
    for stages, message in cases:
        with pytest.raises(StageError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                           .replace("]", r"\]").replace(".", r"\.")):
            parse_stages(stages, "x.yaml", ["iter24_overfit"])
    # the same name at different scales is two stages
    assert len(parse_stages([{"name": "a", "entry": "generate", "scales": ["smoke"]},
                             {"name": "a", "entry": "generate", "scales": ["gpu"]}], "x.yaml")) == 2


def test_adapter_path_takes_the_last_checkpoint_with_a_saved_model(tmp_path):
    from arc_exp.tracking.references import last_checkpoint

    for step, saved in ((2, True), (10, True), (12, False)):  # step 12: a folder without its model (interrupted)
        folder = tmp_path / "run" / "checkpoints" / f"step-{step:06d}"
        folder.mkdir(parents=True)
        if saved:
            (folder / "adapter_config.json").write_text("{}")
    assert last_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "step-000010"
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunReferenceError, match="input adapter_path: checkpoint '.*empty'.*holds no"):
        last_checkpoint(tmp_path / "empty", "input adapter_path")


def test_references_and_sweep_values():
    reference = Reference.parse("run:experiment:iter24_overfit/arm:lora/scale:smoke")
    assert reference.query() == ("tags.`experiment` = 'iter24_overfit' and params.`arm` = 'lora' and "
                                 "params.`scale` = 'smoke' and attributes.status = 'FINISHED'")
    assert resolve("outputs/x", None, "checkpoint") == "outputs/x"  # not a reference: as it is
    with pytest.raises(RunReferenceError, match="without a tracking store"):
        resolve("run:arm:lora", None, "checkpoint")
    assert [_is_sweep(a) for a in ("lora.r=16,32", "data.train=[{a: 1, b: 2}]", "x=1", "k='a,b'")] == [
        True, False, False, True]


# gpu scale in the slow tier: test_experiments composes every gpu-scale arm in the default suite
@pytest.mark.parametrize("scale", ["smoke", pytest.param("gpu", marks=pytest.mark.slow)])
def test_every_iteration_has_a_plan(scale, tmp_path, capsys):
    """run.py plan=true prints every command of every iteration, runs nothing and logs nothing."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for name in ITERATIONS:
        code, out, err = run_in_process(["run.py", f"experiment={name}", f"scale={scale}", "plan=true",
                                         f"hydra.run.dir={tmp_path / 'run'}",
                                         f"logger.tracking_uri={uri}", *(GPU_GIVEN.get(name, []) if scale == "gpu"
                                                                          else [])], capsys)
        assert code == 0, err
        lines = [line for line in out.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
        assert lines and all("(would run): python " in line for line in lines), out
        assert lines[-1].split(": python ")[1].startswith(f"report.py experiment={name} scale={scale}")
    assert mlflow_runs(uri) == []
    code, out, err = run_in_process(["run.py", "experiment=iter12_grid_representation", f"scale={scale}", "plan=true",
                                     f"logger.tracking_uri={uri}"], capsys)
    assert f"[2/4] ttft (would run): python train.py -m experiment=iter12_grid_representation_ttft scale={scale} " \
           "adapter_path=<run:stage:train/arm:size_small>" in out


def test_a_gpu_iteration_without_its_required_values_is_refused_before_anything_runs(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code, _, err = run_in_process(["run.py", "experiment=iter24_overfit", "scale=gpu", f"logger.tracking_uri={uri}"],
                                  capsys)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("run.py: error: train.py experiment=iter24_overfit scale=gpu: "
                                                   "model.path is required by this preset")
    code, _, err = run_in_process(["run.py", "experiment=iter24_overfit", "rerun=nope", f"logger.tracking_uri={uri}"],
                                  capsys)
    assert code == 1 and "rerun=nope: experiment iter24_overfit has no stage of that name" in err
    code, _, err = run_in_process(["run.py", "experiment=iter24_overfit_evaluate", f"logger.tracking_uri={uri}"],
                                  capsys)
    assert code == 1 and "experiments/iter24_overfit_evaluate.yaml has no stages: list" in err


# --- one iteration end to end -------------------------------------------------------------------------------------

def run_py(args, uri, **popen):
    """run.py on the reduced iteration 24, its outputs (and every stage's) in the store's folder."""
    root = uri.removeprefix("sqlite:///").rsplit("/", 1)[0]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1", "ARC_EXP_ROOT": root}
    command = [PYTHON, str(REPO / "run.py"), "experiment=iter24_overfit", f"stages_file={REDUCED}",
               'overrides=["model=tiny-random"]', f"logger.tracking_uri={uri}", *args]
    if popen:
        return subprocess.Popen(command, cwd=REPO, env=env, text=True, **popen)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def tables(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def iteration(tmp_path_factory):  # the tests using it are slow (~1 min on 2 cores): pytest -m slow
    """The reduced iter24 iteration run once, uninterrupted, into its own store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('iteration')}/mlflow.db"
    done = run_py([], uri)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return uri, done.stdout


@pytest.mark.slow
def test_one_command_runs_the_stages_in_order_with_their_inputs_and_prints_the_tables(iteration):
    uri, out = iteration
    runs = {r.info.run_id: r for r in mlflow_runs(uri)}
    by_type = {}
    for run in runs.values():
        by_type.setdefault(run.data.tags.get("run_type"), []).append(run)
    (parent,) = by_type["iteration"]
    assert parent.info.status == "FINISHED" and parent.data.tags["scale"] == "smoke"
    rerun = parent.data.tags["iteration"]
    stages = {r.data.tags["stage"]: r for r in by_type["stage"]}
    assert sorted(stages) == ["evaluate", "report", "train"]
    assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent.info.run_id
               for r in stages.values())
    (training,), (evaluation,) = by_type["training"], by_type["evaluation"]
    for run, stage in ((training, "train"), (evaluation, "evaluate")):  # tagged and nested under their stage
        assert run.data.tags["iteration"] == rerun and run.data.tags["stage"] == stage
        assert run.data.tags["mlflow.parentRunId"] == stages[stage].info.run_id
    # the evaluation read the training run's folder, found by its tags
    assert evaluation.data.params["checkpoint"] == training.data.tags["output_dir"]
    assert evaluation.data.tags["trained_on_evaluated_outputs"] == "1"  # iteration 24 scores its training set
    lines = [line for line in out.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert lines[0] == ("[1/3] train: python train.py experiment=iter24_overfit scale=smoke "
                        "arm=iter24_overfit_smoke/lora model=tiny-random")
    assert lines[2].startswith("[2/3] evaluate: python evaluate.py experiment=iter24_overfit_evaluate scale=smoke "
                               f"inference.temperature=0.0 data.eval.source=arc1-training inference.max_new_tokens=8 "
                               f"checkpoint={training.data.tags['output_dir']} model=tiny-random")
    assert tables(out)[2].startswith("| LoRA | training |")


@pytest.mark.slow
def test_a_single_entry_point_takes_the_same_references(iteration, tmp_path, capsys):
    """evaluate.py checkpoint=run:... finds the run by its tags: here iteration 24's LoRA run, which trained on the
    tiny tasks (the smoke stand-in for MINI-ARC), so scoring them is refused naming its checkpoint folder."""
    uri, _ = iteration
    (training,) = [r for r in mlflow_runs(uri) if r.data.tags.get("run_type") == "training"]
    args = ["evaluate.py", "model=tiny-random", f"logger.tracking_uri={uri}", "progress=false",
            f"data.eval.source={REPO / 'tests' / 'fixtures' / 'tiny_tasks'}", f"hydra.run.dir={tmp_path / 'e'}"]
    code, _, err = run_in_process([*args, "checkpoint=run:experiment:iter24_overfit/arm:lora/scale:smoke"], capsys)
    assert code == 1
    assert (f"evaluate.py: error: checkpoint '{training.data.tags['output_dir']}/checkpoints/step-000006' trained on "
            f"2 of the 2 evaluated test outputs") in err
    code, _, err = run_in_process([*args, "checkpoint=run:experiment:iter24_overfit/arm:full"], capsys)
    assert code == 1
    assert ("evaluate.py: error: checkpoint run:experiment:iter24_overfit/arm:full: no finished run with "
            "experiment=iter24_overfit, arm=full in") in err


@pytest.mark.slow
def test_killed_in_a_later_stage_it_continues_and_prints_the_same_tables(iteration, tmp_path):
    """Killed while the evaluation runs, the same command skips the training that finished, runs the evaluation
    again and prints the tables the uninterrupted run printed; then everything is skipped but the tables."""
    _, uninterrupted = iteration
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    process = run_py([], uri, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    seen = []
    for line in process.stdout:  # until the second stage starts (its MLflow run exists by then)
        seen.append(line)
        if line.startswith("[2/3] evaluate: python"):
            time.sleep(5)  # into the evaluation
            break
    assert seen and seen[-1].startswith("[2/3] evaluate: python"), "".join(seen[-30:])
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    resumed = run_py([], uri)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[1/3] train: done in this rerun" in resumed.stdout
    assert "[2/3] evaluate: python evaluate.py" in resumed.stdout
    assert tables(resumed.stdout) == tables(uninterrupted)
    again = run_py([], uri)
    assert "[1/3] train: done in this rerun" in again.stdout and "[2/3] evaluate: done in this rerun" in again.stdout
    assert tables(again.stdout) == tables(uninterrupted)
