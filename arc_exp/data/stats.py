"""Token statistics: how long each task's prompt + answer is, per grid encoder, for a tokenizer.

The seeds chose encodings partly on this: a representation that doubles the tokens halves the tasks that fit.
``python stats.py`` (the entry point, beside train.py) prints, per encoder (every encoder option by default):
median, p90 and max tokens per task, and the share of tasks over ``max_seq_len``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arc_exp.data.prompts import build_messages, render_segments
from arc_exp.data.samples import tokenize_segments
from arc_exp.data.tasks import Task


@dataclass
class TokenStats:
    encoder: str
    tasks: int
    median: float
    p90: float
    max: int
    over_max_seq_len: float

    def row(self) -> str:
        return (f"| {self.encoder} | {self.tasks} | {self.median:.0f} | {self.p90:.0f} | {self.max} | "
                f"{100 * self.over_max_seq_len:.1f}% |")


def task_token_counts(tasks: Sequence[Task], encoder, prompt_version: str, tokenizer) -> list[int]:
    """Tokens of the full chat (every train example, the first test input and its answer) for each task."""
    counts = []
    for task in tasks:
        messages = build_messages(task, encoder, prompt_version, test_index=0)
        input_ids, _ = tokenize_segments(render_segments(messages, tokenizer), tokenizer)
        counts.append(len(input_ids))
    return counts


def token_stats(name: str, counts: Sequence[int], max_seq_len: int) -> TokenStats:
    values = np.asarray(counts)
    return TokenStats(name, len(values), float(np.median(values)), float(np.percentile(values, 90)),
                      int(values.max()), float((values > max_seq_len).mean()))


def format_table(stats: Sequence[TokenStats], max_seq_len: int) -> str:
    header = f"| encoder | tasks | median | p90 | max | over {max_seq_len} |\n|---|---|---|---|---|---|"
    return "\n".join([header, *(s.row() for s in stats)])
