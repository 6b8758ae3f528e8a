"""New task inputs (seed iteration 22): a model trained on ``input-from-inputs-v0`` writes new inputs of a task.

    python generate.py generator=new_inputs checkpoint=<adapter | run folder | MLflow run id> [tasks.source=...]

For each task, ``samples_per_task`` prompts show the task's inputs (train and test, no outputs) under a view drawn
from the augmentation policy (rotation/flip, color permutation, shuffled input order), so the samples differ even
with greedy decoding. The model writes a new input, which is decoded, mapped back to the task's orientation and colors,
and sorted into exactly one outcome:

- ``unanswered``: no grid can be read in the encoder's format (free text, misnumbered rows, a shape header that
  contradicts the rows, more than 30 lines), or the model did not end its answer (stopped by the token bound: a grid
  cut short is no answer);
- ``invalid``: rows were read, but they do not form an ARC grid (ragged, wider than 30, a color outside 0..9);
- ``duplicate_of_existing``: a copy of one of the task's inputs (train or test), compared in the task's orientation;
- ``duplicate_of_new``: a copy of a new input kept earlier for the same task;
- ``kept``: a new input.

``generated`` counts the samples the model answered; a prompt that cannot fit ``max_seq_len`` even with one input
shown is ``skipped`` (not generated). Whatever the model writes, nothing here raises.

The output folder holds:

- ``tasks/<task_id>.json``: the task's own ARC JSON (``train``, ``test``) plus ``"new_inputs": [grid, ...]`` (the
  kept grids, in the order generated) and ``"new_input_samples"`` (each sample's outcome, view and, when no grid came
  out, the text). Task loaders ignore the extra keys, so ``tasks/`` is a task source (``source: <out>/tasks``);
- ``gallery/<task_id>.png``: the task's inputs on the first row(s), the new inputs below, in the ARC palette;
- ``summary.json``: the counts and rates in all and per task, and the settings of the run.

>>> from arc_exp.data.encoders import MinimalGridEncoder
>>> from arc_exp.inference.generator import Generation
>>> existing = {grid_key([[1, 2], [3, 4]])}
>>> classify(Generation("12\\n34", 0.0), Augmentation(), MinimalGridEncoder(), existing, set())
('duplicate_of_existing', [[1, 2], [3, 4]])
>>> classify(Generation("31\\n42", 0.0), Augmentation(dihedral=1), MinimalGridEncoder(), existing, set())
('duplicate_of_existing', [[1, 2], [3, 4]])
"""
from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from arc_exp.data.augmentation import Augmentation, shuffle_train
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.drawing import draw_grid, new_figure, save_figure
from arc_exp.data.encoders import GridEncoder, GridParseError, InvalidDecodedGridError
from arc_exp.data.entries import MAX_SEQ_LEN
from arc_exp.data.grid import Grid, InvalidGridError, grid_key, validate_grid
from arc_exp.data.prompts import fit_prompt
from arc_exp.data.selection import TaskSetSpec
from arc_exp.data.tasks import Example, Task
from arc_exp.inference.requests import Generation, GenerationRequest, Generator

log = logging.getLogger(__name__)

PROMPT = "input-from-inputs-v0"
ANSWERED = ("kept", "unanswered", "invalid", "duplicate_of_existing", "duplicate_of_new")  # sum to ``generated``
OUTCOMES = (*ANSWERED, "skipped")
GALLERY_COLUMNS = 8  # panels per gallery row; more grids wrap onto further rows


class NewInputsError(ValueError):
    """A new-inputs setting that cannot work; raised before any model loads, naming the config key."""


