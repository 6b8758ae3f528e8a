"""Evaluation: a checkpoint's predictions on ARC tasks, voted into two attempts, scored and written out.

The pipeline of ``evaluate.py``, one function per step so each is testable without Hydra::

    views      for each test input, ``predictions_per_task`` augmented views (identity, D8, then color permutations)
    prompts    the same encoder and prompt code as training, on the augmented task (test outputs removed)
    generate   any :class:`~arc_exp.inference.generator.Generator` (the HF model, or a stand-in in tests)
    decode     text -> grid with the encoder; text that is not a grid is an unanswered prediction, never an error
    revert     the grid back to the original orientation and colors
    vote       identical grids grouped, ranked by votes then mean log-probability; the top two are the attempts
               (``inference.selection=poe``: the candidates rescored under every view instead, :func:`poe_rank`)
    metrics    the seeds' metrics per test input, per task and over the tasks with known outputs
    outputs    predictions.json, submission.json, per_task.csv, metrics.json, plots/ (and MLflow, see below)

Checkpoints (``checkpoint=``) are an adapter (or full model) folder ``<run>/checkpoints/step-NNNNNN``, a training
run folder (its last step folder, or all of them) or an MLflow run id (its ``output_dir`` / ``adapter_path`` tags).
Their ``arc_exp.yaml`` says which base model and encoder they were trained with; a mismatch fails before generation.

Answer length: a prediction may not be longer than a plausible answer. The absolute cap is the token length of an
encoded 30x30 grid (plus the end-of-turn token); each prompt gets a tighter bound, twice the token length of the
largest grid among the view's train outputs and its test input, clipped to the cap. ARC outputs are rarely more than
twice as long as every grid the task shows, and the bound keeps a model that never stops from costing a 30x30 grid.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from tqdm.auto import tqdm

from arc_exp.data.augmentation import Augmentation, AugmentationPolicy
from arc_exp.data.tasks import Example, Task
from arc_exp.data.encoders import ENCODER_COMPOSITIONS, GridEncoder, GridParseError
from arc_exp.data.grid import MAX_SIDE, Grid, InvalidGridError
from arc_exp.inference.generator import (
    Generation, GenerationRequest, Generator, Scorer, ScoreRequest, Searcher, finite_or_none,
)
from arc_exp.evaluation.metrics import pass_n_key, task_metrics, test_input_metrics, aggregate_metrics
from arc_exp.evaluation.plots import plot_prediction
from arc_exp.data.prompts import check_prompt_version, fit_prompt
from arc_exp.evaluation.submission import build_submission, validate_submission, write_submission
from arc_exp.evaluation.voting import Prediction, VotedGrid, vote

log = logging.getLogger(__name__)


class EvaluationError(ValueError):
    """A setting or input that makes the evaluation impossible; raised before generation starts."""


class CheckpointError(EvaluationError):
    """A checkpoint that cannot be found or does not match the configured model or encoder."""


# ---------------------------------------------------------------------------------------------------------------------
# Settings and their checks.


def check_predictions_per_task(n: Any) -> int:
    """``predictions_per_task`` as an int >= 1, else :class:`EvaluationError` naming the key."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise EvaluationError(f"predictions_per_task must be an integer >= 1, got {n!r}")
    return n


def inference_views(policy: AugmentationPolicy, n: int, sampling: bool, rng: random.Random) -> list[Augmentation]:
    """The ``n`` augmented views of one test input: :meth:`AugmentationPolicy.enumerate_views`.

    When the policy has fewer distinct views than ``n`` (e.g. ``augmentation=none``), sampling repeats the views in
    turn (each repeat is a new sample); greedy decoding would only repeat a prediction, so it is an error.

    >>> [v.name for v in inference_views(AugmentationPolicy(color_permutation=False), 3, False, random.Random(0))]
    ['d0', 'd1', 'd2']
    """
    check_predictions_per_task(n)
    available = policy.max_views
    if available is not None and n > available:
        if not sampling:
            raise EvaluationError(
                f"predictions_per_task={n} but the augmentation (dihedral={policy.dihedral}, color_permutation="
                f"{policy.color_permutation}) gives only {available} distinct view(s), and greedy decoding of a "
                f"repeated view repeats its prediction: use predictions_per_task<={available}, an augmentation with "
                f"color_permutation (e.g. augmentation=default), or inference=sampling")
        distinct = policy.enumerate_views(available, rng)
        return [distinct[i % available] for i in range(n)]
    return policy.enumerate_views(n, rng)


def check_views(policy: AugmentationPolicy, n: int, sampling: bool) -> None:
    """Fail early (before any model loads) when ``policy`` cannot give ``n`` views (see :func:`inference_views`)."""
    inference_views(policy, n, sampling, random.Random(0))


def load_eval_tasks(eval_config: Optional[Mapping]) -> list[Task]:
    """The tasks of a data config's ``eval`` task set (:class:`~arc_exp.data.selection.TaskSetSpec` keys); an
    absent or empty set is an :class:`EvaluationError`."""
    from arc_exp.data.selection import TaskSetSpec

    if not eval_config:
        raise EvaluationError("the data config has no 'eval' task set (data.eval) to evaluate on")
    tasks = TaskSetSpec.from_config(eval_config).load()
    if not tasks:
        raise EvaluationError(f"data.eval selects no tasks: {dict(eval_config)}")
    return tasks


