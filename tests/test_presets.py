"""A preset is one file: its scales and one-factor arms are data (arc_exp.presets), registered as Hydra options that
compose, sweep and run as the per-arm and per-scale files they replaced did."""
from __future__ import annotations

import textwrap

import pytest
from conftest import CONF, REPO
from omegaconf import OmegaConf

from arc_exp import cli, presets
from arc_exp.tracking.runs import flatten

ITER12 = "iter12_grid_representation"
TRAININGS = ["encoder_code_block", "encoder_code_block_replace_number", "encoder_code_block_row_number",
             "encoder_grid_shape", "encoder_grid_shape_row_number", "encoder_grid_shape_row_number_replace_number",
             "base", "lr_x2", "lr_x4", "r16", "r64"]


def compose(preset: str, scale: str, arm: str | None = None, entry: str = "train"):
    from hydra import compose as hydra_compose, initialize_config_dir

    overrides = [f"experiment={preset}", f"scale={scale}", *([f"arm={arm}"] if arm else [])]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=entry):
        return hydra_compose(entry, overrides=overrides, return_hydra_config=True)


def test_a_preset_is_one_file():
    """No folder of arm files or per-scale sweep files is left: the ten presets are ten files."""
    files = sorted(p.relative_to(REPO / "experiments").as_posix() for p in (REPO / "experiments").rglob("*"))
    assert all(f.endswith(".yaml") and "/" not in f for f in files), files
    assert len(files) == 10
    assert not (CONF / "arm").exists()


@pytest.mark.parametrize("scale, arms", [
    ("smoke", TRAININGS + ["size_small", "size_large"]),
    ("gpu", TRAININGS + ["r128", "r256", "size_small", "size_large"]),  # ranks 128 and 256: sweep: gpu
])
def test_the_sweep_is_the_arms_in_file_order(scale, arms):
    """``train.py -m`` runs every arm of the file in order, but the TTFT arms (sweep: false, a later stage runs them
    from the trained adapters) and the ranks swept at gpu scale only."""
    cfg = compose(ITER12, scale)
    assert cfg.hydra.sweeper.params.arm == ",".join(f"{ITER12}_{scale}/{arm}" for arm in arms)


@pytest.mark.parametrize("scale, learning_rate, max_steps", [("smoke", 8e-4, 4), ("gpu", 2e-4, 12000)])
def test_an_arm_takes_its_keys_and_its_scale_part(scale, learning_rate, max_steps):
    cfg = compose(ITER12, scale, f"{ITER12}_{scale}/lr_x2")
    assert (cfg.arm, cfg.learning_rate, cfg.trainer.max_steps) == ("lr_x2", learning_rate, max_steps)
    assert cfg.hydra.runtime.choices["arm"] == f"{ITER12}_{scale}/lr_x2"  # the run's choice/arm tag


def test_an_arm_overrides_a_group_at_one_scale():
    """size_small's smoke part overrides the model group (its defaults: list); its gpu part does not."""
    smoke = compose(ITER12, "smoke", f"{ITER12}_smoke/size_small")
    assert smoke.hydra.runtime.choices["model"] == "tiny-random" and smoke.model.name == "tiny-random"
    gpu = compose(ITER12, "gpu", f"{ITER12}_gpu/size_small")
    assert gpu.model.name == "qwen2-0.5b" and gpu.trainer.max_steps == 24000


def test_a_run_logs_no_copy_of_the_preset():
    """The entry points drop scales: and arms: before the recipe runs: they are composed already, and would put the
    whole preset in every run's params."""
    cfg = compose(ITER12, "smoke", f"{ITER12}_smoke/r16")
    assert "arms" in cfg and "scales" in cfg
    presets.drop_options(cfg)
    params = flatten(OmegaConf.to_container(cfg))
    assert not [k for k in params if k.startswith(("arms.", "scales."))]
    assert params["arm"] == "r16" and params["lora.r"] == "16"


@pytest.mark.parametrize("text, message", [
    ("scales: {cpu: {trainer: {max_steps: 2}}}", "bad.yaml: scales: cpu is no scale (the scales: smoke, gpu)"),
    ("scales: [smoke]", "bad.yaml: scales: must be a mapping, got list"),
    ("scales: {smoke: 4}", "bad.yaml: scales.smoke: must be a mapping of settings, got 4"),
    ("arms: {r16: 16}", "bad.yaml: arms.r16: an arm is a mapping of what it changes, got 16"),
    ("arms: {r16: {gpu: 3}}", "bad.yaml: arms.r16.gpu: must be a mapping, got 3"),
    ("arms: {r16: {sweep: tpu}}", "bad.yaml: arms.r16.sweep: true, false or the scales it is swept at (smoke, gpu), "
                                  "got 'tpu'"),
])
def test_a_malformed_preset_is_named(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(textwrap.dedent(text))
    with pytest.raises(presets.PresetError) as error:
        list(presets.options(tmp_path / "bad.yaml"))
    assert str(error.value) == f"{tmp_path}/{message}"


def test_an_entry_point_stops_on_a_malformed_preset_in_one_line(monkeypatch, capsys, tmp_path):
    (tmp_path / "bad.yaml").write_text("arms: {r16: 16}\n")
    monkeypatch.setattr(presets, "register", lambda folder, real=presets.register: real(tmp_path))
    monkeypatch.setattr("sys.argv", ["train.py"])
    with pytest.raises(SystemExit) as stop:
        cli.prepare()
    assert stop.value.code == 1
    assert capsys.readouterr().err == (f"train.py: error: {tmp_path}/bad.yaml: arms.r16: an arm is a mapping of what "
                                       "it changes, got 16\n")


def test_the_readme_example_composes(tmp_path):
    """The README's minimal new iteration, copied into a copy of conf/ beside the real presets: its arms sweep and
    compose at both scales."""
    import re
    import shutil

    from hydra import compose as hydra_compose, initialize_config_dir

    text = (REPO / "README.md").read_text()
    example = re.search(r"```yaml\n(# @package _global_\n.*?/scales: my_rank_sweep.*?)```", text, re.S).group(1)
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf, symlinks=False)
    (conf / "experiment" / "my_rank_sweep.yaml").write_text(example)
    presets.register(conf / "experiment")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="train"):
        sweep = hydra_compose("train", overrides=["experiment=my_rank_sweep"], return_hydra_config=True)
        assert sweep.hydra.sweeper.params.arm == ",".join(f"my_rank_sweep_smoke/{arm}" for arm in ("r16", "r32", "r64"))
        assert (sweep.arm, sweep.trainer.max_steps, sweep.stages[0].name) == ("r32", 4, "train")
        gpu = hydra_compose("train", overrides=["experiment=my_rank_sweep", "scale=gpu", "arm=my_rank_sweep_gpu/r64"])
        assert (gpu.arm, gpu.lora.r, gpu.learning_rate, gpu.trainer.max_steps) == ("r64", 64, 5e-5, 6000)