@dataclass
class NewInputsGenerator:
    """Settings of ``generator=new_inputs`` (``conf/generator/new_inputs.yaml``).

    ``samples_per_task`` prompts per task; ``max_seq_len`` bounds prompt + answer (the last inputs are dropped from a
    prompt until it fits); ``max_new_tokens`` caps the answer (``None``: twice the tokens of the task's largest input,
    plus the end-of-turn token).

    >>> NewInputsGenerator(samples_per_task=0)
    Traceback (most recent call last):
    ...
    arc_exp.synthetic.new_inputs.NewInputsError: generator.samples_per_task must be an integer >= 1, got 0
    """

    samples_per_task: int = 8
    max_seq_len: int = MAX_SEQ_LEN
    max_new_tokens: Optional[int] = None
    prompt: str = PROMPT

    def __post_init__(self) -> None:
        for key, minimum, optional in (("samples_per_task", 1, False), ("max_seq_len", 16, False),
                                       ("max_new_tokens", 1, True)):
            value = getattr(self, key)
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise NewInputsError(f"generator.{key} must be an integer >= {minimum}"
                                     f"{' or null' if optional else ''}, got {value!r}")
        if self.prompt != PROMPT:
            raise NewInputsError(f"generator.prompt: new inputs are written with '{PROMPT}', got '{self.prompt}'")


def task_set(tasks: Any) -> TaskSetSpec:
    """The task set that ``tasks`` names: a source (a named set or a path) or a mapping of a source and selection
    keys (:class:`~arc_exp.data.selection.TaskSetSpec`); a bad key raises :class:`NewInputsError` naming it.

    >>> task_set({"source": "arc1-evaluation", "first_n": 4}).first_n
    4
    >>> task_set("arc1-training").source
    'arc1-training'
    >>> task_set({"source": "arc1-training", "frist_n": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    arc_exp.synthetic.new_inputs.NewInputsError: tasks: unknown task set key 'frist_n'; allowed keys: source, ...
    """
    if isinstance(tasks, str):
        tasks = {"source": tasks}
    if not isinstance(tasks, Mapping):
        raise NewInputsError(f"tasks: a source name or path, or a mapping of task set keys, got {tasks!r}")
    try:
        return TaskSetSpec.from_config(tasks)
    except ValueError as error:
        raise NewInputsError(f"tasks: {error}") from None


@dataclass
class Sample:
    """One generated new input: its outcome, the grid (in the task's orientation and colors, ``None`` when no valid
    grid came out), the view it was written in, the generated text and how many of the task's inputs the prompt
    showed."""

    outcome: str
    grid: Optional[Grid]
    augmentation: str
    text: str = ""
    shown_inputs: int = 0

    def to_dict(self) -> dict:
        out = {"outcome": self.outcome, "augmentation": self.augmentation, "shown_inputs": self.shown_inputs,
               "grid": self.grid}
        if self.grid is None:
            out["text"] = self.text[:500]  # enough to see what went wrong
        return out


@dataclass
class TaskNewInputs:
    """The samples of one task, in the order generated."""

    task: Task
    samples: list[Sample] = field(default_factory=list)

    @property
    def kept(self) -> list[Grid]:
        return [s.grid for s in self.samples if s.outcome == "kept"]

    def counts(self) -> dict[str, int]:
        """``generated`` (answered samples) and the number of each outcome; the answered outcomes sum to
        ``generated``."""
        counts = Counter(s.outcome for s in self.samples)
        return {"generated": len(self.samples) - counts["skipped"], **{o: counts.get(o, 0) for o in OUTCOMES}}


def task_inputs(task: Task) -> list[Grid]:
    """Every input of ``task``: train inputs, then test inputs."""
    return [e.input for e in (*task.train, *task.test)]


def inputs_task(task: Task) -> Task:
    """``task`` reduced to its inputs, all as train examples without outputs (the prompt's view of a task)."""
    return Task(task.task_id, tuple(Example(g) for g in task_inputs(task)), (), task.source)


