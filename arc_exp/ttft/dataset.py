"""The TTFT dataset: the test tasks' own train examples turned into training tasks (n-1: each example in turn the
target, the others shown; n-2 as well with two left out), the challenge tasks a solve run loads, and stage 1 of a
solve run (:func:`dataset_stage`), which builds the dataset once per run folder."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from arc_exp.data.augmentation import leave_one_out, leave_two_out
from arc_exp.data.selection import TaskSetSpec
from arc_exp.data.tasks import Task
from arc_exp.evaluation.pipeline import load_eval_tasks
from arc_exp.files import write_json
from arc_exp.ttft.settings import TTFTConfigError, TTFTSettings
from arc_exp.ttft.stages import read_marker, warn_if_changed, write_marker

log = logging.getLogger(__name__)

SINGLE_EXAMPLE = "single train example: no n-1 task (its target would be shown no example)"


NO_EXAMPLES = "no train examples"


@dataclass
class TTFTDataset:
    """The TTFT tasks of each test task, in task order.

    ``tasks`` maps a task id to its TTFT tasks (n-1, or n-2 with ``n2``) and holds only tasks that have some;
    ``holdout`` maps a task id to its held-out example as a task (``ttft.holdout``); ``skipped`` maps the id of each
    task without TTFT tasks to the reason.
    """

    task_ids: list[str]
    tasks: dict[str, list[Task]] = field(default_factory=dict)
    holdout: dict[str, Task] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        reasons = list(self.skipped.values())
        return {"tasks": len(self.task_ids), "tasks_with_ttft": len(self.tasks),
                "ttft_tasks": sum(len(t) for t in self.tasks.values()),
                "n1_tasks": sum(":loo" in t.task_id for ts in self.tasks.values() for t in ts),
                "n2_tasks": sum(":l2o" in t.task_id for ts in self.tasks.values() for t in ts),
                "single_example_tasks": reasons.count(SINGLE_EXAMPLE), "no_example_tasks": reasons.count(NO_EXAMPLES),
                "holdout_tasks": len(self.holdout)}

    def save(self, folder: str | Path) -> None:
        """``tasks.json`` ({task_id: [TTFT task, ...]}), ``holdout.json`` and ``report.json`` in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "tasks.json", {task_id: [{"id": t.task_id, **t.to_dict()} for t in ttft_tasks]
                                            for task_id, ttft_tasks in self.tasks.items()}, indent=1)
        write_json(folder / "holdout.json", {task_id: t.to_dict() for task_id, t in self.holdout.items()}, indent=1)
        write_json(folder / "report.json", {"task_ids": self.task_ids, "summary": self.summary(),
                                             "ttft_tasks": {k: len(v) for k, v in self.tasks.items()},
                                             "skipped": self.skipped}, indent=1)

    @classmethod
    def load(cls, folder: str | Path) -> "TTFTDataset":
        folder = Path(folder)
        report = json.loads((folder / "report.json").read_text())
        stored = json.loads((folder / "tasks.json").read_text())
        source = str(folder / "tasks.json")
        tasks = {task_id: [Task.from_dict(t.pop("id"), t, source=source) for t in items]
                 for task_id, items in stored.items()}
        holdout = {task_id: Task.from_dict(task_id, t, source=str(folder / "holdout.json"))
                   for task_id, t in json.loads((folder / "holdout.json").read_text()).items()}
        return cls(report["task_ids"], tasks, holdout, report["skipped"])


