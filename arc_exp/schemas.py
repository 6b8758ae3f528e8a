"""Hydra structured configs: the types of the config groups whose values have types, checked when the config is
composed, so ``python train.py lora.r=abc --cfg job`` fails at once and names ``lora.r``.

Each schema is stored in Hydra's ConfigStore as the option ``schema`` of its group, and the group's YAML files start
from it (``defaults: [schema, _self_]``), so an option sets values, never new keys, and a value of the wrong type
stops the composition (an unknown key too; add one with ``+group.key=value``). Ranges and allowed values are still
checked by the library class each group builds (``lora.r must be >= 1``).

Where the library class is a dataclass of OmegaConf types, the schema is that class or derived from it
(``InferenceSchema``, ``TTFTSchema``, the entries of ``data.train``, the count generator's ``grids`` and
``questions``: :func:`settable`); the others are written out
and mirror the classes they build (``arc_exp.model.adapters.AdapterConfig``, ``arc_exp.model.loader.ModelSpec``, ...),
which ``tests/test_config.py`` checks. This module imports dataclasses, Hydra and those library dataclasses (numpy,
no torch), so entry points register it before anything heavy is imported: :func:`register` (idempotent).

The top-level keys of train.py, evaluate.py and solve.py (``learning_rate``, ``seed``, ``predictions_per_task``,
``evaluation.*``, ...) are typed the same way by a root schema, the first entry of the entry point's defaults list
(``train_schema``: :class:`~arc_exp.root_schemas.TrainSchema`, in :mod:`arc_exp.root_schemas`), so ``learning_rate=fast``
fails at composition naming ``learning_rate``.
A root schema is open: a preset may add a key of its own (``experiment``, ``arm``, ``report``); Hydra closes the
composed config afterwards, so a user still adds one with ``+key=value``.

The ``encoder`` group's options are stored here too (:func:`register_encoders`), from the one list of compositions.
A schema lists its keys one a line, as the library dataclasses do (``InferenceConfig``, ``TTFTSettings``): the
repository's duplicates check pairs such lists by shape alone; no logic repeats.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from arc_exp.data.encoders import ENCODER_COMPOSITIONS, create_grid_encoder, encoder_config
from arc_exp.data.entries import MAX_SEQ_LEN, TrainEntry  # numpy, through the task sets; no torch
from arc_exp.data.selection import TaskSetSpec
from arc_exp.inference.config import InferenceConfig  # dataclasses and typing only
from arc_exp.root_schemas import ADDED_SCHEMAS, ROOT_SCHEMAS
from arc_exp.synthetic.count import CountConfig  # numpy; no torch
from arc_exp.synthetic.questions import QuestionConfig
from arc_exp.ttft.settings import TTFTSettings  # numpy, through the augmentation policy; no torch


@dataclass
class ModelSchema:
    _target_: str = "arc_exp.model.loader.ModelSpec"
    _convert_: str = "all"
    name: str = MISSING
    path: Optional[str] = None
    gguf_package: Optional[str] = None
    gguf_file: Optional[str] = None
    tokenizer_from: Optional[Dict[str, Any]] = None
    tiny_random: Optional[Dict[str, Any]] = None
    dtype: str = "auto"
    allow_download: bool = False
    cache_dir: Optional[str] = None
    reduce_vocab: bool = False
    decoder_layer: Optional[str] = None  # the block FSDP wraps (trainer=fsdp); null: the loaded model's own
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class LoraSchema:
    _target_: str = "arc_exp.model.adapters.AdapterConfig"
    _convert_: str = "all"
    method: str = "lora"
    r: int = 32
    alpha: Optional[float] = None  # null: follows r (2 x r, the scale 2 of r=32 alpha=64 at every rank)
    dropout: float = 0.0
    target_modules: Any = "all-linear"  # "all-linear" or a list of module names
    use_dora: bool = False
    use_rslora: bool = False
    load_in_4bit: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class DataLimitSchema:
    """``data.limit``: selection keys applied to every ARC task entry of ``data.train`` that does not set them."""

    max_grid_side: Optional[int] = None
    first_n: Optional[int] = None


@dataclass
class TaskSetSchema(TaskSetSpec):
    """``data.eval``: the fields of :class:`~arc_exp.data.selection.TaskSetSpec` itself (checked again when it is
    built), but ``task_ids`` untyped: typed as strings, an unquoted id that YAML reads as a number (00576224) would
    silently become another id; TaskSetSpec refuses it, asking for quotes."""

    task_ids: Any = None


@dataclass
class ValSchema(TaskSetSchema):
    """``data.val``: a task set and the prompt version it is shown with."""

    prompt: Optional[str] = None  # null: the prompt of the first ARC task entry of data.train


@dataclass
class DataSchema:
    """The data group (conf/data). Each ``data.train`` entry is typed by :class:`~arc_exp.data.entries.TrainEntry`
    itself: an ARC task set (``source``, ``prompt``, selection keys) or generated chats (``chats``, ``max_chats``) in
    one class with optional fields, since OmegaConf types a list's items with one class, not a union of two (the
    module docstring of arc_exp.data.entries says why, and how an entry that mixes the kinds is refused).
    ``val`` and ``eval`` are task sets (TaskSetSpec keys, ``prompt`` too for ``val``)."""

    train: List[TrainEntry] = field(default_factory=list)
    val: Optional[ValSchema] = None
    eval: Optional[TaskSetSchema] = None
    max_seq_len: int = MAX_SEQ_LEN
    drop_examples_to_fit: bool = True
    limit: DataLimitSchema = field(default_factory=DataLimitSchema)
    batch_size: int = 1
    task_of_interest_steps: Optional[int] = None
    bucket_batches: int = 64


@dataclass
class TrainerSchema:
    """The Lightning Trainer arguments conf/trainer sets. Any other Trainer argument: ``+trainer.<name>=<value>``."""

    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_steps: int = 200
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None
    val_check_interval: Any = None  # steps (an int) or a fraction of an epoch (a float): Lightning tells them apart
    check_val_every_n_epoch: Optional[int] = None
    limit_val_batches: Any = None   # batches (an int) or a fraction (a float)
    log_every_n_steps: int = 1
    num_sanity_val_steps: int = 0
    enable_checkpointing: bool = True
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    deterministic: Any = True  # true, false or "warn"


@dataclass
class CallbacksSchema:
    """arc_exp's own training settings (conf/callbacks): adapter folders every N optimizer steps (0: at the end)."""

    checkpoint_every_n_steps: int = 100
    log_adapter: Optional[bool] = None  # the final adapter copied into MLflow too; null: LoRA yes, full weights no


