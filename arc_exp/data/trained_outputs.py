"""Which test outputs a model trained on: the record every training run writes, and the guard that refuses to score them.

A score means something only for outputs the model never saw in training. A training run records every example
whose output its data can show the model (``trained_outputs.json`` in the run folder, in each ``checkpoints/step-N``
folder and as an MLflow artifact); an evaluation compares the test examples it scores with the record of the
checkpoint it scores, and refuses before any model loads (:func:`check_scoring`), unless told to score them anyway
(tagged) or to leave their tasks out.

An example is identified by its content, not its task id: the hash of its input and output grids, so the same example
under another id or in another source (an ARC-1 evaluation task in ARC-AGI-2's training set, a repartition of ARC-1)
still matches. Which examples a training entry records:

- ARC task entries whose prompt shows outputs (output-from-examples, output-from-outputs): every example with an
  output, train and test (the test outputs are there unless the entry sets ``test_outputs: false``);
- input-from-inputs entries: nothing (they show inputs only; learning the test inputs' distribution is legitimate,
  inputs are available at test time);
- generated chats (count questions): nothing (synthetic grids).

A run continued from an earlier adapter (``adapter_path``) adds that adapter's record, so the record follows a chain
of continuations back to its first run. An ancestor without a record (an adapter trained before arc_exp kept one, a
model fine-tuned elsewhere) is named in ``unknown``: its training data cannot be checked, and evaluation says so.

>>> from arc_exp.data.tasks import Task
>>> task = Task.from_dict("0a1b2c3d", {"train": [{"input": [[1]], "output": [[2]]}],
...                                    "test": [{"input": [[3]], "output": [[4]]}]})
>>> record = TrainedOutputs.of_tasks([task], "output-from-examples-v0", origin="run A")
>>> len(record), record.matches([task.replace(task_id="renamed")])
(2, [('renamed', 0)])
>>> len(TrainedOutputs.of_tasks([task], "input-from-inputs-v0", origin="run B"))
0
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from arc_exp.data.prompts import NEW_GRID_VERSIONS, check_prompt_version
from arc_exp.data.tasks import Example, Task

log = logging.getLogger(__name__)

RECORD_FILE = "trained_outputs.json"
FORMAT = "arc_exp trained outputs v1: sha256 of the JSON [input, output], first 16 hex digits"
TAG = "trained_on_evaluated_outputs"  # the MLflow tag of a run that scored outputs it trained on (allowed)
ALLOW_KEY = "evaluation.allow_trained_outputs"
SKIP_KEY = "evaluation.skip_trained_tasks"
SKIPPED_TAG = "skipped_trained_tasks"  # the MLflow tag of a run that left such tasks out (skip)


class TrainedOutputsError(ValueError):
    """An evaluation that would score test outputs its checkpoint trained on, or an unreadable record."""


def example_hash(example: Example) -> str:
    """The content hash of an example with an output (the same grids give the same hash, whatever the task id).

    >>> example_hash(Example([[1, 2]], [[3]]))
    'eeba78bde8130c9f'
    """
    payload = json.dumps([example.input, example.output], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def shows_outputs(prompt_version: str) -> bool:
    """Whether training ``prompt_version`` shows the model output grids (every prompt but input-from-inputs)."""
    return NEW_GRID_VERSIONS.get(check_prompt_version(prompt_version)) != "input"


@dataclass(frozen=True)
class TrainedOutputs:
    """The examples (hashes) whose outputs a model was trained on, where they came from, and the ancestors whose
    training data is unknown."""

    hashes: frozenset = frozenset()
    origins: tuple = ()   # one line per training run and entry that added examples
    unknown: tuple = ()   # ancestors without a record (their training data cannot be checked)

    def __len__(self) -> int:
        return len(self.hashes)

    @classmethod
    def of_tasks(cls, tasks: Sequence[Task], prompt_version: str, origin: str) -> "TrainedOutputs":
        """The record of training ``prompt_version`` on ``tasks``: every example with an output (none for
        input-from-inputs)."""
        if not shows_outputs(prompt_version):
            return cls(origins=(f"{origin}: {len(tasks)} tasks, {prompt_version} (inputs only, no output)",))
        hashes = frozenset(example_hash(e) for task in tasks for e in (*task.train, *task.test) if e.output is not None)
        with_test = sum(task.has_solutions for task in tasks)
        return cls(hashes, (f"{origin}: {len(tasks)} tasks ({with_test} with test outputs), {prompt_version}, "
                            f"{len(hashes)} examples",))

    @classmethod
    def of_datasets(cls, datasets: Iterable, run: str) -> "TrainedOutputs":
        """The record of a training run's ``data.train`` datasets (:class:`~arc_exp.data.datamodule.TrainingDataset`
        objects: ``name``, ``tasks``, ``prompt`` and ``chats``); chats add nothing."""
        record = cls()
        for i, dataset in enumerate(datasets):
            if getattr(dataset, "chats", None) is not None:
                continue
            record = record | cls.of_tasks(dataset.tasks, dataset.prompt, f"{run} data.train[{i}] {dataset.name}")
        return record

    def continued_from(self, folder: Optional[str | Path], what: str = "adapter_path") -> "TrainedOutputs":
        """This record plus that of the checkpoint ``folder`` a run continues from (``adapter_path``); a folder
        without a record is named in ``unknown``."""
        if not folder:
            return self
        earlier = load_record(folder)
        if earlier is None:
            log.warning("%s '%s' has no %s: the test outputs it trained on are unknown, and evaluations of this "
                        "run cannot check them", what, folder, RECORD_FILE)
            return self | TrainedOutputs(unknown=(f"{what} {folder}",))
        return self | earlier

    def __or__(self, other: "TrainedOutputs") -> "TrainedOutputs":
        return TrainedOutputs(self.hashes | other.hashes, _unique(self.origins + other.origins),
                              _unique(self.unknown + other.unknown))

    def matches(self, tasks: Sequence[Task]) -> list[tuple[str, int]]:
        """``(task_id, test_index)`` of every known test output of ``tasks`` that this record holds."""
        return [(task.task_id, index) for task in tasks for index, example in enumerate(task.test)
                if example.output is not None and example_hash(example) in self.hashes]

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / RECORD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": FORMAT, "examples": len(self.hashes), "origins": list(self.origins),
                                    "unknown": list(self.unknown), "hashes": sorted(self.hashes)}, indent=1))
        return path


def load_record(folder: str | Path) -> Optional[TrainedOutputs]:
    """The record in ``folder`` (a run folder or a checkpoint folder), or ``None`` when it holds none."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return TrainedOutputs(frozenset(data["hashes"]), tuple(data.get("origins", ())), tuple(data.get("unknown", ())))
    except (ValueError, KeyError, TypeError) as error:
        raise TrainedOutputsError(f"{path}: not a trained-outputs record ({error})") from None