def build_ttft_dataset(tasks: Sequence[Task], n2: bool = False, holdout: bool = False) -> TTFTDataset:
    """The TTFT tasks of ``tasks`` (see the module docstring); with ``holdout`` the last train example of each task
    with at least 2 is held out first (and the TTFT tasks come from the others). With ``n2`` each task gives its
    n-2 tasks instead of its n-1 tasks; one with only 2 train examples (no n-2 task: it would show no example)
    keeps its n-1 tasks.

    >>> from arc_exp.data.tasks import Example
    >>> pair = lambda c: Example([[c]], [[c, c]])
    >>> task = Task("abc", (pair(1), pair(2), pair(3)), (Example([[4]]),))
    >>> [t.task_id for t in build_ttft_dataset([task]).tasks["abc"]]
    ['abc:loo0', 'abc:loo1', 'abc:loo2']
    >>> [t.task_id for t in build_ttft_dataset([task], n2=True).tasks["abc"]]
    ['abc:l2o0-1', 'abc:l2o0-2', 'abc:l2o1-0', 'abc:l2o1-2', 'abc:l2o2-0', 'abc:l2o2-1']
    """
    dataset = TTFTDataset([t.task_id for t in tasks])
    for task in tasks:
        if holdout and len(task.train) >= 2:
            dataset.holdout[task.task_id] = task.replace(train=task.train[:-1], test=task.train[-1:])
            task = task.replace(train=task.train[:-1])
        made = (n2 and leave_two_out(task)) or leave_one_out(task)
        if made:
            dataset.tasks[task.task_id] = made
        else:
            dataset.skipped[task.task_id] = NO_EXAMPLES if not task.train else SINGLE_EXAMPLE
    return dataset


def ids_text(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def load_tasks(challenges: Optional[str], eval_config: Optional[Mapping]) -> list[Task]:
    """The tasks to solve: ``challenges`` (any source :func:`~arc_exp.data.sources.load_source` reads) when given,
    else the data config's ``eval`` task set."""
    if challenges:
        tasks = TaskSetSpec(source=str(challenges)).load()
        if not tasks:
            raise TTFTConfigError(f"challenges '{challenges}' holds no task")
        return tasks
    return load_eval_tasks(eval_config)


def dataset_stage(tasks: Sequence[Task], folder: Path, settings: TTFTSettings, tracker, skipped_stages: list[str],
                  notes: list[str]) -> TTFTDataset:
    """Stage 1 of a solve run: the TTFT dataset of ``tasks`` saved in ``folder`` (or loaded from it on resume,
    appending ``"dataset"`` to ``skipped_stages``), its summary logged to a child run of ``tracker``; the tasks
    without TTFT tasks are reported in ``notes``."""
    task_ids = [t.task_id for t in tasks]
    marker = read_marker(folder)
    if marker is not None:
        warn_if_changed(marker, settings, "dataset", ("n2", "holdout"))
        dataset = TTFTDataset.load(folder)
        if dataset.task_ids != task_ids:
            raise TTFTConfigError(f"resume: the run folder's dataset was built for tasks "
                                  f"{ids_text(dataset.task_ids)} but this run selects {ids_text(task_ids)}; "
                                  f"use the same task selection, or start a new run")
        log.info("dataset: done in an earlier run (%s), skipped", folder)
        skipped_stages.append("dataset")
        return dataset
    dataset = build_ttft_dataset(tasks, n2=settings.n2, holdout=settings.holdout)
    dataset.save(folder)
    summary = dataset.summary()
    log.info("dataset: %d TTFT tasks (n-1: %d, n-2: %d) from %d of %d tasks", summary["ttft_tasks"],
             summary["n1_tasks"], summary["n2_tasks"], summary["tasks_with_ttft"], summary["tasks"])
    if dataset.skipped:
        note = (f"{len(dataset.skipped)} of {len(tasks)} tasks have no TTFT task ({summary['single_example_tasks']}"
                f" with a single train example, {summary['no_example_tasks']} with none): "
                f"{ids_text(list(dataset.skipped))}; they are predicted without their own TTFT data")
        log.warning("dataset: %s", note)
        notes.append(note)
    if not dataset.tasks:
        note = "no task has 2 or more train examples: there is nothing to fine-tune on"
        log.warning("dataset: %s", note)
        notes.append(note)
    run = tracker and tracker.child("dataset", stage="dataset")
    if run is not None:
        run.log_metrics(summary)
        run.log_files([folder / "report.json"])
        run.finish("FINISHED")
    write_marker(folder, {"stage": "dataset", "summary": summary, "ttft": settings.describe()})
    return dataset
