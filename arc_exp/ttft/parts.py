"""A solve's parts: what solving some of the tasks gives (a shard's, in its own process with ``shards=N`` or its own job
with ``shard=i/N``, or all tasks'), the merge of the parts into the files one process writes, and what the whole run
produced (:class:`SolveResult`).

The split itself (which tasks a shard takes, its processes, its files) is :mod:`arc_exp.evaluation.shards`, shared
with ``evaluate.py``; a solve's part also carries the per-task TTFT adapters it trained and the failed tasks and
fallback attempts of its predictions, so its merge lives here, beside the solver that makes the parts.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from arc_exp.data.tasks import Task
from arc_exp.evaluation.shards import Shard, load_payloads, merge_results, run_shards
from arc_exp.tracking.runs import MLflowRun
from arc_exp.ttft.finetune import FineTuneOutcome
from arc_exp.ttft.predict import Predicted

log = logging.getLogger(__name__)


@dataclass
class SolveResult:
    """What a solve run produced: the final submission file, its score (``None`` without solutions), the model's
    prediction metrics, the stages skipped on resume and the errors that were worked around: the tasks whose
    prediction raised (``failed_tasks``, given ``fallback_attempts``) and a failed TTFT stage.

    >>> result = SolveResult(Path("submission.json"), errors=["predict abc: RuntimeError: out of memory"],
    ...                      failed_tasks=["abc"], fallback_attempts=2, predicted_tasks=3)
    >>> result.degraded, result.status
    (True, 'FINISHED')
    >>> dataclasses.replace(result, predicted_tasks=0).status  # errors left nothing predicted by the model
    'FAILED'
    """

    submission: Path
    score: Optional[float] = None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_stages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)
    fallback_attempts: int = 0  # attempts of the model's submission that are fallbacks because their task failed
    predicted_tasks: int = 0  # tasks predicted by the model (not failed, not cut by the budget)
    stage_metrics: dict[str, float] = field(default_factory=dict)  # ttft/*: steps, seconds per step, model size

    @property
    def degraded(self) -> bool:
        """A stage failed and was worked around (TTFT, or some tasks' predictions): the run's figures are not those of
        the configured method. A model answer that is not a grid is no failure: it is scored as unanswered."""
        return bool(self.errors)

    @property
    def status(self) -> str:
        """The MLflow status of the solve run: ``FAILED`` when errors left no task predicted by the model (the
        submission holds fallback attempts only), else ``FINISHED`` (tagged ``degraded=true`` when degraded)."""
        return "FAILED" if self.errors and not self.predicted_tasks else "FINISHED"


@dataclass
class SolvePart:
    """What solving some of the tasks gives before anything is written for the whole run: a shard's (one process or
    one job of an array) or all tasks'. The per-task TTFT adapters it trained and their outcomes (a job of an array
    also carries the shared adapter's), its predictions, the TTFT errors it worked around and its notes."""

    predicted: Optional[Predicted] = None
    adapters: dict[str, Optional[str]] = field(default_factory=dict)
    outcomes: list[FineTuneOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: bool = True  # False: the budget left some of its tasks without their TTFT adapter
    ttft_seconds: float = 0.0  # wall-clock of its per-task TTFT (merged: the slowest shard's)


@dataclass
class TTFTStage:
    """Stage 2 as the parent process leaves it: the adapter of each task, the outcomes, and for per-task TTFT not
    done yet, the folder and deadline the shards train in (``pending``) and the stage's MLflow run, still open."""

    adapters: dict[str, Optional[str]]
    outcomes: list[FineTuneOutcome] = field(default_factory=list)
    pending: bool = False
    folder: Optional[Path] = None
    deadline: Optional[float] = None
    run: Optional[MLflowRun] = None


def solve_parts(solver, tasks: Sequence[Task], shards: Optional[int], shard: Optional[Shard], dataset,
                stage: TTFTStage, budget) -> list[SolvePart]:
    """``solver.solve_part`` for every shard: in ``shards`` processes side by side, for this job's ``shard`` only,
    or for all tasks in this process (one part). Per-task TTFT runs are children of the open ``stage.run``."""
    if shards and shards > 1:
        log.info("solving %d tasks in %d processes", len(tasks), shards)
        quiet = dataclasses.replace(solver, progress=False)  # the bars of several processes would interleave
        return run_shards(shards, _solve_shard, quiet, tasks, dataset, stage, budget)
    return [solver.solve_part(shard.tasks(tasks) if shard else tasks, dataset, stage, budget, stage.run)]


def _solve_shard(shard: Shard, solver, tasks: Sequence[Task], dataset, stage: TTFTStage, budget) -> SolvePart:
    # each process logs its tasks' TTFT as children of the open ttft run (MLflowRun pickles without its client)
    return solver.solve_part(shard.tasks(tasks), dataset, stage, budget, stage.run)


def load_solve_parts(folder: str | Path, tasks: Sequence[Task]) -> list[SolvePart]:
    """The parts of every solve shard under ``folder`` (checked as
    :func:`~arc_exp.evaluation.shards.load_shards` checks an evaluation's)."""
    return [p["results"] for p in load_payloads(folder, tasks, SolvePart)]


def merge_solve_parts(parts: Sequence[SolvePart], task_ids: Sequence[str]) -> SolvePart:
    """The shards' parts as one: predictions merged as :func:`~arc_exp.evaluation.shards.merge_results` merges them
    (answer losses, skipped and failed tasks in task order), the per-task adapters and outcomes of all, the shared
    adapter's outcome once (each job of an array trained the same)."""
    predicted = [p.predicted for p in parts]
    order = {task_id: i for i, task_id in enumerate(task_ids)}
    in_order = lambda ids: sorted(ids, key=order.__getitem__)  # noqa: E731
    merged = Predicted(merge_results([p.evaluation for p in predicted], task_ids),
                       {k: v for p in predicted for k, v in p.val_losses.items()},
                       in_order([t for p in predicted for t in p.skipped]),
                       in_order([t for p in predicted for t in p.failed]),
                       [e for p in predicted for e in p.errors])
    shared = [o for p in parts for o in p.outcomes if o.task_id is None][:1]
    per_task = sorted((o for p in parts for o in p.outcomes if o.task_id is not None),
                      key=lambda o: order.get(o.task_id, len(order)))
    return SolvePart(merged, {k: v for p in parts for k, v in p.adapters.items()}, shared + per_task,
                     [e for p in parts for e in p.errors], [n for p in parts for n in p.notes],
                     all(p.complete for p in parts), max(p.ttft_seconds for p in parts))
