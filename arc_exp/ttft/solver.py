"""Test-time fine-tuning (TTFT) and solving: from the tasks of a challenges file to ``submission.json``.

``solve.py`` runs three stages. Each writes its output under the run folder, with a ``stage.json`` marker when it is
done, and ``resume=<run dir>`` skips the stages (and, in per-task mode, the tasks) already done:

1. **dataset** (``dataset/``, :func:`~arc_exp.ttft.dataset.dataset_stage`): the TTFT tasks made from each test task's
   own train examples: n-1 (each train example in turn the target, the others shown) or n-2 (``ttft.n2``). A task with
   fewer than 2 train examples gives none (listed in ``dataset/report.json``) and is still predicted.
2. **ttft** (``ttft/``, :class:`~arc_exp.ttft.finetune.AdapterTraining`): fine-tune from ``checkpoint`` with the
   training code: one shared adapter for all tasks, each task weighed the same (``ttft/adapter/``), or one adapter
   per task (``ttft.per_task=true``, ``ttft/tasks/<task_id>/adapter/``).
3. **predict** (``predict/``, :mod:`arc_exp.ttft.predict`): the evaluation pipeline (augmented views, votes) with the
   fine-tuned model(s): ``predictions.json``, ``submission.json``, ``per_task.csv``, ``metrics.json``.

**Shards** (:mod:`arc_exp.evaluation.shards`, :mod:`arc_exp.ttft.parts`): a shard of the tasks trains its per-task adapters and predicts its
tasks (:meth:`Solver.solve_part`), in its own process (``shards=N``) or job (``shard=i/N``, then ``merge=``). Unsharded
is one part; the parts merge into the files, metrics and accounting one process writes. A shared adapter is trained
before the shards.

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

**Failures** never cost the submission, and never pass for results: a TTFT stage that raises is logged with its
traceback and prediction goes on from the starting checkpoint; a task whose prediction raises gets fallback attempts.
Either marks the parent run ``degraded=true`` (tag, with the ``errors``) and counts ``failed_tasks`` and
``fallback_attempts`` (metrics); when errors leave no task predicted by the model the run ends ``FAILED``
(:attr:`SolveResult.status`). A model answer that is not a grid is no failure: it is scored as unanswered.

**Held-out loss** (``ttft.holdout=true``): the last train example of each task is held out of the TTFT dataset, and
the answer loss of its output (shown the other examples) is measured before and after TTFT: a check that TTFT helps
that needs no test outputs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from arc_exp.data.tasks import Task
from arc_exp.evaluation.checkpoints import Checkpoint, load_model_for_evaluation
from arc_exp.evaluation.shards import Shard, save_shard
from arc_exp.evaluation.submission import build_submission, score_submission, write_submission
from arc_exp.files import write_json
from arc_exp.model.checkpoints import read_checkpoint_config
from arc_exp.model.tokenizer import vocabulary_of
from arc_exp.tracking.runs import MLflowRun
from arc_exp.ttft.budget import Budget
from arc_exp.ttft.dataset import TTFTDataset, dataset_stage, ids_text
from arc_exp.ttft.ensemble import MODEL, ensemble_submission
from arc_exp.ttft.finetune import AdapterTraining, FineTuneOutcome
from arc_exp.ttft.parts import SolvePart, SolveResult, TTFTStage, merge_solve_parts, solve_parts
from arc_exp.ttft.predict import Predicted, predict_tasks, write_predictions
from arc_exp.ttft.settings import TTFTConfigError
from arc_exp.ttft.stages import read_marker, warn_if_changed, write_marker

log = logging.getLogger(__name__)


@dataclass
class Solver:
    """Everything the stages need, as plain objects (``solve.py`` builds them from the config): ``training``, the
    model, adapter, tokenizer, checkpoint and settings stage 2 fine-tunes with (stage 3 predicts with the same), and
    ``make_generator(model)``, which builds the prediction generator (``shards=N`` sends the solver to other
    processes, so it must pickle there: a ``functools.partial``, no lambda); ``plots``: the failed and solved test
    inputs drawn.
    """

    training: AdapterTraining
    make_generator: Callable[[Any], Any]
    plots: tuple[int, int] = (16, 8)

    def run(self, tasks: Sequence[Task], run_dir: str | Path, budget: Budget, *,
            tracker: Optional[MLflowRun] = None,
            ensemble: Sequence[tuple[str, Optional[dict]]] = ((MODEL, None),), shards: Optional[int] = None,
            shard: Optional[Shard] = None, merge: Optional[Sequence[SolvePart]] = None) -> SolveResult:
        """Run (or resume) the stages on ``tasks`` in ``run_dir`` and write ``submission.json`` there.

        The per-task TTFT and the predictions split over ``shards`` processes; ``shard=Shard(i, n)`` solves only that
        shard's tasks and saves its part (``shard-<i>-of-<n>.pkl``); ``merge`` are the parts of every shard (the shard
        files of a job array, :func:`~arc_exp.ttft.parts.load_solve_parts`). Either way the parts merge into the
        files one process writes."""
        if not tasks:
            raise TTFTConfigError("no tasks to solve")
        run_dir = Path(run_dir)
        mine = shard.tasks(tasks) if shard else list(tasks)  # what this run submits
        final = run_dir / "submission.json"
        result = SolveResult(final)
        if not final.exists():  # a valid file from the first second on: a killed run still leaves a submission
            write_submission(build_submission({}, mine), final)
        timings: dict[str, float] = {}

        began = time.perf_counter()
        enabled = self.training.ttft.enabled and not merge
        dataset = dataset_stage(tasks, run_dir / "dataset", self.training.ttft, tracker, result.skipped_stages,
                                result.notes) if enabled else None
        timings["dataset"] = time.perf_counter() - began
        began = time.perf_counter()
        try:  # merge=: the jobs fine-tuned, their parts report it
            stage = TTFTStage({t.task_id: None for t in tasks}) if merge else \
                self.ttft_stage(tasks, dataset, run_dir / "ttft", budget, tracker, result)
        except Exception as error:  # noqa: BLE001 - a failed TTFT must not cost the submission: predict without it
            # (the run is marked degraded, the error is logged with its traceback and tagged: never a silent result)
            log.exception("TTFT failed; predicting with the checkpoint instead")
            result.errors.append(f"ttft: {type(error).__name__}: {error}")
            stage = TTFTStage({t.task_id: None for t in tasks})
        timings["ttft"] = time.perf_counter() - began  # the shared adapter; per-task adapters train in the shards
        began = time.perf_counter()
        own = None if stage.pending or merge else self._predicted_before(run_dir / "predict", stage.adapters, result)
        if own is None:
            parts = merge or solve_parts(self, tasks, shards, shard, dataset, stage, budget)
            part = merge_solve_parts(parts, [t.task_id for t in mine])
            if shard:
                part.outcomes[:0] = stage.outcomes  # the merge reports the shared adapter too
                log.info("shard %d of %d written: %s", shard.index, shard.count,
                         save_shard(run_dir, shard, tasks, part))
            self._close_ttft_stage(stage, part, run_dir / "ttft", tracker, result, reported=bool(merge))
            own = self._write_predictions(mine, part.predicted, run_dir / "predict",
                                          {**stage.adapters, **part.adapters}, tracker, result)
        timings["predict"] = time.perf_counter() - began
        if stage.pending:  # the shards' per-task TTFT belongs to the ttft stage
            timings["ttft"] += part.ttft_seconds
            timings["predict"] -= part.ttft_seconds

        submission = ensemble_submission(own, ensemble, mine)
        write_submission(submission, final)
        log.info("wrote %s (%d tasks%s)", final, len(mine),
                 "" if len(ensemble) == 1 else f", ensemble of {', '.join(name for name, _ in ensemble)}")
        self._score(submission, own, ensemble, mine, run_dir, tracker, result, timings)
        return result

    @property
    def _mode(self) -> str:
        return "per_task" if self.training.ttft.per_task else "shared"

    # -- stage 2 (stage 1, the dataset, is dataset_stage in ttft/dataset.py) -------------------------------------------

    def ttft_stage(self, tasks: Sequence[Task], dataset: Optional[TTFTDataset], folder: Path, budget: Budget,
                   tracker, result: SolveResult) -> TTFTStage:
        """The adapter folder each task is predicted with (``None``: the starting checkpoint). The shared adapter is
        trained here; per-task adapters are left ``pending`` for :meth:`solve_part` (in each shard's process)."""
        none = {t.task_id: None for t in tasks}
        if dataset is None:
            log.info("ttft: disabled (ttft=none); predicting with the checkpoint")
            return TTFTStage(none)
        marker = read_marker(folder)
        if marker is not None:
            warn_if_changed(marker, self.training.ttft, "ttft")
            log.info("ttft: done in an earlier run (%s), skipped", folder)
            result.skipped_stages.append("ttft")
            return TTFTStage(marker["adapters"])
        if not dataset.tasks:
            write_marker(folder, {"stage": "ttft", "adapters": none, "ttft": self.training.ttft.describe(),
                                  "note": "no TTFT data"})
            return TTFTStage(none)
        seconds = budget.ttft_seconds()
        if budget.limited and seconds < 60 * budget.min_ttft_minutes:
            note = (f"time budget: {budget.seconds_left():.0f} s left gives TTFT {seconds:.0f} s, less than "
                    f"budget.min_ttft_minutes={budget.min_ttft_minutes}: TTFT skipped, predicting with the checkpoint")
            log.warning("ttft: %s", note)
            result.notes.append(note)
            return TTFTStage(none)  # no marker: a resume with more time fine-tunes
        deadline = budget.clock() + seconds if budget.limited else None
        run = tracker and tracker.child("ttft", stage="ttft", mode=self._mode)
        if self.training.ttft.per_task:
            return TTFTStage(none, pending=True, folder=folder, deadline=deadline, run=run)
        status = "FAILED"
        try:
            outcome = self.training.shared(dataset, folder, budget, deadline, run)
            adapters = {task_id: outcome.adapter for task_id in dataset.task_ids}
            write_marker(folder, self._ttft_report(adapters, [outcome], run, result))
            status = "FINISHED"
        finally:
            _finish(run, status)
        return TTFTStage(adapters, [outcome])

    def _close_ttft_stage(self, stage: TTFTStage, part: SolvePart, folder: Path, tracker, result: SolveResult,
                          reported: bool) -> None:
        """After the shards: the per-task adapters they trained reported (``stage.json``, or ``partial.json`` when
        the budget left tasks untrained: a resume trains them), or a merge's TTFT figures reported."""
        result.errors.extend(part.errors)
        result.notes.extend(part.notes)
        if reported and part.outcomes:  # merge=: the jobs' TTFT, reported in this run (the adapters stay there)
            run = tracker and tracker.child("ttft", stage="ttft", mode=self._mode)
            self._ttft_report(part.adapters, part.outcomes, run, result)
            _finish(run, "FAILED" if part.errors else "FINISHED")
        if not stage.pending:
            return
        stage.adapters.update(part.adapters)
        info = self._ttft_report(stage.adapters, part.outcomes, stage.run, result)
        _finish(stage.run, "FAILED" if part.errors else "FINISHED")
        if part.errors:
            return  # no marker: a resume trains again
        if part.complete:
            write_marker(folder, info)
        else:  # tasks left untrained for lack of time: a resume trains them
            write_json(folder / "partial.json", info, indent=1)

    def _ttft_report(self, adapters: Mapping, outcomes: Sequence[FineTuneOutcome], run,
                     result: SolveResult) -> dict:
        """The stage's ``stage.json`` content, also logged to its MLflow run (with the held-out losses)."""
        info = {"stage": "ttft", "mode": self._mode, "adapters": dict(adapters),
                "ttft": self.training.ttft.describe(), "outcomes": [o.to_dict() for o in outcomes]}
        metrics = {"steps": sum(o.steps for o in outcomes), "seconds": sum(o.seconds for o in outcomes),
                   "stopped_by_budget": float(any(o.stopped_by_budget for o in outcomes)),
                   "adapters": float(len({a for a in adapters.values() if a}))}
        if metrics["steps"]:  # measured step time and model size: iteration 4's timing table, from the parent run
            metrics.update(seconds_per_step=metrics["seconds"] / metrics["steps"],
                           parameters=float(max(o.parameters for o in outcomes)),
                           max_context_length=float(max(o.max_context for o in outcomes)))
        result.stage_metrics.update({f"ttft/{k}": v for k, v in metrics.items()})
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

    # -- a shard: its per-task TTFT, then its predictions -------------------------------------------------------------

    def solve_part(self, tasks: Sequence[Task], dataset: Optional[TTFTDataset], stage: TTFTStage, budget: Budget,
                   run: Optional[MLflowRun] = None) -> SolvePart:
        """Train the pending per-task adapters of ``tasks`` (``stage.pending``), then predict ``tasks``: what one
        shard does, in its own process with ``shards=N``. ``run``: the open TTFT run for per-task child runs."""
        part, began = SolvePart(), time.perf_counter()
        if stage.pending:
            try:
                self.training.per_task([t.task_id for t in tasks], dataset, stage.folder, budget, stage.deadline,
                                       run, part)
            except Exception as error:  # noqa: BLE001 - as a failed TTFT stage: predict with the checkpoint
                log.exception("TTFT failed; predicting with the checkpoint instead")
                part.errors.append(f"ttft: {type(error).__name__}: {error}")
                part.adapters = {}
        part.ttft_seconds = time.perf_counter() - began
        adapters = {**stage.adapters, **part.adapters}
        training = self.training
        part.predicted = predict_tasks(tasks, adapters, self._prediction_model, self.make_generator, training.tokenizer,
                                       training.evaluation, budget, training.progress)
        return part

    # -- stage 3 ------------------------------------------------------------------------------------------------------

    def _predicted_before(self, folder: Path, adapters: Mapping[str, Optional[str]], result: SolveResult
                          ) -> Optional[dict]:
        """A resumed run's submission when its predictions were made with the same settings, else ``None``."""
        marker = read_marker(folder)
        if marker is None or marker.get("settings") != self._prediction_settings(adapters):
            return None
        log.info("predict: done in an earlier run (%s), skipped", folder)
        result.skipped_stages.append("predict")
        result.metrics = json.loads((folder / "metrics.json").read_text()).get("metrics", {})
        result.predicted_tasks = len(json.loads((folder / "submission.json").read_text()))  # marked: all predicted
        return json.loads((folder / "submission.json").read_text())

    def _write_predictions(self, tasks: Sequence[Task], predicted: Predicted, folder: Path,
                           adapters: Mapping[str, Optional[str]], tracker, result: SolveResult) -> dict:
        """The stage's files and MLflow run, the run's accounting; returns the model's submission."""
        run = tracker and tracker.child("predict", stage="predict")
        status = "FAILED"
        try:
            result.metrics = write_predictions(predicted, tasks, folder, self.plots, self.training.evaluation.seed, run)
            status = "FAILED" if predicted.failed and not predicted.predicted_tasks else "FINISHED"
        finally:
            _finish(run, status)
        result.errors.extend(predicted.errors)
        result.failed_tasks.extend(predicted.failed)
        result.fallback_attempts += 2 * sum(len(t.test) for t in tasks if t.task_id in set(predicted.failed))
        result.predicted_tasks += predicted.predicted_tasks
        if predicted.skipped:
            note = (f"time budget: {len(predicted.skipped)} of {len(tasks)} tasks got no prediction (fallback "
                    f"attempts): {ids_text(predicted.skipped)}")
            log.warning("predict: %s", note)
            result.notes.append(note)
        if not predicted.skipped and not predicted.failed:  # a stage cut by the budget or by errors runs again
            write_marker(folder, {"stage": "predict", "settings": self._prediction_settings(adapters)})
        log.info("predict: %d tasks, %s", len(tasks), {k: round(v, 4) for k, v in result.metrics.items()})
        return predicted.evaluation.submission

    def _prediction_settings(self, adapters: Mapping[str, Optional[str]]) -> dict:
        """What the predictions depend on: a resumed run predicts again when any of it changed."""
        e = self.training.evaluation
        policy = {k: v for k, v in dataclasses.asdict(e.policy).items() if k != "task_augmentations"}
        return json.loads(json.dumps({
            "adapters": dict(adapters), "checkpoint": str(self.training.checkpoint.folder), "encoder": repr(e.encoder),
            "prompt": e.prompt_version, "views": policy, "predictions_per_task": e.predictions_per_task,
            "sampling": e.sampling, "seed": e.seed, "max_seq_len": e.max_seq_len, "max_new_tokens": e.max_new_tokens}))

    def _prediction_model(self, adapter: Optional[str]):
        checkpoint = self.training.checkpoint if adapter is None else \
            Checkpoint(Path(adapter), config=read_checkpoint_config(adapter))
        training = self.training
        return load_model_for_evaluation(training.spec, training.adapter, checkpoint, training.evaluation.seed,
                                         vocabulary_of(training.tokenizer))

    # -- score --------------------------------------------------------------------------------------------------------

    def _score(self, submission: Mapping, own: Mapping, ensemble, tasks: Sequence[Task], run_dir: Path, tracker,
               result: SolveResult, timings: Mapping[str, float]) -> None:
        metrics = {f"seconds/{stage}": value for stage, value in timings.items()}
        log.info("seconds per stage: %s", ", ".join(f"{stage} {value:.1f}" for stage, value in timings.items()))
        metrics.update(errors=len(result.errors), failed_tasks=len(result.failed_tasks),
                       fallback_attempts=result.fallback_attempts)
        if any(t.has_solutions for t in tasks):
            score = score_submission(submission, tasks)
            parts = {name: score_submission(own if name == MODEL else sub, tasks)["score"] for name, sub in ensemble}
            write_json(run_dir / "score.json", {**score, "parts": parts}, indent=1)
            result.score = score["score"]
            metrics["score"] = score["score"]
            if len(ensemble) > 1:
                metrics.update({f"score/{i}_{Path(name).stem}": value for i, (name, value) in
                                enumerate(parts.items())})
            log.info("score: %.4f over %d tasks with known test outputs%s", score["score"], score["n_tasks"],
                     "" if len(parts) == 1 else f" ({', '.join(f'{k}: {v:.4f}' for k, v in parts.items())})")
        if tracker is not None:
            tracker.log_metrics({**metrics, **result.stage_metrics, **result.metrics})
            tracker.set_tags({"skipped_stages": ",".join(result.skipped_stages), "run_dir": str(run_dir.resolve()),
                              "notes": " | ".join(result.notes)[:5000], "degraded": str(result.degraded).lower(),
                              "errors": " | ".join(result.errors)[:5000]})
            for name in ("submission.json", "score.json", "dataset/report.json", "ttft/stage.json"):
                tracker.log_files([run_dir / name], str(Path(name).parent) if "/" in name else None)
        for error in result.errors:
            log.error("worked around: %s", error)
        if result.status == "FAILED":
            merged = "" if len(ensemble) == 1 else " merged with the ensemble's"
            log.error("solve FAILED: no task was predicted by the model (%d errors); %s holds fallback attempts%s",
                      len(result.errors), result.submission, merged)
        elif result.degraded:
            log.warning("solve degraded: %d errors worked around (%d tasks failed, %d fallback attempts); the run is "
                        "tagged degraded=true", len(result.errors), len(result.failed_tasks), result.fallback_attempts)


def _finish(run: Optional[MLflowRun], status: str) -> None:
    if run is not None:
        run.finish(status)


def _mean(values: Iterable[float]) -> Optional[float]:
    values = list(values)
    return sum(values) / len(values) if values else None
