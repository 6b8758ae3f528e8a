"""Iteration presets: every table of the journal documents (../shared/seeds/) with their titles, and the documents'
settings at scale=gpu, checked against tables written here from the documents (their figures are not used)."""
import copy
import functools

import pytest
from omegaconf import OmegaConf

from arc_exp.tracking.table_specs import table_specs
from conftest import CONF, REPO

ENTRY = {  # preset -> the entry point that runs it
    "iter02_learn_to_count": "train", "iter02_learn_to_count_base": "evaluate",
    "iter04_ttft": "solve", "iter04_ttft_baseline": "train",
    "iter12_grid_representation": "train", "iter12_grid_representation_ttft": "train",
    "iter22_inputs_distribution": "train",
    "iter24_overfit": "train", "iter24_overfit_evaluate": "evaluate",
    "poe_dfs": "evaluate",
}
SEED_PRESETS = [p for p in ENTRY if p != "poe_dfs"]

# The header row of every table of the five documents, as the journal writes it. Iteration 2's document has no
# table: its two are the (count-QA per question type before and after training; ARC accuracy of the
# count-trained models against the base model), titled here.
JOURNAL_TABLES = {
    "iter12_grid_representation": {  # 000_cfd73d1e2e100f4a.txt
        "encoders": ["row numbers", "grid shape", "other symbols", "accuracy", "correct_pixels", "correct_size",
                     "unanswered"],
        "learning_rate": ["model", "learning rate", "train loss", "val loss", "accuracy", "correct_pixels",
                          "correct_size", "pass_64", "unanswered"],
        "lora_rank": ["model", "lora_rank", "train loss", "val loss", "accuracy", "correct_pixels", "correct_size",
                      "pass_64", "unanswered"],
        "ttft_steps": ["steps", "train loss", "val loss", "accuracy", "correct_pixels", "correct_size", "pass_64"],
        "model_size": ["model", "steps", "train loss", "val loss", "accuracy", "correct_pixels", "correct_size",
                       "pass_64", "pass_2"],
        "model_size_ttft": ["model", "steps", "train loss", "val loss", "accuracy", "correct_pixels", "correct_size",
                            "pass_64", "pass_2"],
    },
    "iter22_inputs_distribution": {  # 001_2eafce0a91ac12f4.txt
        "steps_5k": ["new tasks", "accuracy", "correct_pixels", "correct_size", "pass_n", "vote_2"],
        "steps_10k": ["new tasks", "accuracy", "correct_pixels", "correct_size", "pass_n", "vote_2"],
        "task_augmentation": ["training steps (k)", "lora rank", "task augmentation", "train on inputs", "accuracy",
                              "correct_pixels", "correct_size", "pass_n", "vote_2"],
    },
    "iter02_learn_to_count": {  # 002_56844beed3255eb7.txt (no table in the document)
        "count_qa": ["question type", "before training", "after training"],
        "arc_accuracy": ["model", "training data", "accuracy", "correct_pixels", "correct_size", "pass_n", "vote_2",
                         "count QA"],
    },
    "iter04_ttft": {  # 003_ec8dd51c1a3ff494.txt
        "first_results": ["experiment", "val loss", "val accuracy"],
        "ttft_timing": ["Model", "parameters (M)", "max context length (k)", "seq_len", "10 steps time (min)",
                        "1000 steps time (hours)"],
    },
    "iter24_overfit": {  # 004_a4ad96368f45dae2.txt
        "model_dataset": ["model", "dataset", "accuracy", "correct_pixels", "correct_size", "pass_32", "vote_2"],
        "temperature": ["temperature", "accuracy", "pass_32", "vote_2"],
    },
}

# Row keys the documents write, as the tables show them (the map of the row-key column, in the journal's order).
JOURNAL_ROWS = {
    ("iter22_inputs_distribution", "steps_5k"): ["-", "5k inputs", "5k inputs, 5k outputs",
                                                 "2.5k inputs 2.5k outputs"],
    ("iter22_inputs_distribution", "steps_10k"): ["-", "pretrained on inputs", "10k inputs"],
    ("iter04_ttft", "first_results"): ["baseline", "train with n-1 samples", "add geometric augmentations",
                                       "add color swap",
                                       "preserve original color when using color swap", "train with n-2 samples"],
}

QWEN05 = {"model.name": "qwen2-0.5b", "model.path": "Qwen/Qwen2-0.5B-Instruct"}
PHI3 = {"model.name": "phi-3-mini-128k", "model.path": "microsoft/Phi-3-mini-128k-instruct"}
LINEAR = "arc_exp.training.schedulers.linear"
QWEN05_ARC = {"model.name": "qwen2-0.5b", "model.path": "/models/Qwen2-0.5B-arc"}  # given: required at gpu scale
# what a gpu-scale preset requires from the user (data that cannot ship, a start model)
GPU_GIVEN = {"iter24_overfit": ["model.path=/models/Qwen2-0.5B-arc", "datasets.re_arc=/data/re_arc/tasks",
                                "datasets.mini_arc=/data/MINI-ARC"],
             "iter24_overfit_evaluate": ["model.path=/models/Qwen2-0.5B-arc"]}

