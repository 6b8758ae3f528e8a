"""Is the difference real? Bootstrap intervals over tasks, paired comparisons (exact McNemar) and shared-task pairing
on constructed per-task results with known answers; the report's paired table, task groups and PNG."""
import math

import pytest
from scipy.stats import binomtest

from arc_exp.tracking.comparison import (
    Arm,
    compare_arms,
    paired_csv,
    paired_markdown,
    plot_outcomes,
    task_groups_csv,
    task_groups_markdown,
)
from arc_exp.tracking.per_task import parse_per_task_csv, per_task_metric
from arc_exp.tracking.significance import (
    SignificanceError,
    SignificanceSettings,
    bootstrap_interval,
    compare_tasks,
    mcnemar_p,
    paired_interval,
    seed_spread,
    shared_tasks,
)

# 100 tasks, 30 solved: the score is 30%; its standard error sqrt(0.3 * 0.7 / 100) = 4.6 points
THIRTY = {f"t{i:03d}": float(i < 30) for i in range(100)}
# 40 tasks: A solves t00..t09, B solves t07..t24: both 3, A only 7, B only 15, neither 15
A = {f"t{i:02d}": float(i < 10) for i in range(40)}
B = {f"t{i:02d}": float(7 <= i < 25) for i in range(40)}


def test_bootstrap_interval_covers_the_hand_computed_score_and_is_seeded():
    interval = bootstrap_interval(THIRTY, resamples=2000, seed=0)
    assert interval.value == 0.3 and interval.tasks == 100
    assert interval.low < 0.3 < interval.high
    assert (interval.low, interval.high) == (0.21, 0.39)  # pinned: percentile bootstrap, 2000 resamples, seed 0
    # about the normal approximation's +-1.96 standard errors (17.96 points wide)
    assert abs((interval.high - interval.low) - 2 * 1.96 * math.sqrt(0.3 * 0.7 / 100)) < 0.02
    assert bootstrap_interval(THIRTY, resamples=2000, seed=0) == interval  # same seed, same interval
    assert bootstrap_interval({"t1": 1.0, "t2": 1.0}, resamples=50) .low == 1.0  # no variation, no width


def test_bootstrap_of_several_seeds_is_the_mean_of_their_means_over_the_same_task_draws():
    seeds = [{"t1": 1.0, "t2": 0.0, "t3": 1.0, "t4": 0.0}, {"t1": 1.0, "t2": 1.0, "t3": 1.0, "t4": 0.0}]
    interval = bootstrap_interval(seeds, resamples=1000, seed=0)
    assert (interval.value, interval.low, interval.high, interval.tasks) == (0.625, 0.25, 1.0, 4)
    # a seed that lacks a task averages the tasks it has: the figure is still the mean of the runs' means
    assert bootstrap_interval([{"t1": 1.0, "t2": 0.0}, {"t1": 1.0}], resamples=10).value == 0.75
    with pytest.raises(SignificanceError):
        bootstrap_interval({})


def test_mcnemar_p_is_scipys_binomial_test_on_the_discordant_tasks():
    result = compare_tasks(A, B, resamples=1000)
    assert (len(result.both), len(result.a_only), len(result.b_only), len(result.neither)) == (3, 7, 15, 15)
    assert result.p_value == binomtest(15, 7 + 15, 0.5).pvalue == mcnemar_p(7, 15)
    assert round(result.p_value, 6) == 0.133801
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(0, 6) == binomtest(6, 6, 0.5).pvalue == 0.03125
    assert result.difference == 0.2  # (18 - 10) / 40
    assert (result.low, result.high) == (-0.025, 0.425)  # pinned; covers the difference
    assert (result.low, result.high) == paired_interval([A[t] for t in sorted(A)], [B[t] for t in sorted(A)], 1000)


def test_paired_comparison_uses_the_shared_tasks_and_counts_the_others():
    a = {**A, "only_a": 1.0}
    b = {**{t: v for t, v in B.items() if t not in ("t00", "t30")}, "only_b1": 1.0, "only_b2": 0.0}
    assert shared_tasks(a, b)[1:] == (["only_a", "t00", "t30"], ["only_b1", "only_b2"])
    result = compare_tasks(a, b, resamples=200)
    assert result.shared == 38 and result.left_out == 5
    assert (result.left_out_a, result.left_out_b) == (["only_a", "t00", "t30"], ["only_b1", "only_b2"])
    assert (len(result.a_only), len(result.b_only)) == (6, 15)  # t00 (solved by A alone) is no longer paired
    assert result.difference == pytest.approx((18 - 9) / 38)
    assert result.group("t00") == "left_out" and result.group("t12") == "b_only"
    with pytest.raises(SignificanceError, match="no task in common"):
        compare_tasks({"x": 1.0}, {"y": 1.0})


