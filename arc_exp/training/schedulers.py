"""Learning-rate schedules (``conf/scheduler/``): a multiplier of the base LR per optimizer step, with warmup.

Built from YAML as a partial: ``scheduler(optimizer, total_steps)`` returns a ``torch.optim.lr_scheduler.LambdaLR``
that steps once per optimizer step. ``warmup_ratio`` is the share of ``total_steps`` spent warming up (rounded to
whole steps). linear, cosine, cosine_with_restarts and constant are ``transformers.get_scheduler``'s schedules, the
ones the seeds' Trainer used (warmup from 0 at step 0 to the full LR at the end of the warmup); ``cyclic`` is the
seeds' own cyclic schedule, written here.
"""
from __future__ import annotations

from torch.optim.lr_scheduler import LambdaLR
from transformers import get_scheduler


def _warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return int(round(total_steps * warmup_ratio))


def _check_steps(total_steps: int) -> None:
    if total_steps < 1:
        raise ValueError(f"the schedule needs at least one step, got total_steps={total_steps}")


def _check_cycles(num_cycles: int) -> None:
    if isinstance(num_cycles, bool) or not isinstance(num_cycles, int) or num_cycles < 1:
        raise ValueError(f"scheduler.num_cycles must be an integer >= 1, got {num_cycles!r}")


def _transformers(name: str, optimizer, total_steps: int, warmup_ratio: float, **kwargs) -> LambdaLR:
    _check_steps(total_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=_warmup_steps(total_steps, warmup_ratio),
                         num_training_steps=total_steps, scheduler_specific_kwargs=kwargs or None)


def constant(optimizer, total_steps: int, warmup_ratio: float = 0.0) -> LambdaLR:
    return _transformers("constant_with_warmup", optimizer, total_steps, warmup_ratio)


def linear(optimizer, total_steps: int, warmup_ratio: float = 0.05) -> LambdaLR:
    return _transformers("linear", optimizer, total_steps, warmup_ratio)


def cosine(optimizer, total_steps: int, warmup_ratio: float = 0.05) -> LambdaLR:
    return _transformers("cosine", optimizer, total_steps, warmup_ratio)


def cosine_with_restarts(optimizer, total_steps: int, warmup_ratio: float = 0.05, num_cycles: int = 4) -> LambdaLR:
    """Cosine decay restarted ``num_cycles`` times, every cycle back to the full LR (one warmup, at the start)."""
    _check_cycles(num_cycles)
    return _transformers("cosine_with_restarts", optimizer, total_steps, warmup_ratio, num_cycles=num_cycles)


def cyclic(optimizer, total_steps: int, warmup_ratio: float = 0.05, num_cycles: int = 4,
           amplitude_decay: float = 0.707) -> LambdaLR:
    """The seeds' cyclic schedule ("4 cycles, 0.707, warmup ratio in the cycle", a ``CyclicLR`` in their code).

    ``total_steps`` is cut into ``num_cycles`` cycles of ``total_steps // num_cycles`` steps (the last one takes the
    remainder). Each cycle warms up linearly from 0 over ``warmup_ratio`` of the cycle, then decays linearly to 0
    at the cycle's end, and peaks ``amplitude_decay`` times lower than the cycle before: peaks 1, 0.707, 0.5, 0.354.

    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = cyclic(optimizer, total_steps=8, warmup_ratio=0.5, num_cycles=2, amplitude_decay=0.5)
    >>> [s.lr_lambdas[0](step) for step in range(9)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.25, 0.5, 0.25, 0.0]
    """
    _check_steps(total_steps)
    _check_cycles(num_cycles)
    if not 0.0 < amplitude_decay <= 1.0:  # above 1 the LR would exceed learning_rate; at or below 0 it would vanish
        raise ValueError(f"scheduler.amplitude_decay must be in (0, 1], got {amplitude_decay}")
    if total_steps < num_cycles:
        raise ValueError(f"scheduler.num_cycles={num_cycles} needs at least one step per cycle, got "
                         f"total_steps={total_steps}")
    cycle_steps = total_steps // num_cycles
    warmup = _warmup_steps(cycle_steps, warmup_ratio)

    def multiplier(step: int) -> float:
        if step >= total_steps:
            return 0.0
        cycle = min(step // cycle_steps, num_cycles - 1)
        start = cycle * cycle_steps
        length = total_steps - start if cycle == num_cycles - 1 else cycle_steps
        within = step - start
        if within < warmup:
            shape = within / warmup
        else:
            shape = (length - within) / max(1, length - warmup)
        return amplitude_decay ** cycle * shape

    return LambdaLR(optimizer, multiplier)