# scale=gpu: (preset, arm or None for the preset alone, the document's settings)
GPU_SETTINGS = [
    ("iter12_grid_representation", None, {
        **QWEN05, "lora.method": "lora", "lora.r": 32, "learning_rate": 1e-4, "scheduler._target_": LINEAR,
        "trainer.max_steps": 6000, "data.max_seq_len": 8192, "evaluation.predictions_per_task": 64,
        "choice/encoder": "grid_shape_row_number", "data.drop_examples_to_fit": False, "choice/data": "arc1-rs7"}),
    *[("iter12_grid_representation", f"encoder_{e}", {"choice/encoder": e, "trainer.max_steps": 6000, **QWEN05})
      for e in ("code_block", "code_block_row_number", "grid_shape", "grid_shape_row_number",
                "code_block_replace_number", "grid_shape_row_number_replace_number")],
    ("iter12_grid_representation", "base", {"learning_rate": 1e-4, "lora.r": 32, "trainer.max_steps": 12000}),
    ("iter12_grid_representation", "lr_x2", {"learning_rate": 2e-4, "lora.r": 32}),
    ("iter12_grid_representation", "lr_x4", {"learning_rate": 4e-4, "lora.r": 32}),
    *[("iter12_grid_representation", f"r{r}", {"learning_rate": 1e-4, "lora.r": r}) for r in (16, 64, 128, 256)],
    ("iter12_grid_representation", "size_small", {**QWEN05, "trainer.max_steps": 24000}),
    ("iter12_grid_representation", "size_large", {"model.name": "qwen2-1.5b", "model.path": "Qwen/Qwen2-1.5B-Instruct",
                                                  "trainer.max_steps": 12000, "evaluation.predictions_per_task": 64}),
    ("iter12_grid_representation_ttft", None, {**QWEN05, "learning_rate": 1e-4, "lora.r": 32,
                                               "scheduler._target_": LINEAR, "choice/data": "arc1-rs7-ttft",
                                               "sweep:trainer.max_steps": "1000,2000,4000,8000"}),
    ("iter12_grid_representation_ttft", "ttft_size_large", {"model.name": "qwen2-1.5b", "trainer.max_steps": 4000}),
    ("iter22_inputs_distribution", None, {
        **QWEN05, "lora.r": 32, "learning_rate": 1e-4, "scheduler._target_": LINEAR, "data.max_seq_len": 8192,
        "evaluation.predictions_per_task": 8, "choice/encoder": "grid_shape_row_number",
        "choice/prompt": "output-from-examples-v1", "data.task_of_interest_steps": 10000,
        "data.drop_examples_to_fit": True}),
    ("iter22_inputs_distribution", "out5k", {"data.task_of_interest_steps": 5000}),
    ("iter22_inputs_distribution", "out5k_in5k", {"data.task_of_interest_steps": 5000}),
    ("iter22_inputs_distribution", "out5k_in5k_out5k", {"data.task_of_interest_steps": 5000}),
    ("iter22_inputs_distribution", "out5k_in2.5k_out2.5k", {"data.task_of_interest_steps": 5000}),
    ("iter22_inputs_distribution", "out10k_in10k", {"data.task_of_interest_steps": 10000,
                                                    "choice/augmentation": "default"}),
    ("iter22_inputs_distribution", "out12k_taskaug", {"data.task_of_interest_steps": 12000,
                                                      "choice/augmentation": "task_augmentation"}),
    ("iter22_inputs_distribution", "out10k_in10k_taskaug_r128", {"data.task_of_interest_steps": 10000, "lora.r": 128,
                                                                 "choice/augmentation": "task_augmentation"}),
    ("iter22_inputs_distribution", "inputs_only", {"trainer.max_steps": 12000,
                                                   "data.task_of_interest_steps": None}),
    ("iter24_overfit", None, {**QWEN05_ARC, "choice/data": "arc1-rs7-re-arc-mini-arc",
                              "choice/augmentation": "task_augmentation", "prompt.version": "output-from-examples-v1",
                              "lora.r": 32, "learning_rate": 1e-4, "scheduler._target_": LINEAR,
                              "scheduler.warmup_ratio": 0.1, "trainer.max_steps": 100000,
                              "evaluation.enabled": False}),
    ("iter24_overfit", "full", {"lora.method": "full", "learning_rate": 2e-5, "trainer.max_steps": 100000}),
    ("iter24_overfit_evaluate", None, {
        **QWEN05_ARC, "predictions_per_task": 32, "inference.sampler": "sampling", "inference.top_p": 1.0,
        "sweep:inference.temperature": "0.0,0.1,0.2,0.5,1.0",
        "sweep:data.eval.source": "arc1-training,arc1-evaluation"}),
    ("iter04_ttft", None, {**PHI3, "ttft.learning_rate": 1e-4, "ttft.steps": 1000, "data.max_seq_len": 4096,
                           "ttft.scheduler._target_": LINEAR}),
    ("iter04_ttft", "none", {"ttft.enabled": False, "choice/ttft": "none"}),
    ("iter04_ttft", "n1_plain", {"choice/ttft": "n1_plain", "ttft.augmentation.dihedral": False,
                                 "ttft.augmentation.color_permutation": False}),
    ("iter04_ttft", "timing_short", {**PHI3, "lora.load_in_4bit": False, "data.max_seq_len": 1024, "ttft.steps": 10}),
    ("iter04_ttft", "timing_long", {**PHI3, "lora.load_in_4bit": True, "data.max_seq_len": 4096, "ttft.steps": 10}),
    ("iter04_ttft_baseline", None, {**PHI3, "lora.r": 32, "learning_rate": 1e-4, "trainer.max_steps": 2000,
                                    "data.max_seq_len": 4096, "choice/data": "arc1-training", "experiment": "iter04_ttft",
                                    "evaluation.enabled": False}),
    ("iter02_learn_to_count", None, {**PHI3, "lora.method": "lora", "learning_rate": 4e-4,
                                     "trainer.max_steps": 12500, "data.train.0.max_chats": 100000}),
    ("iter02_learn_to_count_base", None, {**PHI3, "checkpoint": None, "predictions_per_task": 8}),
]