def encoder_override(encoder: GridEncoder) -> str:
    """The command-line override that selects ``encoder``: ``encoder=<name>`` for a known composition."""
    names = {spec: name for name, spec in ENCODER_COMPOSITIONS.items()}
    name = names.get(repr(encoder))
    return f"encoder={name}" if name else f"an encoder config building {encoder!r}"


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints.


@dataclass
class Checkpoint:
    """What to evaluate: a model folder (``None`` = the base model), its training step and training run."""

    folder: Optional[Path] = None
    step: Optional[int] = None
    training_run_id: Optional[str] = None
    config: Optional[dict] = None  # the checkpoint's arc_exp.yaml (the resolved training config)

    @property
    def label(self) -> str:
        return "base model" if self.folder is None else str(self.folder)


def _is_model_folder(path: Path) -> bool:
    return (path / "adapter_config.json").exists() or (path / "config.json").exists()


def _step_of(folder: Path) -> Optional[int]:
    name = folder.name
    if name.startswith("step-") and name[5:].isdigit():
        return int(name[5:])
    return None


def resolve_checkpoints(checkpoint: Optional[str], all_checkpoints: bool = False,
                        tracking_uri: Optional[str] = None) -> list[Checkpoint]:
    """The checkpoints that ``checkpoint=`` (and ``all_checkpoints=``) name, oldest step first.

    - ``None``: the base model;
    - a model folder (``adapter_config.json`` or ``config.json`` inside): that folder; with ``all_checkpoints``
      every step folder next to it;
    - a training run folder: its last ``checkpoints/step-*`` folder, or all of them;
    - otherwise an MLflow run id in ``tracking_uri``: the run's ``output_dir`` tag (a run folder) or ``adapter_path``.

    The training run id is kept for the link between the evaluation run and the training run (looked up by
    ``output_dir`` when a folder is given). Raises :class:`CheckpointError` naming what was not found.
    """
    if checkpoint is None or str(checkpoint).strip() in ("", "null", "None"):
        if all_checkpoints:
            raise CheckpointError("all_checkpoints=true needs checkpoint=<run folder or MLflow run id>")
        return [Checkpoint()]
    from arc_exp.model.checkpoints import list_checkpoints, read_checkpoint_config  # imports Lightning: only when needed

    text = str(checkpoint).strip()
    path = Path(text).expanduser()
    run_id = None
    if not path.exists():
        run_id, path = text, _folder_of_mlflow_run(text, tracking_uri)
    if _is_model_folder(path):
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
        if all_checkpoints:
            if run_dir is None:
                raise CheckpointError(f"all_checkpoints=true: '{path}' is a model folder outside a run's "
                                      f"checkpoints/ folder; give the run folder or its MLflow run id")
            folders = list_checkpoints(run_dir)
        else:
            folders = [(_step_of(path), path)]
    else:
        run_dir = path
        folders = [(step, folder) for step, folder in list_checkpoints(path) if _is_model_folder(folder)]
        if not folders:
            raise CheckpointError(f"checkpoint '{text}': '{path}' holds no adapter_config.json or config.json and no "
                                  f"checkpoints/step-* folders with a saved model")
        if not all_checkpoints:
            folders = folders[-1:]
    if run_id is None and run_dir is not None and tracking_uri:
        run_id = find_training_run(tracking_uri, run_dir)
    return [Checkpoint(Path(folder), step, run_id, read_checkpoint_config(folder)) for step, folder in folders]


def _folder_of_mlflow_run(run_id: str, tracking_uri: Optional[str]) -> Path:
    if not tracking_uri:
        raise CheckpointError(f"checkpoint '{run_id}': no such file or folder, and without a tracking store "
                              f"(logger=none) it cannot be looked up as an MLflow run id")
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except MlflowException:
        raise CheckpointError(f"checkpoint '{run_id}': no such file or folder, and no MLflow run with this id in "
                              f"{tracking_uri}") from None
    tags = run.data.tags
    for key in ("output_dir", "adapter_path"):
        if tags.get(key) and Path(tags[key]).exists():
            return Path(tags[key])
    found = {key: tags[key] for key in ("output_dir", "adapter_path") if tags.get(key)}
    raise CheckpointError(f"checkpoint '{run_id}': the MLflow run has no existing output_dir or adapter_path "
                          f"folder (tags: {found or 'none'}); was it trained on another machine?")


def find_training_run(tracking_uri: str, run_dir: Path) -> Optional[str]:
    """The id of the MLflow run whose ``output_dir`` tag is ``run_dir``, or ``None``."""
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return None
        folder = str(Path(run_dir).resolve()).replace("'", "\\'")
        runs = client.search_runs(experiments, f"tags.output_dir = '{folder}'", max_results=1)
        return runs[0].info.run_id if runs else None
    except Exception as error:  # noqa: BLE001 - the link is a convenience; never fail an evaluation on it
        log.warning("could not look up the training run of %s: %s", run_dir, error)
        return None


