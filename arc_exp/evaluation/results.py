"""What an evaluation produces: one record per prediction, results per test input and per task, and the whole
evaluation's metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from arc_exp.data.grid import Grid
from arc_exp.evaluation.poe import PoeScore
from arc_exp.evaluation.voting import Prediction, VotedGrid
from arc_exp.inference.requests import finite_or_none


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
