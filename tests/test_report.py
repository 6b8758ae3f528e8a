"""Iteration tables from run records: grouping, mean and count, formats, dashes for missing values; the journal-shaped
tables of report.tables, and report.py end to end on a temporary SQLite store."""
import subprocess

import pytest

from arc_exp.tracking.report import Column, ReportError, RunRecord, fetch_runs, iteration_table, to_csv, to_markdown
from arc_exp.tracking.side_by_side import compare_runs
from arc_exp.tracking.table_specs import RowKey, TableSpec, table_specs
from arc_exp.tracking.tables import build_table, table_csv, table_markdown
from conftest import PYTHON, REPO

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


# -- journal-shaped tables (report.tables) ------------------------------------------------------------------------



def run(letter, params, metrics, tags=None, first=None):
    return RunRecord(letter * 32, f"run-{letter}", {"seed": "0", **params}, metrics,
                     {"run_type": "training", **(tags or {})}, dict(first or {}))


LR_TABLE = TableSpec.from_config({
    "name": "learning_rate", "where": {"lora.r": 32},
    "rows": [{"key": "model.name", "name": "model", "map": {"qwen2-0.5b": "Qwen2-0.5B"}},
             {"key": "learning_rate", "name": "learning rate", "format": "sci"}],
    "columns": [{"metric": "train/loss", "name": "train loss"},
                {"metric": "eval/pass_{evaluation.predictions_per_task}", "name": "pass_64"}]})


def lr_run(letter, lr, seed, loss, pass_n, r="32", **tags):
    return run(letter, {"model.name": "qwen2-0.5b", "learning_rate": lr, "lora.r": r, "seed": seed,
                        "evaluation.predictions_per_task": "64"}, {"train/loss": loss, "eval/pass_64": pass_n}, tags)


def test_one_factor_table_takes_its_runs_and_averages_seeds():
    runs = [lr_run("a", "0.0001", "0", 0.5, 0.25), lr_run("b", "1e-4", "1", 0.3, 0.5),  # same lr, two seeds
            lr_run("c", "0.0004", "0", 0.2, 0.125), lr_run("d", "0.0001", "0", 0.1, 1.0, r="16")]  # d: rank table's
    built = build_table(runs, LR_TABLE)
    assert built.header == ["model", "learning rate", "train loss", "pass_64", "runs"]
    assert table_markdown(built).splitlines() == [
        "| model | learning rate | train loss | pass_64 | runs |",
        "|---|---|---|---|---|",
        "| Qwen2-0.5B | 1.00E-04 | 0.400 sd 0.141 | 37.5% sd 17.7 | 2 |",  # two seeds: their standard deviation
        "| Qwen2-0.5B | 4.00E-04 | 0.200 | 12.5% | 1 |"]
    assert table_csv(built).splitlines() == [
        "model,learning rate,train loss,train loss sd,pass_64,pass_64 low,pass_64 high,pass_64 sd,runs,degraded,"
        "trained_on_evaluated_outputs",
        "Qwen2-0.5B,1.00E-04,0.4,0.141421356237,0.375,,,0.176776695297,2,0,0",  # no per_task.csv: no interval
        "Qwen2-0.5B,4.00E-04,0.2,,0.125,,,,1,0,0"]


def test_a_pass_n_title_matches_the_predictions_its_runs_made():
    """The journal's pass_64 column over runs that made 4 predictions is titled pass_4 (Markdown and CSV), over runs
    that made 4 and 8 pass_N; a note says which; runs that made 64 keep the journal's title."""
    def smoke(letter, lr, n):
        return run(letter, {"model.name": "qwen2-0.5b", "learning_rate": lr, "lora.r": "32",
                            "evaluation.predictions_per_task": str(n)}, {"train/loss": 0.5, f"eval/pass_{n}": 0.25})

    for runs, title, note in (
            ([smoke("a", "1e-4", 4), smoke("b", "4e-4", 4)], "pass_4",
             "pass_4: the journal's pass_64, at the predictions these runs made"),
            ([smoke("a", "1e-4", 4), smoke("b", "4e-4", 8)], "pass_N",
             "pass_N: the journal's pass_64, at the predictions these runs made (pass_4, pass_8)"),
            ([lr_run("a", "1e-4", "0", 0.5, 0.25)], "pass_64", None)):
        built = build_table(runs, LR_TABLE)
        made = {f"pass_{r.params['evaluation.predictions_per_task']}" for r in runs}
        assert built.header[3] == title and (title in made or (title == "pass_N" and len(made) > 1))
        assert table_csv(built).splitlines()[0].split(",")[4] == title
        markdown = table_markdown(built)
        assert markdown.splitlines()[0] == f"| model | learning rate | train loss | {title} | runs |"
        assert (markdown.splitlines()[-1] == note) if note else "journal" not in markdown


