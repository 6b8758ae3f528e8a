"""Iteration tables from run records: grouping, mean and count, formats, dashes for missing values."""
from arc_exp.tracking.report import Column, RunRecord, compare_runs, iteration_table, to_csv, to_markdown

RUNS = [
    RunRecord("a" * 32, "r16-s0", {"lora.r": "16", "seed": "0"}, {"train/loss": 0.5, "eval/accuracy": 0.1}),
    RunRecord("b" * 32, "r16-s1", {"lora.r": "16", "seed": "1"}, {"train/loss": 0.3, "eval/accuracy": 0.2}),
    RunRecord("c" * 32, "r128", {"lora.r": "128", "seed": "0"}, {"train/loss": 0.25}),
]
COLUMNS = [Column("train/loss", "train loss"), Column("eval/accuracy", "accuracy")]


def test_iteration_table_groups_settings_with_mean_and_count():
    table = iteration_table(RUNS, ["lora.r"], COLUMNS)
    assert [row["lora.r"] for row in table] == ["16", "128"]  # numeric order, not text order
    assert table[0]["train loss"] == 0.4 and abs(table[0]["accuracy"] - 0.15) < 1e-12 and table[0]["runs"] == 2
    assert table[1]["accuracy"] is None and table[1]["runs"] == 1
    assert to_markdown(table, ["lora.r"], COLUMNS).splitlines() == [
        "| lora.r | train loss | accuracy | runs |",
        "|---|---|---|---|",
        "| 16 | 0.400 | 15.0% | 2 |",
        "| 128 | 0.250 | - | 1 |",
    ]
    assert to_csv(table, ["lora.r"], COLUMNS).splitlines()[2] == "128,0.25,,1"


def test_compare_runs_shows_only_differing_params():
    text = compare_runs(RUNS[:2], metrics=["train/loss"])
    assert text.splitlines() == [
        "|  | r16-s0 (aaaaaaaa) | r16-s1 (bbbbbbbb) |",
        "|---|---|---|",
        "| seed | 0 | 1 |",
        "| train/loss | 0.500 | 0.300 |",
    ]


def test_degraded_runs_are_never_a_clean_row():
    """A run tagged degraded=true (a failed stage worked around) gets its own marked row, apart from the clean runs
    of its setting, in Markdown, CSV and the side-by-side comparison."""
    degraded = RunRecord("d" * 32, "r16-s2", {"lora.r": "16", "seed": "2"}, {"train/loss": 0.9, "eval/accuracy": 0.0},
                         {"degraded": "true"})
    clean = RunRecord("e" * 32, "r16-s3", {"lora.r": "16", "seed": "3"}, {"train/loss": 0.4}, {"degraded": "false"})
    table = iteration_table([*RUNS, degraded, clean], ["lora.r"], COLUMNS)
    assert to_markdown(table, ["lora.r"], COLUMNS).splitlines() == [
        "| lora.r | train loss | accuracy | runs |",
        "|---|---|---|---|",
        "| 16 | 0.400 | 15.0% | 3 |",
        "| 16 (degraded) | 0.900 | 0.0% | 1 |",
        "| 128 | 0.250 | - | 1 |",
    ]
    assert [row.get("degraded", False) for row in table] == [False, True, False]
    assert to_csv(table, ["lora.r"], COLUMNS).splitlines()[2] == "16 (degraded),0.9,0.0,1"
    assert iteration_table([degraded], [], COLUMNS)[0]["runs"] == "1 (degraded)"  # no row key: the count is marked
    assert compare_runs([RUNS[0], degraded], metrics=[]).splitlines()[0] == \
        "|  | r16-s0 (aaaaaaaa) | r16-s2 (dddddddd) (degraded) |"


def test_column_formats():
    assert Column("eval/pass_8").kind() == "percent"
    assert Column("val/loss").kind() == "loss"
    assert Column("train/tokens_per_s").kind() == "number"
    assert Column("eval/vote_2", "vote_2").title == "vote_2"


def test_value_fills_templates_and_falls_back_to_tags():
    run = RunRecord("d" * 32, "x", {"evaluation.predictions_per_task": "8"}, {"eval/pass_8": 0.5},
                    {"choice/encoder": "minimal"})
    assert run.value("eval/pass_{evaluation.predictions_per_task}") == 0.5
    assert run.value("choice/encoder") == "minimal"
    assert run.value("missing") is None


def test_value_falls_back_to_the_runs_overrides():
    """A swept list item (``data.train.0.weight``) is no param of its own (lists are logged whole): found in the
    run's ``overrides`` tag, so iteration 2's rows tell its runs apart."""
    run = RunRecord("e" * 32, "x", {"data.train": "[{...}]"}, {},
                    {"overrides": "data.train.0.weight=1e-06 experiment=iter02_learn_to_count +seed=3"})
    assert run.value("data.train.0.weight") == "1e-06"
    assert run.value("seed") == "3"
    assert run.value("data.train.1.weight") is None
    other = RunRecord("f" * 32, "y", {}, {"qa/all": 0.5}, {"overrides": "data.train.0.weight=1.0"})
    table = iteration_table([run, other], ["data.train.0.weight"], [Column("qa/all", "count QA", "percent")])
    assert to_markdown(table, ["data.train.0.weight"], [Column("qa/all", "count QA", "percent")]).splitlines()[2:] == [
        "| 1e-06 | - | 1 |", "| 1.0 | 50.0% | 1 |"]


def test_a_row_key_is_shown_only_where_it_has_an_effect():
    def run(letter, sampler, threshold, unanswered):
        return RunRecord(letter * 32, sampler, {"inference.sampler": sampler, "inference.dfs_threshold": threshold},
                         {"unanswered": unanswered})

    runs = [run("a", "greedy", "0.1", 0.0), run("b", "dfs", "0.1", 1.0), run("c", "dfs", "0.005", 0.5),
            run("d", "greedy", "0.005", 0.25)]
    rows = ["inference.sampler", "inference.dfs_threshold"]
    table = iteration_table(runs, rows, [Column("unanswered")],
                            only_when={"inference.dfs_threshold": {"inference.sampler": "dfs"}})
    assert to_markdown(table, rows, [Column("unanswered")]) == (
        "| inference.sampler | inference.dfs_threshold | unanswered | runs |\n"
        "|---|---|---|---|\n"
        "| dfs | 0.005 | 50.0% | 1 |\n"
        "| dfs | 0.1 | 100.0% | 1 |\n"
        "| greedy | - | 12.5% | 2 |")
