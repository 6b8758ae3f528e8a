"""The ARC task model: a task id, train examples (input/output pairs) and test inputs with optional outputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from arc_exp.data.grid import Grid, validate_grid


class TaskFormatError(ValueError):
    """A task file or entry that is not a valid ARC task; the message names the file and the task id."""


@dataclass(frozen=True)
class Example:
    """One pair of grids. For a test example ``output`` is ``None`` when the solution is unknown."""

    input: Grid
    output: Optional[Grid] = None


@dataclass(frozen=True)
class Task:
    task_id: str
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    source: str = field(default="", compare=False)

    @property
    def test_inputs(self) -> list[Grid]:
        return [example.input for example in self.test]

    @property
    def test_outputs(self) -> Optional[list[Grid]]:
        """The known test outputs, or ``None`` when any is missing."""
        if any(example.output is None for example in self.test):
            return None
        return [example.output for example in self.test]

    @property
    def has_solutions(self) -> bool:
        return self.test_outputs is not None

    def replace(self, **changes: Any) -> "Task":
        values = dict(task_id=self.task_id, train=self.train, test=self.test, source=self.source)
        values.update(changes)
        values["train"] = tuple(values["train"])
        values["test"] = tuple(values["test"])
        return Task(**values)

    def to_dict(self) -> dict:
        """The ARC JSON form: ``{"train": [{"input", "output"}], "test": [{"input", "output"?}]}``."""

        def pair(example: Example) -> dict:
            out = {"input": example.input}
            if example.output is not None:
                out["output"] = example.output
            return out

        return {"train": [pair(e) for e in self.train], "test": [pair(e) for e in self.test]}

    @classmethod
    def from_dict(cls, task_id: str, data: Any, source: str = "<memory>") -> "Task":
        """Build and validate a task from its ARC JSON form; errors name ``source`` and ``task_id``."""
        where = f"{source}: task {task_id}"
        if not isinstance(data, dict):
            raise TaskFormatError(f"{where}: expected an object with 'train' and 'test', got {type(data).__name__}")
        for key in ("train", "test"):
            if key not in data:
                raise TaskFormatError(f"{where}: missing key '{key}'")
            if not isinstance(data[key], list):
                raise TaskFormatError(f"{where}: '{key}' must be a list of examples")
        if not data["test"]:
            raise TaskFormatError(f"{where}: 'test' holds no test input")

        def example(item: Any, name: str, need_output: bool) -> Example:
            if not isinstance(item, dict) or "input" not in item:
                raise TaskFormatError(f"{where}: {name} is missing key 'input'")
            if need_output and "output" not in item:
                raise TaskFormatError(f"{where}: {name} is missing key 'output'")
            try:
                grid_in = validate_grid(item["input"], f"{where} {name}.input")
                grid_out = validate_grid(item["output"], f"{where} {name}.output") if "output" in item else None
            except ValueError as error:
                raise TaskFormatError(str(error)) from None
            return Example(grid_in, grid_out)

        train = tuple(example(e, f"train[{i}]", True) for i, e in enumerate(data["train"]))
        test = tuple(example(e, f"test[{i}]", False) for i, e in enumerate(data["test"]))
        return cls(task_id=task_id, train=train, test=test, source=source)

    def with_solutions(self, outputs: Any, source: str = "<memory>") -> "Task":
        """Attach test outputs (a Kaggle ``*_solutions.json`` entry); counts must match the test inputs."""
        where = f"{source}: task {self.task_id}"
        if not isinstance(outputs, list) or len(outputs) != len(self.test):
            count = len(outputs) if isinstance(outputs, list) else type(outputs).__name__
            raise TaskFormatError(f"{where}: {count} solutions for {len(self.test)} test inputs")
        try:
            test = tuple(
                Example(e.input, validate_grid(o, f"{where} solution[{i}]"))
                for i, (e, o) in enumerate(zip(self.test, outputs))
            )
        except ValueError as error:
            raise TaskFormatError(str(error)) from None
        return self.replace(test=test)