def test_a_row_never_averages_runs_that_differ_in_more_than_seed():
    runs = [lr_run("a", "1e-4", "0", 0.5, 0.25), lr_run("b", "1e-4", "1", 0.3, 0.5)]
    runs[1].params["data.max_seq_len"] = "4096"
    runs[0].params["data.max_seq_len"] = "8192"
    with pytest.raises(ReportError) as error:
        build_table(runs, LR_TABLE)
    assert str(error.value) == (
        "table 'learning_rate', row (model=Qwen2-0.5B, learning rate=1.00E-04): its 2 runs differ in "
        "'data.max_seq_len' (4096, 8192), not only in seed; give the table where: {data.max_seq_len: <value>} or "
        "keep_apart: [data.max_seq_len]")
    apart = TableSpec.from_config({**{k: v for k, v in vars(LR_TABLE).items() if k in ("name", "where")},
                                   "rows": [{"key": "learning_rate", "name": "learning rate"}],
                                   "columns": [{"metric": "train/loss", "name": "train loss"}],
                                   "keep_apart": ["data.max_seq_len"]})
    assert table_markdown(build_table(runs, apart)).splitlines()[2:] == [
        "| 4096 | 1e-4 | 0.300 | 1 |", "| 8192 | 1e-4 | 0.500 | 1 |"]


SIZE_TABLE = TableSpec.from_config({
    "name": "model_size", "where": {"arm": ["size_small", "size_large"]}, "split_by": ["arm"],
    "rows": [{"key": "model.name", "name": "model", "map": {"qwen2-0.5b": "Qwen2-0.5B", "qwen2-1.5b": "Qwen2-1.5B"}},
             {"key": "trainer.max_steps", "name": "steps"}],
    "columns": [{"metric": "eval/pass_2", "name": "pass_2"}]})


def size_run(letter, arm, model, seed="0", pass_2=0.5, max_seq_len="8192"):
    return run(letter, {"arm": arm, "model.name": model, "trainer.max_steps": "2", "seed": seed,
                        "data.max_seq_len": max_seq_len}, {"eval/pass_2": pass_2})


def test_split_rows_keep_the_journal_shape_and_name_their_arm_only_when_they_look_alike():
    """Both model-size arms with one model (model=tiny-random on the command line) stay two rows, in the where's
    order, named by their arm in the model cell; no extra column. Distinct models need no name; seeds still average."""
    one_model = [size_run("a", "size_large", "tiny-random", pass_2=0.25),
                 size_run("b", "size_small", "tiny-random", pass_2=0.5),
                 size_run("c", "size_small", "tiny-random", seed="1", pass_2=1.0)]
    built = build_table(one_model, SIZE_TABLE)
    assert built.header == ["model", "steps", "pass_2", "runs"]
    assert table_markdown(built).splitlines()[2:] == ["| tiny-random (size_small) | 2 | 75.0% sd 35.4 | 2 |",
                                                      "| tiny-random (size_large) | 2 | 25.0% | 1 |"]
    two_models = [size_run("a", "size_large", "qwen2-1.5b"), size_run("b", "size_small", "qwen2-0.5b")]
    assert table_markdown(build_table(two_models, SIZE_TABLE)).splitlines()[2:] == ["| Qwen2-0.5B | 2 | 50.0% | 1 |",
                                                                                    "| Qwen2-1.5B | 2 | 50.0% | 1 |"]
    with pytest.raises(ReportError, match=r"row \(model=tiny-random, steps=2, arm=size_small\): its 2 runs differ in "
                                          r"'data.max_seq_len' \(4096, 8192\)"):
        build_table([one_model[1], size_run("d", "size_small", "tiny-random", seed="1", max_seq_len="4096")],
                    SIZE_TABLE)


