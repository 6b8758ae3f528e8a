"""Product-of-experts selection (inference.selection=poe): each candidate answer is rescored under every augmented view
of its task and ranked by the summed (or mean) log-probability."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from arc_exp.data.encoders import GridEncoder
from arc_exp.data.grid import Grid
from arc_exp.data.tasks import Task
from arc_exp.evaluation.settings import EvaluationSettings
from arc_exp.evaluation.views import ViewPrompt
from arc_exp.evaluation.voting import VotedGrid
from arc_exp.inference.requests import Scorer, ScoreRequest, finite_or_none


@dataclass
class PoeScore:
    """A candidate grid's log-probability under each augmented view (by view name; ``None`` when the view's prompt
    did not fit) and their reduction (sum or mean over the scored views): the candidate's product-of-experts score."""

    grid: Grid
    votes: int
    view_logprobs: dict[str, Optional[float]]
    score: float

    def to_dict(self) -> dict:
        return {"poe_score": finite_or_none(self.score),
                "view_logprobs": {k: finite_or_none(v) for k, v in self.view_logprobs.items()}}


def poe_rank(scores: Sequence[PoeScore]) -> list[PoeScore]:
    """Candidates best first: higher product-of-experts score first; ties (and NaN scores, last) keep vote order.

    >>> [s.grid for s in poe_rank([PoeScore([[1]], 3, {}, -4.0), PoeScore([[2]], 1, {}, -1.5),
    ...                            PoeScore([[3]], 1, {}, float("nan"))])]
    [[[2]], [[1]], [[3]]]
    """
    return sorted(scores, key=lambda s: -s.score if math.isfinite(s.score) else math.inf)


def poe_requests(prompts: Sequence[ViewPrompt], candidates: Sequence[VotedGrid], encoder: GridEncoder
                 ) -> list[ScoreRequest]:
    """One scoring request per (candidate, view) of a test input: the candidate in the view's orientation and
    colors, written by the encoder, as the answer to the view's prompt. Views whose prompt did not fit are left out.
    Keys are ``(candidate index, view name)``."""
    requests = []
    views = list({p.augmentation.name: p for p in prompts if p.request is not None}.values())  # repeats score alike
    for index, candidate in enumerate(candidates):
        for prompt in views:
            answer = encoder.encode(prompt.augmentation.apply_grid(candidate.grid))
            requests.append(ScoreRequest(prompt.request.prompt, answer, (index, prompt.augmentation.name),
                                         prompt.request.prompt_ids))
    return requests


def poe_scores(candidates: Sequence[VotedGrid], view_names: Sequence[str], logprobs: Mapping[tuple, float],
               reduce: str = "sum") -> list[PoeScore]:
    """Each candidate's :class:`PoeScore` from the scored ``(candidate index, view name) -> logprob`` pairs.

    >>> poe_scores([VotedGrid([[1]], 2, -0.1), VotedGrid([[2]], 1, -0.3)], ["d0", "d1"],
    ...            {(0, "d0"): -1.0, (0, "d1"): -5.0, (1, "d0"): -2.0, (1, "d1"): -2.5})[1].score
    -4.5
    """
    out = []
    for index, candidate in enumerate(candidates):
        per_view = {name: logprobs.get((index, name)) for name in view_names}
        values = [v for v in per_view.values() if v is not None and math.isfinite(v)]
        if not values:
            score = float("nan")
        else:
            score = sum(values) if reduce == "sum" else sum(values) / len(values)
        out.append(PoeScore(candidate.grid, candidate.count, per_view, score))
    return out


def poe_select(tasks: Sequence[Task], prompts: Mapping[str, list[ViewPrompt]],
               votes: Mapping[str, list[list[VotedGrid]]], scorer: Scorer, settings: EvaluationSettings
               ) -> dict[str, list[list[PoeScore]]]:
    """Product-of-experts scores of the voted candidates of every test input of ``tasks``, in one batched
    ``scorer.score`` call: task id -> per test input -> the :class:`PoeScore` of each of its first
    ``poe_max_candidates`` voted candidates (in vote order; the rest are not rescored and rank after them)."""
    requests: list[ScoreRequest] = []
    spans = {}
    for task in tasks:
        for test_index, voted in enumerate(votes[task.task_id]):
            views = [p for p in prompts[task.task_id] if p.key.test_index == test_index]
            batch = poe_requests(views, voted[:settings.poe_max_candidates], settings.encoder)
            spans[task.task_id, test_index] = (len(requests), len(requests) + len(batch),
                                               [p.augmentation.name for p in views])
            requests.extend(batch)
    values = scorer.score(requests) if requests else []
    if len(values) != len(requests):
        raise RuntimeError(f"the scorer returned {len(values)} scores for {len(requests)} answers")
    out: dict[str, list[list[PoeScore]]] = {}
    for task in tasks:
        per_test = []
        for test_index, voted in enumerate(votes[task.task_id]):
            begin, end, names = spans[task.task_id, test_index]
            logprobs = {requests[i].key: values[i] for i in range(begin, end)}
            kept = voted[:settings.poe_max_candidates]
            scored = poe_scores(kept, list(dict.fromkeys(names)), logprobs, settings.poe_reduce)
            rest = [PoeScore(v.grid, v.count, {}, float("nan")) for v in voted[settings.poe_max_candidates:]]
            per_test.append(scored + rest)
        out[task.task_id] = per_test
    return out
