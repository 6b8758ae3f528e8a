"""An evaluation's files: predictions.json, submission.json, per_task.csv, metrics.json and plots."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Sequence

from arc_exp.data.tasks import Task
from arc_exp.evaluation.metrics import (
    pass_n_key,
)
from arc_exp.evaluation.plots import plot_prediction
from arc_exp.evaluation.results import EvaluationResult
from arc_exp.evaluation.submission import (
    validate_submission,
    write_submission,
)

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
