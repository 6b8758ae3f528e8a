"""Prompt versions: how an ARC task becomes chat messages, and how a chat becomes prompt and answer text.

A prompt version builds a chat (system, user, assistant) from a task and a grid encoder. The chat is rendered with
the tokenizer's chat template into *segments*: the text the model reads and the answer text it must write, kept
apart so the trainer masks the loss exactly and inference feeds the very same prompt text.

>>> from arc_exp.data.encoders import MinimalGridEncoder
>>> task = Task.from_dict("t", {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})
>>> messages = build_messages(task, MinimalGridEncoder(), "output-from-examples-v1")
>>> print(messages[1]["content"])
Solve this ARC task. Examples:
## Input 1
1
## Output 1
2
## Test input
3
## Test output
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from arc_exp.data.tasks import Task

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}

SYSTEM_PROMPT = (
    "You are a helpful assistant that solves tasks from the Abstraction and Reasoning Corpus (ARC). "
    "Each task shows input and output grids; every cell is one of ten colors written as a symbol, "
    "and a grid is between 1x1 and 30x30. Find the transformation from input to output and apply it."
)


class UnknownPromptError(ValueError):
    """A prompt version that does not exist; the message lists the known ones."""


@dataclass(frozen=True)
class Segment:
    """A piece of rendered chat text; ``is_answer`` pieces carry the loss."""

    text: str
    is_answer: bool


def _output_from_examples_v0(task: Task, encoder, test_index: int) -> tuple[str, Optional[str]]:
    parts = ["Let's see if you can solve this simple ARC task. "
             "These are some input-output grid examples that show the transformation."]
    for i, example in enumerate(task.train, start=1):
        parts.append(f"## Example {i}\n\n### Input\n\n{encoder.encode(example.input)}\n\n"
                     f"### Output\n\n{encoder.encode(example.output)}")
    test = task.test[test_index]
    parts.append(f"## Test case\n\n### Input\n\n{encoder.encode(test.input)}")
    user = "\n\n".join(parts)
    answer = None if test.output is None else encoder.encode(test.output)
    return user, answer


def _output_from_examples_v1(task: Task, encoder, test_index: int) -> tuple[str, Optional[str]]:
    lines = ["Solve this ARC task. Examples:"]
    for i, example in enumerate(task.train, start=1):
        lines += [f"## Input {i}", encoder.encode(example.input), f"## Output {i}", encoder.encode(example.output)]
    test = task.test[test_index]
    lines += ["## Test input", encoder.encode(test.input), "## Test output"]
    answer = None if test.output is None else encoder.encode(test.output)
    return "\n".join(lines), answer


def _all_grids(task: Task, which: str) -> list:
    grids = [getattr(e, which) for e in task.train] + [getattr(e, which) for e in task.test]
    return [g for g in grids if g is not None]


def _new_grid_prompt(which: str) -> Callable[[Task, object, int], tuple[str, Optional[str]]]:
    """Given some inputs (or outputs) of a task, write a new one of the same distribution.

    The target is the grid at position ``test_index`` among all of the task's inputs (outputs): train examples
    first, then test inputs (known test outputs); a negative index counts from the end (-1: the last grid). For
    generation (``test_index`` == number of grids) there is no answer.
    """

    def build(task: Task, encoder, test_index: int) -> tuple[str, Optional[str]]:
        grids = _all_grids(task, which)
        if test_index < 0:
            test_index += len(grids)
        if test_index >= len(grids):
            shown, answer = grids, None
        else:
            shown = grids[:test_index] + grids[test_index + 1:]
            answer = encoder.encode(grids[test_index])
        parts = [f"Here are some {which} grids of an ARC task. "
                 f"Write a new {which} grid that follows the same distribution."]
        for i, grid in enumerate(shown, start=1):
            parts.append(f"## {which.capitalize()} {i}\n\n{encoder.encode(grid)}")
        parts.append(f"## New {which}")
        return "\n\n".join(parts), answer

    return build


# prompt version -> the kind of grid it asks for a new one of, given the task's other grids of that kind
NEW_GRID_VERSIONS = {"input-from-inputs-v0": "input", "output-from-outputs-v0": "output"}

PROMPT_VERSIONS: dict[str, Callable[[Task, object, int], tuple[str, Optional[str]]]] = {
    "output-from-examples-v0": _output_from_examples_v0,
    "output-from-examples-v1": _output_from_examples_v1,
    **{version: _new_grid_prompt(which) for version, which in NEW_GRID_VERSIONS.items()},
}


def check_prompt_version(version: str) -> str:
    if version not in PROMPT_VERSIONS:
        raise UnknownPromptError(
            f"unknown prompt version '{version}'; known versions: {', '.join(sorted(PROMPT_VERSIONS))}"
        )
    return version


def answer_indices(task: Task, version: str) -> list[int]:
    """The ``test_index`` values whose chat has an answer to train on: the test inputs with a known output for
    output-from-examples; every input (train and test inputs: tasks without known outputs too) for
    input-from-inputs; every known output for output-from-outputs.

    >>> task = Task.from_dict("t", {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})
    >>> [answer_indices(task, v) for v in ("output-from-examples-v0", "input-from-inputs-v0", "output-from-outputs-v0")]
    [[], [0, 1], [0]]
    """
    which = NEW_GRID_VERSIONS.get(check_prompt_version(version))
    if which is not None:
        return list(range(len(_all_grids(task, which))))
    return [i for i, example in enumerate(task.test) if example.output is not None]


def training_view(task: Task, version: str, index: int) -> tuple[Task, int]:
    """``(task, test_index)`` that trains ``version`` on answer number ``index`` (one of :func:`answer_indices`)
    with the same chat as ``build_messages(task, version, index)``, arranged so that dropping the last train
    examples to fit ``max_seq_len`` never drops the target: for the new-grid prompts the target's example becomes
    the only test example (the others, test inputs included, are the train examples, in order) and the index is -1.
    """
    which = NEW_GRID_VERSIONS.get(check_prompt_version(version))
    if which is None:
        return task, index
    examples = task.train + task.test
    target = [i for i, e in enumerate(examples) if getattr(e, which) is not None][index]
    return task.replace(train=examples[:target] + examples[target + 1:], test=examples[target:target + 1]), -1


def build_messages(task: Task, encoder, version: str, test_index: int = 0,
                   include_answer: bool = True) -> list[Message]:
    """The chat for one test input of ``task``: system, user and (when known and asked for) the assistant answer."""
    user, answer = PROMPT_VERSIONS[check_prompt_version(version)](task, encoder, test_index)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    if include_answer and answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def render_segments(messages: Sequence[Message], tokenizer) -> list[Segment]:
    """Render a chat with the tokenizer's chat template into prompt and answer segments.

    Every assistant turn is an answer; the rest is prompt. Works for multi-turn chats (several question/answer turns).
    The answer segment holds the turn's end token (e.g. ``"12\\n34<|im_end|>\\n"``) so the model learns to stop.
    """
    segments: list[Segment] = []
    rendered = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _apply_template(tokenizer, messages[:i], add_generation_prompt=True)
        full = _apply_template(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not prefix.startswith(rendered) or not full.startswith(prefix):
            raise ValueError("the chat template does not render chats incrementally; cannot mask answers exactly")
        if len(prefix) > len(rendered):
            segments.append(Segment(prefix[len(rendered):], False))
        segments.append(Segment(full[len(prefix):], True))
        rendered = full
    if messages and messages[-1]["role"] != "assistant":
        tail = _apply_template(tokenizer, messages, add_generation_prompt=True)
        if len(tail) > len(rendered):
            segments.append(Segment(tail[len(rendered):], False))
    return segments


def render_prompt(messages: Sequence[Message], tokenizer) -> str:
    """The text a model reads before writing its answer (the chat without the last answer, ready for generation)."""
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return _apply_template(tokenizer, messages, add_generation_prompt=True)


def fit_prompt(task: Task, encoder, version: str, test_index: int, tokenizer, answer_bound: int,
               max_seq_len: int) -> Optional[tuple[str, list[int], int]]:
    """The generation prompt of ``task`` (text, token ids) that leaves room for ``answer_bound`` answer tokens within
    ``max_seq_len``, and how many train examples it dropped: the last train examples go first (as training drops
    them), down to one (none for a task without train examples). ``None`` when even that does not fit."""
    train = list(task.train)
    for keep in range(len(train), min(len(train), 1) - 1, -1):
        shown = task if keep == len(train) else task.replace(train=train[:keep])
        prompt = render_prompt(build_messages(shown, encoder, version, test_index, include_answer=False), tokenizer)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) + answer_bound <= max_seq_len:
            return prompt, ids, len(train) - keep
    return None


def _apply_template(tokenizer, messages: Sequence[Message], add_generation_prompt: bool) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
