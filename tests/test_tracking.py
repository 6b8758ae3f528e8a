"""One MLflow path: every run type starts, tags, logs and nests its runs through arc_exp.tracking.runs.MLflowRun."""
import mlflow
import pytest
from omegaconf import OmegaConf

from arc_exp.evaluation.job import start_job_run
from arc_exp.tracking.runs import EXPERIMENT_KIND_TAG, MLflowRun, choice_tags, ensure_experiment
from arc_exp.training import recipe as training
from conftest import compose_train


def logger_cfg(tracking_uri, **extra):
    return {"_target_": "arc_exp.tracking.runs.MLflowRun", "tracking_uri": tracking_uri, "experiment_name": "jobs",
            "run_name": None, "tags": {"team": "arc"}, **extra}


def test_a_job_run_is_named_tagged_and_logs_its_config(tmp_path, tracking_uri):
    resolved = {"logger": logger_cfg(tracking_uri), "project_root": str(tmp_path), "experiment": "iter04_ttft",
                "lora": {"r": 8}}
    run = start_job_run(resolved["logger"], resolved, ["lora.r=8", "logger.run_name=x"],
                        choices={"lora": "lora", "hydra/launcher": "basic"}, run_type="solve", name_prefix="solve",
                        config_file=tmp_path / "config.yaml", project_root=tmp_path, model="tiny", resumed="False",
                        empty="")
    run.finish()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    stored = client.get_run(run.run_id)
    tags = {k: v for k, v in stored.data.tags.items() if not k.startswith("mlflow.")}
    assert stored.info.run_name == "solve:lora.r=8"  # logger.* overrides do not name the run
    assert tags == {"team": "arc", "run_type": "solve", "git_commit": "unknown", "choice/lora": "lora",
                    "overrides": "lora.r=8 logger.run_name=x", "experiment": "iter04_ttft", "model": "tiny",
                    "resumed": "False"}  # empty tags are left out, hydra/* choices too
    assert stored.data.params == {"logger._target_": "arc_exp.tracking.runs.MLflowRun",
                                  "logger.tracking_uri": tracking_uri, "logger.experiment_name": "jobs",
                                  "logger.run_name": "None", "logger.tags.team": "arc", "project_root": str(tmp_path),
                                  "experiment": "iter04_ttft", "lora.r": "8"}
    assert OmegaConf.load(tmp_path / "config.yaml").lora.r == 8
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["config.yaml"]
    assert stored.info.status == "FINISHED"


def test_logger_none_starts_no_run(tmp_path):
    assert MLflowRun.start({"_target_": None}, {}, [], "evaluation") is None
    assert start_job_run({"_target_": None}, {}, [], choices={}, run_type="evaluation", name_prefix="eval",
                         config_file=tmp_path / "c.yaml", project_root=tmp_path) is None
    assert (tmp_path / "c.yaml").exists()  # the config is written beside the outputs either way


def test_experiments_are_created_for_model_training(tracking_uri):
    # the MLflow UI opens a "custom_model_development" experiment on its runs, not on the GenAI traces view
    experiment_id = ensure_experiment(tracking_uri, "arc")
    experiment = mlflow.MlflowClient(tracking_uri=tracking_uri).get_experiment(experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert ensure_experiment(tracking_uri, "arc") == experiment_id


def test_child_runs_nest_and_lightning_logs_into_the_given_run(tracking_uri):
    parent = MLflowRun(tracking_uri, "jobs", "solve", {"run_type": "solve"})
    child = parent.child("ttft", stage="ttft")
    logger = child.lightning_logger()
    logger.log_metrics({"train/loss": 1.5}, step=3)
    assert logger.run_id == child.run_id  # Lightning never creates a run of its own
    child.finish("FAILED")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    stored = client.get_run(child.run_id)
    assert stored.data.tags["mlflow.parentRunId"] == parent.run_id and stored.data.tags["stage"] == "ttft"
    assert stored.data.metrics == {"train/loss": 1.5} and stored.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(child.run_id, "train/loss")] == [3]
    assert client.get_run(parent.run_id).info.experiment_id == stored.info.experiment_id


def test_log_params_in_batches_and_long_values_kept(tracking_uri):
    run = MLflowRun(tracking_uri, "jobs", "many")
    run.log_params({f"p{i}": i for i in range(250)} | {"long": "x" * 1000})
    params = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run.run_id).data.params
    assert len(params) == 251 and params["p249"] == "249" and len(params["long"]) == 1000


def test_the_training_run_is_named_after_the_overrides(tmp_path, tracking_uri):
    overrides = ["lora.r=8", f"logger.tracking_uri={tracking_uri}", "model=tiny-random"]
    resolved = OmegaConf.to_container(compose_train(overrides), resolve=True)
    run = training.start_run(resolved["logger"], resolved, overrides, tmp_path, tmp_path,
                             {"sweep_id": "", **choice_tags({"model": "tiny-random"})})
    stored = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run.run_id)
    assert stored.info.run_name == "lora.r=8,model=tiny-random"  # logger.* overrides do not name the run
    assert stored.data.tags["run_type"] == "training" and stored.data.tags["choice/model"] == "tiny-random"
    assert stored.data.tags["output_dir"] == str(tmp_path.resolve())
    assert stored.data.params["lora.r"] == "8"
    assert (tmp_path / "overrides.txt").read_text() == "\n".join(overrides) + "\n"
    assert training.start_run({"_target_": None}, resolved, overrides, tmp_path, tmp_path, {}) is None


@pytest.mark.parametrize("choices, expected", [
    ({"lora": "dora", "hydra/launcher": "joblib"}, {"choice/lora": "dora"}),
    ({"debug": None}, {"choice/debug": "None"}),
])
def test_choice_tags(choices, expected):
    assert choice_tags(choices) == expected
