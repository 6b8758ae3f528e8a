"""Predictions split over processes or jobs: shard ``i`` of ``n`` predicts tasks ``i, i + n, ...`` of the task list,
and one merge puts the shards' results back in task order and scores them as one process would have. ``evaluate.py``
and ``solve.py`` share it: a solve shard also trains the per-task TTFT adapters of its tasks, and its merge keeps the
failed tasks and fallback attempts (:mod:`arc_exp.ttft.parts`, above this module).

    shards=2                one process per device of this machine (CPU cores, or one GPU each), merged at once
    shard=0/2, shard=1/2    one job each (a SLURM job array, two Kaggle notebooks); each writes shard-<i>-of-<n>.pkl
    merge=<folder>          the shard files under <folder> -> predictions.json, submission.json, metrics (one run)

A task's views are seeded by its id and its predictions do not depend on the other tasks (greedy, DFS, PoE), so the
merged files equal the unsharded run's; with ``inference=sampling`` the draws of one generator's random stream
differ between shards (equally valid samples, other numbers).
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Optional, Sequence

import torch

from arc_exp.data.tasks import Task
from arc_exp.evaluation import EvaluationError
from arc_exp.evaluation.checkpoints import load_model_for_evaluation
from arc_exp.evaluation.metrics import aggregate_metrics
from arc_exp.evaluation.pipeline import evaluate_tasks
from arc_exp.evaluation.results import EvaluationResult
from arc_exp.inference.generator import create_generator

log = logging.getLogger(__name__)

SHARD_FILE = "shard-{index}-of-{count}.pkl"


class ShardError(EvaluationError):
    """A bad ``shards`` / ``shard`` / ``merge`` setting, or shard files that do not make one evaluation."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, value, key: str = "shard") -> "Shard":
        """``"1/4"`` -> Shard(1, 4): the second of four (indices start at 0)."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
        if not match:
            raise ShardError(f"{key}={value}: expected i/N, e.g. {key}=0/2 (shard 0 of 2)")
        shard = cls(int(match[1]), int(match[2]))
        if shard.count < 1 or shard.index >= shard.count:
            raise ShardError(f"{key}={value}: the index must be in 0..{max(shard.count - 1, 0)} for "
                             f"{shard.count} shards")
        return shard

    def tasks(self, tasks: Sequence[Task]) -> list[Task]:
        return list(tasks[self.index::self.count])

    @property
    def file_name(self) -> str:
        return SHARD_FILE.format(index=self.index, count=self.count)


def available_devices() -> tuple[int, str]:
    """(processes this machine can run side by side, what they are): GPUs when there are any, else CPU cores."""
    if torch.cuda.is_available():
        return torch.cuda.device_count(), "GPUs"
    return os.cpu_count() or 1, "CPU cores"


def check_sharding(shards: Optional[int], shard: Optional[str], merge: Optional[str], n_tasks: int,
                   tasks_from: str = "data.eval") -> Optional[Shard]:
    """The shard this job predicts (``shard=i/N``), else None; one clear error for settings that cannot work,
    before a model loads: two modes at once, an index out of range, more processes than devices or tasks (of
    ``tasks_from``, named in the error)."""
    given = [key for key, value in (("shards", shards), ("shard", shard), ("merge", merge)) if value]
    if len(given) > 1:
        raise ShardError(f"{' and '.join(given)} given together: choose one of shards=N (processes here), "
                         f"shard=i/N (one job of an array) or merge=<folder>")
    if shard:
        parsed = Shard.parse(shard)
        if parsed.count > n_tasks:
            raise ShardError(f"shard={shard}: {parsed.count} shards for {n_tasks} tasks ({tasks_from})")
        return parsed
    if shards is not None:
        count, what = available_devices()
        if not isinstance(shards, int) or shards < 1:
            raise ShardError(f"shards={shards}: expected a number of processes >= 1")
        if shards > count:
            raise ShardError(f"shards={shards}: this machine has {count} {what}")
        if shards > n_tasks:
            raise ShardError(f"shards={shards}: more processes than the {n_tasks} tasks of {tasks_from}")
    return None


def save_shard(folder: str | Path, shard: Shard, tasks: Sequence[Task], results: dict[Optional[str], EvaluationResult]
               ) -> Path:
    """``results`` (by step folder name, None for a single checkpoint) of ``shard``, with the whole task list so the
    merge can restore the order."""
    path = Path(folder) / shard.file_name
    payload = {"shard": shard, "task_ids": [t.task_id for t in tasks], "results": results}
    path.write_bytes(pickle.dumps(payload))
    return path


def merge_results(parts: Sequence[EvaluationResult], task_ids: Sequence[str]) -> EvaluationResult:
    """The shards' results as one: tasks in ``task_ids`` order, metrics over all scored tasks, counters summed,
    seconds of the slowest shard (they ran side by side)."""
    by_id = {task_id: result for part in parts for task_id, result in part.tasks.items()}
    missing = [task_id for task_id in task_ids if task_id not in by_id]
    if missing:
        raise ShardError(f"the shards hold no result for {len(missing)} tasks ({', '.join(missing[:5])})")
    tasks = {task_id: by_id[task_id] for task_id in task_ids}
    n = parts[0].predictions_per_task
    scored = {task_id: r.metrics for task_id, r in tasks.items() if r.metrics is not None}
    stats: dict[str, float] = {}
    for part in parts:
        for key, value in part.generation_stats.items():
            stats[key] = stats.get(key, 0) + value
    return EvaluationResult(tasks, n, aggregate_metrics(scored, n), max(p.seconds for p in parts), stats)


def load_shards(folder: str | Path, tasks: Sequence[Task], steps: Sequence[Optional[str]]
                ) -> dict[Optional[str], EvaluationResult]:
    """Every ``shard-<i>-of-<n>.pkl`` under ``folder`` (a job array's run folders), merged: results by step folder
    name (``steps``, None for one checkpoint). Missing, duplicate or mismatched shards, or shards of other tasks or
    checkpoints than this run's, are an error naming them."""
    payloads = load_payloads(folder, tasks, dict)
    if any(list(p["results"]) != list(steps) for p in payloads):
        raise ShardError(f"merge={folder}: the shards evaluated other checkpoints ({list(payloads[0]['results'])}) "
                         f"than checkpoint= gives ({list(steps)})")
    task_ids = [t.task_id for t in tasks]
    return {step: merge_results([p["results"][step] for p in payloads], task_ids) for step in steps}


def load_payloads(folder: str | Path, tasks: Sequence[Task], kind: type) -> list[dict]:
    """The payloads of :func:`save_shard` under ``folder``, in shard order, checked: one split, every shard once,
    split from ``tasks``, results of ``kind`` (an evaluation's dict by step, or a solve's part)."""
    files = sorted(Path(folder).rglob("shard-*-of-*.pkl"))
    if not files:
        raise ShardError(f"merge={folder}: no shard-<i>-of-<n>.pkl files under it")
    payloads = [pickle.loads(path.read_bytes()) for path in files]
    wrong = [str(path) for path, p in zip(files, payloads) if not isinstance(p["results"], kind)]
    if wrong:
        raise ShardError(f"merge={folder}: {', '.join(wrong)} written by "
                         f"{'solve.py' if kind is dict else 'evaluate.py'}, not by this entry point")
    counts = {p["shard"].count for p in payloads}
    if len(counts) > 1:
        raise ShardError(f"merge={folder}: shard files of different splits ({sorted(counts)} shards)")
    count = counts.pop()
    found = sorted(p["shard"].index for p in payloads)
    if found != list(range(count)):
        raise ShardError(f"merge={folder}: expected shards 0..{count - 1} once each, found {found}")
    task_ids = [t.task_id for t in tasks]
    if any(p["task_ids"] != task_ids for p in payloads):
        raise ShardError(f"merge={folder}: the shards were split from other tasks than this run's "
                         f"({len(payloads[0]['task_ids'])} vs {len(task_ids)} tasks); merge with the shards' data")
    return sorted(payloads, key=lambda p: p["shard"].index)


def run_shards(count: int, function, *args) -> list:
    """``function(shard, *args)`` for shards 0..count-1 in ``count`` fresh processes (one device each), in order.

    On CPU each process gets an equal share of the cores (``torch.set_num_threads``); on GPUs process ``i`` uses
    GPU ``i``."""
    with ProcessPoolExecutor(max_workers=count, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_in_shard_process, function, Shard(i, count), args) for i in range(count)]
        return [future.result() for future in futures]


