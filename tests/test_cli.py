"""arc_exp/cli.py around a Hydra app of a few lines (no model, no data): what every entry point's console shows."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

APP = '''
import logging

import hydra

from arc_exp import cli


@hydra.main(config_path=None, config_name=None, version_base="1.3")
@cli.entry_point("app.py")
def main(cfg):
    logging.getLogger("app").info("x=%s", cfg.x)


if __name__ == "__main__":
    main()
'''


def run_sweep(tmp_path, *overrides) -> str:
    (tmp_path / "app.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this worktree's arc_exp, not the installed one
    result = subprocess.run([sys.executable, "app.py", "-m", "+x=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                             *overrides], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_sequential_sweep_jobs_print_without_a_prefix(tmp_path):
    """Hydra's basic launcher runs one job after the other: their lines cannot interleave, no ``[job N]``."""
    output = run_sweep(tmp_path)
    lines = [line for line in output.splitlines() if "[app]" in line]
    assert [re.sub(r"^\[[^]]*\]", "[time]", line) for line in lines] == ["[time][app][INFO] - x=1",
                                                                         "[time][app][INFO] - x=2"]
    assert "[job " not in output


def test_parallel_sweep_jobs_prefix_their_lines_with_the_job_number(tmp_path):
    output = run_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    for job, x in ((0, 1), (1, 2)):
        assert re.search(rf"^\[job {job}\] \[.*\]\[app\]\[INFO\] - x={x}$", output, re.M), output[-3000:]
        assert re.search(rf"^\[job {job}\] \[.*\]\[arc_exp\]\[INFO\] - done: run folder .*sweep/{job}, no MLflow run$",
                         output, re.M), output[-3000:]


@pytest.mark.parametrize("launcher, parallel", [
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, False),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, True),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}, True),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 1}, False),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}, True),
])
def test_which_launchers_run_jobs_in_parallel(launcher, parallel):
    from arc_exp.console import runs_in_parallel

    assert runs_in_parallel(launcher) is parallel


def test_known_log_lines_of_dependencies_are_dropped_and_others_kept(caplog):
    """Lightning's tip and GPU/TPU lines and bitsandbytes' missing-`kernels` note are dropped; other lines of those
    loggers stay."""
    import logging

    from arc_exp import console

    console.quiet_warnings()
    console.quiet_warnings()  # idempotent: one filter per line
    caplog.set_level(logging.INFO)
    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    tip = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    assert len(bnb.filters) == 1 and len(tip.filters) == 3
    bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.")
    bnb.warning("something else")
    tip.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
    tip.info("GPU available: False, used: False")
    tip.info("TPU available: False, using: 0 TPU cores")
    tip.info("`Trainer.fit` stopped: `max_steps=2` reached.")
    assert [r.getMessage() for r in caplog.records] == ["something else",
                                                        "`Trainer.fit` stopped: `max_steps=2` reached."]


def test_final_metrics_are_a_small_aligned_table():
    from arc_exp import console

    metrics = {"train/loss": 1.2345678, "train/lr": 4e-05, "val/loss": 2.3, "eval/pass_2": 0.5, "epoch": 3}
    assert console.metrics_table(metrics, width=60).splitlines() == [
        "  train/loss   1.23457    eval/pass_2      0.5",
        "  train/lr       4e-05    epoch              3",
        "  val/loss         2.3"]
    assert all(len(line) <= 110 for line in console.metrics_table({f"eval/metric_{i}": i / 7 for i in range(30)})
               .splitlines())


def test_the_loading_weights_bar_is_hidden_and_other_bars_kept():
    from transformers.utils import logging as hf_logging

    from arc_exp.model.loader import without_loading_bar

    without_loading_bar()
    assert isinstance(hf_logging.tqdm(range(2), desc="Loading weights"), hf_logging.EmptyTqdm)
    bar = hf_logging.tqdm(range(2), desc="Downloading", disable=True)
    assert not isinstance(bar, hf_logging.EmptyTqdm)
