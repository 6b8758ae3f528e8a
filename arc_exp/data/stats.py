"""Token statistics: how long each task's prompt + answer is, per grid encoder, for a tokenizer.

The seeds chose encodings partly on this: a representation that doubles the tokens halves the tasks that fit.

    python -m arc_exp.data.stats                                   # ARC-1 training, the default encoder
    python -m arc_exp.data.stats data=arc1-evaluation 'encoders=[minimal,grid_shape_row_number]' max_seq_len=4096

(every encoder option by default) prints, per encoder: median, p90 and max tokens per task, and the share of tasks over ``max_seq_len``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arc_exp.data.samples import tokenize_segments
from arc_exp.data.tasks import Task
from arc_exp.data.prompts import build_messages, render_segments


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


def encoder_options(folder: Path) -> list[str]:
    """Every encoder option (``conf/encoder/*.yaml``), sorted: the statistics cover a new one without a change."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def main() -> None:
    """Hydra entry point (kept here so ``python -m arc_exp.data.stats`` works from the project root)."""
    import hydra
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    from arc_exp import cli
    from arc_exp.data.entries import TrainEntry, TrainEntryError
    from arc_exp.model.loader import load_tokenizer

    cli.prepare()  # the config schemas (conf/model/ starts from one)

    root = Path(__file__).resolve().parents[2]  # the project root: arc_exp/data/stats.py -> ../..
    os.environ.setdefault("ARC_EXP_ROOT", str(root))

    @hydra.main(config_path=str(root / "conf"), config_name="stats", version_base="1.3")
    @cli.entry_point("arc_exp.data.stats")  # a user's mistake (a chats entry, a bad task file) in one line
    def run(cfg: DictConfig) -> None:
        entry = TrainEntry.from_config(cfg.data.train[0], "data.train[0]")
        if entry.is_chats:
            raise TrainEntryError(f"data.train[0] is a chats entry ({entry.chats}); the statistics are of ARC tasks: "
                                  f"choose a data option whose first entry is a task source")
        prompt, tasks = entry.prompt, entry.task_set().load()
        tokenizer = load_tokenizer(instantiate(cfg.model))
        stats = []
        for name in cfg.encoders or encoder_options(root / "conf" / "encoder"):
            encoder = instantiate(OmegaConf.load(root / "conf" / "encoder" / f"{name}.yaml"))
            stats.append(token_stats(name, task_token_counts(tasks, encoder, prompt, tokenizer), cfg.max_seq_len))
        print(f"{len(tasks)} tasks of {entry.source}, prompt {prompt}, tokenizer of {cfg.model.name}")
        print(format_table(stats, cfg.max_seq_len))

    run()


if __name__ == "__main__":
    main()
