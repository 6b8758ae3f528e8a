"""Voting: grouping identical grids, ranking by count, then mean logprob, then first appearance."""
import math

import pytest

from arc_exp.evaluation.voting import Prediction, VotedGrid, select_attempts, vote


def test_vote_groups_identical_grids_and_ignores_unanswered():
    predictions = [
        Prediction([[1, 2]], -0.1, "identity"),
        Prediction([[3]], -0.5, "rot90"),
        Prediction(None, -9.0, "flip"),
        Prediction([[1, 2]], -0.3, "transpose"),
    ]
    assert vote(predictions) == [
        VotedGrid([[1, 2]], 2, pytest.approx(-0.2), ["identity", "transpose"]),
        VotedGrid([[3]], 1, -0.5, ["rot90"]),
    ]


def test_vote_of_nothing_answered_is_empty():
    assert vote([Prediction(None, -1.0), Prediction(None, -2.0)]) == []
    assert vote([]) == []


def test_count_beats_logprob():
    predictions = [Prediction([[9]], -0.01), Prediction([[1]], -3.0), Prediction([[1]], -3.0)]
    assert [v.grid for v in vote(predictions)] == [[[1]], [[9]]]


def test_equal_counts_are_broken_by_mean_logprob():
    predictions = [
        Prediction([[1]], -0.9), Prediction([[1]], -0.1),  # mean -0.5
        Prediction([[2]], -0.2), Prediction([[2]], -0.4),  # mean -0.3: more confident
    ]
    voted = vote(predictions)
    assert [(v.grid, v.count, round(v.mean_logprob, 6)) for v in voted] == [([[2]], 2, -0.3), ([[1]], 2, -0.5)]


def test_equal_count_and_logprob_keep_first_appearance():
    predictions = [Prediction([[5]], -0.5), Prediction([[4]], -0.5), Prediction([[6]], -0.5)]
    assert [v.grid for v in vote(predictions)] == [[[5]], [[4]], [[6]]]
    assert [v.grid for v in vote(list(reversed(predictions)))] == [[[6]], [[4]], [[5]]]


def test_nan_logprob_ranks_last_among_equal_counts():
    predictions = [Prediction([[1]], math.nan), Prediction([[2]], -50.0)]
    assert [v.grid for v in vote(predictions)] == [[[2]], [[1]]]


def test_vote_returns_copies():
    grid = [[1, 2]]
    voted = vote([Prediction(grid, 0.0)])
    voted[0].grid[0][0] = 7
    assert grid == [[1, 2]]


def test_select_attempts():
    voted = [VotedGrid([[1]], 3, -0.1), VotedGrid([[2]], 1, -0.2), VotedGrid([[3]], 1, -0.9)]
    assert select_attempts(voted) == [[[1]], [[2]]]
    assert select_attempts(voted, n=1) == [[[1]]]
    assert select_attempts(voted[:1]) == [[[1]]]
    assert select_attempts([]) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        select_attempts(voted, n=-1)