def check_checkpoint(checkpoint: Checkpoint, model_name: str, encoder: GridEncoder, method: str,
                     prompt_version: Optional[str] = None) -> None:
    """Fail when the checkpoint was trained with another base model, encoder or fine-tuning method than configured.

    The message says which override evaluates it. A different prompt version only warns (a model trained on a
    mixture of prompts may be evaluated with any of them).
    """
    saved = checkpoint.config
    if checkpoint.folder is None:
        return
    if saved is None:
        log.warning("checkpoint %s has no arc_exp.yaml: cannot check its model and encoder", checkpoint.folder)
        return
    where = f"checkpoint '{checkpoint.folder}'"
    saved_model = (saved.get("model") or {}).get("name")
    if saved_model and saved_model != model_name:
        raise CheckpointError(f"{where} was trained from model '{saved_model}' but the config asks for "
                              f"'{model_name}'; evaluate it with model={saved_model}")
    if saved.get("encoder"):
        from hydra.utils import instantiate

        saved_encoder = instantiate(saved["encoder"])
        if repr(saved_encoder) != repr(encoder):
            raise CheckpointError(f"{where} was trained with encoder {saved_encoder!r} but the config uses "
                                  f"{encoder!r}; evaluate it with {encoder_override(saved_encoder)}")
    saved_method = (saved.get("lora") or {}).get("method")
    if saved_method and saved_method != method:
        raise CheckpointError(f"{where} was trained with lora.method={saved_method} but the config has "
                              f"lora.method={method}; evaluate it with lora={saved_method}")
    saved_prompt = (saved.get("prompt") or {}).get("version")
    if prompt_version and saved_prompt and saved_prompt != prompt_version:
        log.warning("%s was trained with prompt %s, evaluating with prompt %s", where, saved_prompt, prompt_version)


def load_model_for_evaluation(spec, adapter_config, checkpoint: Checkpoint, seed: int = 0, vocabulary=None):
    """The model to evaluate, in eval mode: the base model, base + LoRA adapter merged, or full fine-tuned weights.

    A LoRA adapter is merged into the base weights (faster generation), except on a 4-bit base (QLoRA). A tiny
    random base model is rebuilt with the seed of the training run so the adapter sits on the same weights.
    ``vocabulary`` (a :class:`~arc_exp.model.vocabulary.ReducedVocabulary`, see ``resolve_vocabulary``) reduces the base
    model before the adapter loads; a checkpoint with a ``vocabulary.json`` must be given that vocabulary.
    """
    from arc_exp.model.loader import load_model, resolve_dtype
    from arc_exp.model.vocabulary import VocabularyError, apply_vocabulary, check_checkpoint_vocabulary

    quantization = adapter_config.quantization_config()
    folder = checkpoint.folder
    if checkpoint.config and isinstance(checkpoint.config.get("seed"), int):
        seed = checkpoint.config["seed"]
    try:
        check_checkpoint_vocabulary(folder, vocabulary)
    except VocabularyError as error:
        raise CheckpointError(str(error)) from None
    if folder is None:
        return apply_vocabulary(load_model(spec, quantization_config=quantization, seed=seed), vocabulary).eval()
    if adapter_config.is_peft:
        if not (folder / "adapter_config.json").exists():
            raise CheckpointError(f"checkpoint '{folder}' has no adapter_config.json (full model weights?); "
                                  f"evaluate it with lora=full")
        from peft import PeftModel

        from arc_exp.model.adapters import check_adapter_folder

        base = apply_vocabulary(load_model(spec, quantization_config=quantization, seed=seed), vocabulary)
        check_adapter_folder(str(folder), base)
        model = PeftModel.from_pretrained(base, str(folder))
        if not adapter_config.load_in_4bit:
            model = model.merge_and_unload()
        return model.eval()
    if not (folder / "config.json").exists():
        raise CheckpointError(f"checkpoint '{folder}' has no config.json (a LoRA adapter?); "
                              f"evaluate it with lora=lora")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=resolve_dtype(spec.dtype))
    return apply_vocabulary(model, vocabulary).eval()  # weights saved reduced stay as they are


# ---------------------------------------------------------------------------------------------------------------------
# Prompts and answer lengths.


def answer_token_cap(encoder: GridEncoder, tokenizer, limit: Optional[int] = None) -> int:
    """Tokens of the longest plausible answer: an encoded 30x30 grid plus the end-of-turn token (``limit`` caps it).

    Digits may merge into fewer tokens for uniform rows, so the longest of a uniform and a varied grid counts.
    """
    grids = [[[0] * MAX_SIDE for _ in range(MAX_SIDE)],
             [[(r * 7 + c * 3) % 10 for c in range(MAX_SIDE)] for r in range(MAX_SIDE)]]
    cap = max(_token_count(tokenizer, encoder.encode(g)) for g in grids) + 1
    return min(cap, limit) if limit else cap


def answer_token_bound(task: Task, test_index: int, encoder: GridEncoder, tokenizer, cap: int) -> int:
    """The answer tokens allowed for one test input: twice the tokens of the largest grid among the train outputs and
    the test input, plus the end-of-turn token, at most ``cap``."""
    grids = [e.output for e in task.train if e.output is not None] + [task.test[test_index].input]
    longest = max(_token_count(tokenizer, encoder.encode(g)) for g in grids)
    return min(cap, 2 * longest + 1)


def _token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class ViewKey:
    """Which prediction a generation request is for."""

    task_id: str
    test_index: int
    view: int  # index among the test input's views
    augmentation: str


@dataclass
class ViewPrompt:
    key: ViewKey
    augmentation: Augmentation
    request: Optional[GenerationRequest]  # None when even one train example does not fit max_seq_len
    dropped_examples: int = 0


