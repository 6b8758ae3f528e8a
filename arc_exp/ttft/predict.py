"""Stage 3 of a solve run: each task predicted with its model (its TTFT adapter, the shared one, or the checkpoint)
within the time budget, and the stage's files written.

:func:`predict_tasks` only computes (a shard of a solve runs it in its own process); :func:`write_predictions` writes
``predictions.json``, ``submission.json``, ``per_task.csv``, ``metrics.json`` and the plots of all tasks, once.

Failures never cost the submission: a task whose prediction raises gets fallback attempts (copies of the test input)
and is counted (``failed``), as is a task the budget left no time for (``skipped``).
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from tqdm.auto import tqdm

from arc_exp.data.tasks import Task
from arc_exp.evaluation.metrics import aggregate_metrics, task_metrics, test_input_metrics
from arc_exp.evaluation.outputs import write_outputs
from arc_exp.evaluation.pipeline import evaluate_tasks
from arc_exp.evaluation.results import EvaluationResult, TaskResult, TestInputResult
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.submission import build_submission
from arc_exp.ttft.budget import Budget, predictions_for_next
from arc_exp.ttft.finetune import answer_losses

log = logging.getLogger(__name__)


@dataclass
class Predicted:
    """The predictions of some tasks before they are written: the evaluation (its metrics over these tasks), the
    answer loss of each task's known test outputs, the tasks the budget left without prediction, and the tasks whose
    prediction raised (with the errors)."""

    evaluation: EvaluationResult
    val_losses: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def predicted_tasks(self) -> int:
        return len(self.evaluation.tasks) - len(self.skipped) - len(self.failed)

    def metrics(self, task_ids: Sequence[str]) -> dict[str, float]:
        """The evaluation's metrics and ``val_loss``, the mean answer loss over ``task_ids`` that have one (in that
        order, so a merge of shards sums as one process does)."""
        losses = [self.val_losses[t] for t in task_ids if t in self.val_losses]
        return {**self.evaluation.metrics, **({"val_loss": sum(losses) / len(losses)} if losses else {})}


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


def predict_tasks(tasks: Sequence[Task], adapters: Mapping[str, Optional[str]],
                  load_model: Callable[[Optional[str]], Any], make_generator: Callable[[Any], Any], tokenizer,
                  settings: EvaluationSettings, budget: Budget, progress: bool = True) -> Predicted:
    """Predict every task with the model of its adapter (``load_model(adapter)``, ``None``: the checkpoint), fewer
    predictions per test input when the budget runs short, fallback attempts when it is out or a task raises."""
    n = settings.predictions_per_task
    groups: dict[Optional[str], list[Task]] = {}
    for task in tasks:  # tasks sharing a model are predicted together: it loads once
        groups.setdefault(adapters.get(task.task_id), []).append(task)
    results: dict[str, TaskResult] = {}
    done = Predicted(EvaluationResult({}, n))
    generators = []
    spent, made, test_left = 0.0, 0, sum(len(t.test) for t in tasks)
    bar = tqdm(total=len(tasks), desc="predict", unit="task", disable=not progress, dynamic_ncols=True)
    try:
        for adapter, group in groups.items():
            generator = model = None
            for task in group:
                per_input = predictions_for_next(n, budget.seconds_left(), spent / made if made else None,
                                                 test_left, len(task.test))
                test_left -= len(task.test)
                bar.update(1)
                if per_input == 0:
                    done.skipped.append(task.task_id)
                    results[task.task_id] = unpredicted_result(task, n)
                    continue
                began = time.perf_counter()
                try:
                    if generator is None:
                        model = load_model(adapter)
                        generator = make_generator(model)
                        generators.append(generator)
                    task_settings = dataclasses.replace(settings, predictions_per_task=per_input)
                    evaluation = evaluate_tasks([task], generator, tokenizer, task_settings, progress=False)
                    if task.has_solutions:  # the journal's val loss: the answer loss of the known test outputs
                        done.val_losses.update(answer_losses(model, [task], settings.encoder, settings.prompt_version,
                                                             tokenizer, settings.max_seq_len))
                    results[task.task_id] = _with_pass_n(evaluation.tasks[task.task_id], n)
                    made += per_input * len(task.test)
                except Exception as error:  # noqa: BLE001 - one task's failure must not cost the submission
                    # (counted: failed_tasks, fallback_attempts, and the run is marked degraded or FAILED)
                    log.exception("predict: task %s failed; its attempts are the fallbacks", task.task_id)
                    done.failed.append(task.task_id)
                    done.errors.append(f"predict {task.task_id}: {type(error).__name__}: {error}")
                    results[task.task_id] = unpredicted_result(task, n)
                spent += time.perf_counter() - began
                scored = [r.metrics["pass_2"] for r in results.values() if r.metrics is not None]
                if scored:
                    bar.set_postfix(pass_2=f"{sum(scored) / len(scored):.3f}", refresh=False)
            del generator, model
            gc.collect()
    finally:
        bar.close()
    ordered = {t.task_id: results[t.task_id] for t in tasks}
    stats: dict[str, float] = {}
    for generator in generators:
        for key, value in (getattr(getattr(generator, "stats", None), "as_dict", dict)()).items():
            stats[key] = stats.get(key, 0) + value
    metrics = aggregate_metrics({k: r.metrics for k, r in ordered.items() if r.metrics is not None}, n)
    done.evaluation = EvaluationResult(ordered, n, metrics, spent, stats)
    return done


def write_predictions(predicted: Predicted, tasks: Sequence[Task], folder: Path, plots: tuple[int, int], seed: int,
                      run=None) -> dict[str, float]:
    """The stage's files in ``folder`` and its MLflow child run ``run`` (metrics, counts, ``degraded`` tag); returns
    the metrics."""
    metrics = predicted.metrics([t.task_id for t in tasks])
    evaluation = dataclasses.replace(predicted.evaluation, metrics=metrics)
    paths = write_outputs(evaluation, tasks, folder, plots[0], plots[1], seed)
    if run is not None:
        failed = set(predicted.failed)
        run.log_result(evaluation, paths)
        run.log_metrics({"skipped_tasks": len(predicted.skipped), "failed_tasks": len(failed),
                         "fallback_attempts": 2 * sum(len(t.test) for t in tasks if t.task_id in failed)})
        run.set_tags({"degraded": str(bool(failed)).lower()})
    return metrics
