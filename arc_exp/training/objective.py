"""What ``train.py`` returns: the metric a hyperparameter sweep optimizes (``objective.metric``), and in which
direction (``objective.direction``, which ``hparams_search``'s ``hydra.sweeper.direction`` follows).

    objective.metric=val/loss              # the default: validation loss (train/loss when there is no validation)
    objective.metric=eval/pass_2 objective.direction=maximize evaluation.enabled=true   # the evaluation after training
    objective.metric=qa/count objective.direction=maximize evaluation.count_qa=...       # a count question's accuracy
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

DIRECTIONS = ("minimize", "maximize")
# metrics that are better when lower; every other eval/* and qa/* metric is an accuracy (better when higher)
LOWER_IS_BETTER = ("val/loss", "train/loss", "eval/unanswered", "eval/eval_seconds")
EVAL_COUNTS = ("eval/n_tasks", "eval/n_scored_tasks", "eval/n_test_inputs", "eval/n_predictions",
               "eval/n_skipped_prompts", "eval/predictions_per_second")


class ObjectiveError(ValueError):
    """An ``objective`` that train.py cannot return."""


@dataclass(frozen=True)
class Objective:
    """``metric`` (a key of the run's final metrics) and ``direction``.

    >>> Objective().value({"train/loss": 2.5, "val/loss": 2.0})
    2.0
    >>> Objective().value({"train/loss": 2.5})  # no validation: the training loss
    2.5
    >>> Objective("eval/pass_2", "maximize").value({"val/loss": 2.0, "eval/pass_2": 0.25})
    0.25
    """

    metric: str = "val/loss"
    direction: str = "minimize"

    def check(self, evaluation_enabled: bool, count_qa: bool) -> None:
        """One clear error before training for an objective the run will not produce, or one optimized the wrong way
        round."""
        if self.direction not in DIRECTIONS:
            raise ObjectiveError(f"objective.direction={self.direction}: expected one of {', '.join(DIRECTIONS)}")
        if self.metric.startswith("eval/") and not evaluation_enabled:
            raise ObjectiveError(f"objective.metric={self.metric} needs the evaluation after training: add "
                                 f"evaluation.enabled=true")
        if self.metric.startswith("qa/") and not count_qa:
            raise ObjectiveError(f"objective.metric={self.metric} needs the count question evaluation: set "
                                 f"evaluation.count_qa")
        if not self.metric.startswith(("eval/", "qa/")) and self.metric not in ("val/loss", "train/loss"):
            raise ObjectiveError(f"objective.metric={self.metric}: expected val/loss, train/loss, eval/<metric> "
                                 f"(evaluation.enabled=true) or qa/<question type> (evaluation.count_qa)")
        if self.metric in EVAL_COUNTS:
            raise ObjectiveError(f"objective.metric={self.metric} is a count, not a figure to optimize")
        expected = "minimize" if self.metric in LOWER_IS_BETTER else "maximize"
        if self.direction != expected:
            raise ObjectiveError(f"objective.direction={self.direction} for {self.metric}, which is better "
                                 f"{'lower' if expected == 'minimize' else 'higher'}: use "
                                 f"objective.direction={expected}")

    def value(self, metrics: Mapping[str, float]) -> float:
        """The objective's value among the run's final ``metrics``; ``val/loss`` falls back on ``train/loss`` (no
        validation). A metric the run did not produce is an error naming the ones it did."""
        if self.metric == "val/loss" and "val/loss" not in metrics:
            return float(metrics.get("train/loss", float("nan")))
        if self.metric not in metrics:
            raise ObjectiveError(f"objective.metric={self.metric}: the run logged no such metric (it has "
                                 f"{', '.join(sorted(metrics))})")
        return float(metrics[self.metric])