def new_input_prompt(task: Task, augmentation: Augmentation, encoder: GridEncoder, tokenizer, max_seq_len: int,
                     max_new_tokens: Optional[int]) -> tuple[Optional[GenerationRequest], int]:
    """The request for one new input of ``task`` seen through ``augmentation``, and how many inputs it shows.

    The prompt shows the task's inputs (train, then test; outputs are no part of it) and asks for the next one. The
    last inputs are dropped until prompt + answer bound fit ``max_seq_len``; ``(None, 0)`` when one does not fit.
    """
    inputs = [augmentation.apply_grid(grid) for grid in task_inputs(task)]
    longest = max(len(tokenizer(encoder.encode(g), add_special_tokens=False)["input_ids"]) for g in inputs)
    bound = 2 * longest + 1 if max_new_tokens is None else max_new_tokens
    shown = Task(task.task_id, tuple(Example(g) for g in inputs), (), task.source)
    # test_index past the last grid: every grid shown is a given input and the answer is the new one
    fitted = fit_prompt(shown, encoder, PROMPT, len(inputs), tokenizer, bound, max_seq_len)
    if fitted is None:
        return None, 0
    prompt, ids, dropped = fitted
    return GenerationRequest(prompt, bound, prompt_ids=ids), len(inputs) - dropped