def test_degraded_runs_are_marked_never_clean():
    runs = [lr_run("a", "1e-4", "0", 0.5, 0.25), lr_run("b", "1e-4", "1", 0.3, 0.5, degraded="true"),
            lr_run("c", "4e-4", "0", 0.2, 0.125)]
    built = build_table(runs, LR_TABLE)
    assert table_markdown(built).splitlines()[2:] == [  # never averaged with the clean run of its setting
        "| Qwen2-0.5B | 1.00E-04 | 0.500 | 25.0% | 1 |",
        "| Qwen2-0.5B | 1.00E-04 | 0.300 \u2020 | 50.0% \u2020 | 1 (degraded) |",
        "| Qwen2-0.5B | 4.00E-04 | 0.200 | 12.5% | 1 |",
        "",
        "\u2020 degraded runs (tag degraded=true: a failed stage, fallback predictions), not clean results: run-b"]
    assert table_csv(built).splitlines()[1:3] == ["Qwen2-0.5B,1.00E-04,0.5,,0.25,,,,1,0,0",
                                                 "Qwen2-0.5B,1.00E-04,0.3,,0.5,,,,1,1,0"]


def test_runs_that_scored_trained_outputs_are_marked_never_clean():
    """A run tagged trained_on_evaluated_outputs=<n> (evaluation.allow_trained_outputs=true) keeps a row of its own,
    double-daggered, named under the table and counted in the CSV."""
    runs = [lr_run("a", "1e-4", "0", 0.5, 0.25), lr_run("b", "1e-4", "1", 0.3, 1.0, trained_on_evaluated_outputs="7")]
    built = build_table(runs, LR_TABLE)
    assert table_markdown(built).splitlines()[2:] == [
        "| Qwen2-0.5B | 1.00E-04 | 0.500 | 25.0% | 1 |",
        "| Qwen2-0.5B | 1.00E-04 | 0.300 \u2021 | 100.0% \u2021 | 1 (trained on scored outputs) |",
        "",
        "\u2021 runs that scored test outputs their model trained on (tag trained_on_evaluated_outputs, "
        "evaluation.allow_trained_outputs=true): they measure memory, not generalization: run-b (7)"]
    assert table_csv(built).splitlines()[0].endswith(",runs,degraded,trained_on_evaluated_outputs")
    assert table_csv(built).splitlines()[2].endswith(",1,0,1")
    assert "(trained on 7 scored outputs)" in compare_runs(runs).splitlines()[0]


def test_x_marked_flags_template_keys_and_scaled_columns():
    flags = TableSpec.from_config({
        "name": "encoders", "rows": [{"key": "choice/encoder", "name": "row numbers", "contains": "row_number"},
                                     {"key": "choice/encoder", "name": "grid shape", "contains": "grid_shape"}],
        "columns": [{"metric": "eval/accuracy", "name": "accuracy"}]})
    runs = [run("a", {}, {"eval/accuracy": 0.5}, {"choice/encoder": "grid_shape_row_number"}),
            run("b", {}, {"eval/accuracy": 0.25}, {"choice/encoder": "code_block"})]
    assert table_markdown(build_table(runs, flags)).splitlines()[2:] == ["|  |  | 25.0% | 1 |",
                                                                         "| x | x | 50.0% | 1 |"]
    timing = TableSpec.from_config({
        "name": "ttft_timing", "run_type": "solve",
        "rows": [{"key": "{model.name}/{lora.load_in_4bit}", "name": "Model", "map": {"phi/True": "Phi-3 int4"}}],
        "columns": [{"metric": "ttft/parameters", "name": "parameters (M)", "scale": 1e-6, "format": "number"},
                    {"key": "data.max_seq_len", "name": "seq_len"},
                    {"metric": "ttft/seconds_per_step", "name": "10 steps time (min)", "scale": 10 / 60}]})
    solve = run("c", {"model.name": "phi", "lora.load_in_4bit": "True", "data.max_seq_len": "4096"},
                {"ttft/parameters": 3.8e9, "ttft/seconds_per_step": 96.0}, {"run_type": "solve"})
    assert timing.header == ["Model", "parameters (M)", "seq_len", "10 steps time (min)"]
    assert table_markdown(build_table([solve], timing)).splitlines()[2:] == ["| Phi-3 int4 | 3800 | 4096 | 16 | 1 |"]


