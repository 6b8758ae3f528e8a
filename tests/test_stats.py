"""Token statistics per encoder."""
import pytest

from arc_exp.data.stats import format_table, token_stats


def test_token_stats_figures():
    stats = token_stats("minimal", [100, 200, 300, 400, 5000], max_seq_len=1000)
    assert (stats.tasks, stats.median, stats.max, stats.over_max_seq_len) == (5, 300.0, 5000, 0.2)
    assert stats.p90 == pytest.approx(3160.0)  # numpy's linear interpolation between 400 and 5000
    assert format_table([stats], 1000).splitlines() == [
        "| encoder | tasks | median | p90 | max | over 1000 |",
        "|---|---|---|---|---|---|",
        "| minimal | 5 | 300 | 3160 | 5000 | 20.0% |",
    ]


def test_the_statistics_cover_every_encoder_and_write_under_the_project_root():
    from omegaconf import OmegaConf

    from conftest import CONF

    config = OmegaConf.load(CONF / "stats.yaml")
    assert config.encoders is None  # every option (ENCODER_COMPOSITIONS and any conf/encoder/*.yaml), a new one included
    assert OmegaConf.to_container(config)["hydra"]["run"]["dir"].startswith("${project_root}/outputs/stats/")