def view_prompt(task: Task, test_index: int, augmentation: Augmentation, view: int, encoder: GridEncoder,
                prompt_version: str, tokenizer, cap: int, max_seq_len: int) -> ViewPrompt:
    """The generation request for one augmented view of one test input.

    Test outputs are removed before the prompt is built, so no prompt version can leak a solution. Prompt plus
    answer bound must fit ``max_seq_len``: the last train examples are dropped until they do (as training does).
    """
    hidden = task.replace(test=[Example(e.input) for e in task.test])
    augmented = augmentation.apply_task(hidden)
    bound = answer_token_bound(augmented, test_index, encoder, tokenizer, cap)
    key = ViewKey(task.task_id, test_index, view, augmentation.name)
    fitted = fit_prompt(augmented, encoder, prompt_version, test_index, tokenizer, bound, max_seq_len)
    if fitted is None:
        return ViewPrompt(key, augmentation, None, len(augmented.train))
    prompt, ids, dropped = fitted
    return ViewPrompt(key, augmentation, GenerationRequest(prompt, bound, key, ids), dropped)


# ---------------------------------------------------------------------------------------------------------------------
# Results.


@dataclass
class PredictionRecord:
    """One prediction as predictions.json stores it: the reverted grid (``None`` = unanswered) and how it came."""

    augmentation: str
    grid: Optional[Grid]
    logprob: float
    n_tokens: int = 0
    finished: bool = True
    dropped_examples: int = 0
    text: str = ""
    skipped: bool = False  # the prompt did not fit max_seq_len: nothing was generated

    def to_prediction(self) -> Prediction:
        return Prediction(self.grid, self.logprob, self.augmentation)

    def to_dict(self) -> dict:
        out = {"augmentation": self.augmentation, "grid": self.grid, "logprob": finite_or_none(self.logprob),
               "n_tokens": self.n_tokens, "finished": self.finished, "dropped_examples": self.dropped_examples}
        if self.grid is None:  # keep what the model wrote when it is not a grid, to see why
            out["text"] = self.text[:500]
        if self.skipped:
            out["skipped"] = True
        return out


@dataclass
class TestInputResult:
    task_id: str
    test_index: int
    test_input: Grid
    expected: Optional[Grid]
    predictions: list[PredictionRecord]
    voted: list[VotedGrid]
    attempts: list[Grid]  # the two submitted grids (voted, completed with fallbacks)
    metrics: Optional[dict[str, float]] = None  # None when the expected output is unknown
    poe: Optional[list["PoeScore"]] = None  # selection=poe: the scores of the voted candidates, in vote order

    __test__ = False  # not a pytest test class

    @property
    def correct(self) -> Optional[bool]:
        return None if self.metrics is None else self.metrics["pass_2"] == 1.0

    def to_dict(self) -> dict:
        return {
            "test_index": self.test_index,
            "expected": self.expected,
            "attempts": self.attempts,
            "metrics": self.metrics,
            "selection": "vote" if self.poe is None else "poe",
            "candidates": [{"grid": v.grid, "votes": v.count, "mean_logprob": finite_or_none(v.mean_logprob),
                            "augmentations": v.augmentations,
                            **(self.poe[i].to_dict() if self.poe is not None and i < len(self.poe) else {})}
                           for i, v in enumerate(self.voted)],
            "predictions": [p.to_dict() for p in self.predictions],
        }


@dataclass
class TaskResult:
    task_id: str
    source: str
    test_inputs: list[TestInputResult]
    metrics: Optional[dict[str, float]] = None  # None when no test output is known


@dataclass
class EvaluationResult:
    tasks: dict[str, TaskResult]
    predictions_per_task: int
    metrics: dict[str, float] = field(default_factory=dict)  # the seeds' metrics over the scored tasks
    seconds: float = 0.0
    generation_stats: dict[str, float] = field(default_factory=dict)

    @property
    def submission(self) -> dict:
        return {task_id: [{"attempt_1": t.attempts[0], "attempt_2": t.attempts[1]} for t in result.test_inputs]
                for task_id, result in self.tasks.items()}

    def summary(self) -> dict[str, float]:
        """Counts and speed, logged beside the metrics."""
        test_inputs = [t for r in self.tasks.values() for t in r.test_inputs]
        n_predictions = sum(len(t.predictions) for t in test_inputs)
        return {
            "n_tasks": len(self.tasks),
            "n_scored_tasks": sum(r.metrics is not None for r in self.tasks.values()),
            "n_test_inputs": len(test_inputs),
            "n_predictions": n_predictions,
            "n_skipped_prompts": sum(p.skipped for t in test_inputs for p in t.predictions),
            "eval_seconds": self.seconds,
            "predictions_per_second": n_predictions / self.seconds if self.seconds > 0 else 0.0,
        }


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline.


