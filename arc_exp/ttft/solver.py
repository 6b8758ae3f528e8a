"""Test-time fine-tuning (TTFT) and solving: from the tasks of a challenges file to ``submission.json``.

``solve.py`` runs three stages. Each writes its output under the run folder, with a ``stage.json`` marker when it is
done, and ``resume=<run dir>`` skips the stages (and, in per-task mode, the tasks) already done:

1. **dataset** (``dataset/``): the TTFT tasks made from each test task's own train examples. n-1
   (:func:`~arc_exp.data.augmentation.leave_one_out`): each train example in turn is the target, the others are shown;
   n-2 (``ttft.n2``, :func:`~arc_exp.data.augmentation.leave_two_out`) adds the tasks with one more example left out.
   The test inputs are never trained on. For a task with train examples A, B, C::

       abc:loo0   shown B, C  ->  target A
       abc:loo1   shown A, C  ->  target B
       abc:loo2   shown A, B  ->  target C

   A task with a single train example gives no TTFT task: its target would come with no example shown, which says
   nothing about the task's transformation (and training the example to itself would teach the identity). Nor does a
   task without train examples. Both are listed in ``dataset/report.json`` with the reason, and still predicted (by
   the shared adapter, or by the starting checkpoint in per-task mode).
2. **ttft** (``ttft/``): fine-tune from ``checkpoint`` with the training code (:class:`ARCDataModule` with the TTFT
   augmentation, :class:`ARCLitModule`, a Lightning ``Trainer``): one shared adapter for all tasks, each task weighed
   the same (``ttft/adapter/``), or one adapter per task (``ttft.per_task=true``, ``ttft/tasks/<task_id>/adapter/``).
3. **predict** (``predict/``): the evaluation pipeline (augmented views, votes) with the fine-tuned model(s):
   ``predictions.json``, ``submission.json``, ``per_task.csv``, ``metrics.json`` (scored when test outputs are known).

Then ``submission.json`` at the root of the run folder: the model's submission merged with the ``ensemble``
submissions by priority (:func:`ensemble_submission`), and ``score.json`` when the solutions are known. A fallback
submission (copies of the test inputs) is written there first, so a run that is killed still leaves a valid file.

**Time budget** (:class:`Budget`, ``time_budget_minutes``): TTFT may use ``budget.ttft_share`` of the time left when
it starts, and is skipped (reported) when that is less than ``budget.min_ttft_minutes``. Training stops at its
deadline; in per-task mode each task gets an equal share of what is left, and its steps shrink to fit the measured
seconds per step (:func:`steps_within`). Prediction then uses what is left: fewer predictions per test input when
short (:func:`predictions_for_next`), and fallback attempts for the tasks there is no time for.

**MLflow**: one parent run (``run_type=solve``) with a child run per stage (``dataset``, ``ttft``, ``predict``), and
in per-task mode a child of the ``ttft`` run per task; Lightning logs the TTFT losses into its child run.

**Held-out loss** (``ttft.holdout=true``): the last train example of each task is held out of the TTFT dataset, and
the answer loss of its output (shown the other examples) is measured before and after TTFT: a check that TTFT helps
that needs no test outputs.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import pytorch_lightning as pl
import torch
from tqdm.auto import tqdm

from arc_exp.model.adapters import AdapterConfig, AdapterError, apply_adapter
from arc_exp.data.augmentation import AugmentationPolicy, leave_one_out, leave_two_out
from arc_exp.model.checkpoints import read_checkpoint_config, save_checkpoint
from arc_exp.data.datamodule import ARCDataModule, TrainingDataset, validation_samples
from arc_exp.data.samples import collate
from arc_exp.data.tasks import Task
from arc_exp.evaluation.pipeline import evaluate_tasks
from arc_exp.tracking.runs import EvaluationTracker
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.outputs import write_outputs
from arc_exp.evaluation.results import EvaluationResult, TaskResult, TestInputResult
from arc_exp.evaluation.checkpoints import Checkpoint, load_model_for_evaluation
from arc_exp.training.module import ARCLitModule, answer_loss
from arc_exp.evaluation.metrics import aggregate_metrics, task_metrics, test_input_metrics
from arc_exp.model.loader import ModelSpec, load_model, resolve_dtype
from arc_exp.evaluation.submission import (
    SubmissionError, build_submission, merge_submissions, score_submission, write_submission,
)
from arc_exp.model.vocabulary import apply_vocabulary, check_checkpoint_vocabulary, vocabulary_of

log = logging.getLogger(__name__)

MARKER = "stage.json"
MODEL = "model"  # the name of this run's own submission in an ensemble list
SINGLE_EXAMPLE = "single train example: no n-1 task (its target would be shown no example)"
NO_EXAMPLES = "no train examples"
# Trainer settings of conf/trainer that the TTFT stage sets itself (steps, no validation, no Lightning checkpoints)
TRAINER_KEYS_SET_HERE = ("_target_", "checkpoint_every_n_steps", "max_steps", "val_check_interval",
                         "check_val_every_n_epoch", "limit_val_batches", "num_sanity_val_steps",
                         "enable_checkpointing", "log_every_n_steps", "enable_progress_bar", "logger", "callbacks",
                         "default_root_dir")


class TTFTConfigError(ValueError):
    """A ``ttft.*``, ``budget.*``, ``ensemble`` or ``resume`` setting that cannot be used; names the key."""


# ---------------------------------------------------------------------------------------------------------------------
# Settings.


@dataclass
class TTFTSettings:
    """How to fine-tune at test time (``conf/ttft/<name>.yaml``, built with ``hydra.utils.instantiate``).

    - ``enabled``: false (``ttft=none``) predicts with the checkpoint as it is;
    - ``per_task``: one adapter per task instead of one shared by all tasks;
    - ``n2``: add the n-2 tasks to the n-1 tasks; ``holdout``: hold out each task's last train example and report
      its answer loss before and after TTFT;
    - ``steps``: optimizer steps of each fine-tuning (the shared adapter's, or each task's);
    - ``learning_rate``, ``weight_decay``, ``scheduler`` (a partial of :mod:`arc_exp.training.schedulers`), ``batch_size``,
      ``bucket_batches``: as in training;
    - ``augmentation``: the :class:`AugmentationPolicy` sampled for every TTFT sample (D8, colors, example order).
    """

    enabled: bool = True
    per_task: bool = False
    n2: bool = False
    holdout: bool = False
    steps: int = 100
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 1
    bucket_batches: int = 8
    scheduler: Optional[Callable] = None
    augmentation: AugmentationPolicy = field(default_factory=AugmentationPolicy)

    def __post_init__(self) -> None:
        for key in ("enabled", "per_task", "n2", "holdout"):
            if not isinstance(getattr(self, key), bool):
                raise TTFTConfigError(f"ttft.{key} must be true or false, got {getattr(self, key)!r}")
        for key in ("steps", "batch_size", "bucket_batches"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TTFTConfigError(f"ttft.{key} must be an integer >= 1, got {value!r}")
        for key in ("learning_rate", "weight_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                    (key == "learning_rate" and value == 0):
                raise TTFTConfigError(f"ttft.{key} must be a number {'> 0' if key == 'learning_rate' else '>= 0'}"
                                      f", got {value!r}")
        if not isinstance(self.augmentation, AugmentationPolicy):
            raise TTFTConfigError(f"ttft.augmentation must build an arc_exp.data.augmentation.AugmentationPolicy, got "
                                  f"{type(self.augmentation).__name__}")

    def describe(self) -> dict:
        """The settings as plain values: stored with the stage outputs, compared on resume."""
        scheduler = self.scheduler
        name = getattr(getattr(scheduler, "func", scheduler), "__name__", str(scheduler))
        keywords = dict(getattr(scheduler, "keywords", {}) or {})
        policy = dataclasses.asdict(self.augmentation)
        policy["task_augmentations"] = list(policy["task_augmentations"])
        values = {k: getattr(self, k) for k in ("enabled", "per_task", "n2", "holdout", "steps", "learning_rate",
                                                 "weight_decay", "batch_size", "bucket_batches")}
        return {**values, "scheduler": {"name": name, **keywords}, "augmentation": policy}


def trainer_options(trainer_config: Mapping) -> dict:
    """The ``conf/trainer`` settings the TTFT Trainer takes from the config (accelerator, precision, clipping...);
    steps, validation, checkpoints and logging are set by the TTFT stage itself."""
    return {k: v for k, v in dict(trainer_config).items() if k not in TRAINER_KEYS_SET_HERE}


def set_torch_threads(threads: Optional[int]) -> None:
    """Use ``threads`` torch CPU threads from now on (``None``: leave torch's default, one per core)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise TTFTConfigError(f"torch_threads must be an integer >= 1 or null, got {threads!r}")
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------------------
# The time budget.


@dataclass
class Budget:
    """A wall-clock budget shared by the stages; ``minutes=None`` is no limit. The clock starts when it is built.

    >>> budget = Budget(10, ttft_share=0.5, clock=lambda: 100.0)
    >>> budget.seconds_left(), budget.ttft_seconds()
    (600.0, 300.0)
    """

    minutes: Optional[float] = None
    ttft_share: float = 0.6  # of the time left when TTFT starts; prediction gets the rest
    min_ttft_minutes: float = 0.5  # less time than this for TTFT: skip it and only predict
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        if self.minutes is not None and (isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float))
                                         or self.minutes <= 0):
            raise TTFTConfigError(f"time_budget_minutes must be a number > 0 or null, got {self.minutes!r}")
        if isinstance(self.ttft_share, bool) or not isinstance(self.ttft_share, (int, float)) or \
                not 0 < self.ttft_share <= 1:
            raise TTFTConfigError(f"budget.ttft_share must be a number in (0, 1], got {self.ttft_share!r}")
        if isinstance(self.min_ttft_minutes, bool) or not isinstance(self.min_ttft_minutes, (int, float)) or \
                self.min_ttft_minutes < 0:
            raise TTFTConfigError(f"budget.min_ttft_minutes must be a number >= 0, got {self.min_ttft_minutes!r}")
        self.start = self.clock()

    @property
    def limited(self) -> bool:
        return self.minutes is not None

    def seconds_left(self) -> float:
        if self.minutes is None:
            return math.inf
        return max(0.0, self.start + 60.0 * self.minutes - self.clock())

    def ttft_seconds(self) -> float:
        """The seconds TTFT may use if it starts now."""
        return self.seconds_left() * self.ttft_share


