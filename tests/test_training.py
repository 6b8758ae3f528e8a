"""Training with the tiny random model through train.py's recipe: MLflow logging, pinned losses, exact resume,
full fine-tuning and DoRA, continuing from an adapter, a joblib multirun, and clear errors on bad input.

Most runs call train.py's ``main`` in this process (conftest.run_train: saves the ~10 s Lightning import per run).
The multirun and the bad-input runs need a real ``python train.py`` process; they are all started together when the
first of their tests runs and keep running in the background while the in-process runs train.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import mlflow
import pytest
import pytorch_lightning as pl
import torch
import yaml
from safetensors.torch import load_file

from arc_exp.training import recipe as training
from conftest import PYTHON, REPO, TINY, metric_history, mlflow_runs, run_train

# What the pinned numbers depend on, spelled out so a change of a default or of debug=smoke does not move them:
# 8 ARC-1 training tasks with grids up to 4x4 (~330-580 tokens a sample), 2 validation tasks, batches of 2.
PROMPT = "output-from-examples-v0"
DATA = (
    f"data.train=[{{source:arc1-training,max_grid_side:4,first_n:8,prompt:{PROMPT},weight:1.0,loss_weight:1.0,"
    f"swap_train_test:true}}]",
    f"data.val={{source:arc1-evaluation,max_grid_side:4,first_n:2,prompt:{PROMPT}}}",
    "data.max_seq_len=2048", "data.batch_size=2", "data.bucket_batches=2",
    "encoder=grid_shape_row_number", "augmentation=default", "scheduler=linear", "lora=lora",
    "learning_rate=4e-4", "seed=0", "trainer.val_check_interval=2", "callbacks.checkpoint_every_n_steps=3",
)

# train/loss per step (MLflow steps 0..5) of the 6-step run, seed 0; ln(49152 tokens) = 10.80 for a uniform guess
PINNED_TRAIN_LOSS = [10.638161659240723, 10.70305061340332, 10.615708351135254, 10.57054328918457,
                     10.610881805419922, 10.540197372436523]
PINNED_VAL_LOSS = {1: 10.654817581176758, 3: 10.616659164428711, 5: 10.600809097290039}
PINNED_REAL_TOKEN_SHARE = [0.9322344064712524, 0.8432203531265259, 1.0, 0.9070351719856262, 0.9322344064712524,
                           0.9070351719856262]
TOLERANCE = 1e-5


def run_id_of(uri: str, run_dir: Path) -> str:
    """The MLflow run whose output_dir tag is ``run_dir``."""
    found = [r for r in mlflow_runs(uri) if r.data.tags.get("output_dir") == str(run_dir.resolve())]
    assert len(found) == 1, f"{len(found)} runs logged from {run_dir}"
    return found[0].info.run_id


def losses(uri: str, run_dir: Path, key: str = "train/loss") -> dict[int, float]:
    return metric_history(uri, run_id_of(uri, run_dir), key)


def adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


class Interrupted(Exception):
    """Stands for a crash (or a killed job) in the middle of a run."""


class InterruptAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Interrupted(f"interrupted before optimizer step {self.step + 1}")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str]:
    """A folder for the in-process runs and their shared SQLite tracking store."""
    folder = tmp_path_factory.mktemp("runs")
    return folder, f"sqlite:///{folder}/mlflow.db"


def train_overrides(uri: str, *extra: str) -> list[str]:
    return [*TINY, *DATA, f"logger.tracking_uri={uri}", *extra]


@pytest.fixture(scope="module")
def reference(store) -> Path:
    """6 uninterrupted steps with validation every 2 and checkpoints every 3."""
    folder, uri = store
    run_train(folder / "reference", train_overrides(uri, "trainer.max_steps=6"))
    return folder / "reference"


@pytest.fixture(scope="module")
def interrupted(store) -> Path:
    """The same run as ``reference``, crashing after 3 of its 6 steps (last.ckpt saved at step 3)."""
    folder, uri = store
    build_trainer = training.build_trainer

    def with_interrupt(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(InterruptAt(3))
        return trainer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "build_trainer", with_interrupt)
        with pytest.raises(Interrupted):
            run_train(folder / "interrupted", train_overrides(uri, "trainer.max_steps=6"))
    return folder / "interrupted"


# ---------------------------------------------------------------------------------------------------------------------
# Background processes: python train.py runs that need their own process.

BAD_INPUT = {  # name -> (extra arguments, extra environment)
    "unknown_option": (["model=gpt-17"], {}),
    "missing_adapter": (["adapter_path=/nonexistent/adapter"], {}),
    "max_seq_len": (["data.max_seq_len=50"], {}),
    "offline_model": (["model=qwen2-0.5b"], {"HF_HUB_OFFLINE": "1"}),
}


class Background:
    """``python train.py`` processes started together; their output goes to files (not pipes, which a multirun's
    lingering joblib workers would hold open). Each runs in its own session so its workers are stopped with it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: dict[str, subprocess.Popen] = {}
        self.results: dict[str, subprocess.CompletedProcess] = {}

    def start(self, name: str, args: list[str], env: dict) -> None:
        full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        full_env.update(env)
        with open(self.folder / f"{name}.out", "w") as out, open(self.folder / f"{name}.err", "w") as err:
            self.processes[name] = subprocess.Popen([PYTHON, str(REPO / "train.py"), *args], cwd=REPO,
                                                    env=full_env, stdout=out, stderr=err, start_new_session=True)

    def result(self, name: str, timeout: float = 400) -> subprocess.CompletedProcess:
        if name not in self.results:
            process = self.processes[name]
            try:
                process.wait(timeout=timeout)
            finally:
                self._stop_group(process)
            self.results[name] = subprocess.CompletedProcess(
                process.args, process.returncode, (self.folder / f"{name}.out").read_text(),
                (self.folder / f"{name}.err").read_text())
        return self.results[name]

    @staticmethod
    def _stop_group(process: subprocess.Popen) -> None:
        """Stop the process and whatever it started (joblib's worker processes outlive a finished multirun)."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            self._stop_group(process)


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    folder = tmp_path_factory.mktemp("background")
    jobs = Background(folder)
    sweep = folder / "sweep"
    jobs.start("multirun", ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "lora.r=4,8", *TINY, *DATA,
                            "trainer.max_steps=1", f"logger.tracking_uri=sqlite:///{folder}/multirun.db",
                            f"hydra.sweep.dir={sweep}"], {})
    for name, (args, env) in BAD_INPUT.items():
        jobs.start(name, [*TINY, *DATA, "trainer.max_steps=2", f"logger.tracking_uri=sqlite:///{folder}/{name}.db",
                          f"hydra.run.dir={folder / name}", *args], env)
    yield jobs
    jobs.stop()


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------------


def test_unknown_group_option_lists_the_available_ones(background):
    result = background.result("unknown_option")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "train.py: error: model=gpt-17: no such option (options: llama-3.1-8b, phi-3-mini, phi-3-mini-128k, "
        "qwen2-0.5b, qwen2-1.5b, qwen2.5-0.5b, smollm2-135m, tiny-random)")
    assert "Traceback" not in result.stderr


def test_answer_loss_is_the_weighted_sum_over_answer_tokens_divided_by_their_number(tiny_model):
    import torch.nn.functional as F

    from arc_exp.training.module import answer_loss

    input_ids = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 11, 2, 2]])
    batch = {"input_ids": input_ids, "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
             "labels": torch.tensor([[-100, -100, 7, 8, -100], [-100, 10, 11, -100, -100]]),
             "loss_weight": torch.tensor([1.0, 3.0])}
    with torch.no_grad():
        loss, count = answer_loss(tiny_model, batch)
        logits = tiny_model(input_ids=input_ids, attention_mask=batch["attention_mask"]).logits
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    # position t predicts token t+1: the answer tokens 7, 8 of row 0 and 10, 11 of row 1 (weighted 3x)
    nll = [-log_probs[0, 1, 7], -log_probs[0, 2, 8], -log_probs[1, 0, 10], -log_probs[1, 1, 11]]
    assert [float(x) for x in nll] == pytest.approx([10.737086, 10.836070, 10.801615, 10.925418], abs=1e-5)
    # divided by the 4 answer tokens, not by the weights' sum (8): the weights do not cancel out
    expected = (nll[0] + nll[1] + 3 * (nll[2] + nll[3])) / 4
    assert float(loss) == pytest.approx(float(expected), abs=1e-5)
    assert float(loss) == pytest.approx(21.688564, abs=1e-5)
    assert int(count) == 4


def one_sample_batch(weight: float) -> dict:
    return {"input_ids": torch.tensor([[5, 6, 7, 8, 2]]), "attention_mask": torch.ones(1, 5, dtype=torch.long),
            "labels": torch.tensor([[-100, -100, 7, 8, 2]]), "loss_weight": torch.tensor([weight])}


def test_default_weights_give_the_unweighted_mean_bit_for_bit(tiny_model):
    """All weights 1 (every data entry's default): exactly the loss of before weights stopped cancelling out
    (sum of weighted terms / sum of weights), so the pinned losses and the seeds' runs do not move."""
    from arc_exp.training.module import answer_loss

    batch = {"input_ids": torch.tensor([[5, 6, 7, 8, 2], [9, 10, 11, 2, 2]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
             "labels": torch.tensor([[-100, -100, 7, 8, 2], [-100, 10, 11, 2, -100]]),
             "loss_weight": torch.tensor([1.0, 1.0])}
    with torch.no_grad():
        loss, count = answer_loss(tiny_model, batch)
        logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1][keep].float(), targets[keep], reduction="none")
    weights = torch.ones_like(per_token)
    assert int(count) == 6
    assert torch.equal(loss, (per_token * weights).sum() / weights.sum())  # the former formula, bit for bit
    assert float(loss) == pytest.approx(10.821872, abs=1e-5)


def test_a_weight_of_2_doubles_the_gradient_of_a_one_sample_batch(tiny_model):
    from arc_exp.training.module import answer_loss

    params = [p for p in tiny_model.parameters() if p.requires_grad]
    grads = {}
    for weight in (1.0, 2.0):
        loss, _ = answer_loss(tiny_model, one_sample_batch(weight))
        grads[weight] = torch.autograd.grad(loss, params)
        grads[f"loss{weight}"] = loss.item()
    assert grads["loss2.0"] == 2 * grads["loss1.0"]
    assert grads["loss1.0"] == pytest.approx(10.796121, abs=1e-5)
    # scaling by 2 is exact in floating point: every gradient entry is exactly twice as large
    assert all(torch.equal(g2, 2 * g1) for g1, g2 in zip(grads[1.0], grads[2.0]))
    assert any(float(g.abs().sum()) > 0 for g in grads[1.0])


def test_a_batch_from_one_entry_keeps_its_weight(tiny_model):
    """Two samples of the same entry (weight 0.5): half the unweighted loss, where dividing by the weights gave it
    back unchanged."""
    from arc_exp.training.module import answer_loss

    batch = {"input_ids": torch.tensor([[5, 6, 7, 8, 2], [9, 10, 11, 2, 2]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
             "labels": torch.tensor([[-100, -100, 7, 8, 2], [-100, 10, 11, 2, -100]])}
    with torch.no_grad():
        plain, _ = answer_loss(tiny_model, {**batch, "loss_weight": torch.tensor([1.0, 1.0])})
        half, _ = answer_loss(tiny_model, {**batch, "loss_weight": torch.tensor([0.5, 0.5])})
    assert torch.equal(half, plain / 2)


def test_run_logs_params_metrics_and_config(store, reference):
    folder, uri = store
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id_of(uri, reference))
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["lora.r"], params["lora.method"], params["model.name"], params["trainer.max_steps"],
            params["learning_rate"], params["seed"]) == ("32", "lora", "tiny-random", "6", "0.0004", "0")
    assert client.get_experiment(run.info.experiment_id).name == "arc_exp-smoke"
    for key in ("train/loss", "train/lr", "train/tokens_per_s", "train/real_token_share", "train/dropped_examples"):
        assert sorted(metric_history(uri, run.info.run_id, key)) == [0, 1, 2, 3, 4, 5], key
    assert sorted(metric_history(uri, run.info.run_id, "val/loss")) == [1, 3, 5]
    # lr of each step: 4e-4 decayed linearly over 6 steps (5% warmup rounds to 0 steps)
    assert list(metric_history(uri, run.info.run_id, "train/lr").values()) == pytest.approx(
        [4e-4 * (1 - k / 6) for k in range(6)], rel=1e-6)
    assert all(v > 0 for v in metric_history(uri, run.info.run_id, "train/tokens_per_s").values())
    # batches by length: little padding (a batch of two samples of equal length has share 1)
    assert list(metric_history(uri, run.info.run_id, "train/real_token_share").values()) == pytest.approx(
        PINNED_REAL_TOKEN_SHARE, abs=1e-6)
    assert run.data.metrics["train/skipped_tasks"] == 0 and run.data.metrics["train/dropped_examples"] == 0
    tags = run.data.tags
    assert tags["sweep_id"] == "" and tags["model"] == "tiny-random"
    assert tags["git_commit"] != "unknown" and len(tags["git_commit"].split("-")[0]) == 40
    assert tags["overrides"].split(" ")[-2:] == [f"logger.tracking_uri={uri}", "trainer.max_steps=6"]
    assert tags["adapter_path"] == str((reference / "checkpoints" / "step-000006").resolve())

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "overrides.txt", "adapter"} <= artifacts
    downloads = folder / "downloads"
    downloads.mkdir(exist_ok=True)
    config = yaml.safe_load(Path(client.download_artifacts(run.info.run_id, "config.yaml", str(downloads))).read_text())
    assert config["lora"]["r"] == 32 and config["model"]["name"] == "tiny-random"
    assert config["logger"]["tracking_uri"] == uri  # resolved, not ${...}
    assert config["data"]["train"][0]["prompt"] == PROMPT
    adapter = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/arc_exp.yaml"} <= adapter


