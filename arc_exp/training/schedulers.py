"""Learning-rate schedules (``conf/scheduler/``), each a multiplier of the base LR per optimizer step, with warmup.

Built from YAML as a partial: ``scheduler(optimizer, total_steps)`` returns a ``torch.optim.lr_scheduler.LambdaLR``
that steps once per optimizer step. ``warmup_ratio`` is the share of ``total_steps`` spent warming up linearly.
"""
from __future__ import annotations

import math
from typing import Callable

from torch.optim.lr_scheduler import LambdaLR


def _warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return int(round(total_steps * warmup_ratio))


def _schedule(optimizer, total_steps: int, warmup_ratio: float, decay: Callable[[float], float]) -> LambdaLR:
    """LR multiplier: linear warmup to 1, then ``decay(progress)`` with progress going 0 -> 1 over the rest."""
    if total_steps < 1:
        raise ValueError(f"the schedule needs at least one step, got total_steps={total_steps}")
    warmup = _warmup_steps(total_steps, warmup_ratio)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return max(0.0, decay(progress))

    return LambdaLR(optimizer, multiplier)


def constant(optimizer, total_steps: int, warmup_ratio: float = 0.0) -> LambdaLR:
    return _schedule(optimizer, total_steps, warmup_ratio, lambda p: 1.0)


def linear(optimizer, total_steps: int, warmup_ratio: float = 0.05) -> LambdaLR:
    return _schedule(optimizer, total_steps, warmup_ratio, lambda p: 1.0 - p)


def cosine(optimizer, total_steps: int, warmup_ratio: float = 0.05) -> LambdaLR:
    return _schedule(optimizer, total_steps, warmup_ratio, lambda p: 0.5 * (1.0 + math.cos(math.pi * p)))


def cosine_with_restarts(optimizer, total_steps: int, warmup_ratio: float = 0.05, num_cycles: int = 4) -> LambdaLR:
    """Cosine decay restarted ``num_cycles`` times, every cycle back to the full LR."""
    if num_cycles < 1:
        raise ValueError(f"scheduler.num_cycles must be >= 1, got {num_cycles}")

    def decay(p: float) -> float:
        if p >= 1.0:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * ((p * num_cycles) % 1.0)))

    return _schedule(optimizer, total_steps, warmup_ratio, decay)


def cyclic(optimizer, total_steps: int, warmup_ratio: float = 0.05, num_cycles: int = 4,
           amplitude_decay: float = 0.707) -> LambdaLR:
    """The seeds' cyclic schedule: ``num_cycles`` cosine cycles, each peak ``amplitude_decay`` times the previous."""
    if num_cycles < 1:
        raise ValueError(f"scheduler.num_cycles must be >= 1, got {num_cycles}")
    if not 0.0 < amplitude_decay <= 1.0:  # above 1 the LR would exceed learning_rate; at or below 0 it would vanish
        raise ValueError(f"scheduler.amplitude_decay must be in (0, 1], got {amplitude_decay}")

    def decay(p: float) -> float:
        if p >= 1.0:
            return 0.0
        cycle = min(int(p * num_cycles), num_cycles - 1)
        within = p * num_cycles - cycle
        return amplitude_decay ** cycle * 0.5 * (1.0 + math.cos(math.pi * within))

    return _schedule(optimizer, total_steps, warmup_ratio, decay)