def _in_shard_process(function, shard: Shard, args: tuple):
    logging.basicConfig(level=logging.INFO, format=f"[shard {shard.index}/{shard.count}] %(asctime)s %(name)s "
                                                   f"%(levelname)s - %(message)s")

    if torch.cuda.is_available():
        torch.cuda.set_device(shard.index % torch.cuda.device_count())
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // shard.count))
    return function(shard, *args)


def predict_shard(shard: Optional[Shard], tasks: Sequence[Task], spec, adapter, checkpoint, vocabulary, tokenizer,
                  inference, settings, seed: int, progress: bool = False) -> EvaluationResult:
    """Load ``checkpoint`` (reduced to ``vocabulary``, which ``tokenizer`` speaks) and predict the tasks of
    ``shard`` (all of ``tasks`` for None)."""
    model = load_model_for_evaluation(spec, adapter, checkpoint, seed, vocabulary)
    with torch.no_grad():
        return evaluate_tasks(shard.tasks(tasks) if shard else tasks, create_generator(inference, model, tokenizer),
                              tokenizer, settings, progress=progress)


def predict_in_processes(count: int, tasks: Sequence[Task], *args) -> EvaluationResult:
    """:func:`predict_shard` for ``count`` shards side by side (``shards=N``), merged."""
    log.info("predicting %d tasks in %d processes", len(tasks), count)
    parts = run_shards(count, predict_shard, tasks, *args)
    return merge_results(parts, [t.task_id for t in tasks])
