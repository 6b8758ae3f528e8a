"""Learning-rate schedules: exact multipliers at chosen steps, the YAML options, and bad values."""
import math

import pytest
import torch
from hydra.utils import instantiate

from arc_exp.training import schedulers
from conftest import compose_train

NAMES = ("constant", "linear", "cosine", "cosine_with_restarts", "cyclic")


def optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def multipliers(scheduler, steps) -> list[float]:
    return [scheduler.lr_lambdas[0](step) for step in steps]


def test_linear_with_warmup():
    # 10 steps, 2 of warmup: 1/3, 2/3, then 1 -> 0 over the other 8
    s = schedulers.linear(optimizer(), total_steps=10, warmup_ratio=0.2)
    assert multipliers(s, [0, 1, 2, 6, 9, 10]) == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5, 0.125, 0.0], abs=1e-12)


def test_cosine():
    s = schedulers.cosine(optimizer(), total_steps=10, warmup_ratio=0.0)
    assert multipliers(s, [0, 2, 5, 10]) == pytest.approx([1.0, 0.9045084971874737, 0.5, 0.0], abs=1e-12)


def test_constant_with_warmup():
    s = schedulers.constant(optimizer(), total_steps=10, warmup_ratio=0.5)
    assert multipliers(s, [0, 4, 5, 9, 10]) == pytest.approx([1 / 6, 5 / 6, 1.0, 1.0, 1.0], abs=1e-12)


def test_cosine_with_restarts_goes_back_to_the_full_rate():
    s = schedulers.cosine_with_restarts(optimizer(), total_steps=40, warmup_ratio=0.0, num_cycles=4)
    assert multipliers(s, [0, 5, 10, 15, 20, 30, 35, 40]) == pytest.approx(
        [1.0, 0.5, 1.0, 0.5, 1.0, 1.0, 0.5, 0.0], abs=1e-12)


def test_cyclic_decays_each_peak_by_0707():
    s = schedulers.cyclic(optimizer(), total_steps=40, warmup_ratio=0.0, num_cycles=4, amplitude_decay=0.707)
    peaks = multipliers(s, [0, 10, 20, 30])
    assert peaks == pytest.approx([1.0, 0.707, 0.499849, 0.353393243], abs=1e-12)
    assert multipliers(s, [5, 15, 35, 40]) == pytest.approx([0.5, 0.3535, 0.1766966215, 0.0], abs=1e-12)
    # a cycle ends near 0 just before the next peak
    assert s.lr_lambdas[0](9) == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi)), abs=1e-12)


def test_the_optimizer_lr_follows_the_multiplier_step_by_step():
    opt = optimizer(lr=2.0)
    s = schedulers.linear(opt, total_steps=10, warmup_ratio=0.2)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    assert seen == pytest.approx([2 / 3, 4 / 3, 2.0, 1.75], abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_option_builds_the_same_schedule(name):
    cfg = compose_train([f"scheduler={name}"])
    factory = instantiate(cfg.scheduler)
    values = {k: v for k, v in cfg.scheduler.items() if not k.startswith("_")}
    built = factory(optimizer(), total_steps=80)
    direct = getattr(schedulers, name)(optimizer(), total_steps=80, **values)
    steps = range(81)
    assert multipliers(built, steps) == multipliers(direct, steps)


def test_yaml_cyclic_is_the_seeds_schedule():
    # 80 steps, warmup 5% = 4 steps, then 4 cycles of 19 steps, peaks at steps 4, 23, 42, 61
    s = instantiate(compose_train(["scheduler=cyclic"]).scheduler)(optimizer(), total_steps=80)
    assert multipliers(s, [0, 3, 4, 23, 42, 61, 80]) == pytest.approx(
        [0.2, 0.8, 1.0, 0.707, 0.707 ** 2, 0.707 ** 3, 0.0], abs=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: schedulers.linear(optimizer(), total_steps=10, warmup_ratio=1.0),
     "scheduler.warmup_ratio must be in [0, 1), got 1.0"),
    (lambda: schedulers.cosine(optimizer(), total_steps=10, warmup_ratio=-0.1),
     "scheduler.warmup_ratio must be in [0, 1), got -0.1"),
    (lambda: schedulers.constant(optimizer(), total_steps=0),
     "the schedule needs at least one step, got total_steps=0"),
    (lambda: schedulers.linear(optimizer(), total_steps=-1),
     "the schedule needs at least one step, got total_steps=-1"),
    (lambda: schedulers.cosine_with_restarts(optimizer(), total_steps=10, num_cycles=0),
     "scheduler.num_cycles must be >= 1, got 0"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, num_cycles=0),
     "scheduler.num_cycles must be >= 1, got 0"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, amplitude_decay=0.0),
     "scheduler.amplitude_decay must be in (0, 1], got 0.0"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, amplitude_decay=1.5),
     "scheduler.amplitude_decay must be in (0, 1], got 1.5"),
])
def test_bad_values_raise(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message
