"""Data-parallel training for real: ``train.py trainer=ddp_cpu`` runs 2 processes over gloo on this CPU machine.

Every run goes through a wrapper script (written to a temporary folder) that runs train.py's
``main`` after recording, per process, the samples of every batch the training stream yields, and (optionally)
crashing before a given optimizer step. Lightning starts the second process by running the same script again, so
both processes record and crash alike.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from arc_exp.training import distributed, recipe as training
from conftest import PYTHON, REPO, TINY, architecture_of, compose_train, metric_history, mlflow_runs, run_train

STEPS = 6
DATA = (
    "data.train=[{source:arc1-training,max_grid_side:4,first_n:8,prompt:output-from-examples-v0,weight:1.0}]",
    "data.val={source:arc1-evaluation,max_grid_side:4,first_n:3,prompt:output-from-examples-v0}",
    "data.max_seq_len=2048", "data.bucket_batches=2", "seed=0", "learning_rate=4e-4",
    f"trainer.max_steps={STEPS}", "trainer.val_check_interval=2", "callbacks.checkpoint_every_n_steps=3",
)

WRAPPER = '''\
import hashlib, json, os, sys
sys.path.insert(0, {repo!r})
import pytorch_lightning as pl
import train
from arc_exp.data import datamodule
from arc_exp.training import recipe

record, stop_at = os.environ["SAMPLES_DIR"], int(os.environ.get("STOP_AT", "0"))
stream_iter = datamodule.TrainingStream.__iter__

def recording_iter(self):
    with open(os.path.join(record, f"rank-{{self.rank}}.jsonl"), "a") as out:
        for batch in stream_iter(self):
            rows = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
            out.write(json.dumps([hashlib.sha1(str(r).encode()).hexdigest()[:16] for r in rows]) + "\\n")
            out.flush()
            yield batch

class Crash(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == stop_at:
            raise RuntimeError(f"crash before optimizer step {{stop_at + 1}}")

build_trainer = recipe.build_trainer

def with_crash(*args, **kwargs):
    trainer = build_trainer(*args, **kwargs)
    if stop_at:
        trainer.callbacks.append(Crash())
    return trainer

datamodule.TrainingStream.__iter__ = recording_iter
recipe.build_trainer = with_crash
train.main()
'''


def run(folder: Path, name: str, uri: str, *overrides: str, stop_at: int = 0) -> tuple[Path, Path]:
    """``python <wrapper> <overrides>``: returns (run folder, folder of the recorded samples)."""
    script, samples = folder / "train_recording.py", folder / f"{name}-samples"
    script.write_text(WRAPPER.format(repo=str(REPO)))
    samples.mkdir()
    # ${now:...} down to microseconds: a process that resolved the run folder itself would land elsewhere
    args = [*TINY, *DATA, f"logger.tracking_uri={uri}", *overrides,
            f"hydra.run.dir={folder}/{name}/${{now:%H-%M-%S-%f}}"]
    env = {**os.environ, "SAMPLES_DIR": str(samples), "STOP_AT": str(stop_at), "HYDRA_FULL_ERROR": "1"}
    # train.main imported, not run as __main__: Hydra needs the config folder spelled out (kept for process 1 too)
    result = subprocess.run([PYTHON, str(script), "--config-path", str(REPO / "conf"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=900)
    if stop_at:
        assert result.returncode != 0 and f"crash before optimizer step {stop_at + 1}" in result.stderr
    else:
        assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list((folder / name).iterdir())
    assert len(run_dirs) == 1, f"the processes wrote {len(run_dirs)} run folders: {run_dirs}"
    return run_dirs[0], samples


def batches(samples: Path, rank: int) -> list[list[str]]:
    """The samples (hashes of their tokens) of each batch process ``rank`` read, in order."""
    return [json.loads(line) for line in (samples / f"rank-{rank}.jsonl").read_text().splitlines()]


def history(uri: str, run_dir: Path, key: str = "train/loss") -> dict[int, float]:
    found = [r for r in mlflow_runs(uri) if r.data.tags.get("output_dir") == str(run_dir.resolve())]
    assert len(found) == 1, f"{len(found)} MLflow runs logged from {run_dir}"
    return metric_history(uri, found[0].info.run_id, key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process with batches of 4; 2 processes with batches of 2."""
    folder = tmp_path_factory.mktemp("ddp")
    uri = f"sqlite:///{folder}/mlflow.db"
    single = run(folder, "single", uri, "data.batch_size=4")
    ddp = run(folder, "ddp", uri, "trainer=ddp_cpu", "data.batch_size=2")
    return {"folder": folder, "uri": uri, "single": single, "ddp": ddp}