def check_scoring(record: Optional[TrainedOutputs], tasks: Sequence[Task], label: str, allow: bool = False,
                  skip: bool = False) -> list[tuple[str, int]]:
    """The test outputs of ``tasks`` that the model ``label`` (a checkpoint folder, "this run") trained on, after
    refusing to score them unless ``allow`` (``evaluation.allow_trained_outputs=true``: scored, the run tagged) or
    ``skip`` (``evaluation.skip_trained_tasks=true``: the caller leaves their tasks out, :func:`untrained_tasks`).

    ``record`` None: the model's record is missing (warned; nothing to compare). Raises :class:`TrainedOutputsError`
    with one line naming the model, the count and the first task ids.
    """
    if record is None:
        log.warning("%s has no %s: cannot check that the evaluated test outputs were not trained on", label,
                    RECORD_FILE)
        return []
    if record.unknown:
        log.warning("%s continues %s, whose training data is unknown: the evaluated test outputs are checked "
                    "against the rest of its training only", label, ", ".join(record.unknown))
    found = record.matches(tasks)
    if not found:
        return []
    scored = sum(e.output is not None for task in tasks for e in task.test)
    ids = list(dict.fromkeys(task_id for task_id, _ in found))
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    what = f"{label} trained on {len(found)} of the {scored} evaluated test outputs (tasks {shown})"
    if skip:
        log.warning("%s: %d tasks left out of the evaluation (%s=true)", what, len(ids), SKIP_KEY)
    elif allow:
        log.warning("%s; scored anyway (%s=true), the run is tagged %s=%d", what, ALLOW_KEY, TAG, len(found))
    else:
        raise TrainedOutputsError(
            f"{what}: its score would count answers it has seen; leave those tasks out ({SKIP_KEY}=true), or set "
            f"{ALLOW_KEY}=true to score them anyway (the run is tagged {TAG}={len(found)})")
    return found


def untrained_tasks(tasks: Sequence[Task], found: Iterable[tuple[str, int]]) -> list[Task]:
    """``tasks`` without those of ``found`` (:func:`check_scoring`'s), in order; an evaluation without tasks left is
    an error (nothing to score)."""
    trained = {task_id for task_id, _ in found}
    kept = [task for task in tasks if task.task_id not in trained]
    if not kept:
        raise TrainedOutputsError(f"{SKIP_KEY}=true leaves no task to evaluate: the model trained on the test outputs "
                                  f"of all {len(tasks)}")
    return kept


def _unique(items: tuple) -> tuple:
    return tuple(dict.fromkeys(items))


__all__ = ["RECORD_FILE", "SKIPPED_TAG", "TAG", "TrainedOutputs", "TrainedOutputsError", "check_scoring",
           "example_hash", "load_record", "shows_outputs", "untrained_tasks"]