def test_checkpoints_are_plain_folders(reference):
    checkpoints = reference / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt", "step-000003", "step-000006"]
    step = checkpoints / "step-000006"
    assert {"adapter_config.json", "adapter_model.safetensors", "arc_exp.yaml", "tokenizer.json"} <= {
        p.name for p in step.iterdir()}
    assert yaml.safe_load((step / "arc_exp.yaml").read_text())["encoder"]["_target_"] == "arc_exp.data.encoders.GridShapeEncoder"
    # only the trainable weights go into last.ckpt: the tiny base model is rebuilt from its config
    state = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 6
    assert all("lora_" in key for key in state["state_dict"])
    assert len(state["state_dict"]) == 2 * 2 * 7  # 2 layers x 7 linear modules x (A, B)


def test_pinned_losses(store, reference):
    folder, uri = store
    train_loss = losses(uri, reference)
    assert list(train_loss) == [0, 1, 2, 3, 4, 5]
    assert list(train_loss.values()) == pytest.approx(PINNED_TRAIN_LOSS, abs=TOLERANCE)
    val_loss = losses(uri, reference, "val/loss")
    assert list(val_loss) == list(PINNED_VAL_LOSS)
    assert list(val_loss.values()) == pytest.approx(list(PINNED_VAL_LOSS.values()), abs=TOLERANCE)