@pytest.fixture(scope="module")
def crash_runs(runs):
    """The 2-process run crashing before step 4, and its resume (two more 2-process runs: the slow tier)."""
    folder, uri = runs["folder"], runs["uri"]
    crashed = run(folder, "crashed", uri, "trainer=ddp_cpu", "data.batch_size=2", stop_at=3)
    resumed = run(folder, "resumed", uri, "trainer=ddp_cpu", "data.batch_size=2", f"resume={crashed[0]}")
    return {**runs, "crashed": crashed, "resumed": resumed}


def test_processes_train_on_disjoint_shares_of_the_single_process_batches(runs):
    (_, single), (_, ddp) = runs["single"], runs["ddp"]
    one, rank0, rank1 = batches(single, 0)[:STEPS], batches(ddp, 0)[:STEPS], batches(ddp, 1)[:STEPS]
    assert len(rank0) == len(rank1) == STEPS and not (ddp / "rank-2.jsonl").exists()
    for step in range(STEPS):
        assert len(rank0[step]) == len(rank1[step]) == 2 and len(one[step]) == 4
        # the two shares together are exactly the batch one process reads with twice the batch size
        assert Counter(rank0[step]) + Counter(rank1[step]) == Counter(one[step])
        assert one[step][0::2] == rank0[step] and one[step][1::2] == rank1[step]
    assert len({s for b in one for s in b}) > 12  # many different samples, not one repeated


def test_loss_curve_equals_one_process_with_twice_the_batch(runs):
    uri, (single, _), (ddp, _) = runs["uri"], runs["single"], runs["ddp"]
    for key, steps in (("train/loss", list(range(STEPS))), ("val/loss", [1, 3, 5])):
        one, two = history(uri, single, key), history(uri, ddp, key)
        assert sorted(one) == sorted(two) == steps
        assert [two[s] for s in steps] == pytest.approx([one[s] for s in steps], abs=1e-5, rel=0)
    # each process pads its share to its own longest sample only: fewer padding tokens than one batch of 4
    shares, single_shares = history(uri, ddp, "train/real_token_share"), history(uri, single, "train/real_token_share")
    assert all(shares[s] >= single_shares[s] for s in range(STEPS)) and shares != single_shares


def test_process_zero_alone_writes_checkpoints_config_and_one_mlflow_run(runs):
    uri, (ddp, _) = runs["uri"], runs["ddp"]
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["last.ckpt", "step-000003", "step-000006"]
    for step in ("step-000003", "step-000006"):
        assert {"adapter_config.json", "adapter_model.safetensors", "arc_exp.yaml", "trained_outputs.json"} <= {
            p.name for p in (ddp / "checkpoints" / step).iterdir()}
    # one run folder (checked in run()) with both processes' logs and one .hydra/ (the first process's)
    assert sorted(p.name for p in ddp.iterdir()) == [".hydra", "checkpoints", "config.yaml", "overrides.txt",
                                                     "rank_1.log", "train.log", "trained_outputs.json"]
    found = [r for r in mlflow_runs(uri) if r.data.tags.get("output_dir") == str(ddp.resolve())]
    assert len(found) == 1  # one MLflow run for both processes
    found = found[0]
    assert found.data.params["trainer.devices"] == "2" and found.data.params["data.batch_size"] == "2"