def predictions_for_next(configured: int, seconds_left: float, seconds_per_prediction: Optional[float],
                         test_inputs_left: int, test_inputs: int) -> int:
    """Predictions per test input for the next task, so the tasks left fit the time left (0: no time, skip it).

    Before any prediction is timed (``seconds_per_prediction=None``) the configured number is used.

    >>> predictions_for_next(8, seconds_left=100, seconds_per_prediction=2, test_inputs_left=10, test_inputs=1)
    5
    >>> predictions_for_next(8, 100, 2, test_inputs_left=60, test_inputs=1)  # not 1 each for all: 1 while it lasts
    1
    >>> predictions_for_next(8, 1, 2, test_inputs_left=60, test_inputs=1)
    0
    """
    if seconds_left <= 0:
        return 0
    if seconds_per_prediction is None or math.isinf(seconds_left):
        return configured
    affordable = math.floor(seconds_left / (max(seconds_per_prediction, 1e-9) * max(test_inputs_left, 1)))
    if affordable >= 1:
        return min(configured, affordable)
    return 1 if seconds_left >= seconds_per_prediction * test_inputs else 0


def steps_within(steps: int, seconds: Optional[float], seconds_per_step: Optional[float]) -> int:
    """The TTFT steps that fit ``seconds`` at the measured ``seconds_per_step`` (both ``None``: all ``steps``).

    >>> steps_within(100, seconds=30, seconds_per_step=0.5), steps_within(100, None, 0.5), steps_within(8, 30, 0.5)
    (60, 100, 8)
    """
    if seconds is None or seconds_per_step is None or math.isinf(seconds):
        return steps
    return max(0, min(steps, math.floor(seconds / max(seconds_per_step, 1e-9))))


# ---------------------------------------------------------------------------------------------------------------------
# Stage 1: the TTFT dataset.