def test_same_seed_same_losses(store, reference, interrupted):
    """The interrupted run is the reference run again up to its crash: its 3 losses are bit-for-bit the same."""
    folder, uri = store
    assert losses(uri, interrupted) == {k: v for k, v in losses(uri, reference).items() if k < 3}
    assert losses(uri, interrupted, "val/loss") == {1: losses(uri, reference, "val/loss")[1]}


def test_resume_matches_the_uninterrupted_run(store, reference, interrupted):
    folder, uri = store
    assert sorted(p.name for p in (interrupted / "checkpoints").iterdir()) == ["last.ckpt", "step-000003"]
    # the checkpoint was written in the 3rd batch's on_train_batch_end: 3 batches consumed, not 2
    assert training.batches_done(str(interrupted / "checkpoints" / "last.ckpt")) == 3
    resumed = folder / "resumed"
    run_train(resumed, train_overrides(uri, "trainer.max_steps=6", f"resume={interrupted}"))
    expected = losses(uri, reference)
    # steps 4..6 (MLflow steps 3..5) continue exactly where the interrupted run stopped
    assert losses(uri, resumed) == {k: v for k, v in expected.items() if k >= 3}
    assert losses(uri, resumed, "val/loss") == {k: v for k, v in losses(uri, reference, "val/loss").items() if k >= 3}
    assert losses(uri, resumed, "train/lr") == {k: v for k, v in losses(uri, reference, "train/lr").items() if k >= 3}
    final, reference_final = (adapter_tensors(r / "checkpoints" / "step-000006") for r in (resumed, reference))
    assert final.keys() == reference_final.keys()
    assert all(torch.equal(final[k], reference_final[k]) for k in final)


