"""Metrics: per prediction, per test input, per task and over tasks, with hand-computed values."""
import pytest

from arc_exp.evaluation import metrics
from arc_exp.evaluation.metrics import aggregate_metrics, pass_n_key, prediction_metrics, task_metrics
from arc_exp.evaluation.voting import Prediction

EXPECTED = [[1, 2, 3], [4, 5, 6]]
ONE_WRONG_CELL = [[1, 2, 3], [4, 5, 0]]  # 5 of 6 cells equal


def test_prediction_exact():
    assert prediction_metrics([[1, 2, 3], [4, 5, 6]], EXPECTED) == {
        "accuracy": 1.0, "correct_pixels": 1.0, "correct_size": 1.0}


def test_prediction_partial_pixels_five_of_six():
    assert prediction_metrics(ONE_WRONG_CELL, EXPECTED) == {
        "accuracy": 0.0, "correct_pixels": 5 / 6, "correct_size": 1.0}


def test_prediction_shape_mismatch_scores_no_pixels():
    # 3x2 holds the same 6 values in another shape: no pixel is counted.
    assert prediction_metrics([[1, 2], [3, 4], [5, 6]], EXPECTED) == {
        "accuracy": 0.0, "correct_pixels": 0.0, "correct_size": 0.0}


def test_prediction_unanswered_scores_zero():
    assert prediction_metrics(None, EXPECTED) == {"accuracy": 0.0, "correct_pixels": 0.0, "correct_size": 0.0}


def test_prediction_needs_expected():
    with pytest.raises(ValueError, match="expected output is unknown"):
        prediction_metrics([[1]], None)


# Five predictions for EXPECTED. Vote: ONE_WRONG_CELL has 2 votes; the exact grid and the 2x2 grid have 1 each,
# and the 2x2 grid is more confident (-0.05 > -0.2), so the two most voted grids miss the answer.
PREDICTIONS = [
    Prediction(EXPECTED, -0.2, "identity"),
    Prediction(ONE_WRONG_CELL, -0.1, "rot90"),
    Prediction(ONE_WRONG_CELL, -0.3, "flip"),
    Prediction(None, -1.0, "transpose"),
    Prediction([[1, 2], [3, 4]], -0.05, "rot180"),
]


def test_test_input_metrics_with_attempts_from_the_vote():
    result = metrics.test_input_metrics(PREDICTIONS, EXPECTED, attempts=None)
    assert list(result) == ["accuracy", "correct_pixels", "correct_size", "max_correct_pixels",
                            "any_correct_size", "pass_5", "vote_2", "pass_2", "unanswered"]
    assert result == {
        "accuracy": 1 / 5,
        "correct_pixels": pytest.approx((1 + 5 / 6 + 5 / 6) / 5),  # = 8/15
        "correct_size": 3 / 5,
        "max_correct_pixels": 1.0,
        "any_correct_size": 1.0,
        "pass_5": 1.0,
        "vote_2": 0.0,
        "pass_2": 0.0,
        "unanswered": 1 / 5,
    }


def test_pass_2_differs_from_vote_2_when_attempts_are_given():
    result = metrics.test_input_metrics(PREDICTIONS, EXPECTED, attempts=[ONE_WRONG_CELL, EXPECTED])
    assert (result["vote_2"], result["pass_2"]) == (0.0, 1.0)
    # and the other way round: the vote finds it, the submitted attempts do not
    voted_right = [Prediction(EXPECTED, -0.1), Prediction(EXPECTED, -0.2), Prediction([[7]], -0.1)]
    result = metrics.test_input_metrics(voted_right, EXPECTED, attempts=[[[7]], None])
    assert (result["vote_2"], result["pass_2"]) == (1.0, 0.0)


def test_configured_n_names_pass_n():
    assert "pass_8" in metrics.test_input_metrics(PREDICTIONS, EXPECTED, None, n=8)
    result = metrics.test_input_metrics([Prediction(EXPECTED, 0.0), Prediction(None, 0.0)], EXPECTED, None)
    assert (result["pass_2_predictions"], result["pass_2"], result["unanswered"]) == (1.0, 1.0, 0.5)