@pytest.mark.slow
def test_resume_after_a_crash_continues_identically(crash_runs):
    runs = crash_runs
    assert len(mlflow_runs(runs["uri"])) == 4  # single, ddp, crashed, resumed: one each
    uri, (ddp, ddp_samples), (crashed, _), (resumed, resumed_samples) = (
        runs["uri"], runs["ddp"], runs["crashed"], runs["resumed"])
    assert sorted(p.name for p in (crashed / "checkpoints").iterdir()) == ["last.ckpt", "step-000003"]
    assert training.batches_done(str(crashed / "checkpoints" / "last.ckpt")) == 3
    for rank in (0, 1):
        assert batches(resumed_samples, rank)[:3] == batches(ddp_samples, rank)[3:STEPS]
    for key in ("train/loss", "val/loss", "train/lr"):
        expected = {s: v for s, v in history(uri, ddp, key).items() if s >= 3}
        assert history(uri, resumed, key) == pytest.approx(expected, abs=1e-6, rel=0)
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["last.ckpt", "step-000006"]


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: one clear error before a model loads.

@pytest.mark.parametrize("trainer, message", [
    ({"accelerator": "cpu", "devices": 3, "strategy": "ddp"},
     r"trainer.devices=3 asks for 3 processes but this machine has 2 CPU cores"),
    ({"accelerator": "cpu", "devices": 2, "strategy": "fsdp"}, r"trainer.strategy=fsdp needs GPUs"),
    ({"accelerator": "gpu", "devices": 1, "strategy": "ddp"}, r"trainer.accelerator=gpu but this machine has no GPU"),
    ({"accelerator": "cpu", "devices": 2,
      "strategy": {"_target_": "pytorch_lightning.strategies.DDPStrategy", "process_group_backend": "nccl"}},
     r"trainer.strategy.process_group_backend=nccl needs GPUs"),
])
def test_bad_process_settings(monkeypatch, trainer, message):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: False)
    with pytest.raises(distributed.ProcessConfigError, match=message):
        distributed.check_processes(trainer)


def test_ddp_cpu_composes_and_fits_this_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    from omegaconf import OmegaConf

    trainer = OmegaConf.to_container(compose_train(["trainer=ddp_cpu"]).trainer, resolve=True)
    assert trainer["strategy"] == {"_target_": "pytorch_lightning.strategies.DDPStrategy",
                                   "process_group_backend": "gloo"}
    assert distributed.check_processes(trainer) == 2 and distributed.is_distributed(trainer)
    assert not distributed.is_distributed(OmegaConf.to_container(compose_train([]).trainer, resolve=True))


def test_too_many_devices_fail_before_the_model_loads(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(distributed.ProcessConfigError, match=r"trainer.devices=8 asks for 8 processes"):
        run_train(tmp_path / "run", [*TINY, "trainer=ddp_cpu", "trainer.devices=8", "logger=none"])
    assert "trainable of" not in caplog.text  # no model was built


def test_other_processes_run_this_job_in_its_run_folder():
    """A multirun's job: the command of process 1 drops -m and the sweep, keeps config flags and the job's overrides."""
    argv = ["train.py", "-m", "--config-name", "train", "lora.r=16,32", "trainer=ddp_cpu"]
    command = distributed.child_command("/runs/multirun/0", ["lora.r=16", "trainer=ddp_cpu"], 1, argv)
    assert command[1:] == [os.path.abspath("train.py"), "--config-name", "train", "lora.r=16", "trainer=ddp_cpu",
                           'hydra.run.dir="/runs/multirun/0"', "hydra.output_subdir=null", "hydra.job.name=rank_1"]


# ---------------------------------------------------------------------------------------------------------------------
# FSDP (GPU only): the composed strategy wraps the model's decoder layer class.

@pytest.mark.parametrize("model, layer", [("smollm2-135m", "LlamaDecoderLayer"), ("qwen2-0.5b", "Qwen2DecoderLayer"),
                                          ("phi-3-mini", "Phi3DecoderLayer"), ("phi-3-mini-128k", "Phi3DecoderLayer"),
                                          ("tiny-random", "LlamaDecoderLayer")])
def test_fsdp_wraps_the_decoder_layers_of_the_model(model, layer):
    """No model option names its decoder layer: FSDP's unit is the loaded model's own class."""
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    cfg = compose_train(["trainer=fsdp", f"model={model}"])
    assert cfg.model.decoder_layer is None
    strategy = instantiate(distributed.with_model_decoder_layer(cfg.trainer.strategy, architecture_of(model)))
    assert isinstance(strategy, FSDPStrategy) and strategy._state_dict_type == "full"
    policy = strategy.kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy)
    assert [c.__name__ for c in policy._module_classes] == [layer]
    assert strategy.kwargs["use_orig_params"]  # LoRA: frozen and trainable parameters in one unit