def test_metric_rows_show_before_and_after_training():
    table = TableSpec.from_config({
        "name": "count_qa", "row_title": "question type", "where": {"data.train.1.weight": 1e-6},
        "metric_rows": [{"metric": "qa/count", "name": "How many objects?"}, {"metric": "qa/areas", "name": "areas"}],
        "columns": [{"metric": "qa", "name": "before training", "step": "first", "format": "percent"},
                    {"metric": "qa", "name": "after training", "format": "percent"}]})
    data = "[{'chats': 'data/count', 'source': None, 'weight': 1.0}, {'source': 'arc1-training', 'chats': None, " \
           "'weight': %s}]"  # a typed entry is logged with every key, null for those it leaves unset
    count_only = [run(letter, {"data.train": data % "1e-06", "seed": seed}, {"qa/count": after},
                      first={"qa/count": before}) for letter, seed, before, after in (("a", "0", 0.25, 0.75),
                                                                                     ("b", "1", 0.5, 1.0))]
    mixed = run("c", {"data.train": data % "1.0"}, {"qa/count": 0.0}, first={"qa/count": 0.0})
    assert count_only[0].value("data.train.1.weight") == "1e-06" and mixed.value("data.train.0.source") is None
    assert mixed.value("data.train.0.chats") == "data/count" and mixed.value("data.train.1.chats") is None
    assert table_markdown(build_table([*count_only, mixed], table)).splitlines() == [
        "| question type | before training | after training | runs |", "|---|---|---|---|",
        "| How many objects? | 37.5% | 87.5% | 2 |", "| areas | - | - | 2 |"]


def test_bad_table_specs_name_the_table_and_key():
    with pytest.raises(ReportError, match=r"report.tables\[0\]: table 'x' has unknown key\(s\) colums"):
        table_specs({"tables": [{"name": "x", "rows": ["a"], "colums": []}]})
    with pytest.raises(ReportError, match="table name\\(s\\) x used twice"):
        table_specs({"tables": [{"name": "x", "rows": ["a"], "columns": ["m"]}] * 2})
    assert [t.name for t in table_specs({"rows": ["lora.r"], "columns": [{"metric": "m"}]}, "old")] == ["old"]
    assert RowKey("learning_rate", map={"1e-4": "low"}).show("0.0001") == "low"


def log_run(client, experiment_id, params, metrics, tags, steps=None):
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, value in metrics.items():
        for step, item in enumerate(value if isinstance(value, list) else [value]):
            client.log_metric(run_id, key, item, step=step)
    client.set_terminated(run_id)
    return run_id