@dataclass
class EvaluationSettings:
    """Everything :func:`evaluate_tasks` needs besides the tasks, the generator and the tokenizer."""

    encoder: GridEncoder
    prompt_version: str
    policy: AugmentationPolicy
    predictions_per_task: int = 8
    sampling: bool = False  # repeated views give new predictions (see inference_views)
    seed: int = 0
    max_seq_len: int = 8192
    max_new_tokens: Optional[int] = None  # a hard cap on answer tokens (inference.max_new_tokens)
    requests_per_call: int = 8  # prompts gathered (whole tasks at a time) before each generate() call
    search: bool = False  # inference.sampler=dfs: every answer above the threshold per view (generator.search)
    selection: str = "vote"  # inference.selection: vote | poe
    poe_reduce: str = "sum"  # poe: sum or mean of a candidate's log-probabilities over the views
    poe_max_candidates: int = 8  # poe: the most voted candidates rescored

    def __post_init__(self) -> None:
        check_predictions_per_task(self.predictions_per_task)
        if self.selection not in ("vote", "poe"):
            raise EvaluationError(f"inference.selection: unknown selection '{self.selection}'; use vote or poe")
        if self.poe_reduce not in ("sum", "mean"):
            raise EvaluationError(f"inference.poe_reduce: use sum or mean, got '{self.poe_reduce}'")
        check_prompt_version(self.prompt_version)
        if self.max_seq_len < 16:
            raise EvaluationError(f"data.max_seq_len must be at least 16, got {self.max_seq_len}")


def settings_from_config(cfg, inference, predictions_per_task: Any) -> EvaluationSettings:
    """The settings of a composed run config (its encoder, prompt, augmentation, seed and data.max_seq_len) with
    ``inference`` (an :class:`~arc_exp.inference.generator.InferenceConfig`); the views are checked before any model loads.
    evaluate.py, solve.py and the evaluation after training all build their settings here."""
    from hydra.utils import instantiate

    settings = EvaluationSettings(
        encoder=instantiate(cfg.encoder), prompt_version=cfg.prompt.version, policy=instantiate(cfg.augmentation),
        predictions_per_task=check_predictions_per_task(predictions_per_task), sampling=inference.do_sample,
        seed=cfg.seed, max_seq_len=cfg.data.get("max_seq_len", 8192), max_new_tokens=inference.max_new_tokens,
        requests_per_call=inference.batch_size, search=inference.sampler == "dfs", selection=inference.selection,
        poe_reduce=inference.poe_reduce, poe_max_candidates=inference.poe_max_candidates)
    check_views(settings.policy, settings.predictions_per_task, settings.sampling)
    return settings


def decode_prediction(generation: Generation, encoder: GridEncoder, augmentation: Augmentation) -> Optional[Grid]:
    """The generated grid mapped back to the original task, or ``None`` when the text is not a grid.

    >>> from arc_exp.data.encoders import MinimalGridEncoder
    >>> decode_prediction(Generation("12\\n34", -0.1), MinimalGridEncoder(), Augmentation(dihedral=1))
    [[2, 4], [1, 3]]
    >>> decode_prediction(Generation("12\\n3", -0.1), MinimalGridEncoder(), Augmentation()) is None
    True
    """
    try:
        return augmentation.revert_grid(encoder.decode(generation.text))
    except (GridParseError, InvalidGridError):
        return None


def evaluate_tasks(tasks: Sequence[Task], generator: Generator, tokenizer, settings: EvaluationSettings,
                   progress: bool = True) -> EvaluationResult:
    """Predict, vote and score every test input of ``tasks`` (see the module docstring).

    Tasks are sent to the generator a few at a time (at least ``settings.requests_per_call`` prompts, whole tasks),
    so the generator can batch prompts of similar length while the progress bar shows tasks done and the running
    accuracy and vote_2 of the scored tasks.
    """
    if not tasks:
        raise EvaluationError("no tasks to evaluate")
    if settings.search and not isinstance(generator, Searcher):
        raise EvaluationError(f"inference.sampler=dfs needs a generator that searches; "
                              f"{type(generator).__name__} does not")
    if settings.selection == "poe" and not isinstance(generator, Scorer):
        raise EvaluationError(f"inference.selection=poe needs a generator that scores answers; "
                              f"{type(generator).__name__} does not")
    start = time.perf_counter()
    cap = answer_token_cap(settings.encoder, tokenizer, settings.max_new_tokens)
    results: dict[str, TaskResult] = {}
    bar = tqdm(total=len(tasks), desc="evaluate", unit="task", disable=not progress, dynamic_ncols=True)
    try:
        for chunk in _task_chunks(tasks, settings.predictions_per_task, settings.requests_per_call):
            prompts = {task.task_id: _task_prompts(task, settings, tokenizer, cap) for task in chunk}
            requests = [p.request for per_task in prompts.values() for p in per_task if p.request is not None]
            if not requests:
                answers = []
            elif settings.search:
                answers = generator.search(requests)
            else:
                answers = [[generation] for generation in generator.generate(requests)]
            if len(answers) != len(requests):
                raise RuntimeError(f"the generator returned {len(answers)} answers for {len(requests)} prompts")
            generations = {request.key: answer for request, answer in zip(requests, answers)}
            records = {task.task_id: _task_records(task, prompts[task.task_id], generations, settings)
                       for task in chunk}
            votes = {task_id: [vote(r.to_prediction() for r in per_test) for per_test in per_task]
                     for task_id, per_task in records.items()}
            poe = (poe_select(chunk, prompts, votes, generator, settings) if settings.selection == "poe"
                   else {})
            for task in chunk:
                results[task.task_id] = _score_task(task, records[task.task_id], votes[task.task_id],
                                                    poe.get(task.task_id), settings)
            bar.update(len(chunk))
            bar.set_postfix(_running(results.values()), refresh=False)
    finally:
        bar.close()
    scored = {task_id: r.metrics for task_id, r in results.items() if r.metrics is not None}
    metrics = aggregate_metrics(scored, settings.predictions_per_task)
    stats = getattr(generator, "stats", None)
    return EvaluationResult(results, settings.predictions_per_task, metrics, time.perf_counter() - start,
                            stats.as_dict() if stats is not None else {})