def test_fsdp_decoder_layer_is_the_class_of_the_model_blocks(tiny_model):
    from arc_exp.model.adapters import AdapterConfig, apply_adapter

    peft_model = apply_adapter(tiny_model, AdapterConfig(r=4))  # through the PEFT wrapper
    strategy = distributed.with_model_decoder_layer({"decoder_layer": None}, peft_model)
    assert all(type(block) is distributed.decoder_layer_class(strategy["decoder_layer"])
               for block in tiny_model.model.layers)


def test_fsdp_settings_fail_clearly(monkeypatch):
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 2)
    trainer = {"accelerator": "gpu", "devices": 2,
               "strategy": {"_target_": "arc_exp.training.distributed.fsdp_strategy",
                            "decoder_layer": "transformers.models.llama.modeling_llama.NoSuchLayer"}}
    with pytest.raises(distributed.ProcessConfigError, match=r"model.decoder_layer=transformers.models.llama."
                                                             r"modeling_llama.NoSuchLayer: no such class"):
        distributed.check_processes(trainer)
    trainer["strategy"]["decoder_layer"] = None  # the loaded model's own, found when the trainer is built
    assert distributed.check_processes(trainer) == 2
    trainer["strategy"]["decoder_layer"] = "transformers.models.llama.modeling_llama.LlamaDecoderLayer"
    assert distributed.check_processes(trainer) == 2


def test_fsdp_refuses_a_named_layer_the_model_does_not_have():
    """A preset that set Qwen2 by value once kept SmolLM2's LlamaDecoderLayer: FSDP would wrap nothing."""
    named = {"decoder_layer": "transformers.models.llama.modeling_llama.LlamaDecoderLayer"}
    with pytest.raises(distributed.ProcessConfigError) as error:
        distributed.with_model_decoder_layer(named, architecture_of("qwen2-0.5b"))
    assert str(error.value) == (
        "model.decoder_layer=transformers.models.llama.modeling_llama.LlamaDecoderLayer: the model "
        "(Qwen2ForCausalLM) has no such layer, FSDP would wrap nothing; its decoder layers are "
        "transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer (leave model.decoder_layer unset to wrap them)")
    assert distributed.with_model_decoder_layer(named, architecture_of("smollm2-135m")) == named


# ---------------------------------------------------------------------------------------------------------------------
# Multi-node: the SLURM launcher option composes with the trainer's devices and nodes.