def compose(preset: str, scale: str, arm=None, extra=()):
    """The config ``<entry>.py experiment=<preset> scale=<scale> [arm=...] <extra>`` composes (hydra node included);
    a fresh copy each call, the compositions cached (many tests compose the same arms)."""
    return copy.deepcopy(_compose(preset, scale, arm, tuple(extra)))


@functools.lru_cache(maxsize=None)
def _compose(preset: str, scale: str, arm, extra: tuple):
    from hydra import compose as hydra_compose, initialize_config_dir

    entry = ENTRY[preset]
    overrides = [f"experiment={preset}", f"scale={scale}", *extra]
    if arm:
        overrides.append(f"arm={ARM_PRESET.get(preset, preset)}_{scale}/{arm}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=entry):
        return hydra_compose(entry, overrides=overrides, return_hydra_config=True)


ARM_PRESET = {"iter12_grid_representation_ttft": "iter12_grid_representation"}  # arms shared with another preset


def setting(cfg, key: str):
    if key.startswith("choice/"):
        return cfg.hydra.runtime.choices[key[len("choice/"):]]
    if key.startswith("sweep:"):  # a swept key: its values
        return cfg.hydra.sweeper.params[key[len("sweep:"):]]
    if key == "checkpoint":
        return cfg.checkpoint
    return OmegaConf.select(cfg, key, throw_on_missing=True)


def test_every_preset_is_known():
    assert sorted(p.stem for p in (REPO / "experiments").glob("*.yaml")) == sorted(ENTRY)


@pytest.mark.parametrize("preset", sorted(JOURNAL_TABLES))
def test_tables_have_the_journal_titles(preset):
    for scale in ("smoke", "gpu"):  # the smoke scale keeps every table's shape
        cfg = compose(preset, scale)
        tables = table_specs(OmegaConf.to_container(cfg.report, resolve=True), preset)
        assert {t.name: t.header for t in tables} == JOURNAL_TABLES[preset]
        assert list(JOURNAL_TABLES[preset]) == [t.name for t in tables]  # the document's order


@pytest.mark.parametrize("preset, table", sorted(JOURNAL_ROWS))
def test_row_keys_are_the_journal_rows(preset, table):
    cfg = compose(preset, "smoke")
    spec = next(t for t in table_specs(OmegaConf.to_container(cfg.report, resolve=True)) if t.name == table)
    assert list(spec.rows[0].map.values()) == JOURNAL_ROWS[(preset, table)]
    assert sorted(spec.where["arm"]) == sorted(spec.rows[0].map)  # every row's runs are taken, no other


@pytest.mark.parametrize("preset, arm, expected", GPU_SETTINGS,
                         ids=[f"{p}-{a or 'preset'}-{i}" for i, (p, a, _) in enumerate(GPU_SETTINGS)])
def test_gpu_scale_has_the_journal_settings(preset, arm, expected):
    cfg = compose(preset, "gpu", arm, extra=GPU_GIVEN.get(preset, []))
    assert {key: setting(cfg, key) for key in expected} == expected
    if "trainer" in cfg:
        assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
        batch = cfg.ttft.batch_size if ENTRY[preset] == "solve" else cfg.data.batch_size
        assert batch * cfg.trainer.accumulate_grad_batches == 16  # the journal's batch, by accumulation


@pytest.mark.parametrize("preset, arm, model", [
    ("iter12_grid_representation", None, "qwen2-0.5b"), ("iter12_grid_representation", "size_large", "qwen2-1.5b"),
    ("iter24_overfit", None, "qwen2-0.5b"), ("iter24_overfit_evaluate", None, "qwen2-0.5b"),
    ("iter04_ttft", "timing_long", "phi-3-mini-128k"), ("iter02_learn_to_count_base", None, "phi-3-mini-128k")])
def test_the_model_tag_is_the_model_that_runs(preset, arm, model):
    """The presets' scales.gpu set the model by value (Hydra lets them choose no group), so Hydra's choice is still the
    default; the run's choice/model tag is the model that runs, as train.py and evaluation/job.py tag it."""
    from arc_exp.tracking.runs import choice_tags

    cfg = compose(preset, "gpu", arm, extra=GPU_GIVEN.get(preset, []))
    assert cfg.hydra.runtime.choices["model"] == "smollm2-135m" and cfg.model.name == model
    tags = choice_tags(cfg.hydra.runtime.choices, {"model": OmegaConf.to_container(cfg.model, resolve=True)})
    assert tags["choice/model"] == model and tags["choice/encoder"] == cfg.hydra.runtime.choices["encoder"]
    smoke = compose(preset, "smoke", arm)
    assert choice_tags(smoke.hydra.runtime.choices, {"model": {"name": smoke.model.name}})["choice/model"] == \
        smoke.hydra.runtime.choices["model"]  # a model chosen as a group: the tag is Hydra's choice, as before


def sweep_arms(cfg) -> list[str]:
    arms = (cfg.hydra.sweeper.params or {}).get("arm")
    return [a.split("/", 1)[1] for a in str(arms).split(",")] if arms else []


@pytest.mark.parametrize("preset", SEED_PRESETS)
def test_every_arm_of_the_sweeps_composes_at_both_scales(preset):
    for scale in ("smoke", "gpu"):
        cfg = compose(preset, scale)
        for arm in sweep_arms(cfg):
            arm_cfg = compose(preset, scale, arm)
            assert arm_cfg.arm == arm  # the arm's name is a param of its run: the tables' where and row keys
            if scale == "smoke":
                assert arm_cfg.model.name in ("smollm2-135m", "tiny-random")
                if "trainer" in arm_cfg:
                    assert arm_cfg.trainer.accelerator == "cpu" and arm_cfg.trainer.max_steps <= 20
                assert OmegaConf.select(arm_cfg, "ttft.steps", default=0) <= 10


DECODER_LAYERS = {"qwen2": "Qwen2DecoderLayer", "phi-3": "Phi3DecoderLayer", "llama": "LlamaDecoderLayer",
                  "smollm2": "LlamaDecoderLayer"}  # by the prefix of model.name


@pytest.mark.parametrize("preset", [p for p in SEED_PRESETS if ENTRY[p] != "evaluate"])
def test_fsdp_wraps_the_decoder_layers_of_the_model_every_gpu_run_trains(preset):
    """trainer=fsdp on every arm of every preset at scale=gpu: the unit FSDP wraps is the decoder layer of the model
    that runs. The GPU sweep files set Qwen2 by value over the default SmolLM2 option, whose LlamaDecoderLayer they
    once kept (FSDP would have wrapped nothing); the layer now comes from the loaded model (here one of the same
    architecture on the meta device)."""
    from arc_exp.training.distributed import with_model_decoder_layer
    from conftest import architecture_of

    extra = [*GPU_GIVEN.get(preset, []), "trainer=fsdp"]
    for arm in [None, *sweep_arms(compose(preset, "gpu", extra=extra))]:
        cfg = compose(preset, "gpu", arm, extra=extra)
        name = cfg.model.name
        expected = next(layer for prefix, layer in DECODER_LAYERS.items() if name.startswith(prefix))
        strategy = with_model_decoder_layer(cfg.trainer.strategy, architecture_of(name))
        assert strategy["decoder_layer"].rsplit(".", 1)[1] == expected, (preset, arm, name)


@pytest.mark.parametrize("preset", SEED_PRESETS)
def test_smoke_scale_is_cpu_sized(preset):
    cfg = compose(preset, "smoke")
    assert cfg.model.name == "smollm2-135m" and cfg.scale == "smoke"
    assert cfg.data.limit.max_grid_side == 6 or preset.startswith("iter12_grid_representation_ttft")
    assert cfg.get("predictions_per_task", 0) <= 4 and cfg.evaluation.predictions_per_task <= 4


def test_inference_settings_are_swept_over_a_trained_checkpoint():
    """Iteration 24 trains once per fine-tuning method; temperatures and datasets are evaluate.py runs over it."""
    train = compose("iter24_overfit", "gpu")
    assert sorted(train.hydra.sweeper.params) == ["arm"] and not train.evaluation.enabled
    evaluate = compose("iter24_overfit_evaluate", "gpu", extra=["checkpoint=abc"])
    assert sorted(evaluate.hydra.sweeper.params) == ["data.eval.source", "inference.temperature"]
    assert evaluate.experiment == "iter24_overfit" and evaluate.checkpoint == "abc"
    with pytest.raises(Exception, match="checkpoint is required by this preset"):  # never the base model
        OmegaConf.select(compose("iter24_overfit_evaluate", "gpu"), "checkpoint")


def test_iter04_baseline_is_the_trained_checkpoint_without_ttft():
    cfg = compose("iter04_ttft", "gpu")
    with pytest.raises(Exception, match="checkpoint is required by this preset"):  # the trained Phi-3 adapter
        OmegaConf.select(cfg, "checkpoint")
    assert "iter04_ttft_gpu/none" in str(cfg.hydra.sweeper.params.arm)


def test_runs_from_a_trained_adapter_require_it():
    for preset, arm in (("iter12_grid_representation_ttft", None), ("iter22_inputs_distribution", "out10k_pretrained")):
        cfg = compose(preset, "smoke", arm)
        with pytest.raises(Exception, match="adapter_path is required by this preset"):
            OmegaConf.select(cfg, "adapter_path")
        assert compose(preset, "smoke", arm, extra=["adapter_path=/a/b"]).adapter_path == "/a/b"


@pytest.mark.parametrize("scale, chats, held_out", [("smoke", "count-smoke", "count-smoke-heldout"),
                                                    ("gpu", "count", "count-heldout")])
def test_iter02_reads_the_chats_of_its_scale(scale, chats, held_out):
    """Each scale's settings (scales:) name its chats; the preset (composed after it) must not put its own back (the smoke
    run once asked data/count-heldout, which the smoke scale's commands do not make)."""
    cfg = compose("iter02_learn_to_count", scale)
    root = cfg.project_root
    assert OmegaConf.select(cfg, "data.train.0.chats") == f"{root}/data/{chats}"
    assert cfg.evaluation.count_qa.chats == f"{root}/data/{held_out}" and cfg.evaluation.count_qa.before


def test_iter02_has_base_model_and_count_only_rows():
    base = compose("iter02_learn_to_count_base", "smoke")
    assert base.checkpoint is None and base.experiment == "iter02_learn_to_count"
    spec = next(t for t in table_specs(OmegaConf.to_container(compose("iter02_learn_to_count", "smoke").report,
                                                              resolve=True)) if t.name == "arc_accuracy")
    labels = spec.rows[1].map
    assert labels["base model"] == "- (base model)" and labels["1.0/1e-06"] == "count data only"
    assert spec.run_types == ["training", "evaluation"]


@pytest.mark.parametrize("scale, options", [("smoke", 8), ("gpu", 8)])
def test_ttft_preset_sweeps_solve_options(scale, options):
    cfg = compose("iter04_ttft", scale, extra=["checkpoint=x"] if scale == "gpu" else [])
    arms = sweep_arms(cfg)
    assert len(arms) == options and arms[:6] == ["none", "n1_plain", "n1_geometric", "n1", "n1_color_keep_original",
                                                 "n2"]  # the document's rows, in its order
    for option in arms[:6]:
        assert (CONF / "ttft" / f"{option}.yaml").exists()


def test_poe_dfs_preset_sweeps_evaluate_options():
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="evaluate"):
        cfg = hydra_compose("evaluate", overrides=["experiment=poe_dfs"], return_hydra_config=True)
        wide = hydra_compose("evaluate", overrides=["experiment=poe_dfs", "~debug", "predictions_per_task=8"])
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == {"inference.sampler": "greedy,sampling,dfs"}
    assert cfg.report.run_type == "evaluation"
    assert cfg.report.rows == ["inference.sampler", "inference.dfs_threshold", "inference.selection"]
    assert instantiate(cfg.inference).selection == "poe" and cfg.predictions_per_task == 4
    assert cfg.data.eval.first_n == 4 and cfg.data.eval.max_grid_side == 7  # debug=smoke's small tasks
    assert wide.data.eval.get("first_n") is None and wide.predictions_per_task == 8


