"""New task inputs (seed iteration 22): a model trained on ``input-from-inputs-v0`` writes new inputs of a task.

    python generate.py generator=new_inputs checkpoint=<adapter | run folder | MLflow run id> [data=arc1-training]

For each task, ``samples_per_task`` prompts show the task's inputs (train and test) in a random order under a random
augmentation of the policy (rotation/flip, color permutation), so the samples differ; the model writes a new input,
which is decoded, mapped back to the task's orientation and colors, and sorted into one of:

- ``unanswered``: the text is not a grid in the encoder's format;
- ``invalid``: written as a grid, but not a valid ARC grid (ragged rows, a side over 30);
- ``duplicate_of_existing``: a copy of one of the task's inputs (train or test);
- ``duplicate_of_new``: a copy of a new input kept earlier for the task;
- ``kept``: a new input.

The output folder holds ``tasks/<task_id>.json`` per task (the task's own ARC JSON plus ``"new_inputs": [grid, ...]``
and how each sample came out; the extra keys are ignored by the task loaders, so ``tasks/`` is a task source), ``gallery/<task_id>.png`` (the task's
inputs, then the new ones, in the ARC palette) and ``summary.json`` (the counts per task and in all); the MLflow run
(``run_type=generate``) gets the params, the count rates as metrics and the folder as artifacts.
"""
from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from arc_exp.augmentation import Augmentation, AugmentationPolicy, shuffle_train
from arc_exp.data.tasks import Example, Task
from arc_exp.encoders import GridEncoder, GridParseError, InvalidDecodedGridError
from arc_exp.grid import Grid, InvalidGridError, grid_key, validate_grid
from arc_exp.inference import GenerationRequest, Generator
from arc_exp.prompts import build_messages, render_prompt

log = logging.getLogger(__name__)

PROMPT = "input-from-inputs-v0"
OUTCOMES = ("kept", "unanswered", "invalid", "duplicate_of_existing", "duplicate_of_new", "skipped")


class NewInputsError(ValueError):
    """A new-inputs setting that cannot work; raised before any model loads."""


@dataclass
class NewInputsGenerator:
    """Settings of ``generator=new_inputs`` (``conf/generator/new_inputs.yaml``).

    ``samples_per_task`` prompts per task; ``max_seq_len`` bounds prompt + answer (the last inputs are dropped from a
    prompt until it fits); ``max_new_tokens`` caps the answer (``None``: twice the tokens of the task's largest input,
    plus the end-of-turn token).
    """

    samples_per_task: int = 8
    max_seq_len: int = 8192
    max_new_tokens: Optional[int] = None
    prompt: str = PROMPT

    def __post_init__(self) -> None:
        n = self.samples_per_task
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise NewInputsError(f"generator.samples_per_task must be an integer >= 1, got {n!r}")
        if self.prompt != PROMPT:
            raise NewInputsError(f"generator.prompt: new inputs are written with '{PROMPT}', got '{self.prompt}'")
        if isinstance(self.max_seq_len, bool) or not isinstance(self.max_seq_len, int) or self.max_seq_len < 16:
            raise NewInputsError(f"generator.max_seq_len must be an integer >= 16, got {self.max_seq_len!r}")


@dataclass
class Sample:
    """One generated new input: its outcome, the grid (reverted to the task's orientation and colors) and how it
    came (augmentation name, generated text when it is no grid, inputs shown in the prompt)."""

    outcome: str
    grid: Optional[Grid]
    augmentation: str
    text: str = ""
    shown_inputs: int = 0

    def to_dict(self) -> dict:
        out = {"outcome": self.outcome, "augmentation": self.augmentation, "shown_inputs": self.shown_inputs,
               "grid": self.grid}
        if self.grid is None:
            out["text"] = self.text[:500]
        return out


@dataclass
class TaskNewInputs:
    task: Task
    samples: list[Sample] = field(default_factory=list)

    @property
    def kept(self) -> list[Grid]:
        return [s.grid for s in self.samples if s.outcome == "kept"]

    def counts(self) -> dict[str, int]:
        counts = Counter(s.outcome for s in self.samples)
        return {"generated": len(self.samples), **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES}}


def task_inputs(task: Task) -> list[Grid]:
    return [e.input for e in (*task.train, *task.test)]


def new_input_prompt(task: Task, augmentation: Augmentation, encoder: GridEncoder, tokenizer, max_seq_len: int,
                     max_new_tokens: Optional[int]) -> tuple[Optional[GenerationRequest], int]:
    """The request for one new input of ``task`` seen through ``augmentation``, and how many inputs it shows.

    The prompt shows the task's inputs (train, then test; outputs are no part of it) and asks for the next one. The
    last inputs are dropped until prompt + answer bound fit ``max_seq_len``; ``(None, 0)`` when one does not fit.
    """
    inputs = [augmentation.apply_grid(grid) for grid in task_inputs(task)]
    longest = max(len(tokenizer(encoder.encode(g), add_special_tokens=False)["input_ids"]) for g in inputs)
    bound = 2 * longest + 1 if max_new_tokens is None else max_new_tokens
    for keep in range(len(inputs), 0, -1):
        shown = Task(task.task_id, tuple(Example(g) for g in inputs[:keep]), (), task.source)
        # test_index past the last grid: every grid is shown and the answer is the new one
        prompt = render_prompt(build_messages(shown, encoder, PROMPT, test_index=keep, include_answer=False),
                               tokenizer)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) + bound <= max_seq_len:
            return GenerationRequest(prompt, bound, prompt_ids=ids), keep
    return None, 0