def classify(generation: Generation, augmentation: Augmentation, encoder: GridEncoder, existing: set, new: set
             ) -> tuple[str, Optional[Grid]]:
    """The outcome of one generation (see the module docstring) and its grid in the task's orientation and colors.

    ``existing`` and ``new`` hold :func:`~arc_exp.data.grid.grid_key` of the task's inputs and of the new inputs kept so
    far. Never raises on what a model writes.

    >>> from arc_exp.data.encoders import MinimalGridEncoder
    >>> from arc_exp.inference.generator import Generation
    >>> [classify(Generation(text, 0.0), Augmentation(), MinimalGridEncoder(), set(), set())[0]
    ...  for text in ("12\\n34", "12\\n3", "the answer is 4")]
    ['kept', 'invalid', 'unanswered']
    >>> classify(Generation("12\\n34", 0.0, finished=False), Augmentation(), MinimalGridEncoder(), set(), set())
    ('unanswered', None)
    """
    if not generation.finished:
        return "unanswered", None
    try:
        grid = encoder.decode(generation.text)
    except InvalidDecodedGridError:  # a grid's form, but ragged or too large
        return "invalid", None
    except GridParseError:  # any other error is an encoder bug: it surfaces, it is not counted as unanswered
        return "unanswered", None
    try:
        grid = augmentation.revert_grid(validate_grid(grid, "generated input"))
    except InvalidGridError:
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

    Sample ``i`` of a task shows its inputs under an augmentation drawn from ``policy`` (and in a shuffled order when
    ``policy.shuffle_train``), from an RNG seeded by ``(seed, task id)``: a task's prompts do not depend on the
    other tasks.
    """
    results = []
    for task in tasks:
        rng = random.Random(f"{seed}:{task.task_id}")
        prompts = []
        for _ in range(settings.samples_per_task):
            augmentation = policy.sample(rng)
            view = shuffle_train(inputs_task(task), rng) if policy.shuffle_train else inputs_task(task)
            request, shown = new_input_prompt(view, augmentation, encoder, tokenizer, settings.max_seq_len,
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
            generation = next(answers)
            outcome, grid = classify(generation, augmentation, encoder, existing, new)
            if outcome == "kept":
                new.add(grid_key(grid))
            result.samples.append(Sample(outcome, grid, augmentation.name, generation.text, shown))
        log.info("task %s: %s", task.task_id, result.counts())
        results.append(result)
    return results


def summarize(results: Sequence[TaskNewInputs]) -> dict[str, Any]:
    """Counts in all and per task, and each answered outcome's share of the generated samples (``kept_rate``, ...).

    >>> summarize([])["kept_rate"]
    0.0
    """
    total = Counter()
    for result in results:
        total.update(result.counts())
    generated = total["generated"]
    rates = {f"{outcome}_rate": total[outcome] / generated if generated else 0.0 for outcome in ANSWERED}
    return {"tasks": len(results), "generated": generated, **{o: total.get(o, 0) for o in OUTCOMES}, **rates,
            "per_task": {r.task.task_id: r.counts() for r in results}}


def plot_gallery(task: Task, new_inputs: Sequence[Grid], path: str | Path) -> Path:
    """The task's inputs, then its new inputs on the rows below, at most :data:`GALLERY_COLUMNS` panels a row.

    Panels are the size of every plot's (:mod:`arc_exp.data.drawing`); a task without new inputs gets one empty "none
    kept" panel.
    """
    inputs = task_inputs(task)
    panels = [(g, f"input {i} {len(g)}x{len(g[0])}", "black") for i, g in enumerate(inputs, start=1)]
    rows = -(-len(panels) // GALLERY_COLUMNS)
    new = [(g, f"new {i} {len(g)}x{len(g[0])}", "#1a7f37") for i, g in enumerate(new_inputs, start=1)]
    new = new or [(None, "new inputs", "#1a7f37")]
    columns = min(GALLERY_COLUMNS, max(len(panels), len(new)))
    # each part starts on its own row
    layout = [(r, c, p) for k, p in enumerate(panels) for r, c in [divmod(k, GALLERY_COLUMNS)]]
    layout += [(rows + r, c, p) for k, p in enumerate(new) for r, c in [divmod(k, GALLERY_COLUMNS)]]
    total_rows = rows + -(-len(new) // GALLERY_COLUMNS)
    fig, axes = new_figure(total_rows, columns, f"{task.task_id}: {len(inputs)} inputs, {len(new_inputs)} new")
    for ax in axes.flat:
        ax.axis("off")
    for row, column, (grid, title, color) in layout:
        ax = axes[row][column]
        ax.axis("on")
        draw_grid(ax, grid, title, empty_label="none kept", title_color=color)
    return save_figure(fig, path)


def write_new_inputs(results: Sequence[TaskNewInputs], out: str | Path, info: Optional[Mapping] = None
                     ) -> dict[str, Path]:
    """``tasks/<task_id>.json``, ``gallery/<task_id>.png`` and ``summary.json`` (with ``info``, e.g. the checkpoint
    and settings, under ``"settings"``) in ``out``; returns the paths by name."""
    out = Path(out)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    for result in results:
        task = result.task
        record = {**task.to_dict(), "new_inputs": result.kept,
                  "new_input_samples": [s.to_dict() for s in result.samples]}
        (out / "tasks" / f"{task.task_id}.json").write_text(json.dumps(record))
        plot_gallery(task, result.kept, out / "gallery" / f"{task.task_id}.png")
    summary = out / "summary.json"
    summary.write_text(json.dumps({**summarize(results), "settings": dict(info or {})}, indent=2))
    return {"folder": out, "tasks": out / "tasks", "gallery": out / "gallery", "summary": summary}


def check_checkpoint_prompt(config: Optional[Mapping], where: str) -> bool:
    """Whether the checkpoint's training config (its ``arc_exp.yaml``) shows ``input-from-inputs-v0`` data; warns
    when it does not (its new inputs would be whatever it learned to write instead, often an output) or when there
    is no config to tell.

    >>> check_checkpoint_prompt({"data": {"train": [{"prompt": "input-from-inputs-v0"}]}}, "ckpt")
    True
    """
    if not config:
        log.warning("%s: no arc_exp.yaml, cannot check that it was trained on %s", where, PROMPT)
        return False
    data = config.get("data") or {}
    prompts = {(config.get("prompt") or {}).get("version")}
    prompts |= {entry.get("prompt") for entry in data.get("train") or [] if isinstance(entry, Mapping)}
    if PROMPT not in prompts:
        log.warning("%s was trained with prompts %s, not %s: its new inputs may not be inputs at all", where,
                    sorted(p for p in prompts if p), PROMPT)
        return False
    return True
