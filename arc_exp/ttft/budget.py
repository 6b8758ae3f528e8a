"""The solver's time budget: one clock shared by the TTFT and prediction stages, so short on time means fewer TTFT steps
and fewer predictions, never a missing submission."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from arc_exp.ttft.settings import TTFTConfigError


@dataclass
class Budget:
    """A wall-clock budget shared by the stages; ``minutes=None`` is no limit. The clock starts when it is built.

    >>> budget = Budget(10, ttft_share=0.5, clock=lambda: 100.0)
    >>> budget.seconds_left(), budget.ttft_seconds()
    (600.0, 300.0)
    """

    minutes: Optional[float] = None
    ttft_share: float = 0.6  # of the time left when TTFT starts; prediction gets the rest
    min_ttft_minutes: float = 0.5  # less time than this for TTFT: skip it and only predict
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        if self.minutes is not None and (isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float))
                                         or self.minutes <= 0):
            raise TTFTConfigError(f"time_budget_minutes must be a number > 0 or null, got {self.minutes!r}")
        if isinstance(self.ttft_share, bool) or not isinstance(self.ttft_share, (int, float)) or \
                not 0 < self.ttft_share <= 1:
            raise TTFTConfigError(f"budget.ttft_share must be a number in (0, 1], got {self.ttft_share!r}")
        if isinstance(self.min_ttft_minutes, bool) or not isinstance(self.min_ttft_minutes, (int, float)) or \
                self.min_ttft_minutes < 0:
            raise TTFTConfigError(f"budget.min_ttft_minutes must be a number >= 0, got {self.min_ttft_minutes!r}")
        self.start = self.clock()

    @property
    def limited(self) -> bool:
        return self.minutes is not None

    def seconds_left(self) -> float:
        if self.minutes is None:
            return math.inf
        return max(0.0, self.start + 60.0 * self.minutes - self.clock())

    def ttft_seconds(self) -> float:
        """The seconds TTFT may use if it starts now."""
        return self.seconds_left() * self.ttft_share


def predictions_for_next(configured: int, seconds_left: float, seconds_per_prediction: Optional[float],
                         test_inputs_left: int, test_inputs: int) -> int:
    """Predictions per test input for the next task, so the tasks left fit the time left (0: no time, skip it).

    Before any prediction is timed (``seconds_per_prediction=None``) the configured number is used.

    >>> predictions_for_next(8, seconds_left=100, seconds_per_prediction=2, test_inputs_left=10, test_inputs=1)
    5
    >>> predictions_for_next(8, 100, 2, test_inputs_left=60, test_inputs=1)  # not 1 each for all: 1 while it lasts
    1
    >>> predictions_for_next(8, 1, 2, test_inputs_left=60, test_inputs=1)
    0
    """
    if seconds_left <= 0:
        return 0
    if seconds_per_prediction is None or math.isinf(seconds_left):
        return configured
    affordable = math.floor(seconds_left / (max(seconds_per_prediction, 1e-9) * max(test_inputs_left, 1)))
    if affordable >= 1:
        return min(configured, affordable)
    return 1 if seconds_left >= seconds_per_prediction * test_inputs else 0


def steps_within(steps: int, seconds: Optional[float], seconds_per_step: Optional[float]) -> int:
    """The TTFT steps that fit ``seconds`` at the measured ``seconds_per_step`` (both ``None``: all ``steps``).

    >>> steps_within(100, seconds=30, seconds_per_step=0.5), steps_within(100, None, 0.5), steps_within(8, 30, 0.5)
    (60, 100, 8)
    """
    if seconds is None or seconds_per_step is None or math.isinf(seconds):
        return steps
    return max(0, min(steps, math.floor(seconds / max(seconds_per_step, 1e-9))))