def test_resume_from_a_folder_without_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"resume: no checkpoint at '.*/checkpoints/last.ckpt' "
                                                r"\(give a run folder or its checkpoints/last.ckpt\)"):
        training.resume_checkpoint(str(tmp_path))


@pytest.mark.parametrize("method, step1_loss, checkpoint_files", [
    ("full", 10.638632774353027, {"config.json", "model.safetensors"}),
    ("dora", 10.702475547790527, {"adapter_config.json", "adapter_model.safetensors"}),
])
def test_full_fine_tuning_and_dora_train(store, method, step1_loss, checkpoint_files):
    folder, uri = store
    run_dir = folder / method
    run_train(run_dir, train_overrides(uri, f"lora={method}", "trainer.max_steps=2"))
    train_loss = losses(uri, run_dir)
    # the same initial model (LoRA B and DoRA start as the identity): the first loss is the LoRA run's
    assert train_loss[0] == pytest.approx(PINNED_TRAIN_LOSS[0], abs=TOLERANCE)
    assert train_loss[1] == pytest.approx(step1_loss, abs=TOLERANCE)
    assert checkpoint_files <= {p.name for p in (run_dir / "checkpoints" / "step-000002").iterdir()}
    if method == "dora":
        config = yaml.safe_load((run_dir / "checkpoints" / "step-000002" / "adapter_config.json").read_text())
        assert config["use_dora"] is True
    # stored once: full weights stay in the run folder (the adapter_path tag), an adapter is copied into MLflow too
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    found = [r for r in mlflow_runs(uri) if r.data.tags.get("output_dir") == str(run_dir.resolve())]
    artifacts = {a.path for a in client.list_artifacts(found[0].info.run_id)}
    assert ("adapter" in artifacts) == (method != "full")
    assert found[0].data.tags["adapter_path"] == str((run_dir / "checkpoints" / "step-000002").resolve())
    assert [p.name for p in (run_dir / "checkpoints").glob("*.ckpt")] == ["last.ckpt"]  # one Lightning checkpoint


