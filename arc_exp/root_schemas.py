"""The root schemas: the types of the top-level keys of train.py, evaluate.py, solve.py, generate.py and run.py
(``learning_rate``, ``seed``, ``predictions_per_task``, ``evaluation.*``, ...), each the first entry of its entry
point's defaults list (``train_schema``: :class:`TrainSchema`), so ``learning_rate=fast`` fails at composition naming
``learning_rate``. :func:`arc_exp.schemas.register` stores them with the group schemas. report.py composes train's
config and adds its own keys (``runs``, ``significance.*``, ...: :class:`ReportSchema`, ``report_schema``), typed the
same way.

Each schema lists its keys one a line, so two lists of fields look alike by shape (the repository's duplicates check
pairs them) without repeating any logic; the groups every model-running entry point composes are listed once
(:class:`ModelGroups`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from arc_exp.tracking.significance import SignificanceSettings  # numpy; no torch, no scipy


@dataclass
class PlotsSchema:
    failures: int = 16  # PNG plots of the first N failed test inputs
    successes: int = 8  # and of a seeded sample of N solved ones


@dataclass
class TrustSchema:
    """``evaluation.*`` of evaluate.py and solve.py: what to do with test outputs the checkpoint trained on."""

    allow_trained_outputs: bool = False
    skip_trained_tasks: bool = False


@dataclass
class EvaluationAfterTrainingSchema:
    """``evaluation.*`` of train.py: the evaluation after training (the trust keys as :class:`TrustSchema`)."""

    enabled: bool = False
    before: bool = False
    allow_trained_outputs: bool = False
    skip_trained_tasks: bool = False
    predictions_per_task: int = 8
    plots: PlotsSchema = field(default_factory=lambda: PlotsSchema(8, 4))
    count_qa: Any = None  # typed where train.py reads it (arc_exp.synthetic.qa_eval.CountQASettings), not here:
                          # OmegaConf cannot set a typed dict that is null from an override (count_qa={chats: ...})


@dataclass
class ObjectiveSchema:
    metric: str = "val/loss"
    direction: str = "minimize"  # checked by arc_exp.training.objective.Objective


@dataclass
class BudgetSchema:
    ttft_share: float = 0.6
    min_ttft_minutes: float = 0.5


# The root schemas below list every top-level key of an entry point's YAML, in its order (so ``--cfg job`` prints
# them as the YAML reads); a group's package (model, lora, ...) is typed by its group's own schema, here Any.

@dataclass
class ModelGroups:
    """The groups every entry point that runs a model composes first, in this order."""

    model: Any = None
    lora: Any = None
    encoder: Any = None
    prompt: Any = None
    augmentation: Any = None


@dataclass
class TrainSchema(ModelGroups):
    """The top-level keys of conf/train.yaml."""

    scheduler: Any = None
    data: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    inference: Any = None
    seed: int = 0
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    adapter_path: Optional[str] = None
    resume: Optional[str] = None
    evaluation: EvaluationAfterTrainingSchema = field(default_factory=EvaluationAfterTrainingSchema)
    objective: ObjectiveSchema = field(default_factory=ObjectiveSchema)
    project_root: str = "."


@dataclass
class EvaluateSchema(ModelGroups):
    """The top-level keys of conf/evaluate.yaml."""

    data: Any = None
    inference: Any = None
    logger: Any = None
    checkpoint: Optional[str] = None
    all_checkpoints: bool = False
    predictions_per_task: int = 8
    seed: int = 0
    plots: PlotsSchema = field(default_factory=PlotsSchema)
    shards: Optional[int] = None
    shard: Optional[str] = None  # i/N
    merge: Optional[str] = None
    progress: bool = True
    evaluation: TrustSchema = field(default_factory=TrustSchema)
    project_root: str = "."


@dataclass
class SolveSchema(ModelGroups):
    """The top-level keys of conf/solve.yaml."""

    data: Any = None
    inference: Any = None
    trainer: Any = None
    ttft: Any = None
    logger: Any = None
    challenges: Optional[str] = None
    checkpoint: Optional[str] = None
    resume: Optional[str] = None
    predictions_per_task: int = 8
    time_budget_minutes: Optional[float] = None
    budget: BudgetSchema = field(default_factory=BudgetSchema)
    ensemble: List[Any] = field(default_factory=list)
    torch_threads: Optional[int] = None
    shards: Optional[int] = None
    shard: Optional[str] = None  # i/N
    merge: Optional[str] = None
    seed: int = 0
    plots: PlotsSchema = field(default_factory=PlotsSchema)
    progress: bool = True
    evaluation: TrustSchema = field(default_factory=TrustSchema)
    project_root: str = "."


@dataclass
class GenerateSchema:
    """The top-level keys of conf/generate.yaml (a generator option may add its own: new_inputs' checkpoint, ...)."""

    generator: Any = None
    encoder: Any = None
    n: int = 1000
    max_n: Optional[int] = None
    out: str = MISSING
    seed: int = 0
    shard_size: int = 10000
    workers: Optional[int] = 2
    project_root: str = "."


@dataclass
class RunSchema:
    """The keys of conf/run/run.yaml (run.py: an iteration's stages)."""

    experiment: str = MISSING
    scale: str = "smoke"
    stages_file: Optional[str] = None
    plan: bool = False
    rerun: Optional[str] = None
    new: bool = False
    overrides: List[str] = field(default_factory=list)
    project_root: str = "."
    logger: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportSchema:
    """report.py's own keys (conf/report.yaml), merged after the train config it composes (``report_schema``)."""

    runs: Any = None  # a list of run ids or prefixes, or one comma-separated string
    sweep: Optional[str] = None
    iteration: Optional[str] = None
    metrics: Optional[List[str]] = None
    table: Optional[str] = None
    plot_metrics: List[str] = field(default_factory=lambda: ["train/loss", "val/loss"])
    significance: SignificanceSettings = field(default_factory=SignificanceSettings)  # the library's own class


# entry point config -> the schema of its top-level keys, the first entry of its defaults list. Open (not struct), its
# sections too: a preset may add a key of its own (experiment, arm, report, scale; the scale presets set train.py's
# evaluation.enabled for every entry point); Hydra closes the composed config after.
ROOT_SCHEMAS = {"train": TrainSchema, "evaluate": EvaluateSchema, "solve": SolveSchema, "generate": GenerateSchema,
                "run": RunSchema}

# entry point config -> the schema of the keys it adds to another entry point's config it composes: stored untyped at
# the root (a second root type would not merge onto the first's) with typed keys, merged after that config
ADDED_SCHEMAS = {"report": ReportSchema}