@pytest.mark.parametrize("scale, interest", [("smoke", {5: 2, 10: 4, 12: 5}), ("gpu", {5: 5000, 10: 10000,
                                                                                   12: 12000})])
def test_iter22_rows_take_the_same_steps_on_the_task_of_interest(scale, interest):
    """Seed iteration 22's fairness rule: every row of a table trains the same steps on output-from-examples; the
    new-input and new-output tasks add theirs (5k inputs: 2x, 5k inputs + 5k outputs: 3x, 2.5k + 2.5k: 2x). The
    smoke scale takes 1 step per 2.5k journal steps (12k: 5)."""
    from arc_exp.training import recipe as training

    times = {"out5k": (5, 1), "out5k_in5k": (5, 2), "out5k_in5k_out5k": (5, 3), "out5k_in2.5k_out2.5k": (5, 2),
             "out10k": (10, 1), "out10k_in10k": (10, 2), "out12k": (12, 1), "out12k_taskaug": (12, 1),
             "out10k_in10k_taskaug": (10, 2), "out10k_in10k_taskaug_r128": (10, 2), "out10k_pretrained": (10, 1)}
    expected = {arm: interest[k] * n for arm, (k, n) in times.items()}
    max_steps = {}
    for arm in expected:
        cfg = compose("iter22_inputs_distribution", scale, arm, extra=["adapter_path=/a"])
        entries = OmegaConf.to_container(cfg.data.train, resolve=True)
        max_steps[arm] = training.steps_for_task_of_interest(entries, cfg.data.task_of_interest_steps)
        inputs = [e for e in entries if e.get("prompt") == "input-from-inputs-v0"]
        # the new inputs come from train_rs7, as the journal's commands (out10k_in10k_eval_inputs adds val_rs7's)
        assert all((e["source"], e["split"], e["seed"]) == ("arc1-training-evaluation", "train", 7) for e in inputs)
    assert max_steps == expected