def test_slurm_launcher_asks_one_task_per_gpu_on_every_node(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the .[slurm] extra is not installed")
    from hydra.utils import instantiate
    from submitit.slurm.slurm import _make_sbatch_string

    cfg = compose_train(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp",
                         "trainer.devices=4", "trainer.num_nodes=2"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert (launcher.partition, launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == ("gpu", 2, 4, 4)
    instance = instantiate(launcher)
    assert type(instance).__name__ == "SlurmLauncher" and instance.params["tasks_per_node"] == 4
    sbatch = _make_sbatch_string("python train.py", str(tmp_path), partition=launcher.partition, nodes=launcher.nodes,
                                 ntasks_per_node=launcher.tasks_per_node, gpus_per_node=launcher.gpus_per_node,
                                 cpus_per_task=launcher.cpus_per_task, time=launcher.timeout_min)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --time=1200"):
        assert line in sbatch


# ---------------------------------------------------------------------------------------------------------------------
# Hyperparameter search: the Optuna sweeper (the .[optuna] extra) with train.py's return value.

@pytest.mark.slow  # a second study (~16 s); test_optuna_study_of_an_eval_metric runs the sweeper in the default suite
def test_optuna_study_of_learning_rate_and_lora_rank(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the .[optuna] extra is not installed")
    import yaml

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run(
        [PYTHON, str(REPO / "train.py"), "-m", "hparams_search=lr_lora_r", "hydra.sweeper.n_trials=3",
         "lora.r=choice(2,4)", *TINY, "trainer.max_steps=2", "trainer.val_check_interval=2",
         "data.val.first_n=1", f"logger.tracking_uri={uri}", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    runs = mlflow_runs(uri)
    assert len(runs) == 3 and len({r.data.tags["sweep_id"] for r in runs}) == 1
    trials = {(float(r.data.params["learning_rate"]), int(r.data.params["lora.r"])): r.data.metrics["val/loss"]
              for r in runs}
    assert all(1e-5 <= lr <= 1e-3 and r in (2, 4) for lr, r in trials)
    # the study's best trial is the MLflow run with the lowest validation loss (what train.py returned)
    lowest = min(trials, key=trials.get)
    assert (best["best_params"]["learning_rate"], best["best_params"]["lora.r"]) == pytest.approx(lowest)
    assert best["best_value"] == pytest.approx(trials[lowest])


def test_optuna_study_of_an_eval_metric(tmp_path):
    """objective.metric=eval/pass_2 objective.direction=maximize: train.py returns the accuracy of the evaluation
    after training, and the study maximizes it (the tiny random model solves nothing: every trial scores 0)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the .[optuna] extra is not installed")
    import yaml

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run(
        [PYTHON, str(REPO / "train.py"), "-m", "hparams_search=lr_lora_r", "hydra.sweeper.n_trials=2",
         "lora.r=choice(2,4)", *TINY, "trainer.max_steps=1", "trainer.val_check_interval=1", "data.val.first_n=1",
         "evaluation.enabled=true", "evaluation.predictions_per_task=1", "data.eval.first_n=1",
         "inference.max_new_tokens=4", "objective.metric=eval/pass_2", "objective.direction=maximize",
         f"logger.tracking_uri={uri}", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    runs = mlflow_runs(uri)
    assert len(runs) == 2 and all(r.data.metrics["eval/n_tasks"] == 1.0 for r in runs)
    assert [r.data.metrics["eval/pass_2"] for r in runs] == [0.0, 0.0]
    assert best["best_value"] == 0.0 and "val/loss" in runs[0].data.metrics  # not the validation loss (~10.8)
    assert "Directions: ['maximize']" in result.stdout + result.stderr  # hydra.sweeper.direction follows objective


@pytest.mark.parametrize("overrides, message", [
    (["objective.metric=eval/pass_2", "objective.direction=maximize"],
     r"objective.metric=eval/pass_2 needs the evaluation after training: add evaluation.enabled=true"),
    (["objective.metric=eval/pass_2", "evaluation.enabled=true"],
     r"objective.direction=minimize for eval/pass_2, which is better higher: use objective.direction=maximize"),
    (["objective.metric=val/loss", "objective.direction=maximize"],
     r"objective.direction=maximize for val/loss, which is better lower: use objective.direction=minimize"),
    (["objective.metric=qa/count", "objective.direction=maximize"],
     r"objective.metric=qa/count needs the count question evaluation: set evaluation.count_qa"),
    (["objective.metric=accuracy"], r"objective.metric=accuracy: expected val/loss, train/loss, eval/<metric>"),
    (["objective.direction=up"], r"objective.direction=up: expected one of minimize, maximize"),
])
def test_a_bad_objective_fails_before_training(tmp_path, overrides, message):
    from arc_exp.training.objective import ObjectiveError

    with pytest.raises(ObjectiveError, match=message):
        run_train(tmp_path, [*TINY, "logger=none", *overrides])
    assert not (tmp_path / "checkpoints").exists()


def test_the_objective_is_what_train_returns(tmp_path):
    from arc_exp.training.objective import Objective, ObjectiveError

    metrics = {"train/loss": 3.0, "val/loss": 2.0, "eval/pass_2": 0.5}
    assert [Objective(m, d).value(metrics) for m, d in (("val/loss", "minimize"), ("train/loss", "minimize"),
                                                       ("eval/pass_2", "maximize"))] == [2.0, 3.0, 0.5]
    with pytest.raises(ObjectiveError, match=r"objective.metric=eval/vote_2: the run logged no such metric \(it has "
                                             r"eval/pass_2, train/loss, val/loss\)"):
        Objective("eval/vote_2", "maximize").value(metrics)