@dataclass
class TTFTDataset:
    """The TTFT tasks of each test task, in task order.

    ``tasks`` maps a task id to its TTFT tasks (n-1 first, then n-2) and holds only tasks that have some;
    ``holdout`` maps a task id to its held-out example as a task (``ttft.holdout``); ``skipped`` maps the id of each
    task without TTFT tasks to the reason.
    """

    task_ids: list[str]
    tasks: dict[str, list[Task]] = field(default_factory=dict)
    holdout: dict[str, Task] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        reasons = list(self.skipped.values())
        return {"tasks": len(self.task_ids), "tasks_with_ttft": len(self.tasks),
                "ttft_tasks": sum(len(t) for t in self.tasks.values()),
                "n1_tasks": sum(":loo" in t.task_id for ts in self.tasks.values() for t in ts),
                "n2_tasks": sum(":l2o" in t.task_id for ts in self.tasks.values() for t in ts),
                "single_example_tasks": reasons.count(SINGLE_EXAMPLE), "no_example_tasks": reasons.count(NO_EXAMPLES),
                "holdout_tasks": len(self.holdout)}

    def save(self, folder: str | Path) -> None:
        """``tasks.json`` ({task_id: [TTFT task, ...]}), ``holdout.json`` and ``report.json`` in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "tasks.json", {task_id: [{"id": t.task_id, **t.to_dict()} for t in ttft_tasks]
                                            for task_id, ttft_tasks in self.tasks.items()})
        _write_json(folder / "holdout.json", {task_id: t.to_dict() for task_id, t in self.holdout.items()})
        _write_json(folder / "report.json", {"task_ids": self.task_ids, "summary": self.summary(),
                                             "ttft_tasks": {k: len(v) for k, v in self.tasks.items()},
                                             "skipped": self.skipped})

    @classmethod
    def load(cls, folder: str | Path) -> "TTFTDataset":
        folder = Path(folder)
        report = json.loads((folder / "report.json").read_text())
        stored = json.loads((folder / "tasks.json").read_text())
        source = str(folder / "tasks.json")
        tasks = {task_id: [Task.from_dict(t.pop("id"), t, source=source) for t in items]
                 for task_id, items in stored.items()}
        holdout = {task_id: Task.from_dict(task_id, t, source=str(folder / "holdout.json"))
                   for task_id, t in json.loads((folder / "holdout.json").read_text()).items()}
        return cls(report["task_ids"], tasks, holdout, report["skipped"])


def build_ttft_dataset(tasks: Sequence[Task], n2: bool = False, holdout: bool = False) -> TTFTDataset:
    """The TTFT tasks of ``tasks`` (see the module docstring); with ``holdout`` the last train example of each task
    with at least 2 is held out first (and the n-1 tasks come from the others).

    >>> from arc_exp.data.tasks import Example
    >>> pair = lambda c: Example([[c]], [[c, c]])
    >>> task = Task("abc", (pair(1), pair(2), pair(3)), (Example([[4]]),))
    >>> dataset = build_ttft_dataset([task], n2=True)
    >>> [t.task_id for t in dataset.tasks["abc"]][:4], len(dataset.tasks["abc"])
    (['abc:loo0', 'abc:loo1', 'abc:loo2', 'abc:l2o0-1'], 9)
    """
    dataset = TTFTDataset([t.task_id for t in tasks])
    for task in tasks:
        if holdout and len(task.train) >= 2:
            dataset.holdout[task.task_id] = task.replace(train=task.train[:-1], test=task.train[-1:])
            task = task.replace(train=task.train[:-1])
        made = leave_one_out(task) + (leave_two_out(task) if n2 else [])
        if made:
            dataset.tasks[task.task_id] = made
        else:
            dataset.skipped[task.task_id] = NO_EXAMPLES if not task.train else SINGLE_EXAMPLE
    return dataset


# ---------------------------------------------------------------------------------------------------------------------
# Stage 2: fine-tuning.


class _StopAtDeadline(pl.Callback):
    """Stop training when the clock passes ``deadline`` (the budget shrinks the steps; the adapter is still saved)."""

    def __init__(self, deadline: Optional[float], clock: Callable[[], float]):
        self.deadline = deadline
        self.clock = clock

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.deadline is not None and self.clock() >= self.deadline:
            trainer.should_stop = True


class _RecordLosses(pl.Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        self.losses.append(float(loss))


@dataclass
class FineTuneOutcome:
    """What one fine-tuning did: the adapter folder (``None``: nothing trained), steps, time and losses."""

    task_id: Optional[str]  # None for the shared adapter
    adapter: Optional[str] = None
    steps: int = 0
    planned_steps: int = 0
    seconds: float = 0.0
    stopped_by_budget: bool = False
    losses: list[float] = field(default_factory=list)
    holdout_before: dict[str, float] = field(default_factory=dict)  # held-out answer loss per task, before TTFT
    holdout_after: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def answer_losses(model, tasks: Sequence[Task], encoder, prompt_version: str, tokenizer,
                  max_seq_len: int) -> dict[str, float]:
    """The answer loss (mean over answer tokens) of each task's test outputs, shown its train examples, without
    augmentation; tasks that do not fit ``max_seq_len`` are left out."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses = {}
    try:
        with torch.no_grad():
            for task in tasks:
                total, tokens = 0.0, 0
                for sample in validation_samples([task], encoder, prompt_version, tokenizer, max_seq_len):
                    batch = {k: v.to(device) for k, v in collate([sample], tokenizer.pad_token_id).items()}
                    loss, count = answer_loss(model, batch)
                    total, tokens = total + float(loss) * int(count), tokens + int(count)
                if tokens:
                    losses[task.task_id] = total / tokens
    finally:
        model.train(was_training)
    return losses


def base_seed(checkpoint: Checkpoint, seed: int) -> int:
    """The seed the checkpoint's base model was built with (matters for the tiny random model), else ``seed``."""
    saved = (checkpoint.config or {}).get("seed")
    return saved if isinstance(saved, int) else seed