@pytest.mark.parametrize("entries, steps, message", [
    ([{"source": "arc1-training", "prompt": "input-from-inputs-v0", "weight": 1.0}], 10,
     "data.task_of_interest_steps: data.train has no output-from-examples entry (the task of interest); set it to "
     "null and give trainer.max_steps"),
    ([{"source": "arc1-training", "prompt": "output-from-examples-v0"}], 0, "data.task_of_interest_steps must be an integer >= 1 or null, got 0"),
])
def test_task_of_interest_steps_bad_settings(entries, steps, message):
    from arc_exp.training import recipe as training

    with pytest.raises(ValueError) as error:
        training.steps_for_task_of_interest(entries, steps)
    assert str(error.value) == message


def test_task_of_interest_steps_counts_chats_as_other_tasks():
    from arc_exp.training import recipe as training

    entries = [{"chats": "data/count", "weight": 1.0},
               {"source": "arc1-training", "prompt": "output-from-examples-v1", "weight": 3.0}]
    assert training.steps_for_task_of_interest(entries, 300) == 400


TINY_TASKS = REPO / "tests" / "fixtures" / "tiny_tasks"


def test_ttft_on_evaluation_tasks_never_trains_on_a_test_output(tokenizer):
    """iter12_grid_representation_ttft fine-tunes on the evaluation tasks it then scores (data=arc1-evaluation): its
    train entry drops the test outputs before any data is built and trains the n-1 tasks of the train examples
    (each in turn the target, the others shown). Its entry on the tiny tasks: every sample's answer is a train
    output, all six of them are targets, no test output ever is."""
    from arc_exp.data.augmentation_policy import AugmentationPolicy
    from arc_exp.data.datamodule import TrainingDataset, TrainingStream
    from arc_exp.data.encoders import MinimalGridEncoder
    from arc_exp.data.samples import IGNORE_INDEX
    from arc_exp.data.sources import load_source

    for scale in ("smoke", "gpu"):
        cfg = compose("iter12_grid_representation_ttft", scale, extra=["adapter_path=/a"])
        entries = OmegaConf.to_container(cfg.data.train, resolve=True)
        assert [(e["source"], e["test_outputs"], e["swap_train_test"]) for e in entries] == \
            [(e["source"], False, True) for e in entries]
    entry = {**entries[0], "source": str(TINY_TASKS), "split": None, "first_n": None, "max_grid_side": None}
    dataset = TrainingDataset.from_config(entry)
    assert all(example.output is None for task in dataset.tasks for example in task.test)
    encoder = MinimalGridEncoder()
    policy = AugmentationPolicy(dihedral=False, color_permutation=False, shuffle_train=False)
    stream = TrainingStream([dataset], encoder, tokenizer, policy, 4096, batch_size=1, seed=0, bucket_batches=1)

    def answer(ids):
        return tokenizer.decode([i for i in ids if i != IGNORE_INDEX])

    samples = [stream.sample(k) for k in range(60)]
    targets = {answer(s.labels) for s in samples}
    tasks = load_source(TINY_TASKS)
    train_outputs = {encoder.encode(e.output) for t in tasks for e in t.train}
    test_outputs = {encoder.encode(e.output) for t in tasks for e in t.test}
    assert {s.task_id.split(":")[1][:3] for s in samples} == {"loo"}
    # an answer is the output grid's text and the end of the turn
    assert {target.replace("<|im_end|>", "").strip() for target in targets} == train_outputs  # all 6
    assert not any(o in target for o in test_outputs for target in targets)


