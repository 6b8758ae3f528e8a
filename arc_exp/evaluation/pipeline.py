"""Evaluation: a checkpoint's predictions on ARC tasks, voted into two attempts, scored and written out.

The pipeline of ``evaluate.py``, one function per step so each is testable without Hydra::

    views      for each test input, ``predictions_per_task`` augmented views (identity, D8, then color permutations)
    prompts    the same encoder and prompt code as training, on the augmented task (test outputs removed)
    generate   any :class:`~arc_exp.inference.requests.Generator` (the HF model, or a stand-in in tests)
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

import logging
import random
import time
from typing import Iterable, Mapping, Optional, Sequence

from tqdm.auto import tqdm

from arc_exp.data.augmentation import Augmentation
from arc_exp.data.encoders import GridEncoder, GridParseError
from arc_exp.data.grid import Grid, InvalidGridError
from arc_exp.data.selection import TaskSetSpec
from arc_exp.data.tasks import Task
from arc_exp.evaluation import EvaluationError
from arc_exp.evaluation.metrics import (
    aggregate_metrics,
    task_metrics,
    test_input_metrics,
)
from arc_exp.evaluation.poe import PoeScore, poe_rank, poe_select
from arc_exp.evaluation.results import (
    EvaluationResult,
    PredictionRecord,
    TaskResult,
    TestInputResult,
)
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.submission import (
    build_submission,
)
from arc_exp.evaluation.views import (
    ViewKey,
    ViewPrompt,
    answer_token_cap,
    inference_views,
    view_prompt,
)
from arc_exp.evaluation.voting import VotedGrid, vote
from arc_exp.inference.requests import Generation, Generator, Scorer, Searcher

log = logging.getLogger(__name__)






# ---------------------------------------------------------------------------------------------------------------------
# Settings and their checks.








def load_eval_tasks(eval_config: Optional[Mapping]) -> list[Task]:
    """The tasks of a data config's ``eval`` task set (:class:`~arc_exp.data.selection.TaskSetSpec` keys); an
    absent or empty set is an :class:`EvaluationError`."""
    if not eval_config:
        raise EvaluationError("the data config has no 'eval' task set (data.eval) to evaluate on")
    tasks = TaskSetSpec.from_config(eval_config).load()
    if not tasks:
        raise EvaluationError(f"data.eval selects no tasks: {dict(eval_config)}")
    return tasks




# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints.


















# ---------------------------------------------------------------------------------------------------------------------
# Prompts and answer lengths.














# ---------------------------------------------------------------------------------------------------------------------
# Results.










# ---------------------------------------------------------------------------------------------------------------------
# The pipeline.






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












# ---------------------------------------------------------------------------------------------------------------------
# Outputs.













# ---------------------------------------------------------------------------------------------------------------------
# MLflow.