def test_adapter_path_continues_from_a_saved_adapter(store, reference):
    folder, uri = store
    continued = folder / "continued"
    adapter = reference / "checkpoints" / "step-000006"
    # learning rate 0: the model stays exactly the loaded adapter, so validation matches the reference's last one
    run_train(continued, train_overrides(uri, f"adapter_path={adapter}", "learning_rate=0.0", "trainer.max_steps=2"))
    assert losses(uri, continued, "val/loss") == {1: losses(uri, reference, "val/loss")[5]}
    loaded, saved = adapter_tensors(continued / "checkpoints" / "step-000002"), adapter_tensors(adapter)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_missing_adapter_path(background):
    result = background.result("missing_adapter")
    assert result.returncode == 1
    # a user's mistake: one line, no traceback (arc_exp/cli.py), and no run folder left behind
    assert error_lines(result)[-1] == "train.py: error: adapter_path '/nonexistent/adapter' does not exist"
    assert "Traceback" not in result.stderr
    assert not (background.folder / "missing_adapter").exists()


def test_max_seq_len_too_small_for_any_task(background):
    result = background.result("max_seq_len")
    assert result.returncode == 1
    assert error_lines(result)[-1] == ("train.py: error: data.max_seq_len=50 is too small for every sampled task: "
                                       "none fits with a single train example")
    assert "Traceback" not in result.stderr