def test_report_prints_every_table_from_mlflow_and_logs_one_report_run(tmp_path):
    """Runs logged as train.py tags them (experiment, run_type, scale, arm); report.py rebuilds iteration 12's tables
    from the store alone, writes each as Markdown and CSV and logs them to one report run."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("arc_exp-smoke")
    tags = {"run_type": "training", "experiment": "iter12_grid_representation"}
    base = {"scale": "smoke", "model.name": "smollm2-135m", "learning_rate": "0.0004", "lora.r": "32",
            "evaluation.predictions_per_task": "4", "trainer.max_steps": "10", "seed": "0"}
    for arm, lr, r, seed, loss, accuracy in (("base", "0.0004", "32", "0", 0.5, 0.25),
                                              ("base", "0.0004", "32", "1", 0.3, 0.5),
                                              ("lr_x2", "0.0008", "32", "0", 0.2, 0.0),
                                              ("r16", "0.0004", "16", "0", 0.6, 0.125)):
        log_run(client, experiment_id, {**base, "arm": arm, "learning_rate": lr, "lora.r": r, "seed": seed},
                {"train/loss": [1.0, loss], "val/loss": 0.9, "eval/accuracy": accuracy, "eval/pass_4": accuracy},
                {**tags, "choice/encoder": "grid_shape_row_number"})
    log_run(client, experiment_id, {**base, "arm": "base", "scale": "gpu"}, {"train/loss": 9.0},
            tags)  # another scale: never in a smoke table
    out = tmp_path / "out"
    common = ["experiment=iter12_grid_representation", f"logger.tracking_uri={uri}", f"hydra.run.dir={out}"]
    done = subprocess.run([PYTHON, str(REPO / "report.py"), *common], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert "## learning_rate: Optimal learning rate\n\n" \
           "| model | learning rate | train loss | val loss | accuracy | correct_pixels | correct_size | pass_4 | " \
           "unanswered | runs |\n|---|---|---|---|---|---|---|---|---|---|\n" \
           "| SmolLM2-135M | 4.00E-04 | 0.400 sd 0.141 | 0.900 sd 0.000 | 37.5% sd 17.7 | - | - | 37.5% sd 17.7 | - | 2 |\n" \
           "| SmolLM2-135M | 8.00E-04 | 0.200 | 0.900 | 0.0% | - | - | 0.0% | - | 1 |" in text
    assert "| SmolLM2-135M | 16 | 0.600 | 0.900 | 12.5% | - | - | 12.5% | - | 1 |" in text
    assert "## encoders: Experiment with different grid encoders\n\n(no run yet)" in text
    assert "| SmolLM2-135M | 8.00E-04 | 0.200 | 0.900 | 0.0% | - | - | 0.0% | - | 1 |\n\npass_4: the journal's pass_64, " \
           "at the predictions these runs made" in text  # titled with what the runs made; the journal's title said
    assert (out / "iter12_grid_representation.lora_rank.csv").read_text().splitlines()[1:] == [  # no per_task.csv
        "SmolLM2-135M,16,0.6,,0.9,,0.125,,,,,,,,,,,,0.125,,,,,,,,1,0,0",
        "SmolLM2-135M,32,0.4,0.141421356237,0.9,0.0,0.375,,,0.176776695297,,,,,,,,,0.375,,,0.176776695297,,,,,2,0,0"]
    assert "no paired comparison: no run of this table has per-task results (per_task.csv)" in text
    report_runs = [r for r in fetch_runs(uri, "iter12_grid_representation", run_type="report")]
    assert len(report_runs) == 1 and report_runs[0].tags["tables"].startswith("encoders,learning_rate,lora_rank")
    artifacts = {a.path for a in client.list_artifacts(report_runs[0].run_id)}
    assert {"iter12_grid_representation.learning_rate.md", "iter12_grid_representation.lora_rank.csv"} <= artifacts

    one = subprocess.run([PYTHON, str(REPO / "report.py"), *common, "table=lora_rank"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and "## lora_rank" in one.stdout and "## learning_rate" not in one.stdout
    bad = subprocess.run([PYTHON, str(REPO / "report.py"), *common, "table=rank"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and ("experiment=iter12_grid_representation has no table 'rank'; its tables: "
                                    "encoders, learning_rate, lora_rank, ttft_steps, model_size, model_size_ttft"
                                    ) in bad.stderr


# -- is the difference real? intervals and paired comparisons from the evaluations' per_task.csv ----------------------


def test_report_runs_pairs_two_real_smoke_evaluations_on_their_shared_tasks(tmp_path, capsys):
    """Two evaluate.py runs of the tiny random model, one on 3 tasks and one on 2 of them: report.py runs=[a,b]
    prints the side-by-side figures with their intervals and the paired table on the 2 shared tasks (1 left out),
    writes the task groups and the PNG and logs them to a report run; a training run without evaluation, or runs
    without a task in common, get one line each."""
    import mlflow

    from conftest import run_in_process, run_recipe
    from test_evaluation import compose_evaluate

    import evaluate

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["model=tiny-random", "debug=smoke", f"logger.tracking_uri={uri}", "progress=false",
              "data.eval.max_grid_side=4", "inference.max_new_tokens=8", "predictions_per_task=1"]
    for n in (3, 2):
        run_recipe(evaluate.main, compose_evaluate([*common, f"data.eval.first_n={n}"]), tmp_path / f"eval{n}")
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("arc_exp-smoke").experiment_id
    runs = {r.data.params["data.eval.first_n"]: r.info.run_id
            for r in client.search_runs([experiment], "tags.run_type = 'evaluation'")}
    training = log_run(client, experiment, {"seed": "0"}, {"train/loss": 0.5}, {"run_type": "training"})
    out = tmp_path / "report"
    code, stdout, stderr = run_in_process(["report.py", f"runs=[{runs['3']},{runs['2']},{training}]",
                                           f"logger.tracking_uri={uri}", f"hydra.run.dir={out}"], capsys)
    assert code == 0, stderr[-2000:]
    lines = stdout.splitlines()
    assert next(l for l in lines if l.startswith("| pass_2 |")).count("0.0% (0.0-0.0)") == 2  # interval per run
    paired = next(l for l in lines if l.startswith("| B: "))
    assert paired.endswith("| 2 | 0 | 0 | 0 | 2 | +0.0 (+0.0 to +0.0) | 1.000 | 1 (1 of A, 0 of B) |")
    assert f"no paired comparison: {client.get_run(training).info.run_name} ({training[:8]}): no per_task.csv: a " \
           f"training run without evaluation (train.py evaluation.enabled=true, or evaluate.py " \
           f"checkpoint={training[:8]})" in lines
    tasks = (out / "comparison.tasks.csv").read_text().splitlines()
    assert len(tasks) == 4 and sum(",left_out," in t for t in tasks) == 1
    assert (out / "comparison.tasks.png").read_bytes()[:4] == b"\x89PNG"
    report = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.run_type = 'report'")
    assert len(report) == 1 and report[0].data.tags["runs"] == ",".join([runs["3"], runs["2"], training])
    assert {"comparison.md", "comparison.csv", "comparison.paired.md", "comparison.paired.csv", "comparison.tasks.md",
            "comparison.tasks.csv", "comparison.tasks.png"} <= {a.path for a in client.list_artifacts(report[0].info.run_id)}


METRICS = ("accuracy", "correct_pixels", "correct_size", "max_correct_pixels", "any_correct_size", "pass_4", "vote_2",
           "pass_2", "unanswered")


def per_task_csv(solved: set, tasks: int = 10) -> str:
    """A per_task.csv as evaluate.py writes it: tasks t0..t9, each metric 1 for the ``solved`` ones, else 0."""
    lines = ["task_id,source,test_inputs,predictions," + ",".join(METRICS)]
    for i in range(tasks):
        value = "1" if i in solved else "0"
        lines.append(f"t{i},arc1-evaluation,1,4," + ",".join("0" if m == "unanswered" else value for m in METRICS))
    return "\n".join(lines) + "\n"


def test_report_tables_carry_intervals_and_pair_each_row_with_the_baseline(tmp_path, capsys):
    """Training runs with evaluation/per_task.csv (10 tasks): the learning-rate table's figures carry bootstrap
    intervals (two seeds: their deviation too), and the lr_x2 row is paired with the first (baseline) row on pass_2:
    base (seeds solving t0-t3 and t0-t4) solves t0-t3 in both seeds, lr_x2 solves t2-t8."""
    import mlflow
    from scipy.stats import binomtest

    from conftest import run_in_process

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("arc_exp-smoke")
    base = {"scale": "smoke", "model.name": "smollm2-135m", "lora.r": "32", "evaluation.predictions_per_task": "4"}
    for arm, lr, seed, solved in (("base", "0.0004", "0", {0, 1, 2, 3}), ("base", "0.0004", "1", {0, 1, 2, 3, 4}),
                                  ("lr_x2", "0.0008", "0", {2, 3, 4, 5, 6, 7, 8})):
        score = len(solved) / 10
        run_id = log_run(client, experiment_id, {**base, "arm": arm, "learning_rate": lr, "seed": seed},
                         {"train/loss": 0.5, **{f"eval/{m}": 0.0 if m == "unanswered" else score for m in METRICS}},
                         {"run_type": "training", "experiment": "iter12_grid_representation"})
        folder = tmp_path / run_id / "evaluation"
        folder.mkdir(parents=True)
        (folder / "per_task.csv").write_text(per_task_csv(solved))
        client.log_artifacts(run_id, str(folder), "evaluation")
    out = tmp_path / "out"
    code, stdout, stderr = run_in_process(
        ["report.py", "experiment=iter12_grid_representation", "table=learning_rate", f"logger.tracking_uri={uri}",
         f"hydra.run.dir={out}", "significance.resamples=2000", "plot_metrics=[]"], capsys)
    assert code == 0, stderr[-2000:]
    lines = stdout.splitlines()
    assert "| SmolLM2-135M | 4.00E-04 | 0.500 sd 0.000 | - | 45.0% (20.0-75.0) sd 7.1 | 45.0% (20.0-75.0) sd 7.1 | " \
           "45.0% (20.0-75.0) sd 7.1 | 45.0% (20.0-75.0) sd 7.1 | 0.0% (0.0-0.0) sd 0.0 | 2 |" in lines
    assert "| SmolLM2-135M | 8.00E-04 | 0.500 | - | 70.0% (40.0-90.0) | 70.0% (40.0-90.0) | 70.0% (40.0-90.0) | " \
           "70.0% (40.0-90.0) | 0.0% (0.0-0.0) | 1 |" in lines
    p = binomtest(5, 7, 0.5).pvalue  # 5 tasks solved by the row only, 2 by the baseline only
    assert f"| row: SmolLM2-135M 8.00E-04 vs baseline: SmolLM2-135M 4.00E-04 | 10 | 2 | 2 | 5 | 1 | " \
           f"+25.0 (-25.0 to +70.0) | {p:.3f} | 0 |" in lines
    csv_lines = (out / "iter12_grid_representation.learning_rate.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,learning rate,train loss,train loss sd,val loss,val loss sd,accuracy,"
                                   "accuracy low,accuracy high,accuracy sd,")
    assert csv_lines[2].startswith("SmolLM2-135M,8.00E-04,0.5,,,,0.7,0.4,0.9,,")
    groups = (out / "iter12_grid_representation.learning_rate.tasks.md").read_text()
    assert "- solved by row only (5): t4, t5, t6, t7, t8" in groups and "- solved by baseline only (2): t0, t1" in groups
    assert (out / "iter12_grid_representation.learning_rate.tasks.png").exists()


def test_a_table_names_its_baseline_row_and_rows_pair_on_their_seeds_mean():
    """``baseline``: ``{setting: value}`` of its runs or the text of its first cell; the first row when unset; a
    row's per-task values average its seeds; a row whose runs lack per_task.csv says which runs."""
    from arc_exp.tracking.per_task import PerTask
    from arc_exp.tracking.tables import baseline_row, row_arms

    runs = [lr_run("a", "1e-4", "0", 0.5, 0.25), lr_run("b", "1e-4", "1", 0.3, 0.5), lr_run("c", "4e-4", "0", 0.2, 0.1),
            lr_run("d", "8e-4", "0", 0.2, 0.1)]
    per_task = {("a" * 32, False): PerTask({"pass_2": {"t1": 1.0, "t2": 0.0}}),
                ("b" * 32, False): PerTask({"pass_2": {"t1": 1.0, "t2": 1.0}}, plots={"t1": ["file:///b/t1-0.png"]}),
                ("c" * 32, False): PerTask({"pass_2": {"t1": 0.0, "t3": 1.0}})}
    spec = {k: v for k, v in vars(LR_TABLE).items() if k in ("name", "where", "rows", "columns", "layout")}
    assert baseline_row(build_table(runs, TableSpec(**spec))) == 0
    assert baseline_row(build_table(runs, TableSpec(**spec, baseline={"learning_rate": 4e-4}))) == 1
    assert baseline_row(build_table(runs, TableSpec(**spec, baseline="Qwen2-0.5B 8.00E-04"))) == 2
    with pytest.raises(ReportError, match=r"table 'learning_rate': no row is the baseline \{'lora.r': 8\} \(its rows: "
                                          r"Qwen2-0.5B 1.00E-04; Qwen2-0.5B 4.00E-04; Qwen2-0.5B 8.00E-04\)"):
        baseline_row(build_table(runs, TableSpec(**spec, baseline={"lora.r": 8})))
    arms = row_arms(build_table(runs, TableSpec(**spec)), "pass_2", per_task)
    assert [(a.label, a.values) for a in arms] == [("Qwen2-0.5B 1.00E-04", {"t1": 1.0, "t2": 0.5}),
                                                   ("Qwen2-0.5B 4.00E-04", {"t1": 0.0, "t3": 1.0}),
                                                   ("Qwen2-0.5B 8.00E-04", None)]
    assert arms[0].plots == {"t1": ["file:///b/t1-0.png"]}
    assert arms[2].lacks == f"no per_task.csv in run(s) run-d ({'d' * 8})"