def load_model_for_ttft(spec: ModelSpec, adapter: AdapterConfig, checkpoint: Checkpoint, seed: int = 0,
                        vocabulary=None):
    """The model to fine-tune: the checkpoint's LoRA adapter made trainable on its base model, a new adapter on the
    base model (no checkpoint), or the checkpoint's full weights (``lora=full``). Seeded with ``seed``, so a new
    adapter starts from the same weights whatever ran before in the process. ``vocabulary`` (a reduced vocabulary,
    the checkpoint's own when it has a ``vocabulary.json``) reduces the base model before the adapter."""
    from arc_exp.training.recipe import seed_everything

    seed_everything(seed)  # a new adapter's initial weights come from the global RNG
    folder = checkpoint.folder
    seed = base_seed(checkpoint, seed)
    check_checkpoint_vocabulary(folder, vocabulary)
    if folder is not None and not (folder / "adapter_config.json").exists():
        if adapter.is_peft:
            raise AdapterError(f"checkpoint '{folder}' holds full model weights, not a LoRA adapter: fine-tune it "
                               f"with lora=full")
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=resolve_dtype(spec.dtype))
        return apply_adapter(apply_vocabulary(model, vocabulary), adapter)
    base = apply_vocabulary(load_model(spec, quantization_config=adapter.quantization_config(), seed=seed), vocabulary)
    return apply_adapter(base, adapter, str(folder) if folder is not None else None)


def fine_tune(model, tokenizer, datasets: Sequence[TrainingDataset], settings: TTFTSettings, encoder,
              prompt_version: str, max_seq_len: int, seed: int, options: Mapping, steps: int, root_dir: str | Path,
              deadline: Optional[float] = None, clock: Callable[[], float] = time.monotonic, logger=None,
              holdout: Sequence[Task] = (), progress: bool = True, task_id: Optional[str] = None) -> FineTuneOutcome:
    """Train ``model`` in place for ``steps`` optimizer steps (fewer when ``deadline`` passes) on ``datasets``.

    Raises ``ValueError`` when no TTFT sample fits ``max_seq_len`` (from :class:`ARCDataModule`).
    """
    from arc_exp.training.recipe import seed_everything

    seed_everything(seed)
    datamodule = ARCDataModule(datasets, [], prompt_version, encoder, tokenizer, settings.augmentation,
                               max_seq_len=max_seq_len, batch_size=settings.batch_size, seed=seed,
                               bucket_batches=settings.bucket_batches)
    outcome = FineTuneOutcome(task_id, planned_steps=steps)
    if holdout:
        outcome.holdout_before = answer_losses(model, holdout, encoder, prompt_version, tokenizer, max_seq_len)
    module = ARCLitModule(model, settings.learning_rate, settings.weight_decay, settings.scheduler, total_steps=steps)
    losses = _RecordLosses()
    trainer = pl.Trainer(**dict(options), max_steps=steps, logger=logger if logger is not None else False,
                         callbacks=[_StopAtDeadline(deadline, clock), losses], enable_checkpointing=False,
                         limit_val_batches=0, num_sanity_val_steps=0, log_every_n_steps=1,
                         enable_progress_bar=progress and options.get("enable_progress_bar", True),
                         default_root_dir=str(root_dir))
    began = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    outcome.seconds = time.perf_counter() - began
    outcome.steps = trainer.global_step
    outcome.stopped_by_budget = outcome.steps < steps
    outcome.losses = losses.losses
    if holdout:
        outcome.holdout_after = answer_losses(model, holdout, encoder, prompt_version, tokenizer, max_seq_len)
    return outcome


# ---------------------------------------------------------------------------------------------------------------------
# Stage 3: predictions, within the budget.


def unpredicted_result(task: Task, n: int, source: str = "") -> TaskResult:
    """The result of a task with no prediction (no time left, or an error): fallback attempts, scored as wrong."""
    entries = build_submission({}, [task])[task.task_id]
    test_inputs = []
    for index, (example, entry) in enumerate(zip(task.test, entries)):
        attempts = [entry["attempt_1"], entry["attempt_2"]]
        metrics = None if example.output is None else test_input_metrics([], example.output, attempts, n)
        test_inputs.append(TestInputResult(task.task_id, index, example.input, example.output, [], [], attempts,
                                           metrics))
    scored = [t.metrics for t in test_inputs if t.metrics is not None]
    return TaskResult(task.task_id, source or task.source, test_inputs, task_metrics(scored, n) if scored else None)


def _with_pass_n(result: TaskResult, n: int) -> TaskResult:
    """Name the pass_n metric by the configured ``n`` even when the budget allowed fewer predictions, so every task
    of the stage has the same metric keys (``task_metrics`` of one item renames its pass_n key)."""
    for test_input in result.test_inputs:
        if test_input.metrics is not None:
            test_input.metrics = task_metrics([test_input.metrics], n)
    if result.metrics is not None:
        result.metrics = task_metrics([result.metrics], n)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Ensembles.


def load_ensemble(entries: Optional[Iterable[str]]) -> list[tuple[str, Optional[dict]]]:
    """The ``ensemble`` list as ``(name, submission)`` pairs, by priority; ``model`` (this run's own submission,
    ``None`` here) goes first unless listed elsewhere. Missing or malformed files fail here, before any work.

    >>> load_ensemble([])
    [('model', None)]
    """
    entries = [str(e) for e in (entries or [])]
    if entries.count(MODEL) > 1:
        raise TTFTConfigError(f"ensemble lists '{MODEL}' (this run's submission) {entries.count(MODEL)} times")
    if MODEL not in entries:
        entries.insert(0, MODEL)
    loaded = []
    for index, entry in enumerate(entries):
        if entry == MODEL:
            loaded.append((MODEL, None))
            continue
        path = Path(entry).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ensemble[{index}]: no such submission file '{entry}'")
        try:
            submission = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SubmissionError(f"ensemble[{index}] '{entry}': not a JSON submission ({error})") from None
        if not isinstance(submission, dict):
            raise SubmissionError(f"ensemble[{index}] '{entry}': expected an object {{task_id: [...]}}, got "
                                  f"{type(submission).__name__}")
        loaded.append((str(path), submission))
    return loaded