def test_encoder_table_rows_follow_the_journal():
    """The journal's encoder table: no flag, other symbols only (second), row numbers, row numbers + grid shape (its
    04_ run), grid shape, all three (its 06_ run)."""
    spec = next(t for t in table_specs(OmegaConf.to_container(compose("iter12_grid_representation", "gpu").report,
                                                              resolve=True)) if t.name == "encoders")
    encoders = ["grid_shape_row_number_replace_number", "grid_shape", "code_block_row_number", "code_block",
                "grid_shape_row_number", "code_block_replace_number"]
    ordered = sorted(encoders, key=lambda e: tuple(k.order(e) for k in spec.rows))
    assert [[k.show(e) for k in spec.rows] for e in ordered] == [
        ["", "", ""], ["", "", "x"], ["x", "", ""], ["x", "x", ""], ["", "x", ""], ["x", "x", "x"]]
    assert sorted(spec.where["arm"]) == sorted(f"encoder_{e}" for e in encoders)


RS7 = {"source": "arc1-training-evaluation", "seed": 7, "val_fraction": 0.16}  # the journal's train_rs7 / val_rs7


def entries_of(cfg) -> list[tuple]:
    """(source, split, prompt, weight, test_outputs) of each data.train entry, resolved."""
    return [(e["source"], e["split"], e["prompt"], e["weight"], e["test_outputs"])
            for e in OmegaConf.to_container(cfg.data.train, resolve=True)]


V1, IN, OUT = "output-from-examples-v1", "input-from-inputs-v0", "output-from-outputs-v0"
M = "arc1-training-evaluation"
# scale=gpu: the journal's partitions, prompts and data, arm by arm
GPU_DATA = [
    ("iter12_grid_representation", None, [(M, "train", "output-from-examples-v0", 1.0, None)]),
    ("iter12_grid_representation_ttft", None, [(M, "val", "output-from-examples-v0", 1.0, False)]),  # n-1 of val_rs7
    ("iter22_inputs_distribution", None, [(M, "train", V1, 1.0, None)]),
    ("iter22_inputs_distribution", "out5k_in5k", [(M, "train", V1, 1.0, None), (M, "train", IN, 1.0, None)]),
    ("iter22_inputs_distribution", "out5k_in5k_out5k", [(M, "train", V1, 1.0, None), (M, "train", IN, 1.0, None),
                                                        (M, "train", OUT, 1.0, None)]),
    ("iter22_inputs_distribution", "out5k_in2.5k_out2.5k", [(M, "train", V1, 1.0, None), (M, "train", IN, 0.5, None),
                                                            (M, "train", OUT, 0.5, None)]),
    ("iter22_inputs_distribution", "out10k_in10k_taskaug_r128", [(M, "train", V1, 1.0, None),
                                                                 (M, "train", IN, 1.0, None)]),
    ("iter22_inputs_distribution", "inputs_only", [(M, "train", IN, 1.0, None)]),
    ("iter22_inputs_distribution", "out10k_in10k_eval_inputs", [(M, "train", V1, 1.0, None),
                                                                (M, "train", IN, 0.5, None), (M, "val", IN, 0.5, False)]),
    ("iter24_overfit", None, [(M, "train", V1, 0.55, None),
                              ("re-arc:/data/re_arc/tasks?examples=5&seed=7", None, V1, 0.33, None),
                              ("/data/MINI-ARC", None, V1, 0.12, None)]),
]