def _task_chunks(tasks: Sequence[Task], n: int, requests_per_call: int) -> Iterable[list[Task]]:
    chunk, count = [], 0
    for task in tasks:
        chunk.append(task)
        count += n * len(task.test)
        if count >= requests_per_call:
            yield chunk
            chunk, count = [], 0
    if chunk:
        yield chunk


def _task_prompts(task: Task, settings: EvaluationSettings, tokenizer, cap: int) -> list[ViewPrompt]:
    # one seeded RNG per task: the views of a task do not depend on which other tasks are evaluated
    rng = random.Random(f"{settings.seed}:{task.task_id}")
    views = inference_views(settings.policy, settings.predictions_per_task, settings.sampling, rng)
    return [view_prompt(task, test_index, augmentation, view, settings.encoder, settings.prompt_version, tokenizer,
                        cap, settings.max_seq_len)
            for test_index in range(len(task.test)) for view, augmentation in enumerate(views)]


def _task_records(task: Task, prompts: list[ViewPrompt], generations: Mapping[ViewKey, list[Generation]],
                  settings: EvaluationSettings) -> list[list[PredictionRecord]]:
    """The predictions of each test input of ``task``: one per view (greedy, sampling), or one per answer the
    depth-first search found for the view (``search``; a view with none is one unanswered prediction)."""
    per_test: list[list[PredictionRecord]] = [[] for _ in task.test]
    for prompt in prompts:
        records, name = per_test[prompt.key.test_index], prompt.augmentation.name
        if prompt.request is None:
            log.warning("task %s test input %d view %s: the prompt does not fit data.max_seq_len=%d even with one "
                        "train example; counted as unanswered", task.task_id, prompt.key.test_index, name,
                        settings.max_seq_len)
            records.append(PredictionRecord(name, None, float("nan"), dropped_examples=prompt.dropped_examples,
                                            skipped=True))
            continue
        found = generations[prompt.key]
        if not found:  # the search found no answer above its threshold
            records.append(PredictionRecord(name, None, float("nan"), 0, False, prompt.dropped_examples,
                                            "(no answer above inference.dfs_threshold)"))
        for generation in found:
            grid = decode_prediction(generation, settings.encoder, prompt.augmentation)
            records.append(PredictionRecord(name, grid, generation.mean_logprob, generation.n_tokens,
                                            generation.finished, prompt.dropped_examples, generation.text))
    return per_test


def _score_task(task: Task, per_test: list[list[PredictionRecord]], votes: list[list[VotedGrid]],
                poe: Optional[list[list["PoeScore"]]], settings: EvaluationSettings) -> TaskResult:
    n = settings.predictions_per_task
    # the submission's two attempts: the two best ranked grids (by votes, or by poe), completed with fallbacks
    ranked = [[v.grid for v in voted] if poe is None else [score.grid for score in poe_rank(poe[i])]
              for i, voted in enumerate(votes)]
    entries = build_submission({task.task_id: ranked}, [task])[task.task_id]

    test_results = []
    for test_index, (example, records, voted, entry) in enumerate(zip(task.test, per_test, votes, entries)):
        attempts = [entry["attempt_1"], entry["attempt_2"]]
        metrics = None
        if example.output is not None:
            metrics = test_input_metrics([r.to_prediction() for r in records], example.output, attempts, n)
        test_results.append(TestInputResult(task.task_id, test_index, example.input, example.output, records,
                                            voted, attempts, metrics, None if poe is None else poe[test_index]))
    scored = [t.metrics for t in test_results if t.metrics is not None]
    return TaskResult(task.task_id, task.source, test_results, task_metrics(scored, n) if scored else None)


def _running(results: Iterable[TaskResult]) -> dict[str, str]:
    scored = [r.metrics for r in results if r.metrics is not None]
    if not scored:
        return {}
    return {key: f"{sum(m[key] for m in scored) / len(scored):.3f}" for key in ("accuracy", "vote_2")}


# ---------------------------------------------------------------------------------------------------------------------
# Product-of-experts selection.


@dataclass
class PoeScore:
    """A candidate grid's log-probability under each augmented view (by view name; ``None`` when the view's prompt
    did not fit) and their reduction (sum or mean over the scored views): the candidate's product-of-experts score."""

    grid: Grid
    votes: int
    view_logprobs: dict[str, Optional[float]]
    score: float

    def to_dict(self) -> dict:
        return {"poe_score": finite_or_none(self.score),
                "view_logprobs": {k: finite_or_none(v) for k, v in self.view_logprobs.items()}}


def poe_rank(scores: Sequence[PoeScore]) -> list[PoeScore]:
    """Candidates best first: higher product-of-experts score first; ties (and NaN scores, last) keep vote order.

    >>> [s.grid for s in poe_rank([PoeScore([[1]], 3, {}, -4.0), PoeScore([[2]], 1, {}, -1.5),
    ...                            PoeScore([[3]], 1, {}, float("nan"))])]
    [[[2]], [[1]], [[3]]]
    """
    return sorted(scores, key=lambda s: -s.score if math.isfinite(s.score) else math.inf)