def test_a_task_is_solved_at_the_threshold():
    partial = {"t1": 0.5, "t2": 1.0}  # t1: one of two test inputs
    assert compare_tasks(partial, {"t1": 0.0, "t2": 0.0}, resamples=10).a_only == ["t2"]
    assert compare_tasks(partial, {"t1": 0.0, "t2": 0.0}, solved_at=0.5, resamples=10).a_only == ["t1", "t2"]


def test_seed_spread():
    assert seed_spread([0.30, 0.34, 0.32]) == (0.32, 0.02)
    assert seed_spread([0.3]) == (0.3, None) and seed_spread([None]) == (None, None)


def test_settings_name_the_bad_key():
    with pytest.raises(SignificanceError, match="significance.resamples must be an integer >= 1, got 0"):
        SignificanceSettings(resamples=0)
    with pytest.raises(SignificanceError, match="significance.level must be between 0 and 1, got 95"):
        SignificanceSettings(level=95)


def test_per_task_csv_and_metric_names():
    text = "task_id,source,test_inputs,predictions,accuracy,pass_2\n0a1b2c3d,a,1,2,0.5,1\n4e5f6a7b,a,1,2,,\n"
    assert parse_per_task_csv(text) == {"accuracy": {"0a1b2c3d": 0.5}, "pass_2": {"0a1b2c3d": 1.0}}
    assert [per_task_metric(k) for k in ("eval/pass_64", "vote_2", "train/loss", "eval/n_tasks", "qa/accuracy")] == \
        ["pass_64", "vote_2", None, None, None]


def test_paired_table_groups_and_picture(tmp_path):
    settings = SignificanceSettings(resamples=1000)
    base = Arm("base (aaaaaaaa)", A, {"t00": ["file:///m/a/plots/successes/t00-0.png"]})
    compared = compare_arms(base, [Arm("trained (bbbbbbbb)", B, {"t12": ["file:///m/b/plots/successes/t12-0.png"]}),
                                   Arm("train only (cccccccc)", None, lacks="no per_task.csv: a training run without "
                                                                            "evaluation"),
                                   Arm("other set (dddddddd)", {"x": 1.0})], settings)
    assert paired_markdown(compared, "pass_2", settings=settings).splitlines() == [
        "paired on the shared tasks, pass_2 per task (solved: >= 1); difference B - A in points with its 95% paired "
        "bootstrap interval (1000 resamples, seed 0); p: exact McNemar test on the tasks solved by one side only",
        "",
        "| compared | tasks | both | A only | B only | neither | B - A | p (McNemar) | left out |",
        "|---|---|---|---|---|---|---|---|---|",
        "| B: trained (bbbbbbbb) vs A: base (aaaaaaaa) | 40 | 3 | 7 | 15 | 15 | +20.0 (-2.5 to +42.5) | 0.134 | 0 |",
        "",
        "no paired comparison: train only (cccccccc): no per_task.csv: a training run without evaluation",
        "no paired comparison: other set (dddddddd) vs base (aaaaaaaa): no task in common (1 task and 40 tasks)"]
    assert paired_csv(compared).splitlines()[:2] == [
        "b,a,tasks,both,a_only,b_only,neither,difference,low,high,p_value,left_out_a,left_out_b,problem",
        f"trained (bbbbbbbb),base (aaaaaaaa),40,3,7,15,15,0.2,-0.025,0.425,{binomtest(15, 22, 0.5).pvalue},0,0,"]
    groups = task_groups_markdown(compared).splitlines()
    assert groups[0] == "## B: trained (bbbbbbbb) vs A: base (aaaaaaaa)"
    assert groups[2] == "- solved by both (3): t07, t08, t09"
    assert groups[3].startswith("- solved by A only (7): t00 ([A](file:///m/a/plots/successes/t00-0.png)), t01, ")
    assert "t12 ([B](file:///m/b/plots/successes/t12-0.png))" in groups[4]
    lines = task_groups_csv(compared).splitlines()
    assert lines[0] == "b,a,task_id,group,a_value,b_value,a_plots,b_plots" and len(lines) == 41
    assert lines[1] == "trained (bbbbbbbb),base (aaaaaaaa),t00,a_only,1.0,0.0,file:///m/a/plots/successes/t00-0.png,"
    png = plot_outcomes([base, compared[0].b], tmp_path / "tasks.png", "runs")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread
    height, width = imread(png).shape[:2]
    assert (width, height) == (480, 704)  # 22 differing tasks: one row each