@pytest.mark.parametrize("preset, arm, expected", GPU_DATA, ids=[f"{p}-{a or 'preset'}" for p, a, _ in GPU_DATA])
def test_gpu_scale_trains_on_the_journal_partitions(preset, arm, expected):
    """Iterations 12, 22 and 24 train on train_rs7 (iteration 24 with RE-ARC and MINI-ARC: its 1,221 tasks) and
    validate and score on val_rs7 (ARC-1 training + evaluation split with seed 7); iteration 12's TTFT trains the n-1
    tasks of val_rs7's train examples."""
    cfg = compose(preset, "gpu", arm, extra=[*GPU_GIVEN.get(preset, []), "adapter_path=/a"])
    assert entries_of(cfg) == expected
    for entry in OmegaConf.to_container(cfg.data.train, resolve=True):
        if entry["source"] == M:
            assert {k: entry[k] for k in RS7} == RS7
    for part in ("val", "eval"):
        assert {k: cfg.data[part][k] for k in (*RS7, "split")} == {**RS7, "split": "val"}
        assert cfg.data[part].get("first_n") is None and cfg.data[part].get("max_grid_side") is None
    val_prompt = IN if arm == "inputs_only" else cfg.prompt.version
    assert OmegaConf.to_container(cfg.data.val, resolve=True)["prompt"] == val_prompt


@pytest.mark.parametrize("preset, arm", [("iter12_grid_representation", None), ("iter12_grid_representation_ttft", None),
                                         ("iter22_inputs_distribution", "out10k_in10k_eval_inputs"),
                                         ("iter22_inputs_distribution", "out5k_in5k"), ("iter24_overfit", None)])
def test_smoke_scale_never_scores_or_validates_on_trained_tasks(preset, arm):
    """At the smoke scale the partition is split after the same small-grid filter for every task set, so no val or
    eval task is a train task; the TTFT preset trains on (the train examples of) the very tasks it scores."""
    from arc_exp.data.entries import train_entries
    from arc_exp.data.selection import TaskSetSpec

    cfg = compose(preset, "smoke", arm, extra=["adapter_path=/a"])
    entries = train_entries(OmegaConf.to_container(cfg.data.train, resolve=True), cfg.data.limit)
    trained = {t.task_id for e in entries if e.source == M and e.test_outputs is not False
               for t in e.task_set().load()}
    scored = {part: {t.task_id for t in TaskSetSpec.from_config(OmegaConf.to_container(cfg.data[part], resolve=True),
                                                                 ignore=("prompt",)).load()} for part in ("val", "eval")}
    assert scored["val"] and scored["eval"]
    if preset.endswith("_ttft"):  # no test output is trained on (test_outputs: false): the n-1 tasks of these
        assert not trained and {t.task_id for e in entries for t in e.task_set().load()} == scored["eval"]
    else:
        assert trained and not trained & (scored["val"] | scored["eval"])


@pytest.mark.parametrize("preset, key, names", [
    ("iter24_overfit", "model.path", "Qwen2-0.5B-arc"),
    ("iter24_overfit", "datasets.re_arc", "RE-ARC (github.com/michaelhodel/re-arc"),
    ("iter24_overfit", "datasets.mini_arc", "MINI-ARC as one task folder or JSON file (github.com/KSB21ST/MINI-ARC"),
    ("iter24_overfit_evaluate", "model.path", "Qwen2-0.5B-arc"),
    ("iter04_ttft", "checkpoint", "python train.py experiment=iter04_ttft_baseline scale=gpu"),
])
def test_gpu_scale_requires_the_data_and_start_model_it_cannot_ship(preset, key, names):
    """One line naming the key, the dataset or model and where it comes from, raised when the config resolves (the
    entry points resolve it before loading anything)."""
    given = [o for o in GPU_GIVEN.get(preset, []) if not o.startswith(f"{key}=")]
    cfg = compose(preset, "gpu", extra=[*given, *(["checkpoint=abc"] if preset.endswith("evaluate") else [])])
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # what train.py resolves first
    with pytest.raises(Exception) as error:
        OmegaConf.to_container(job, resolve=True)
    message = next(line for line in str(error.value).splitlines() if "is required by this preset" in line)
    assert f"{key} is required by this preset: give {key}=<" in message and names in message
    smoke = compose(preset, "smoke")  # the smoke scale ships stand-ins
    assert OmegaConf.select(smoke, key, default=None) != "???"


# --- no preset scores (or validates on) test outputs its training saw ----------------------------------------------

# the preset that trains the checkpoint a preset continues or scores: (preset, arm)
TRAINED_BY = {"iter12_grid_representation_ttft": ("iter12_grid_representation", "size_small"),
              "iter24_overfit_evaluate": ("iter24_overfit", "lora"),
              "iter04_ttft": ("iter04_ttft_baseline", None)}
