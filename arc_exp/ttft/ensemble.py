"""Ensembles: this run's attempts merged with other submission files by priority (ensemble=[model,other.json])."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from arc_exp.data.tasks import Task
from arc_exp.evaluation.submission import (
    SubmissionError,
    merge_submissions,
)
from arc_exp.ttft.settings import TTFTConfigError

MODEL = "model"  # the name of this run's own submission in an ensemble list


def load_ensemble(entries: Optional[Iterable[str]]) -> list[tuple[str, Optional[dict]]]:
    """The ``ensemble`` list as ``(name, submission)`` pairs, by priority; ``model`` (this run's own submission,
    ``None`` here) goes first unless listed elsewhere. Missing or malformed files fail here, before any work.

    >>> load_ensemble([])
    [('model', None)]
    """
    entries = [str(e) for e in (entries or [])]
    if entries.count(MODEL) > 1:
        raise TTFTConfigError(f"ensemble lists '{MODEL}' (this run's submission) {entries.count(MODEL)} times")
    if MODEL not in entries:
        entries.insert(0, MODEL)
    loaded = []
    for index, entry in enumerate(entries):
        if entry == MODEL:
            loaded.append((MODEL, None))
            continue
        path = Path(entry).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ensemble[{index}]: no such submission file '{entry}'")
        try:
            submission = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SubmissionError(f"ensemble[{index}] '{entry}': not a JSON submission ({error})") from None
        if not isinstance(submission, dict):
            raise SubmissionError(f"ensemble[{index}] '{entry}': expected an object {{task_id: [...]}}, got "
                                  f"{type(submission).__name__}")
        loaded.append((str(path), submission))
    return loaded


def ensemble_submission(own: Mapping, ensemble: Sequence[tuple[str, Optional[dict]]], tasks: Sequence[Task]) -> dict:
    """Merge this run's submission (``own``) with the ``ensemble`` submissions in their priority order
    (:func:`~arc_exp.evaluation.submission.merge_submissions`: every attempt_1 in order, then every attempt_2)."""
    return merge_submissions([own if name == MODEL else submission for name, submission in ensemble], tasks)