@dataclass
class InferenceSchema(InferenceConfig):
    """The fields of :class:`~arc_exp.inference.config.InferenceConfig` itself (a plain dataclass of OmegaConf types;
    OmegaConf reads its fields without constructing it, so its value checks still run at instantiate)."""

    _target_: str = "arc_exp.inference.config.InferenceConfig"


@dataclass
class TTFTSchema(TTFTSettings):
    """The fields of :class:`~arc_exp.ttft.settings.TTFTSettings`, but for the two that hold objects built from
    their own ``_target_`` (OmegaConf types them as any node)."""

    _target_: str = "arc_exp.ttft.settings.TTFTSettings"
    scheduler: Any = None      # a partial of arc_exp.training.schedulers (_target_, _partial_, ...)
    augmentation: Any = None   # an arc_exp.data.augmentation_policy.AugmentationPolicy


def settable(frozen: type, name: str) -> type:
    """A plain dataclass with the fields (names, types, defaults) of the frozen dataclass ``frozen``, derived rather
    than copied, so the schema cannot drift from the class the generator builds.

    Why not ``frozen`` itself, as :class:`InferenceSchema` uses InferenceConfig: OmegaConf makes a frozen dataclass a
    read-only node, so no YAML option or override could set its values (``Cannot set value of read-only config
    node``); and a dataclass cannot subclass a frozen one without being frozen. The library class still checks
    the values (``CountConfig.__post_init__``) when the generator is built from the composed dict.

    ``name`` is the module attribute the schema is assigned to: configs are pickled (joblib sweeps) with their
    schema class, found again by module and name.
    """
    hints = typing.get_type_hints(frozen)  # the classes use ``from __future__ import annotations``: strings
    specs = []
    for spec in dataclasses.fields(frozen):
        default = field(default=spec.default) if spec.default is not dataclasses.MISSING \
            else field(default_factory=spec.default_factory)
        specs.append((spec.name, hints[spec.name], default))
    schema = dataclasses.make_dataclass(name, specs)
    schema.__module__ = __name__
    return schema