def test_compare_runs_shows_intervals_and_the_spread_over_seeds():
    from arc_exp.tracking.side_by_side import compare_runs_csv, differ_only_in_seed
    from arc_exp.tracking.significance import Interval

    seeds = [RunRecord(c * 32, f"s{i}", {"seed": str(i), "lora.r": "16"}, {"pass_2": v})
             for i, (c, v) in enumerate(zip("abc", (0.30, 0.34, 0.32)))]
    assert differ_only_in_seed(seeds) and not differ_only_in_seed(RUNS[1:]) and not differ_only_in_seed(seeds[:1])
    intervals = {("a" * 32, "pass_2"): Interval(0.30, 0.25, 0.35, 100)}
    assert compare_runs(seeds, intervals=intervals, spread=True).splitlines()[3:] == [
        "| pass_2 | 30.0% (25.0-35.0) | 34.0% | 32.0% | 32.0% sd 2.0 |"]
    assert compare_runs_csv(seeds, intervals=intervals, spread=True).splitlines()[3:] == [
        f"pass_2,0.3,0.34,0.32,0.32,0.02", "pass_2 low,0.25,,,,", "pass_2 high,0.35,,,,"]


def test_sweep_finds_the_runs_of_a_multirun_folder_in_job_order(tmp_path):
    import mlflow

    from arc_exp.tracking.report import runs_under
    from arc_exp.tracking.runs import RunNotFoundError

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("e")
    sweep = tmp_path / "multirun" / "evaluate" / "2026-12-04" / "18-55-00"
    ids = {job: log_run(client, experiment, {"seed": str(job)}, {}, {"output_dir": str(sweep / str(job))})
           for job in (10, 0, 2, 1)}
    log_run(client, experiment, {}, {}, {"output_dir": str(sweep) + "-other/0"})  # another sweep's folder
    assert runs_under(uri, sweep) == [ids[0], ids[1], ids[2], ids[10]]
    with pytest.raises(RunNotFoundError, match="sweep: no finished MLflow run in .* has its run folder in"):
        runs_under(uri, tmp_path / "multirun" / "train")


