"""RE-ARC (re-generated ARC-1 training tasks, one generator per task) in its own file layout, as ARC tasks.

RE-ARC ships a folder ``tasks/`` with one file per ARC-1 training task, ``<task id>.json``, holding a list of
generated examples ``[{"input": grid, "output": grid}, ...]`` (thousands per task), not a task. Training needs
tasks: :func:`load_re_arc` shuffles each file's examples (seeded by ``seed`` and the task id) and cuts them into
tasks of ``examples_per_task`` examples, the last one the test; a remainder that fills no task is left out.

>>> import json, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "0a1b2c3d.json").write_text(json.dumps([{"input": [[i]], "output": [[i + 1]]} for i in range(7)]))
>>> [(t.task_id, len(t.train), len(t.test)) for t in load_re_arc(folder, examples_per_task=3)]
[('0a1b2c3d:0', 2, 1), ('0a1b2c3d:1', 2, 1)]

A data entry names it as a source string: ``re-arc:<folder>`` or ``re-arc:<folder>?examples=5&seed=0``.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qs

from arc_exp.data.tasks import Task, TaskFormatError

PREFIX = "re-arc:"
EXAMPLES_PER_TASK = 5   # 4 shown, 1 the test: a typical ARC-1 task's size
WHERE = "RE-ARC (github.com/michaelhodel/re-arc, re_arc.zip: its tasks/ folder)"


def load_re_arc(folder: Union[str, Path], examples_per_task: int = EXAMPLES_PER_TASK, seed: int = 0) -> list[Task]:
    """The tasks of a RE-ARC ``tasks/`` folder, ``examples_per_task`` examples each, ids ``<task id>:<k>``."""
    folder = Path(folder)
    if isinstance(examples_per_task, bool) or not isinstance(examples_per_task, int) or examples_per_task < 2:
        raise ValueError(f"re-arc: examples per task must be an integer >= 2, got {examples_per_task!r}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such RE-ARC tasks folder; download {WHERE}")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise TaskFormatError(f"{folder}: holds no <task id>.json files of {WHERE}")
    tasks = []
    for file in files:
        examples = _read_examples(file)
        random.Random(f"{seed}:{file.stem}").shuffle(examples)
        for k in range(len(examples) // examples_per_task):
            chunk = examples[k * examples_per_task:(k + 1) * examples_per_task]
            data = {"train": chunk[:-1], "test": chunk[-1:]}
            try:
                tasks.append(Task.from_dict(f"{file.stem}:{k}", data, source=str(file)))
            except TaskFormatError as error:
                raise TaskFormatError(f"{file}: {error}") from None
    return tasks


def _read_examples(file: Path) -> list[Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TaskFormatError(f"{file}: not a JSON file of RE-ARC examples ({error})") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and "input" in e and "output" in e for e in data):
        raise TaskFormatError(f"{file}: a RE-ARC task file is a list of {{'input': grid, 'output': grid}} examples")
    return data


def parse_source(source: str) -> tuple[str, int, int]:
    """``"re-arc:data/re_arc/tasks?examples=6&seed=1"`` -> ``("data/re_arc/tasks", 6, 1)`` (defaults 5 and 0)."""
    path, _, query = source[len(PREFIX):].partition("?")
    params = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - {"examples", "seed"})
    if unknown or not path:
        raise ValueError(f"{source!r}: a RE-ARC source is re-arc:<tasks folder>[?examples=N&seed=S]")
    try:
        return path, int(params.get("examples", EXAMPLES_PER_TASK)), int(params.get("seed", 0))
    except ValueError:
        raise ValueError(f"{source!r}: examples and seed must be integers") from None
