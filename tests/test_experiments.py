"""Iteration presets: each composes at both scales with its own sweep, and names the table it reports."""
import pytest
from omegaconf import OmegaConf

from conftest import CONF, REPO, compose_train

SOLVE_PRESETS = ["iter04_ttft"]  # swept with solve.py
EVALUATE_PRESETS = ["poe_dfs"]  # swept with evaluate.py; the others with train.py
PRESETS = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml")
                 if p.stem not in SOLVE_PRESETS + EVALUATE_PRESETS)


def test_the_seed_iterations_are_presets():
    assert PRESETS == ["iter02_learn_to_count", "iter12_grid_representation", "iter22_inputs_distribution",
                       "iter24_overfit"]


@pytest.mark.parametrize("scale, options", [("smoke", "none,n1"),
                                            ("gpu", "none,n1_plain,n1_geometric,n1,n1_color_keep_original,n2")])
def test_ttft_preset_sweeps_solve_options(scale, options):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="solve"):
        cfg = compose("solve", overrides=["experiment=iter04_ttft", f"scale={scale}"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params.ttft == options
    assert cfg.report.run_type == "solve" and cfg.report.rows == ["choice/ttft"]
    for option in options.split(","):
        assert (CONF / "ttft" / f"{option}.yaml").exists()


def test_poe_dfs_preset_sweeps_evaluate_options():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="evaluate"):
        cfg = compose("evaluate", overrides=["experiment=poe_dfs"], return_hydra_config=True)
        wide = compose("evaluate", overrides=["experiment=poe_dfs", "~debug", "predictions_per_task=8"])
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == {"inference.sampler": "greedy,sampling,dfs"}
    assert cfg.report.run_type == "evaluation"
    assert cfg.report.rows == ["inference.sampler", "inference.dfs_threshold", "inference.selection"]
    assert instantiate(cfg.inference).selection == "poe" and cfg.predictions_per_task == 4
    assert cfg.data.eval.first_n == 4 and cfg.data.eval.max_grid_side == 7  # debug=smoke's small tasks
    assert wide.data.eval.get("first_n") is None and wide.predictions_per_task == 8


@pytest.mark.parametrize("scale", ["smoke", "gpu"])
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_with_its_sweep_and_table(preset, scale):
    cfg = compose_train([f"experiment={preset}", f"scale={scale}"], return_hydra_config=True)
    assert (cfg.experiment, cfg.scale) == (preset, scale)
    assert cfg.evaluation.enabled  # every row of a table needs eval/* metrics
    params = cfg.hydra.sweeper.params
    assert params and all("," in str(v) for v in params.values())  # a real sweep
    assert cfg.report.rows and cfg.report.columns
    if scale == "smoke":
        assert cfg.model.name == "smollm2-135m" and cfg.trainer.accelerator == "cpu"
        assert cfg.data.limit.max_grid_side == 6  # any data option of the sweep shrinks to small tasks
    else:
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.max_steps >= 6000


def test_iter12_gpu_sweep_is_the_seeds():
    cfg = compose_train(["experiment=iter12_grid_representation", "scale=gpu"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params["lora.r"] == "16,32,64,128,256" and params["learning_rate"] == "1e-4,2e-4,4e-4"
    assert params["model"] == "qwen2-0.5b,qwen2-1.5b"


@pytest.mark.parametrize("scale, steps", [("smoke", 5), ("gpu", 5000)])
def test_iter22_rows_take_the_same_steps_on_the_task_of_interest(scale, steps):
    """Seed iteration 22's fairness rule: every row trains the same steps on output-from-examples; the new-input
    and new-output tasks add their steps (5k inputs: 2x, 5k inputs + 5k outputs: 3x, 2.5k + 2.5k: 2x)."""
    from arc_exp.training import recipe as training

    cfg = compose_train(["experiment=iter22_inputs_distribution", f"scale={scale}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    rows = params["data"].split(",")
    assert rows == ["arc1-training", "arc1-inputs", "arc1-inputs-outputs", "arc1-half-inputs-outputs"]
    assert params.get("data.task_of_interest_steps") == ("5000,10000" if scale == "gpu" else None)
    assert cfg.data.task_of_interest_steps == steps
    max_steps = {}
    for row in rows:
        row_cfg = compose_train(["experiment=iter22_inputs_distribution", f"scale={scale}", f"data={row}"])
        entries = OmegaConf.to_container(row_cfg.data.train, resolve=True)
        max_steps[row] = training.steps_for_task_of_interest(entries, row_cfg.data.task_of_interest_steps)
        inputs = [e for e in entries if e["prompt"] == "input-from-inputs-v0"]
        # the new inputs come from the evaluation set's inputs too, never from its test outputs
        assert not inputs or {"source": "arc1-evaluation", "test_outputs": False}.items() <= inputs[-1].items()
    assert max_steps == {"arc1-training": steps, "arc1-inputs": 2 * steps, "arc1-inputs-outputs": 3 * steps,
                         "arc1-half-inputs-outputs": 2 * steps}


@pytest.mark.parametrize("entries, steps, message", [
    ([{"prompt": "input-from-inputs-v0", "weight": 1.0}], 10,
     "data.task_of_interest_steps: data.train has no output-from-examples entry (the task of interest); set it to "
     "null and give trainer.max_steps"),
    ([{"prompt": "output-from-examples-v0"}], 0, "data.task_of_interest_steps must be an integer >= 1 or null, got 0"),
])
def test_task_of_interest_steps_bad_settings(entries, steps, message):
    from arc_exp.training import recipe as training

    with pytest.raises(ValueError) as error:
        training.steps_for_task_of_interest(entries, steps)
    assert str(error.value) == message


def test_task_of_interest_steps_counts_chats_as_other_tasks():
    from arc_exp.training import recipe as training

    entries = [{"chats": "data/count", "weight": 1.0}, {"prompt": "output-from-examples-v1", "weight": 3.0}]
    assert training.steps_for_task_of_interest(entries, 300) == 400