def poe_requests(prompts: Sequence[ViewPrompt], candidates: Sequence[VotedGrid], encoder: GridEncoder
                 ) -> list[ScoreRequest]:
    """One scoring request per (candidate, view) of a test input: the candidate in the view's orientation and
    colors, written by the encoder, as the answer to the view's prompt. Views whose prompt did not fit are left out.
    Keys are ``(candidate index, view name)``."""
    requests = []
    views = list({p.augmentation.name: p for p in prompts if p.request is not None}.values())  # repeats score alike
    for index, candidate in enumerate(candidates):
        for prompt in views:
            answer = encoder.encode(prompt.augmentation.apply_grid(candidate.grid))
            requests.append(ScoreRequest(prompt.request.prompt, answer, (index, prompt.augmentation.name),
                                         prompt.request.prompt_ids))
    return requests


def poe_scores(candidates: Sequence[VotedGrid], view_names: Sequence[str], logprobs: Mapping[tuple, float],
               reduce: str = "sum") -> list[PoeScore]:
    """Each candidate's :class:`PoeScore` from the scored ``(candidate index, view name) -> logprob`` pairs.

    >>> poe_scores([VotedGrid([[1]], 2, -0.1), VotedGrid([[2]], 1, -0.3)], ["d0", "d1"],
    ...            {(0, "d0"): -1.0, (0, "d1"): -5.0, (1, "d0"): -2.0, (1, "d1"): -2.5})[1].score
    -4.5
    """
    out = []
    for index, candidate in enumerate(candidates):
        per_view = {name: logprobs.get((index, name)) for name in view_names}
        values = [v for v in per_view.values() if v is not None and math.isfinite(v)]
        if not values:
            score = float("nan")
        else:
            score = sum(values) if reduce == "sum" else sum(values) / len(values)
        out.append(PoeScore(candidate.grid, candidate.count, per_view, score))
    return out


def poe_select(tasks: Sequence[Task], prompts: Mapping[str, list[ViewPrompt]],
               votes: Mapping[str, list[list[VotedGrid]]], scorer: Scorer, settings: EvaluationSettings
               ) -> dict[str, list[list[PoeScore]]]:
    """Product-of-experts scores of the voted candidates of every test input of ``tasks``, in one batched
    ``scorer.score`` call: task id -> per test input -> the :class:`PoeScore` of each of its first
    ``poe_max_candidates`` voted candidates (in vote order; the rest are not rescored and rank after them)."""
    requests: list[ScoreRequest] = []
    spans = {}
    for task in tasks:
        for test_index, voted in enumerate(votes[task.task_id]):
            views = [p for p in prompts[task.task_id] if p.key.test_index == test_index]
            batch = poe_requests(views, voted[:settings.poe_max_candidates], settings.encoder)
            spans[task.task_id, test_index] = (len(requests), len(requests) + len(batch),
                                               [p.augmentation.name for p in views])
            requests.extend(batch)
    values = scorer.score(requests) if requests else []
    if len(values) != len(requests):
        raise RuntimeError(f"the scorer returned {len(values)} scores for {len(requests)} answers")
    out: dict[str, list[list[PoeScore]]] = {}
    for task in tasks:
        per_test = []
        for test_index, voted in enumerate(votes[task.task_id]):
            begin, end, names = spans[task.task_id, test_index]
            logprobs = {requests[i].key: values[i] for i in range(begin, end)}
            kept = voted[:settings.poe_max_candidates]
            scored = poe_scores(kept, list(dict.fromkeys(names)), logprobs, settings.poe_reduce)
            rest = [PoeScore(v.grid, v.count, {}, float("nan")) for v in voted[settings.poe_max_candidates:]]
            per_test.append(scored + rest)
        out[task.task_id] = per_test
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Outputs.

METRIC_ORDER = ("accuracy", "correct_pixels", "correct_size", "max_correct_pixels", "any_correct_size", "pass_n",
                "vote_2", "pass_2", "unanswered")


def metric_keys(n: int) -> list[str]:
    """The metric names in table order for ``n`` predictions per test input.

    >>> metric_keys(8)[5:]
    ['pass_8', 'vote_2', 'pass_2', 'unanswered']
    """
    return [pass_n_key(n) if key == "pass_n" else key for key in METRIC_ORDER]