def test_pass_n_key():
    assert pass_n_key(8) == "pass_8"
    assert pass_n_key(1) == "pass_1"
    assert pass_n_key(2) == "pass_2_predictions"  # pass_2 is the submitted attempts


def test_bare_grids_are_accepted_as_predictions():
    result = metrics.test_input_metrics([[[3]], None, [[3]]], [[3]], attempts=[[[3]]])
    assert (result["pass_3"], result["vote_2"], result["pass_2"], result["accuracy"]) == (1.0, 1.0, 1.0, 2 / 3)


def test_no_predictions_at_all():
    assert metrics.test_input_metrics([], [[1]], attempts=[], n=4) == {
        "accuracy": 0.0, "correct_pixels": 0.0, "correct_size": 0.0, "max_correct_pixels": 0.0,
        "any_correct_size": 0.0, "pass_4": 0.0, "vote_2": 0.0, "pass_2": 0.0, "unanswered": 1.0}


def test_more_than_two_attempts_is_an_error():
    with pytest.raises(ValueError, match="at most 2 attempts"):
        metrics.test_input_metrics([[[1]]], [[1]], attempts=[[[1]], [[2]], [[3]]])


def test_task_metrics_is_the_mean_over_test_inputs():
    assert task_metrics([{"accuracy": 1.0, "pass_2": 1.0}, {"accuracy": 0.5, "pass_2": 0.0}]) == {
        "accuracy": 0.75, "pass_2": 0.5}


def test_task_metrics_differing_pass_n_keys():
    items = [{"pass_8": 1.0, "pass_2": 1.0}, {"pass_7": 0.0, "pass_2": 0.0}]
    assert task_metrics(items) == {"pass_8": 0.5, "pass_2": 0.5}  # the largest n seen
    assert task_metrics(items, n=10) == {"pass_10": 0.5, "pass_2": 0.5}  # the configured n
    assert task_metrics([{"pass_2_predictions": 1.0}, {"pass_3": 0.0}]) == {"pass_3": 0.5}


def test_task_metrics_mismatched_keys_name_the_test_input():
    with pytest.raises(ValueError, match=r"test input 1 has different metrics \(missing \['vote_2'\]"):
        task_metrics([{"accuracy": 1.0, "vote_2": 1.0}, {"accuracy": 1.0}])
    with pytest.raises(ValueError, match="no metrics"):
        task_metrics([])


def test_aggregate_weighs_each_task_the_same():
    # task a: 2 test inputs, one solved (0.5); task b: 1 test input, solved. Per task mean 0.75, not pooled 2/3.
    per_task = {
        "0a1b2c3d": task_metrics([{"pass_2": 1.0}, {"pass_2": 0.0}]),
        "4e5f6a7b": task_metrics([{"pass_2": 1.0}]),
    }
    assert aggregate_metrics(per_task) == {"pass_2": 0.75}


def test_aggregate_end_to_end_and_pass_n_harmonized():
    task_a = task_metrics([metrics.test_input_metrics(PREDICTIONS, EXPECTED, None, n=5)])
    task_b = task_metrics([metrics.test_input_metrics([Prediction([[1]], 0.0)] * 4, [[1]], None)])
    result = aggregate_metrics({"0a1b2c3d": task_a, "4e5f6a7b": task_b}, n=5)
    assert result == {
        "accuracy": 0.6, "correct_pixels": pytest.approx((8 / 15 + 1) / 2), "correct_size": 0.8,
        "max_correct_pixels": 1.0, "any_correct_size": 1.0, "pass_5": 1.0, "vote_2": 0.5, "pass_2": 0.5,
        "unanswered": 0.1}


def test_aggregate_errors_name_the_task():
    with pytest.raises(ValueError, match="task 4e5f6a7b has different metrics"):
        aggregate_metrics({"0a1b2c3d": {"accuracy": 1.0}, "4e5f6a7b": {"vote_2": 1.0}})
    assert aggregate_metrics({}) == {}