def classify(text: str, augmentation: Augmentation, encoder: GridEncoder, existing: set, new: set
             ) -> tuple[str, Optional[Grid]]:
    """The outcome of one generated text (see the module docstring) and its grid in the task's orientation.

    >>> from arc_exp.encoders import MinimalGridEncoder
    >>> classify("12\\n34", Augmentation(), MinimalGridEncoder(), {grid_key([[1, 2], [3, 4]])}, set())
    ('duplicate_of_existing', [[1, 2], [3, 4]])
    >>> classify("12\\n3", Augmentation(), MinimalGridEncoder(), set(), set())[0]
    'unanswered'
    """
    try:
        grid = encoder.decode(text)
    except InvalidDecodedGridError:  # a grid's form, but ragged or too large
        return "invalid", None
    except GridParseError:
        return "unanswered", None
    try:
        grid = augmentation.revert_grid(validate_grid(grid, "generated input"))
    except (InvalidGridError, ValueError):
        return "invalid", None
    key = grid_key(grid)
    if key in existing:
        return "duplicate_of_existing", grid
    if key in new:
        return "duplicate_of_new", grid
    return "kept", grid


def generate_new_inputs(tasks: Sequence[Task], generator: Generator, tokenizer, encoder: GridEncoder,
                        policy: AugmentationPolicy, settings: NewInputsGenerator, seed: int = 0
                        ) -> list[TaskNewInputs]:
    """``settings.samples_per_task`` new inputs per task, classified; one ``generate`` call per task.

    Sample ``i`` of a task shows its inputs shuffled under an augmentation drawn from ``policy``, both from an RNG
    seeded by ``(seed, task id)``: a task's samples do not depend on the other tasks.
    """
    results = []
    for task in tasks:
        rng = random.Random(f"{seed}:{task.task_id}")
        prompts = []
        for _ in range(settings.samples_per_task):
            augmentation = policy.sample(rng)
            shuffled = shuffle_train(Task(task.task_id, tuple(Example(g) for g in task_inputs(task)), (),
                                          task.source), rng)
            request, shown = new_input_prompt(shuffled, augmentation, encoder, tokenizer, settings.max_seq_len,
                                              settings.max_new_tokens)
            prompts.append((augmentation, request, shown))
        requests = [request for _, request, _ in prompts if request is not None]
        answers = iter(generator.generate(requests) if requests else [])
        existing = {grid_key(g) for g in task_inputs(task)}
        result, new = TaskNewInputs(task), set()
        for augmentation, request, shown in prompts:
            if request is None:
                result.samples.append(Sample("skipped", None, augmentation.name, "(the prompt does not fit)"))
                continue
            text = next(answers).text
            outcome, grid = classify(text, augmentation, encoder, existing, new)
            if outcome == "kept":
                new.add(grid_key(grid))
            result.samples.append(Sample(outcome, grid, augmentation.name, text, shown))
        log.info("task %s: %s", task.task_id, result.counts())
        results.append(result)
    return results


def summarize(results: Sequence[TaskNewInputs]) -> dict[str, Any]:
    """Counts per task and in all, with rates of the generated samples (``kept_rate``, ...)."""
    total = Counter()
    for result in results:
        total.update(result.counts())
    generated = total["generated"]
    rates = {f"{outcome}_rate": total[outcome] / generated if generated else 0.0 for outcome in OUTCOMES}
    return {"tasks": len(results), **{k: total.get(k, 0) for k in ("generated", *OUTCOMES)}, **rates,
            "per_task": {r.task.task_id: r.counts() for r in results}}


def write_new_inputs(results: Sequence[TaskNewInputs], out: str | Path) -> dict[str, Path]:
    """``tasks/<task_id>.json`` (the task + ``new_inputs``; ``samples`` says how each sample came out),
    ``gallery/<task_id>.png`` and ``summary.json`` in ``out``; returns the paths by name."""
    from arc_exp.plots import plot_grids

    out = Path(out)
    (out / "gallery").mkdir(parents=True, exist_ok=True)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    for result in results:
        task = result.task
        record = {**task.to_dict(), "new_inputs": result.kept, "samples": [s.to_dict() for s in result.samples]}
        (out / "tasks" / f"{task.task_id}.json").write_text(json.dumps(record))
        inputs = task_inputs(task)
        grids = inputs + result.kept
        titles = [f"input {i + 1}" for i in range(len(inputs))] + [f"new {i + 1}" for i in range(len(result.kept))]
        plot_grids(grids, titles, out / "gallery" / f"{task.task_id}.png",
                   title=f"{task.task_id}: {len(inputs)} inputs, {len(result.kept)} new")
    summary = out / "summary.json"
    summary.write_text(json.dumps(summarize(results), indent=2))
    return {"folder": out, "tasks": out / "tasks", "summary": summary, "gallery": out / "gallery"}


