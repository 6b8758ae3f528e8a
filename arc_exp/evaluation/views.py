"""Views of a test input: the augmented copies of a task that each yield one prediction, their prompts and the bound on
an answer's length in tokens."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional

from arc_exp.data.augmentation import Augmentation
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.encoders import GridEncoder
from arc_exp.data.grid import MAX_SIDE
from arc_exp.data.prompts import fit_prompt
from arc_exp.data.tasks import Example, Task
from arc_exp.evaluation import EvaluationError
from arc_exp.inference.requests import GenerationRequest


def inference_views(policy: AugmentationPolicy, n: int, sampling: bool, rng: random.Random) -> list[Augmentation]:
    """The ``n`` augmented views of one test input: :meth:`AugmentationPolicy.enumerate_views`.

    When the policy has fewer distinct views than ``n`` (e.g. ``augmentation=none``), sampling repeats the views in
    turn (each repeat is a new sample); greedy decoding would only repeat a prediction, so it is an error.

    >>> [v.name for v in inference_views(AugmentationPolicy(color_permutation=False), 3, False, random.Random(0))]
    ['d0', 'd1', 'd2']
    """
    check_predictions_per_task(n)
    available = policy.max_views
    if available is not None and n > available:
        if not sampling:
            raise EvaluationError(
                f"predictions_per_task={n} but the augmentation (dihedral={policy.dihedral}, color_permutation="
                f"{policy.color_permutation}) gives only {available} distinct view(s), and greedy decoding of a "
                f"repeated view repeats its prediction: use predictions_per_task<={available}, an augmentation with "
                f"color_permutation (e.g. augmentation=default), or inference=sampling")
        distinct = policy.enumerate_views(available, rng)
        return [distinct[i % available] for i in range(n)]
    return policy.enumerate_views(n, rng)


def check_views(policy: AugmentationPolicy, n: int, sampling: bool) -> None:
    """Fail early (before any model loads) when ``policy`` cannot give ``n`` views (see :func:`inference_views`)."""
    inference_views(policy, n, sampling, random.Random(0))


def answer_token_cap(encoder: GridEncoder, tokenizer, limit: Optional[int] = None) -> int:
    """Tokens of the longest plausible answer: an encoded 30x30 grid plus the end-of-turn token (``limit`` caps it).

    Digits may merge into fewer tokens for uniform rows, so the longest of a uniform and a varied grid counts.
    """
    grids = [[[0] * MAX_SIDE for _ in range(MAX_SIDE)],
             [[(r * 7 + c * 3) % 10 for c in range(MAX_SIDE)] for r in range(MAX_SIDE)]]
    cap = max(_token_count(tokenizer, encoder.encode(g)) for g in grids) + 1
    return min(cap, limit) if limit else cap


def answer_token_bound(task: Task, test_index: int, encoder: GridEncoder, tokenizer, cap: int) -> int:
    """The answer tokens allowed for one test input: twice the tokens of the largest grid among the train outputs and
    the test input, plus the end-of-turn token, at most ``cap``."""
    grids = [e.output for e in task.train if e.output is not None] + [task.test[test_index].input]
    longest = max(_token_count(tokenizer, encoder.encode(g)) for g in grids)
    return min(cap, 2 * longest + 1)


def _token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class ViewKey:
    """Which prediction a generation request is for."""

    task_id: str
    test_index: int
    view: int  # index among the test input's views
    augmentation: str


@dataclass
class ViewPrompt:
    key: ViewKey
    augmentation: Augmentation
    request: Optional[GenerationRequest]  # None when even one train example does not fit max_seq_len
    dropped_examples: int = 0


def view_prompt(task: Task, test_index: int, augmentation: Augmentation, view: int, encoder: GridEncoder,
                prompt_version: str, tokenizer, cap: int, max_seq_len: int) -> ViewPrompt:
    """The generation request for one augmented view of one test input.

    Test outputs are removed before the prompt is built, so no prompt version can leak a solution. Prompt plus
    answer bound must fit ``max_seq_len``: the last train examples are dropped until they do (as training does).
    """
    hidden = task.replace(test=[Example(e.input) for e in task.test])
    augmented = augmentation.apply_task(hidden)
    bound = answer_token_bound(augmented, test_index, encoder, tokenizer, cap)
    key = ViewKey(task.task_id, test_index, view, augmentation.name)
    fitted = fit_prompt(augmented, encoder, prompt_version, test_index, tokenizer, bound, max_seq_len)
    if fitted is None:
        return ViewPrompt(key, augmentation, None, len(augmented.train))
    prompt, ids, dropped = fitted
    return ViewPrompt(key, augmentation, GenerationRequest(prompt, bound, key, ids), dropped)


def check_predictions_per_task(n: Any) -> int:
    """``predictions_per_task`` as an int >= 1, else :class:`EvaluationError` naming the key."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise EvaluationError(f"predictions_per_task must be an integer >= 1, got {n!r}")
    return n