def write_outputs(result: EvaluationResult, tasks: Sequence[Task], folder: str | Path, max_failure_plots: int = 16,
                  max_success_plots: int = 8, seed: int = 0) -> dict[str, Path]:
    """Write predictions.json, submission.json (checked against ``tasks``), per_task.csv, metrics.json and the PNG
    plots into ``folder``; returns their paths by name. predictions.json holds every candidate and prediction::

        {"0a1b2c3d": {"source": "arc1-evaluation", "metrics": {"accuracy": 0.875, ...},
                      "test_inputs": [{"test_index": 0, "expected": [[1, 2]], "attempts": [[[1, 2]], [[2, 1]]],
                                       "metrics": {...},
                                       "candidates": [{"grid": [[1, 2]], "votes": 7, "mean_logprob": -0.02,
                                                       "augmentations": ["d0", "d1", ...]}, ...],
                                       "predictions": [{"augmentation": "d0", "grid": [[1, 2]], "logprob": -0.02,
                                                        "n_tokens": 12, "finished": true,
                                                        "dropped_examples": 0}, ...]}]}}

    A prediction that is not a grid has ``"grid": null`` and keeps the generated ``"text"``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": folder / "predictions.json", "submission": folder / "submission.json",
             "per_task": folder / "per_task.csv", "metrics": folder / "metrics.json", "plots": folder / "plots"}
    predictions = {task_id: {"source": r.source, "metrics": r.metrics,
                             "test_inputs": [t.to_dict() for t in r.test_inputs]}
                   for task_id, r in result.tasks.items()}
    paths["predictions"].write_text(json.dumps(predictions))
    submission = result.submission
    validate_submission(submission, tasks)
    write_submission(submission, paths["submission"])
    write_per_task_csv(result, paths["per_task"])
    paths["metrics"].write_text(json.dumps({"metrics": result.metrics, **result.summary(),
                                            "generation": result.generation_stats}, indent=2))
    plot_results(result, paths["plots"], max_failure_plots, max_success_plots, seed)
    return paths


def write_per_task_csv(result: EvaluationResult, path: str | Path) -> Path:
    """One row per task: id, source, test inputs, predictions, then the metrics (empty when not scored).

    ``task_id,source,test_inputs,predictions,accuracy,...,unanswered``
    """
    keys = metric_keys(result.predictions_per_task)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task_id", "source", "test_inputs", "predictions", *keys])
        for task_id, r in result.tasks.items():
            values = ["" if r.metrics is None else _csv_number(r.metrics[k]) for k in keys]
            writer.writerow([task_id, r.source, len(r.test_inputs), sum(len(t.predictions) for t in r.test_inputs),
                             *values])
    return Path(path)


def _csv_number(value: float) -> str:
    return f"{value:.6g}"


def plot_results(result: EvaluationResult, folder: str | Path, max_failures: int = 16, max_successes: int = 8,
                 seed: int = 0) -> list[Path]:
    """PNG plots of the scored test inputs: the first ``max_failures`` failures (pass_2 = 0) in task order and a
    seeded sample of ``max_successes`` successes, as ``failures/<task_id>-<i>.png`` / ``successes/...``."""
    folder = Path(folder)
    scored = [t for r in result.tasks.values() for t in r.test_inputs if t.metrics is not None]
    failures = [t for t in scored if not t.correct][:max_failures]
    successes = [t for t in scored if t.correct]
    if len(successes) > max_successes:
        chosen = set(random.Random(seed).sample(range(len(successes)), max_successes))
        successes = [t for i, t in enumerate(successes) if i in chosen]
    paths = []
    for kind, items in (("failures", failures), ("successes", successes)):
        for t in items:
            path = folder / kind / f"{t.task_id}-{t.test_index}.png"
            paths.append(plot_prediction(t.task_id, t.test_input, t.expected, t.attempts, path, bool(t.correct)))
    return paths


# ---------------------------------------------------------------------------------------------------------------------
# MLflow.


class EvaluationTracker:
    """An MLflow run of an evaluation, through ``MlflowClient`` (no Lightning): params, tags, metrics per step
    (the training step of the checkpoint, so several checkpoints draw a curve) and artifacts."""

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str, tags: Optional[Mapping] = None):
        import mlflow

        from arc_exp.tracking.runs import ensure_experiment

        experiment_id = ensure_experiment(tracking_uri, experiment_name)
        self.tracking_uri = tracking_uri
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        tags = {str(k): str(v) for k, v in (tags or {}).items() if v is not None and v != ""}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id

    @classmethod
    def start(cls, cfg, resolved: Mapping, overrides: Sequence[str], run_type: str, name_prefix: str,
              config_file: str | Path, **tags: Any) -> Optional["EvaluationTracker"]:
        """The MLflow run of an ``evaluate.py`` / ``solve.py`` / ``generate.py`` job, or ``None`` with ``logger=none``.

        Tagged with ``run_type``, the logger's tags, the git commit, the overrides, ``experiment`` and ``tags``;
        named ``logger.run_name`` or ``<name_prefix>:<overrides>``; the resolved config is logged as params and the
        already written ``config_file`` as an artifact."""
        from arc_exp.tracking.runs import flatten, git_commit, run_name_from_overrides

        if cfg.logger.get("_target_") is None:
            return None
        tags = {**(resolved["logger"].get("tags") or {}), "run_type": run_type,
                "git_commit": git_commit(cfg.project_root) or "unknown", "overrides": " ".join(overrides),
                "experiment": str(cfg.get("experiment") or ""), **tags}
        run_name = cfg.logger.get("run_name") or f"{name_prefix}:{run_name_from_overrides(overrides)}"
        tracker = cls(cfg.logger.get("tracking_uri"), cfg.logger.experiment_name, run_name, tags)
        tracker.log_params(flatten(resolved))
        tracker.client.log_artifact(tracker.run_id, str(config_file))
        return tracker

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            if value is not None and value != "":
                self.client.set_tag(self.run_id, key, str(value))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()
                 if isinstance(value, (int, float)) and math.isfinite(value)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def log_artifacts(self, folder: str | Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_result(self, result: EvaluationResult, paths: Mapping[str, Path], step: int = 0,
                   artifact_path: Optional[str] = None) -> None:
        """Metrics, counts and generation counters at ``step``; the files of :func:`write_outputs` as artifacts
        (under ``artifact_path`` when several checkpoints share the run)."""
        generation = {f"generation/{k}": v for k, v in result.generation_stats.items()}
        self.log_metrics({**result.metrics, **result.summary(), **generation}, step=step)
        for name, path in paths.items():
            if path.is_dir():
                self.log_artifacts(path, f"{artifact_path}/{path.name}" if artifact_path else path.name)
            elif path.exists():
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)