def test_per_task_results_are_found_where_each_entry_point_logs_them(tmp_path):
    """evaluate.py: the artifact root (all_checkpoints: the last step folder); train.py: evaluation/ (and
    evaluation-before/); solve.py: its predict stage's child run; a run without any: None."""
    import mlflow

    from arc_exp.tracking.per_task import fetch_per_task

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("e")
    csv_file = tmp_path / "per_task.csv"

    def logged(folder, solved, tags=None, run_id=None):
        run_id = run_id or log_run(client, experiment, {}, {}, tags or {})
        csv_file.write_text(per_task_csv(solved, tasks=3))
        client.log_artifact(run_id, str(csv_file), folder)
        return run_id

    def solved(run_id, before=False):
        found = fetch_per_task(uri, run_id, before)
        return found and (found.folder, sorted(t for t, v in found.values("pass_2").items() if v == 1.0))

    evaluation = logged(None, {0})
    steps = logged("step-000004", {1}, run_id=logged("step-000002", {0}))
    training = logged("evaluation-before", {2}, run_id=logged("evaluation", {1}))
    parent = log_run(client, experiment, {}, {}, {"run_type": "solve"})
    logged(None, {0, 2}, {"mlflow.parentRunId": parent, "stage": "predict"})
    assert solved(evaluation) == ("", ["t0"]) and solved(steps) == ("step-000004", ["t1"])
    assert solved(training) == ("evaluation", ["t1"]) and solved(training, before=True) == ("evaluation-before", ["t2"])
    assert solved(parent) == ("", ["t0", "t2"])
    assert fetch_per_task(uri, log_run(client, experiment, {}, {}, {})) is None
