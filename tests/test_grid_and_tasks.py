"""The grid rules and the task model: validation errors name where the bad grid is."""
import pytest

from arc_exp.data.tasks import Example, Task, TaskFormatError
from arc_exp.data.grid import InvalidGridError, grid_key, grid_shape, validate_grid


def test_validate_grid_accepts_and_normalises():
    assert validate_grid([[0, 1, 2], [3, 4, 5]]) == [[0, 1, 2], [3, 4, 5]]
    assert validate_grid(((9,),)) == [[9]]
    assert grid_shape([[0, 1, 2], [3, 4, 5]]) == (2, 3)
    assert grid_key([[1, 2], [3, 4]]) == ((1, 2), (3, 4))


@pytest.mark.parametrize("grid, message", [
    ([], "grid is empty"),
    ([[]], "row 0 is empty"),
    ([[1, 2], [3]], "not rectangular (row 0 has 2 cells, row 1 has 1)"),
    ([[1, 10]], "cell (0, 1) holds 10"),
    ([[1, -1]], "cell (0, 1) holds -1"),
    ([[1, "2"]], "cell (0, 1) holds '2'"),
    ([[True]], "cell (0, 0) holds True"),
    ([[0] * 31], "grid is 1x31, larger than 30x30"),
    ([[0]] * 31, "grid is 31x1, larger than 30x30"),
])
def test_validate_grid_errors_name_the_place(grid, message):
    with pytest.raises(InvalidGridError) as error:
        validate_grid(grid, "tasks.json: task 0a1b2c3d train[0].input")
    assert str(error.value).startswith("tasks.json: task 0a1b2c3d train[0].input: ")
    assert message in str(error.value)


TASK = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}, {"input": [[4]], "output": [[5]]}]}


def test_task_from_dict_round_trip():
    task = Task.from_dict("0a1b2c3d", TASK, source="x.json")
    assert task.train == (Example([[1]], [[2]]),)
    assert task.test_inputs == [[[3]], [[4]]]
    assert task.test_outputs is None and not task.has_solutions
    assert task.to_dict() == TASK
    solved = task.with_solutions([[[6]], [[5]]])
    assert solved.test_outputs == [[[6]], [[5]]] and solved.has_solutions


@pytest.mark.parametrize("data, message", [
    ([1], "expected an object with 'train' and 'test', got list"),
    ({"train": []}, "missing key 'test'"),
    ({"train": [], "test": []}, "'test' holds no test input"),
    ({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}, "train[0] is missing key 'output'"),
    ({"train": [], "test": [{"output": [[1]]}]}, "test[0] is missing key 'input'"),
    ({"train": [], "test": [{"input": [[1, 2], [1]]}]}, "test[0].input: grid is not rectangular"),
])
def test_task_errors_name_file_and_task(data, message):
    with pytest.raises(TaskFormatError) as error:
        Task.from_dict("0a1b2c3d", data, source="x.json")
    assert "x.json: task 0a1b2c3d" in str(error.value)
    assert message in str(error.value)


def test_solutions_count_must_match():
    task = Task.from_dict("0a1b2c3d", TASK, source="x.json")
    with pytest.raises(TaskFormatError, match=r"sol.json: task 0a1b2c3d: 1 solutions for 2 test inputs"):
        task.with_solutions([[[1]]], source="sol.json")
