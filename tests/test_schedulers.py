"""Learning-rate schedules: exact multipliers at chosen steps, the YAML options, and bad values."""
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
    # 10 steps, 2 of warmup from 0 (transformers' warmup): 0, 1/2, then 1 -> 0 over the other 8
    s = schedulers.linear(optimizer(), total_steps=10, warmup_ratio=0.2)
    assert multipliers(s, [0, 1, 2, 6, 9, 10]) == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.125, 0.0], abs=1e-12)


def test_cosine():
    s = schedulers.cosine(optimizer(), total_steps=10, warmup_ratio=0.0)
    assert multipliers(s, [0, 2, 5, 10]) == pytest.approx([1.0, 0.9045084971874737, 0.5, 0.0], abs=1e-12)


def test_constant_with_warmup():
    s = schedulers.constant(optimizer(), total_steps=10, warmup_ratio=0.5)
    assert multipliers(s, [0, 4, 5, 9, 10]) == pytest.approx([0.0, 0.8, 1.0, 1.0, 1.0], abs=1e-12)
    assert multipliers(schedulers.constant(optimizer(), total_steps=10), [0, 10]) == [1.0, 1.0]


def test_cosine_with_restarts_goes_back_to_the_full_rate():
    s = schedulers.cosine_with_restarts(optimizer(), total_steps=40, warmup_ratio=0.0, num_cycles=4)
    assert multipliers(s, [0, 5, 10, 15, 20, 30, 35, 40]) == pytest.approx(
        [1.0, 0.5, 1.0, 0.5, 1.0, 1.0, 0.5, 0.0], abs=1e-12)


@pytest.mark.parametrize("name, kwargs", [
    ("linear", {}), ("cosine", {}), ("constant", {}), ("cosine_with_restarts", {"num_cycles": 3})])
def test_the_schedules_are_transformers_own(name, kwargs):
    from transformers import get_scheduler

    hf_name = "constant_with_warmup" if name == "constant" else name
    ours = getattr(schedulers, name)(optimizer(), total_steps=50, warmup_ratio=0.1, **kwargs)
    theirs = get_scheduler(hf_name, optimizer(), num_warmup_steps=5, num_training_steps=50,
                           scheduler_specific_kwargs=kwargs or None)
    assert multipliers(ours, range(51)) == multipliers(theirs, range(51))


def test_cyclic_decays_each_peak_by_0707():
    s = schedulers.cyclic(optimizer(), total_steps=40, warmup_ratio=0.0, num_cycles=4, amplitude_decay=0.707)
    peaks = multipliers(s, [0, 10, 20, 30])
    assert peaks == pytest.approx([1.0, 0.707, 0.499849, 0.353393243], abs=1e-12)
    # a linear decay within each cycle, to near 0 just before the next peak
    assert multipliers(s, [5, 9, 15, 35, 39, 40]) == pytest.approx(
        [0.5, 0.1, 0.3535, 0.1766966215, 0.0353393243, 0.0], abs=1e-12)


def test_cyclic_warms_up_in_every_cycle():
    # 40 steps, 2 cycles of 20, warmup 25% of a cycle = 5 steps: 0 -> peak over 5 steps, then down to 0 over 15
    s = schedulers.cyclic(optimizer(), total_steps=40, warmup_ratio=0.25, num_cycles=2, amplitude_decay=0.707)
    assert multipliers(s, range(0, 21)) == pytest.approx(
        [0.0, 0.2, 0.4, 0.6, 0.8] + [(20 - k) / 15 for k in range(5, 20)] + [0.0], abs=1e-12)
    assert multipliers(s, [20, 21, 25, 30, 39, 40]) == pytest.approx(
        [0.0, 0.1414, 0.707, 0.707 * 10 / 15, 0.707 / 15, 0.0], abs=1e-12)


def test_cyclic_last_cycle_takes_the_remaining_steps():
    # 10 steps in 3 cycles: 3, 3 and 4 steps
    s = schedulers.cyclic(optimizer(), total_steps=10, warmup_ratio=0.0, num_cycles=3, amplitude_decay=0.5)
    assert multipliers(s, range(11)) == pytest.approx(
        [1.0, 2 / 3, 1 / 3, 0.5, 1 / 3, 1 / 6, 0.25, 0.1875, 0.125, 0.0625, 0.0], abs=1e-12)


def test_the_optimizer_lr_follows_the_multiplier_step_by_step():
    opt = optimizer(lr=2.0)
    s = schedulers.linear(opt, total_steps=10, warmup_ratio=0.2)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    assert seen == pytest.approx([0.0, 1.0, 2.0, 1.75], abs=1e-12)


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
    # 200 steps: 4 cycles of 50, each warming up over 5% of the cycle (round(2.5) = 2 steps) from 0 to its peak
    s = instantiate(compose_train(["scheduler=cyclic"]).scheduler)(optimizer(), total_steps=200)
    starts = [0, 50, 100, 150]
    assert multipliers(s, starts) == [0.0] * 4
    assert multipliers(s, [c + 1 for c in starts]) == pytest.approx([0.5 * 0.707 ** c for c in range(4)], abs=1e-12)
    assert multipliers(s, [c + 2 for c in starts]) == pytest.approx([0.707 ** c for c in range(4)], abs=1e-12)
    assert multipliers(s, [26, 199, 200]) == pytest.approx([0.5, 0.707 ** 3 / 48, 0.0], abs=1e-12)


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
     "scheduler.num_cycles must be an integer >= 1, got 0"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, num_cycles=0),
     "scheduler.num_cycles must be an integer >= 1, got 0"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, num_cycles=2.5),
     "scheduler.num_cycles must be an integer >= 1, got 2.5"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=3, num_cycles=4),
     "scheduler.num_cycles=4 needs at least one step per cycle, got total_steps=3"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, amplitude_decay=0.0),
     "scheduler.amplitude_decay must be in (0, 1], got 0.0"),
    (lambda: schedulers.cyclic(optimizer(), total_steps=10, amplitude_decay=1.5),
     "scheduler.amplitude_decay must be in (0, 1], got 1.5"),
])
def test_bad_values_raise(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message