# data that cannot ship (gpu scale, given by the user): not loaded here; RE-ARC and MINI-ARC are no ARC-1 task
NOT_HERE = ("/data/", "re-arc:/data/")


def arms_of(cfg) -> list:
    arms = cfg.hydra.sweeper.params.get("arm") if cfg.hydra.sweeper.get("params") else None
    return [None] if not arms else [a.split("/", 1)[1] for a in str(arms).split(",")]


def trained_outputs_of(cfg):
    """The trained-outputs record a training run of ``cfg`` writes (its data.train, data.limit applied)."""
    from arc_exp.data.entries import train_entries
    from arc_exp.data.trained_outputs import TrainedOutputs

    record = TrainedOutputs()
    for i, entry in enumerate(train_entries(OmegaConf.to_container(cfg.data.train, resolve=True), cfg.data.limit)):
        if not entry.is_chats and not str(entry.source).startswith(NOT_HERE):
            record = record | TrainedOutputs.of_tasks(entry.task_set().load(), entry.prompt, f"data.train[{i}]")
    return record


def scored_tasks(cfg, part: str = "eval") -> dict:
    """``{data.<part>.source value: tasks}``: the tasks a run of ``cfg`` scores, one set per swept source."""
    from arc_exp.evaluation.pipeline import load_eval_tasks

    spec = OmegaConf.to_container(cfg.data[part], resolve=True)
    spec.pop("prompt", None)
    swept = cfg.hydra.sweeper.get("params", {}).get(f"data.{part}.source") if part == "eval" else None
    sources = str(swept).split(",") if swept else [spec["source"]]
    return {source: load_eval_tasks({**spec, "source": source}) for source in sources}


# ARC-1's one example held twice: the test of evaluation task 070dd51e is a train example of training task 40853293,
# and the reverse; a model trained on one of them is scored without the other (evaluation.skip_trained_tasks, gpu)
ARC1_TWINS = {"070dd51e", "40853293"}


@pytest.mark.parametrize("scale", ["smoke", "gpu"])
@pytest.mark.parametrize("preset", [p for p in SEED_PRESETS if p != "iter02_learn_to_count_base"])
def test_no_preset_scores_the_test_outputs_it_trained_on(preset, scale):
    """Every arm of every preset, at both scales: the test outputs it scores (data.eval: train.py's evaluation,
    evaluate.py, solve.py) are none of those its training data (and the training of the checkpoint it continues or
    scores) shows, compared by content as the guard compares them; the ARC-1 twins are left out by the guard
    (``evaluation.skip_trained_tasks``). Validation holds none either, but for the twins (warned and tagged by
    train.py). Iteration 24 scores its training set on purpose: allowed there, and only there."""
    def given(name):
        keys = {"train": ["adapter_path=/a"], "evaluate": ["checkpoint=/c"], "solve": ["checkpoint=/c"]}[ENTRY[name]]
        return [*keys, *(GPU_GIVEN.get(name, []) if scale == "gpu" else [])]

    for arm in arms_of(compose(preset, scale, extra=given(preset))):
        cfg = compose(preset, scale, arm, extra=given(preset))
        record = trained_outputs_of(cfg) if ENTRY[preset] == "train" else None
        if preset in TRAINED_BY:  # the checkpoint's own training
            parent, parent_arm = TRAINED_BY[preset]
            earlier = trained_outputs_of(compose(parent, scale, parent_arm, extra=given(parent)))
            record = earlier if record is None else record | earlier
        scores = ENTRY[preset] != "train" or cfg.evaluation.enabled
        found = {tuple(sorted({task_id for task_id, _ in record.matches(tasks)}))
                 for tasks in scored_tasks(cfg).values()} - {()} if scores else set()
        where = (preset, scale, arm, found)
        if preset.startswith("iter24"):
            assert cfg.evaluation.allow_trained_outputs or not scores, where
            continue
        assert not cfg.evaluation.allow_trained_outputs, where
        assert not found or (set().union(*found) <= ARC1_TWINS and cfg.evaluation.skip_trained_tasks), where
        if ENTRY[preset] == "train":
            val = {task_id for tasks in scored_tasks(cfg, "val").values() for task_id, _ in record.matches(tasks)}
            assert val <= ARC1_TWINS, (preset, scale, arm, val)


def test_a_gpu_preset_without_its_start_model_or_data_fails_in_one_line(tmp_path, capsys):
    """The preset's ``${required:...}`` values: one line naming the key and where the value comes from, exit 1,
    before anything loads (OmegaConf wraps the resolver's error; the entry point unwraps it)."""
    from conftest import run_in_process

    code, _, err = run_in_process(["train.py", "experiment=iter24_overfit", "scale=gpu", "logger=none",
                                   f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("train.py: error: model.path is required by this preset: give "
                                                   "model.path=<Qwen2-0.5B-Instruct already fine-tuned on ARC")
    code, _, err = run_in_process(["train.py", "experiment=iter24_overfit", "scale=gpu", "logger=none",
                                   "model.path=/models/Qwen2-0.5B-arc", f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 1 and err.strip().splitlines()[-1].startswith("train.py: error: datasets.re_arc is required")
    assert not (tmp_path / "run").exists()
