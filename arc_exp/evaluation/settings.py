"""Evaluation settings: how many predictions per test input, which views, prompt, encoder, selection and token bounds;
checked when composed so a bad key fails before a model loads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.entries import MAX_SEQ_LEN
from arc_exp.data.encoders import GridEncoder
from arc_exp.data.prompts import check_prompt_version
from arc_exp.evaluation import EvaluationError
from arc_exp.evaluation.views import (
    check_predictions_per_task,
    check_views,
)


@dataclass
class EvaluationSettings:
    """Everything :func:`evaluate_tasks` needs besides the tasks, the generator and the tokenizer."""

    encoder: GridEncoder
    prompt_version: str
    policy: AugmentationPolicy
    predictions_per_task: int = 8
    sampling: bool = False  # repeated views give new predictions (see inference_views)
    seed: int = 0
    max_seq_len: int = MAX_SEQ_LEN
    max_new_tokens: Optional[int] = None  # a hard cap on answer tokens (inference.max_new_tokens)
    requests_per_call: int = 8  # prompts gathered (whole tasks at a time) before each generate() call
    search: bool = False  # inference.sampler=dfs: every answer above the threshold per view (generator.search)
    selection: str = "vote"  # inference.selection: vote | poe
    poe_reduce: str = "sum"  # poe: sum or mean of a candidate's log-probabilities over the views
    poe_max_candidates: int = 8  # poe: the most voted candidates rescored

    def __post_init__(self) -> None:
        check_predictions_per_task(self.predictions_per_task)
        if self.selection not in ("vote", "poe"):
            raise EvaluationError(f"inference.selection: unknown selection '{self.selection}'; use vote or poe")
        if self.poe_reduce not in ("sum", "mean"):
            raise EvaluationError(f"inference.poe_reduce: use sum or mean, got '{self.poe_reduce}'")
        check_prompt_version(self.prompt_version)
        if self.max_seq_len < 16:
            raise EvaluationError(f"data.max_seq_len must be at least 16, got {self.max_seq_len}")


def settings_from_config(encoder: GridEncoder, prompt_version: str, policy: AugmentationPolicy, inference,
                         predictions_per_task: Any, seed: int, max_seq_len: int) -> EvaluationSettings:
    """The evaluation settings of a run: its ``encoder``, ``prompt.version``, ``augmentation`` policy, ``seed`` and
    ``data.max_seq_len`` with ``inference`` (an :class:`~arc_exp.inference.config.InferenceConfig`); the views are
    checked before any model loads. evaluate.py, solve.py and the evaluation after training all build them here."""
    settings = EvaluationSettings(
        encoder=encoder, prompt_version=prompt_version, policy=policy,
        predictions_per_task=check_predictions_per_task(predictions_per_task), sampling=inference.do_sample,
        seed=seed, max_seq_len=max_seq_len, max_new_tokens=inference.max_new_tokens,
        requests_per_call=inference.batch_size, search=inference.sampler == "dfs", selection=inference.selection,
        poe_reduce=inference.poe_reduce, poe_max_candidates=inference.poe_max_candidates)
    check_views(settings.policy, settings.predictions_per_task, settings.sampling)
    return settings