CountGridsSchema = settable(CountConfig, "CountGridsSchema")         # generator.grids
CountQuestionsSchema = settable(QuestionConfig, "CountQuestionsSchema")  # generator.questions


@dataclass
class CountGeneratorSchema:
    _target_: str = "arc_exp.synthetic.questions.CountQAGenerator"
    _convert_: str = "all"
    grids: CountGridsSchema = field(default_factory=CountGridsSchema)
    questions: CountQuestionsSchema = field(default_factory=CountQuestionsSchema)
    system_prompt: Optional[str] = None
    style: str = "full"  # full or short (arc_exp.synthetic.questions.CHAT_STYLES)


@dataclass
class NewInputsGeneratorSchema:
    _target_: str = "arc_exp.synthetic.new_inputs.NewInputsGenerator"
    samples_per_task: int = 8
    max_seq_len: int = MAX_SEQ_LEN
    max_new_tokens: Optional[int] = None
    prompt: str = "input-from-inputs-v0"


# group -> (option name, schema); the option is what a group's YAML files name in their defaults list
SCHEMAS = {
    "model": ("schema", ModelSchema),
    "lora": ("schema", LoraSchema),
    "data": ("schema", DataSchema),
    "trainer": ("schema", TrainerSchema),
    "callbacks": ("schema", CallbacksSchema),
    "inference": ("schema", InferenceSchema),
    "ttft": ("schema", TTFTSchema),
    "generator": ("schema_count", CountGeneratorSchema),
    "schema/generator": ("new_inputs", NewInputsGeneratorSchema),  # new_inputs.yaml is a global package
}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (before ``@hydra.main`` or ``compose`` composes a config), and the
    encoder options (:func:`register_encoders`)."""
    store = ConfigStore.instance()
    register_encoders(store)
    for group, (name, schema) in SCHEMAS.items():
        store.store(group=group, name=name, node=schema, provider="arc_exp")
    for config, schema in ROOT_SCHEMAS.items():
        node = OmegaConf.structured(schema)
        children = (node._get_node(key) for key in node)  # not node.values(): a MISSING value (out: ???) raises
        for section in [node, *(child for child in children if OmegaConf.is_dict(child))]:
            OmegaConf.set_struct(section, False)  # typed keys, but a preset may add its own (scale: evaluation.*)
        store.store(name=f"{config}_schema", node=node, provider="arc_exp")
    for config, schema in ADDED_SCHEMAS.items():  # report.py's keys, after the train config it composes
        typed, node = OmegaConf.structured(schema), OmegaConf.create()
        for key in typed:
            node[key] = typed._get_node(key)  # each key keeps its type; the root stays train's (TrainSchema)
        store.store(name=f"{config}_schema", node=node, provider="arc_exp")


def register_encoders(store: ConfigStore) -> None:
    """The options of the ``encoder`` group: one per composition of :data:`~arc_exp.data.encoders.ENCODER_COMPOSITIONS`
    (the one list of them), as the nested ``_target_`` config a run records, and ``spec`` for the seed's string form::

        python train.py encoder=grid_shape_row_number
        python train.py encoder=spec "encoder.spec='GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))'"

    A YAML file in ``conf/encoder/`` adds an option beside them (its README says how).
    """
    for name, spec in ENCODER_COMPOSITIONS.items():
        store.store(group="encoder", name=name, node=encoder_config(create_grid_encoder(spec)), provider="arc_exp")
    store.store(group="encoder", name="spec", provider="arc_exp",
                node={"_target_": "arc_exp.data.encoders.create_grid_encoder", "spec": "???"})


def load_option(path) -> DictConfig:
    """One option's YAML file read on its own, outside a composed config (tests, bench scripts): merged onto its
    group's schema when it starts from one, so it holds the keys and types Hydra would give it.

    ``instantiate(load_option("conf/model/tiny-random.yaml"))`` builds the same ModelSpec as ``model=tiny-random``.
    """
    config = OmegaConf.load(path)
    defaults = list(config.pop("defaults", []) or [])
    group = Path(path).parent.name
    if group in SCHEMAS and SCHEMAS[group][0] in defaults:
        return OmegaConf.merge(OmegaConf.structured(SCHEMAS[group][1]), config)
    if defaults:
        raise ValueError(f"{path}: load_option reads an option that starts from its schema or from nothing, "
                         f"not from {defaults}; compose it with Hydra instead")
    return config