def test_offline_hub_model_names_the_model_and_the_fix(background):
    result = background.result("offline_model")
    assert result.returncode == 1
    assert error_lines(result)[-1] == (
        "train.py: error: model 'qwen2-0.5b': weights for 'Qwen/Qwen2-0.5B-Instruct' are not in "
        "the local cache and 'Qwen/Qwen2-0.5B-Instruct' is not a local folder; download it on a machine with internet "
        "access (`hf download Qwen/Qwen2-0.5B-Instruct --local-dir <folder>`) and run with model.path=<folder>, or "
        "set model.allow_download=true where the hub is reachable")
    assert "huggingface_hub" not in result.stderr  # no stack trace from the hub client
    assert "Traceback" not in result.stderr


def test_joblib_multirun_logs_one_run_per_job(background):
    result = background.result("multirun")
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = background.folder / "sweep"
    runs = mlflow_runs(f"sqlite:///{background.folder}/multirun.db")
    assert sorted(r.data.params["lora.r"] for r in runs) == ["4", "8"]
    assert {r.data.tags["sweep_id"] for r in runs} == {str(sweep)}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.tags["output_dir"] for r in runs) == [str(sweep / "0"), str(sweep / "1")]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    for run in runs:  # the same data and seed: the first step (before any update) has the reference's loss
        history = metric_history(f"sqlite:///{background.folder}/multirun.db", run.info.run_id, "train/loss")
        assert history[0] == pytest.approx(PINNED_TRAIN_LOSS[0], abs=TOLERANCE)


def test_task_of_interest_steps_sets_max_steps_before_the_config_is_logged(store):
    """data.task_of_interest_steps=2 on a mixture of output-from-examples (weight 1) and input-from-inputs (weight
    0.5, the evaluation set's inputs without its test outputs): 3 steps, as the logged params and the run show."""
    folder, uri = store
    run_dir = folder / "task_of_interest"
    mixture = (f"data.train=[{{source:arc1-training,max_grid_side:4,first_n:8,prompt:{PROMPT},weight:1.0}},"
               "{source:arc1-evaluation,max_grid_side:4,first_n:8,test_outputs:false,prompt:input-from-inputs-v0,"
               "weight:0.5,swap_train_test:false}]")
    run_train(run_dir, train_overrides(uri, mixture, "data.task_of_interest_steps=2", "trainer.max_steps=100",
                                       "callbacks.checkpoint_every_n_steps=0"))
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id_of(uri, run_dir))
    assert (run.data.params["trainer.max_steps"], run.data.params["data.task_of_interest_steps"]) == ("3", "2")
    assert sorted(losses(uri, run_dir)) == [0, 1, 2]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["max_steps"] == 3


def test_count_qa_every_n_steps_logs_the_learning_curve(store):
    """evaluation.count_qa with before=true and every_n_steps=2 on a 5-step run: qa/* at steps 0 (the base model),
    2 and 4 (during training) and 5 (after training), each over the same 3 held-out chats."""
    from arc_exp.synthetic import CountQAGenerator
    from arc_exp.synthetic.writer import write_shards

    folder, uri = store
    chats, heldout = folder / "count-chats", folder / "count-heldout"
    write_shards(CountQAGenerator(), 16, chats, seed=0, workers=1)
    write_shards(CountQAGenerator(), 3, heldout, seed=1, workers=1)
    run_dir = folder / "count_curve"
    run_train(run_dir, [*TINY, f"logger.tracking_uri={uri}", f"data.train=[{{chats: {chats}, weight: 1.0}}]",
                        "data.val=null", "trainer.limit_val_batches=0", "trainer.max_steps=5",
                        "callbacks.checkpoint_every_n_steps=0",
                        f"evaluation.count_qa={{chats: {heldout}, n_chats: 3, before: true, max_new_tokens: 2, "
                        "every_n_steps: 2}"])
    run_id = run_id_of(uri, run_dir)
    curve = metric_history(uri, run_id, "qa/count")
    assert sorted(curve) == [0, 2, 4, 5]
    questions = metric_history(uri, run_id, "qa/n_questions")
    assert len(set(questions.values())) == 1 and sorted(questions) == [0, 2, 4, 5]