def check_checkpoint_prompt(config: Optional[dict], where: str) -> None:
    """Warn when the checkpoint's training config shows no ``input-from-inputs-v0`` data: its new inputs would be
    whatever the model learned to write instead (often an output)."""
    if not config:
        log.warning("%s: no arc_exp.yaml, cannot check that it was trained on %s", where, PROMPT)
        return
    data = config.get("data") or {}
    prompts = {(config.get("prompt") or {}).get("version")}
    prompts |= {entry.get("prompt") for entry in data.get("train") or [] if isinstance(entry, dict)}
    if PROMPT not in prompts:
        log.warning("%s was trained with prompts %s, not %s: its new inputs may not be inputs", where,
                    sorted(p for p in prompts if p), PROMPT)


def run(cfg, output_dir: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """``generate.py generator=new_inputs``: check every setting, load the checkpoint's model, write the new inputs
    of the selected tasks into ``cfg.out`` and log them to MLflow (when a logger is configured)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from arc_exp import evaluation
    from arc_exp.data.selection import TaskSetSpec
    from arc_exp.inference import create_generator
    from arc_exp.models import load_tokenizer
    from arc_exp.tracking import flatten, git_commit, run_name_from_overrides
    from arc_exp.vocabulary import resolve_vocabulary, wrap_tokenizer

    resolved = OmegaConf.to_container(cfg, resolve=True)
    generator_cfg = dict(resolved["generator"])
    task_spec = generator_cfg.pop("tasks")
    generator_cfg.pop("_target_", None)
    settings = NewInputsGenerator(**generator_cfg)
    spec, adapter, inference = instantiate(cfg.model), instantiate(cfg.lora), instantiate(cfg.inference)
    encoder, policy = instantiate(cfg.encoder), instantiate(cfg.augmentation)
    tasks = TaskSetSpec.from_config(task_spec).load()
    if not tasks:
        raise NewInputsError(f"generator.tasks selects no task: {task_spec}")
    tracking_uri = cfg.logger.get("tracking_uri")
    [checkpoint] = evaluation.resolve_checkpoints(cfg.checkpoint, False, tracking_uri)
    if checkpoint.folder is None:
        log.warning("checkpoint=null: the base model writes the new inputs (it was never trained on %s)", PROMPT)
    else:
        evaluation.check_checkpoint(checkpoint, spec.name, encoder, adapter.method)
        check_checkpoint_prompt(checkpoint.config, f"checkpoint '{checkpoint.folder}'")
    base_tokenizer = load_tokenizer(spec)
    vocabulary = resolve_vocabulary(checkpoint.folder, spec.reduce_vocab, base_tokenizer, encoder, [PROMPT],
                                    spec.name)
    tokenizer = wrap_tokenizer(base_tokenizer, vocabulary)

    tracker = None
    if cfg.logger.get("_target_") is not None:
        tags = {**(resolved["logger"].get("tags") or {}), "run_type": "generate", "generator": "new_inputs",
                "model": spec.name, "checkpoint": cfg.checkpoint or "base model",
                "training_run_id": checkpoint.training_run_id, "output_dir": str(output_dir.resolve()),
                "git_commit": git_commit(cfg.project_root) or "unknown", "overrides": " ".join(overrides)}
        tracker = evaluation.EvaluationTracker(tracking_uri, cfg.logger.experiment_name,
                                               "new_inputs:" + run_name_from_overrides(overrides), tags)
        tracker.log_params(flatten(resolved))
    status = "FAILED"
    try:
        model = evaluation.load_model_for_evaluation(spec, adapter, checkpoint, cfg.seed, vocabulary)
        results = generate_new_inputs(tasks, create_generator(inference, model, tokenizer), tokenizer, encoder,
                                      policy, settings, cfg.seed)
        paths = write_new_inputs(results, cfg.out)
        summary = summarize(results)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
            tracker.log_artifacts(paths["folder"], "new_inputs")
        status = "FINISHED"
    finally:
        if tracker is not None:
            tracker.finish(status)
    log.info("new inputs of %d tasks in %s: %d kept of %d generated (%d unanswered, %d invalid, %d copies of an "
             "input, %d repeated)", len(results), paths["folder"], summary["kept"], summary["generated"],
             summary["unanswered"], summary["invalid"], summary["duplicate_of_existing"], summary["duplicate_of_new"])
    return summary