def ensemble_submission(own: Mapping, ensemble: Sequence[tuple[str, Optional[dict]]], tasks: Sequence[Task]) -> dict:
    """Merge this run's submission (``own``) with the ``ensemble`` submissions in their priority order
    (:func:`~arc_exp.evaluation.submission.merge_submissions`: every attempt_1 in order, then every attempt_2)."""
    return merge_submissions([own if name == MODEL else submission for name, submission in ensemble], tasks)


# ---------------------------------------------------------------------------------------------------------------------
# Run folders, markers and MLflow child runs.


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file replaced in one step): a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_marker(folder: str | Path) -> Optional[dict]:
    """The ``stage.json`` of a finished stage (or task), ``None`` when it has not finished."""
    path = Path(folder) / MARKER
    return json.loads(path.read_text()) if path.exists() else None


def write_marker(folder: str | Path, info: Mapping) -> None:
    _write_json(Path(folder) / MARKER, {**info, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")})


def run_folder(resume: Optional[str], output_dir: str | Path) -> Path:
    """The run folder: ``resume`` (an earlier solve run folder, checked) or this run's ``output_dir``."""
    if not resume:
        return Path(output_dir)
    folder = Path(resume).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"resume: no such run folder '{resume}'")
    if not (folder / "submission.json").exists():
        raise TTFTConfigError(f"resume: '{resume}' is not a solve.py run folder (no submission.json)")
    return folder


def child_run(parent: Optional[EvaluationTracker], name: str, **tags) -> Optional[EvaluationTracker]:
    """A child MLflow run of ``parent`` (tag ``mlflow.parentRunId``) in the same experiment; ``None`` without one."""
    if parent is None:
        return None
    experiment = parent.client.get_experiment(parent.client.get_run(parent.run_id).info.experiment_id)
    return EvaluationTracker(parent.tracking_uri, experiment.name, name,
                             {"mlflow.parentRunId": parent.run_id, **tags})


def _lightning_logger(run: Optional[EvaluationTracker]):
    """A Lightning MLflow logger that writes into the existing child run ``run`` (the TTFT losses per step)."""
    if run is None:
        return None
    from pytorch_lightning.loggers import MLFlowLogger

    experiment = run.client.get_experiment(run.client.get_run(run.run_id).info.experiment_id)
    return MLFlowLogger(experiment_name=experiment.name, tracking_uri=run.tracking_uri, run_id=run.run_id)


def _finish(run: Optional[EvaluationTracker], status: str = "FINISHED") -> None:
    if run is not None:
        run.finish(status)


def _mean(values: Iterable[float]) -> Optional[float]:
    values = list(values)
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------------------------------------------------------------
# The solver: the three stages, the ensemble and the score.


@dataclass
class SolveResult:
    """What a solve run produced: the final submission file, its score (``None`` without solutions), the model's
    prediction metrics, the stages skipped on resume and the errors that were worked around."""

    submission: Path
    score: Optional[float] = None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_stages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Solver:
    """Everything the stages need, as plain objects (``solve.py`` builds them from the config).

    ``config`` is the resolved run config, saved as ``arc_exp.yaml`` beside every TTFT adapter so evaluation can
    check its model and encoder. ``make_generator(model)`` builds the prediction generator (tests pass a stand-in).
    """

    spec: ModelSpec
    adapter: AdapterConfig
    tokenizer: Any
    checkpoint: Checkpoint
    ttft: TTFTSettings
    evaluation: EvaluationSettings
    make_generator: Callable[[Any], Any]
    trainer_options: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    plots: tuple[int, int] = (16, 8)
    progress: bool = True

    def run(self, tasks: Sequence[Task], run_dir: str | Path, budget: Budget,
            tracker: Optional[EvaluationTracker] = None,
            ensemble: Sequence[tuple[str, Optional[dict]]] = ((MODEL, None),)) -> SolveResult:
        """Run (or resume) the stages on ``tasks`` in ``run_dir`` and write ``submission.json`` there."""
        if not tasks:
            raise TTFTConfigError("no tasks to solve")
        run_dir = Path(run_dir)
        final = run_dir / "submission.json"
        result = SolveResult(final)
        if not final.exists():  # a valid file from the first second on: a killed run still leaves a submission
            write_submission(build_submission({}, tasks), final)
        timings: dict[str, float] = {}

        began = time.perf_counter()
        dataset = self.dataset_stage(tasks, run_dir / "dataset", tracker, result) if self.ttft.enabled else None
        timings["dataset"] = time.perf_counter() - began
        began = time.perf_counter()
        try:
            adapters = self.ttft_stage(tasks, dataset, run_dir / "ttft", budget, tracker, result)
        except Exception as error:  # noqa: BLE001 - a failed TTFT must not cost the submission: predict without it
            log.exception("TTFT failed; predicting with the checkpoint instead")
            result.errors.append(f"ttft: {type(error).__name__}: {error}")
            adapters = {t.task_id: None for t in tasks}
        timings["ttft"] = time.perf_counter() - began
        began = time.perf_counter()
        own = self.predict_stage(tasks, adapters, run_dir / "predict", budget, tracker, result)
        timings["predict"] = time.perf_counter() - began

        submission = ensemble_submission(own, ensemble, tasks)
        write_submission(submission, final)
        log.info("wrote %s (%d tasks%s)", final, len(tasks),
                 "" if len(ensemble) == 1 else f", ensemble of {', '.join(name for name, _ in ensemble)}")
        self._score(submission, own, ensemble, tasks, run_dir, tracker, result, timings)
        return result

    # -- stage 1 ------------------------------------------------------------------------------------------------------

    def dataset_stage(self, tasks: Sequence[Task], folder: Path, tracker, result: SolveResult) -> TTFTDataset:
        task_ids = [t.task_id for t in tasks]
        marker = read_marker(folder)
        if marker is not None:
            self._warn_if_changed(marker, "dataset", ("n2", "holdout"))
            dataset = TTFTDataset.load(folder)
            if dataset.task_ids != task_ids:
                raise TTFTConfigError(f"resume: the run folder's dataset was built for tasks "
                                      f"{_ids_text(dataset.task_ids)} but this run selects {_ids_text(task_ids)}; "
                                      f"use the same task selection, or start a new run")
            log.info("dataset: done in an earlier run (%s), skipped", folder)
            result.skipped_stages.append("dataset")
            return dataset
        dataset = build_ttft_dataset(tasks, n2=self.ttft.n2, holdout=self.ttft.holdout)
        dataset.save(folder)
        summary = dataset.summary()
        log.info("dataset: %d TTFT tasks (n-1: %d, n-2: %d) from %d of %d tasks", summary["ttft_tasks"],
                 summary["n1_tasks"], summary["n2_tasks"], summary["tasks_with_ttft"], summary["tasks"])
        if dataset.skipped:
            note = (f"{len(dataset.skipped)} of {len(tasks)} tasks have no TTFT task ({summary['single_example_tasks']}"
                    f" with a single train example, {summary['no_example_tasks']} with none): "
                    f"{_ids_text(list(dataset.skipped))}; they are predicted without their own TTFT data")
            log.warning("dataset: %s", note)
            result.notes.append(note)
        if not dataset.tasks:
            note = "no task has 2 or more train examples: there is nothing to fine-tune on"
            log.warning("dataset: %s", note)
            result.notes.append(note)
        run = child_run(tracker, "dataset", stage="dataset")
        if run is not None:
            run.log_metrics(summary)
            run.client.log_artifact(run.run_id, str(folder / "report.json"))
        _finish(run)
        write_marker(folder, {"stage": "dataset", "summary": summary, "ttft": self.ttft.describe()})
        return dataset

    # -- stage 2 ------------------------------------------------------------------------------------------------------

    def ttft_stage(self, tasks: Sequence[Task], dataset: Optional[TTFTDataset], folder: Path, budget: Budget,
                   tracker, result: SolveResult) -> dict[str, Optional[str]]:
        """The adapter folder each task is predicted with (``None``: the starting checkpoint)."""
        none = {t.task_id: None for t in tasks}
        if dataset is None:
            log.info("ttft: disabled (ttft=none); predicting with the checkpoint")
            return none
        marker = read_marker(folder)
        if marker is not None:
            self._warn_if_changed(marker, "ttft")
            log.info("ttft: done in an earlier run (%s), skipped", folder)
            result.skipped_stages.append("ttft")
            return marker["adapters"]
        if not dataset.tasks:
            write_marker(folder, {"stage": "ttft", "adapters": none, "ttft": self.ttft.describe(),
                                  "note": "no TTFT data"})
            return none
        seconds = budget.ttft_seconds()
        if budget.limited and seconds < 60 * budget.min_ttft_minutes:
            note = (f"time budget: {budget.seconds_left():.0f} s left gives TTFT {seconds:.0f} s, less than "
                    f"budget.min_ttft_minutes={budget.min_ttft_minutes}: TTFT skipped, predicting with the checkpoint")
            log.warning("ttft: %s", note)
            result.notes.append(note)
            return none  # no marker: a resume with more time fine-tunes
        deadline = budget.clock() + seconds if budget.limited else None
        run = child_run(tracker, "ttft", stage="ttft", mode="per_task" if self.ttft.per_task else "shared")
        status = "FAILED"
        try:
            if self.ttft.per_task:
                adapters, outcomes, complete = self._per_task(dataset, folder, budget, deadline, run, result)
            else:
                outcome = self._shared(dataset, folder, budget, deadline, run)
                adapters = {task_id: outcome.adapter for task_id in dataset.task_ids}
                outcomes, complete = [outcome], True
            info = self._ttft_report(adapters, outcomes, run)
            status = "FINISHED"
        finally:
            _finish(run, status)
        if complete:
            write_marker(folder, info)
        else:  # tasks left untrained for lack of time: a resume trains them
            _write_json(folder / "partial.json", info)
        return adapters

    def _ttft_report(self, adapters: Mapping, outcomes: Sequence[FineTuneOutcome], run) -> dict:
        """The stage's ``stage.json`` content, also logged to its MLflow run (with the held-out losses)."""
        info = {"stage": "ttft", "mode": "per_task" if self.ttft.per_task else "shared", "adapters": dict(adapters),
                "ttft": self.ttft.describe(), "outcomes": [o.to_dict() for o in outcomes]}
        metrics = {"steps": sum(o.steps for o in outcomes), "seconds": sum(o.seconds for o in outcomes),
                   "stopped_by_budget": float(any(o.stopped_by_budget for o in outcomes)),
                   "adapters": float(len({a for a in adapters.values() if a}))}
        before = {k: v for o in outcomes for k, v in o.holdout_before.items()}
        after = {k: v for o in outcomes for k, v in o.holdout_after.items()}
        if before:
            info["holdout_loss"] = {"before": _mean(before.values()), "after": _mean(after.values()),
                                    "per_task": {k: [before[k], after.get(k)] for k in before}}
            metrics.update(holdout_loss_before=info["holdout_loss"]["before"],
                           holdout_loss_after=info["holdout_loss"]["after"])
            log.info("ttft: held-out answer loss %.4f before TTFT, %.4f after (mean over %d tasks)",
                     info["holdout_loss"]["before"], info["holdout_loss"]["after"], len(before))
        if run is not None:
            run.log_metrics(metrics)
        return info

    def _shared(self, dataset: TTFTDataset, folder: Path, budget: Budget, deadline: Optional[float],
                run) -> FineTuneOutcome:
        # one training dataset per test task, all of weight 1: each task weighs the same, whatever its examples
        datasets = [TrainingDataset(task_id, ttft_tasks, self.evaluation.prompt_version, swap_train_test=False)
                    for task_id, ttft_tasks in dataset.tasks.items()]
        model = load_model_for_ttft(self.spec, self.adapter, self.checkpoint, self.evaluation.seed,
                                    vocabulary_of(self.tokenizer))
        log.info("ttft: fine-tuning one shared adapter on %d tasks, %d steps%s", len(datasets), self.ttft.steps,
                 "" if deadline is None else f", at most {deadline - budget.clock():.0f} s")
        outcome = fine_tune(model, self.tokenizer, datasets, self.ttft, self.evaluation.encoder,
                            self.evaluation.prompt_version, self.evaluation.max_seq_len, self.evaluation.seed,
                            self.trainer_options, self.ttft.steps, folder, deadline, budget.clock,
                            _lightning_logger(run), list(dataset.holdout.values()), self.progress)
        outcome.adapter = str(self._save(model, folder / "adapter"))
        self._log_outcome(outcome, "shared adapter")
        del model
        gc.collect()
        return outcome

    def _per_task(self, dataset: TTFTDataset, folder: Path, budget: Budget, deadline: Optional[float], run,
                  result: SolveResult) -> tuple[dict, list, bool]:
        adapters: dict[str, Optional[str]] = {task_id: None for task_id in dataset.task_ids}
        outcomes: list[FineTuneOutcome] = []
        todo = [task_id for task_id in dataset.task_ids if task_id in dataset.tasks]
        complete, spent, steps_done = True, 0.0, 0
        for number, task_id in enumerate(todo, start=1):
            task_folder = folder / "tasks" / task_id
            done = read_marker(task_folder)
            if done is not None:  # resumed: this task's adapter is already trained
                adapters[task_id] = done["adapter"]
                outcomes.append(FineTuneOutcome(**{k: v for k, v in done.items()
                                                   if k in FineTuneOutcome.__dataclass_fields__}))
                continue
            seconds = None if deadline is None else (deadline - budget.clock()) / (len(todo) - number + 1)
            steps = steps_within(self.ttft.steps, seconds, spent / steps_done if steps_done else None)
            if steps < 1 or (seconds is not None and seconds <= 0):
                complete = False
                log.warning("ttft %d/%d task %s: no time left in the budget, predicted with the checkpoint", number,
                            len(todo), task_id)
                continue
            task_run = child_run(run, f"ttft:{task_id}", stage="ttft", task_id=task_id)
            status = "FAILED"
            try:
                model = load_model_for_ttft(self.spec, self.adapter, self.checkpoint, self.evaluation.seed,
                                            vocabulary_of(self.tokenizer))
                datasets = [TrainingDataset(task_id, dataset.tasks[task_id], self.evaluation.prompt_version,
                                            swap_train_test=False)]
                holdout = [dataset.holdout[task_id]] if task_id in dataset.holdout else []
                task_deadline = None if seconds is None else budget.clock() + seconds
                outcome = fine_tune(model, self.tokenizer, datasets, self.ttft, self.evaluation.encoder,
                                    self.evaluation.prompt_version, self.evaluation.max_seq_len,
                                    self.evaluation.seed, self.trainer_options, steps, task_folder, task_deadline,
                                    budget.clock, _lightning_logger(task_run), holdout, progress=False,
                                    task_id=task_id)
                outcome.planned_steps = self.ttft.steps
                outcome.adapter = str(self._save(model, task_folder / "adapter"))
                del model
                status = "FINISHED"
            except ValueError as error:  # e.g. no TTFT sample of this task fits data.max_seq_len
                log.warning("ttft %d/%d task %s: %s; predicted with the checkpoint", number, len(todo), task_id, error)
                result.notes.append(f"task {task_id}: no TTFT ({error})")
                outcome = FineTuneOutcome(task_id, note=str(error))
                status = "FINISHED"
            finally:
                _finish(task_run, status)
                gc.collect()
            spent, steps_done = spent + outcome.seconds, steps_done + outcome.steps
            adapters[task_id] = outcome.adapter
            outcomes.append(outcome)
            write_marker(task_folder, outcome.to_dict())
            self._log_outcome(outcome, f"{number}/{len(todo)} task {task_id}")
        return adapters, outcomes, complete

    def _save(self, model, folder: Path) -> Path:
        """The adapter (or full weights) with the tokenizer and the run config, seeded like its base model."""
        config = {**self.config, "seed": base_seed(self.checkpoint, self.evaluation.seed)}
        return save_checkpoint(model, self.tokenizer, folder, config)

    @staticmethod
    def _log_outcome(outcome: FineTuneOutcome, what: str) -> None:
        first, last = (outcome.losses[0], outcome.losses[-1]) if outcome.losses else (math.nan, math.nan)
        budget = f" (stopped by the time budget, {outcome.planned_steps} planned)" if outcome.stopped_by_budget else ""
        log.info("ttft %s: %d steps%s in %.1f s, loss %.4f -> %.4f", what, outcome.steps, budget, outcome.seconds,
                 first, last)

    def _warn_if_changed(self, marker: Mapping, stage: str, keys: Optional[Sequence[str]] = None) -> None:
        saved, now = marker.get("ttft") or {}, self.ttft.describe()
        changed = sorted(k for k in (keys or set(saved) | set(now)) if saved.get(k) != now.get(k))
        if changed:
            log.warning("resume: stage %s ran with other ttft settings (%s differ); its outputs are reused, start a "
                        "new run to apply the new settings", stage, ", ".join(f"ttft.{k}" for k in changed))

    # -- stage 3 ------------------------------------------------------------------------------------------------------

    def predict_stage(self, tasks: Sequence[Task], adapters: Mapping[str, Optional[str]], folder: Path,
                      budget: Budget, tracker, result: SolveResult) -> dict:
        """Predict every task with its model, within the budget; returns the model's submission."""
        marker = read_marker(folder)
        predicted_with = self._prediction_settings(adapters)
        if marker is not None and marker.get("settings") == predicted_with:
            log.info("predict: done in an earlier run (%s), skipped", folder)
            result.skipped_stages.append("predict")
            result.metrics = json.loads((folder / "metrics.json").read_text()).get("metrics", {})
            return json.loads((folder / "submission.json").read_text())
        n = self.evaluation.predictions_per_task
        groups: dict[Optional[str], list[Task]] = {}
        for task in tasks:  # tasks sharing a model are predicted together: it loads once
            groups.setdefault(adapters.get(task.task_id), []).append(task)
        results: dict[str, TaskResult] = {}
        generators, skipped, failed = [], [], []
        spent, made, test_left = 0.0, 0, sum(len(t.test) for t in tasks)
        bar = tqdm(total=len(tasks), desc="predict", unit="task", disable=not self.progress, dynamic_ncols=True)
        run = child_run(tracker, "predict", stage="predict")
        status = "FAILED"
        try:
            for adapter, group in groups.items():
                generator = None
                for task in group:
                    per_input = predictions_for_next(n, budget.seconds_left(), spent / made if made else None,
                                                     test_left, len(task.test))
                    test_left -= len(task.test)
                    bar.update(1)
                    if per_input == 0:
                        skipped.append(task.task_id)
                        results[task.task_id] = unpredicted_result(task, n)
                        continue
                    began = time.perf_counter()
                    try:
                        if generator is None:
                            generator = self.make_generator(self._prediction_model(adapter))
                            generators.append(generator)
                        settings = dataclasses.replace(self.evaluation, predictions_per_task=per_input)
                        done = evaluate_tasks([task], generator, self.tokenizer, settings, progress=False)
                        results[task.task_id] = _with_pass_n(done.tasks[task.task_id], n)
                        made += per_input * len(task.test)
                    except Exception as error:  # noqa: BLE001 - one task's failure must not cost the submission
                        log.exception("predict: task %s failed; its attempts are the fallbacks", task.task_id)
                        failed.append(task.task_id)
                        result.errors.append(f"predict {task.task_id}: {type(error).__name__}: {error}")
                        results[task.task_id] = unpredicted_result(task, n)
                    spent += time.perf_counter() - began
                    scored = [r.metrics["pass_2"] for r in results.values() if r.metrics is not None]
                    if scored:
                        bar.set_postfix(pass_2=f"{sum(scored) / len(scored):.3f}", refresh=False)
                del generator
                gc.collect()
            bar.close()
            ordered = {t.task_id: results[t.task_id] for t in tasks}
            metrics = aggregate_metrics({k: r.metrics for k, r in ordered.items() if r.metrics is not None}, n)
            stats: dict[str, float] = {}
            for generator in generators:
                for key, value in (getattr(getattr(generator, "stats", None), "as_dict", dict)()).items():
                    stats[key] = stats.get(key, 0) + value
            evaluation = EvaluationResult(ordered, n, metrics, spent, stats)
            paths = write_outputs(evaluation, tasks, folder, self.plots[0], self.plots[1], self.evaluation.seed)
            if run is not None:
                run.log_result(evaluation, paths)
                run.log_metrics({"skipped_tasks": len(skipped), "failed_tasks": len(failed)})
            status = "FINISHED"
        finally:
            bar.close()
            _finish(run, status)
        if skipped:
            note = (f"time budget: {len(skipped)} of {len(tasks)} tasks got no prediction (fallback attempts): "
                    f"{_ids_text(skipped)}")
            log.warning("predict: %s", note)
            result.notes.append(note)
        if not skipped and not failed:  # a stage cut by the budget or by errors runs again on resume
            write_marker(folder, {"stage": "predict", "settings": predicted_with})
        result.metrics = metrics
        log.info("predict: %d tasks, %s", len(tasks), {k: round(v, 4) for k, v in metrics.items()})
        return evaluation.submission

    def _prediction_settings(self, adapters: Mapping[str, Optional[str]]) -> dict:
        """What the predictions depend on: a resumed run predicts again when any of it changed."""
        e = self.evaluation
        policy = {k: v for k, v in dataclasses.asdict(e.policy).items() if k != "task_augmentations"}
        return json.loads(json.dumps({
            "adapters": dict(adapters), "checkpoint": str(self.checkpoint.folder), "encoder": repr(e.encoder),
            "prompt": e.prompt_version, "views": policy, "predictions_per_task": e.predictions_per_task,
            "sampling": e.sampling, "seed": e.seed, "max_seq_len": e.max_seq_len, "max_new_tokens": e.max_new_tokens}))

    def _prediction_model(self, adapter: Optional[str]):
        checkpoint = self.checkpoint if adapter is None else \
            Checkpoint(Path(adapter), config=read_checkpoint_config(adapter))
        return load_model_for_evaluation(self.spec, self.adapter, checkpoint, self.evaluation.seed,
                                         vocabulary_of(self.tokenizer))

    # -- score --------------------------------------------------------------------------------------------------------

    def _score(self, submission: Mapping, own: Mapping, ensemble, tasks: Sequence[Task], run_dir: Path, tracker,
               result: SolveResult, timings: Mapping[str, float]) -> None:
        metrics = {f"seconds/{stage}": value for stage, value in timings.items()}
        metrics["errors"] = len(result.errors)
        if any(t.has_solutions for t in tasks):
            score = score_submission(submission, tasks)
            parts = {name: score_submission(own if name == MODEL else sub, tasks)["score"] for name, sub in ensemble}
            _write_json(run_dir / "score.json", {**score, "parts": parts})
            result.score = score["score"]
            metrics["score"] = score["score"]
            if len(ensemble) > 1:
                metrics.update({f"score/{i}_{Path(name).stem}": value for i, (name, value) in
                                enumerate(parts.items())})
            log.info("score: %.4f over %d tasks with known test outputs%s", score["score"], score["n_tasks"],
                     "" if len(parts) == 1 else f" ({', '.join(f'{k}: {v:.4f}' for k, v in parts.items())})")
        if tracker is not None:
            tracker.log_metrics({**metrics, **result.metrics})
            tracker.set_tags({"skipped_stages": ",".join(result.skipped_stages), "run_dir": str(run_dir.resolve()),
                              "notes": " | ".join(result.notes)[:5000]})
            for name in ("submission.json", "score.json", "dataset/report.json", "ttft/stage.json"):
                if (run_dir / name).exists():
                    tracker.client.log_artifact(tracker.run_id, str(run_dir / name),
                                                str(Path(name).parent) if "/" in name else None)
        for error in result.errors:
            log.error("worked around: %s", error)


def _ids_text(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def load_tasks(challenges: Optional[str], eval_config: Optional[Mapping]) -> list[Task]:
    """The tasks to solve: ``challenges`` (any source :func:`~arc_exp.data.sources.load_source` reads) when given,
    else the data config's ``eval`` task set."""
    from arc_exp.data.selection import TaskSetSpec
    from arc_exp.evaluation.pipeline import load_eval_tasks

    if challenges:
        tasks = TaskSetSpec(source=str(challenges)).load()
        if not tasks:
            raise TTFTConfigError(f"challenges '{challenges}' holds no task")
        return tasks
    return load_eval_tasks(eval_config)
