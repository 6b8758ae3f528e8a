"""Tests for arc_exp.data.augmentation: exact grids, exact inverses, pinned seeded results and the YAML policies."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from arc_exp.data.augmentation import (
    DIHEDRAL_NAMES,
    IDENTITY,
    IDENTITY_COLORS,
    Augmentation,
    apply_color_map,
    dihedral,
    invert_color_map,
    inverse_dihedral,
    leave_one_out,
    leave_two_out,
    random_color_map,
    revert_color_map,
    revert_dihedral,
    shuffle_train,
    swap_train_test,
)
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.task_augmentation import (
    TASK_AUGMENTATIONS,
    TaskAugmentation,
    mirror,
    pad,
    random_task_augmentation,
    upscale,
)
from arc_exp.data.tasks import Example, Task

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GRID_2X3 = [[1, 2, 3], [4, 5, 6]]
SWAP_1_2 = (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)


def make_task(n_train: int = 3, with_solution: bool = True) -> Task:
    """Example i maps [[i]] -> [[i + 5]]; the test is example n_train."""
    train = tuple(Example([[i]], [[i + 5]]) for i in range(n_train))
    test = (Example([[n_train]], [[n_train + 5]] if with_solution else None),)
    return Task("abcd0123", train, test, source="hand.json")


def inputs(task: Task) -> tuple[list, list]:
    """The cell of each 1x1 train and test input: (train, test)."""
    return [e.input[0][0] for e in task.train], [e.input[0][0] for e in task.test]


def random_grid(rng: np.random.Generator) -> list[list[int]]:
    rows, cols = rng.integers(1, 8, size=2)
    return rng.integers(0, 10, size=(rows, cols)).tolist()


# --- dihedral -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, expected",
    [
        (0, [[1, 2, 3], [4, 5, 6]]),  # identity
        (1, [[4, 1], [5, 2], [6, 3]]),  # rot90 clockwise
        (2, [[6, 5, 4], [3, 2, 1]]),  # rot180
        (3, [[3, 6], [2, 5], [1, 4]]),  # rot270 clockwise
        (4, [[3, 2, 1], [6, 5, 4]]),  # flip left-right
        (5, [[6, 3], [5, 2], [4, 1]]),  # flip + rot90 = anti-transpose
        (6, [[4, 5, 6], [1, 2, 3]]),  # flip + rot180 = flip up-down
        (7, [[1, 4], [2, 5], [3, 6]]),  # flip + rot270 = transpose
    ],
)
def test_dihedral_exact_grids(k, expected):
    assert dihedral(GRID_2X3, k) == expected
    assert revert_dihedral(expected, k) == GRID_2X3


def test_dihedral_names_and_inverses():
    assert DIHEDRAL_NAMES == (
        "identity", "rot90", "rot180", "rot270", "flip", "flip_rot90", "flip_rot180", "flip_rot270"
    )
    assert [inverse_dihedral(k) for k in range(8)] == [0, 3, 2, 1, 4, 5, 6, 7]


def test_dihedral_revert_random_grids():
    rng = np.random.default_rng(0)
    for _ in range(20):
        grid = random_grid(rng)
        for k in range(8):
            assert revert_dihedral(dihedral(grid, k), k) == grid
            assert dihedral(dihedral(grid, k), inverse_dihedral(k)) == grid


@pytest.mark.parametrize("k", [-1, 8, 1.0, True, "1"])
def test_dihedral_rejects_bad_k(k):
    with pytest.raises(ValueError, match=r"dihedral must be an int 0\.\.7"):
        dihedral(GRID_2X3, k)


# --- colors -------------------------------------------------------------------------------------------------------


def test_random_color_map_pinned():
    assert random_color_map(random.Random(0)) == (0, 8, 6, 2, 4, 5, 3, 1, 9, 7)
    assert random_color_map(np.random.default_rng(0)) == (0, 5, 6, 3, 7, 4, 9, 8, 1, 2)
    assert random_color_map(random.Random(0), keep_background=False) == (7, 8, 1, 5, 3, 4, 2, 0, 9, 6)


def test_random_color_map_is_permutation_and_keeps_background():
    rng = random.Random(1)
    for _ in range(50):
        color_map = random_color_map(rng)
        assert color_map[0] == 0 and sorted(color_map) == list(range(10))
    # Without keep_background, 0 moves in most draws.
    moved = sum(random_color_map(rng, keep_background=False)[0] != 0 for _ in range(50))
    assert moved == 43


def test_random_color_map_rejects_seed_instead_of_rng():
    with pytest.raises(TypeError, match="rng must be a random.Random or numpy.random.Generator, got int"):
        random_color_map(0)


def test_apply_and_revert_color_map():
    color_map = (0, 3, 1, 2, 4, 5, 6, 7, 8, 9)
    assert apply_color_map([[0, 1, 2, 3]], color_map) == [[0, 3, 1, 2]]
    assert invert_color_map(color_map) == (0, 2, 3, 1, 4, 5, 6, 7, 8, 9)
    assert revert_color_map([[0, 3, 1, 2]], color_map) == [[0, 1, 2, 3]]


# --- Augmentation -------------------------------------------------------------------------------------------------


def test_augmentation_revert_is_exact_inverse():
    rng = np.random.default_rng(1)
    py_rng = random.Random(1)
    for _ in range(5):
        color_map = random_color_map(py_rng, keep_background=False)
        for k in range(8):
            augmentation = Augmentation(k, color_map)
            for _ in range(3):
                grid = random_grid(rng)
                assert augmentation.revert_grid(augmentation.apply_grid(grid)) == grid
                assert augmentation.inverse().apply_grid(augmentation.apply_grid(grid)) == grid


def test_augmentation_apply_grid_exact():
    augmentation = Augmentation(1, SWAP_1_2)
    assert augmentation.apply_grid([[1, 2, 0], [0, 0, 3]]) == [[0, 2], [0, 1], [3, 0]]
    assert augmentation.revert_grid([[0, 2], [0, 1], [3, 0]]) == [[1, 2, 0], [0, 0, 3]]


def test_augmentation_apply_task_covers_every_grid():
    task = Task("t", (Example([[1, 2]], [[2], [0]]),), (Example([[2, 2]], [[1]]), Example([[0, 1]])))
    augmented = Augmentation(4, SWAP_1_2).apply_task(task)
    assert augmented.task_id == "t"
    assert augmented.train == (Example([[1, 2]], [[1], [0]]),)
    assert augmented.test == (Example([[1, 1]], [[2]]), Example([[2, 0]], None))
    assert Augmentation(4, SWAP_1_2).revert_task(augmented) == task


def test_augmentation_name_and_dict_round_trip():
    augmentation = Augmentation(4, (0, 3, 1, 2, 4, 5, 6, 7, 8, 9))
    assert augmentation.name == "d4+c[0,3,1,2,4,5,6,7,8,9]"
    assert str(augmentation) == augmentation.name
    assert Augmentation(3).name == "d3"
    assert IDENTITY.name == "d0"
    assert augmentation.to_dict() == {"dihedral": 4, "color_map": [0, 3, 1, 2, 4, 5, 6, 7, 8, 9]}
    assert Augmentation.from_dict(augmentation.to_dict()) == augmentation
    assert Augmentation.from_name(augmentation.name) == augmentation
    assert Augmentation.from_name("d0") == IDENTITY
    # A list color map (as read from JSON) becomes a tuple, so views stay hashable and comparable.
    assert Augmentation(0, list(range(10))) == IDENTITY


def test_augmentation_is_identity():
    assert IDENTITY.is_identity and IDENTITY.color_map == IDENTITY_COLORS == tuple(range(10))
    assert not Augmentation(1).is_identity
    assert not Augmentation(0, SWAP_1_2).is_identity


@pytest.mark.parametrize("name", ["x4", "d9", "d4+c[0,1]", "d4+[0,3,1,2,4,5,6,7,8,9]", "d4+c[a]"])
def test_augmentation_from_name_rejects_bad_names(name):
    with pytest.raises(ValueError):
        Augmentation.from_name(name)


def test_augmentation_rejects_bad_color_map():
    with pytest.raises(ValueError, match=r"Augmentation.color_map must be a permutation of the colors 0\.\.9"):
        Augmentation(0, (0, 0, 1, 2, 3, 4, 5, 6, 7, 8))
    with pytest.raises(ValueError, match="'dihedral' and 'color_map'"):
        Augmentation.from_dict({"rotation": 1})


# --- shuffling and new tasks from examples ------------------------------------------------------------------------


def test_shuffle_train_pinned():
    task = make_task(4)
    assert inputs(shuffle_train(task, random.Random(0))) == ([2, 0, 1, 3], [4])
    assert inputs(shuffle_train(task, np.random.default_rng(2))) == ([3, 2, 0, 1], [4])


def test_swap_train_test():
    tasks = swap_train_test(make_task(3))
    assert [t.task_id for t in tasks] == ["abcd0123:swap0", "abcd0123:swap1", "abcd0123:swap2", "abcd0123:swap3"]
    assert [inputs(t) for t in tasks] == [([1, 2, 3], [0]), ([0, 2, 3], [1]), ([0, 1, 3], [2]), ([0, 1, 2], [3])]
    assert tasks[1].test == (Example([[1]], [[6]]),)
    assert all(t.source == "hand.json" for t in tasks)


def test_swap_train_test_without_solutions_returns_task():
    task = make_task(3, with_solution=False)
    assert swap_train_test(task) == [task]


def test_leave_one_out():
    tasks = leave_one_out(make_task(3))
    assert [t.task_id for t in tasks] == ["abcd0123:loo0", "abcd0123:loo1", "abcd0123:loo2"]
    assert [inputs(t) for t in tasks] == [([1, 2], [0]), ([0, 2], [1]), ([0, 1], [2])]
    assert tasks[2].test == (Example([[2]], [[7]]),)
    assert leave_one_out(make_task(1)) == []
    # Works without test outputs: only train examples are used.
    assert len(leave_one_out(make_task(2, with_solution=False))) == 2


def test_leave_two_out():
    tasks = leave_two_out(make_task(3))
    assert [t.task_id for t in tasks] == [
        "abcd0123:l2o0-1", "abcd0123:l2o0-2", "abcd0123:l2o1-0",
        "abcd0123:l2o1-2", "abcd0123:l2o2-0", "abcd0123:l2o2-1",
    ]
    assert [inputs(t) for t in tasks] == [([2], [0]), ([1], [0]), ([2], [1]), ([0], [1]), ([1], [2]), ([0], [2])]
    assert tasks[0].test == (Example([[0]], [[5]]),)
    assert len(leave_two_out(make_task(5))) == 20
    assert leave_two_out(make_task(2)) == []


# --- task augmentation --------------------------------------------------------------------------------------------

SMALL = Task("small", (Example([[1, 2], [3, 4]], [[5]]),), (Example([[6, 7], [8, 9]], [[1]]),))


def test_grid_transforms_for_task_augmentation():
    assert upscale([[1, 2]], 2) == [[1, 1, 2, 2], [1, 1, 2, 2]]
    assert pad([[1]], 5) == [[5, 5, 5], [5, 1, 5], [5, 5, 5]]
    assert mirror([[1, 2], [3, 4]], "horizontal") == [[1, 2, 2, 1], [3, 4, 4, 3]]
    assert mirror([[1, 2], [3, 4]], "vertical") == [[1, 2], [3, 4], [3, 4], [1, 2]]


@pytest.mark.parametrize(
    "kind, side, parameter, train, test",
    [
        ("geometric", "input", 1, Example([[3, 1], [4, 2]], [[5]]), Example([[8, 6], [9, 7]], [[1]])),
        (
            "upscale", "output", 2,
            Example([[1, 2], [3, 4]], [[5, 5], [5, 5]]),
            Example([[6, 7], [8, 9]], [[1, 1], [1, 1]]),
        ),
        (
            "padding", "input", 0,
            Example([[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]], [[5]]),
            Example([[0, 0, 0, 0], [0, 6, 7, 0], [0, 8, 9, 0], [0, 0, 0, 0]], [[1]]),
        ),
        (
            "mirror", "input", "vertical",
            Example([[1, 2], [3, 4], [3, 4], [1, 2]], [[5]]),
            Example([[6, 7], [8, 9], [8, 9], [6, 7]], [[1]]),
        ),
        ("mirror", "output", "horizontal", Example([[1, 2], [3, 4]], [[5, 5]]), Example([[6, 7], [8, 9]], [[1, 1]])),
    ],
)
def test_task_augmentation_pinned(kind, side, parameter, train, test):
    augmented = TaskAugmentation(kind, side, parameter).apply(SMALL)
    assert augmented.task_id == f"small:{side}-{kind}-{parameter}"
    assert augmented.train == (train,)
    assert augmented.test == (test,)


def test_task_augmentation_leaves_unknown_test_output():
    task = SMALL.replace(test=[Example([[6, 7], [8, 9]])])
    assert TaskAugmentation("upscale", "output", 3).apply(task).test == (Example([[6, 7], [8, 9]], None),)


def square_task(side: int, output_side: int = 1) -> Task:
    grid = [[1] * side for _ in range(side)]
    output = [[2] * output_side for _ in range(output_side)]
    return Task("big", (Example(grid, output),), (Example(grid, output),))


def test_task_augmentation_30x30_limit():
    assert TaskAugmentation("upscale", "input", 3).apply(square_task(10)).train[0].input == [[1] * 30] * 30
    assert TaskAugmentation("upscale", "input", 3).apply(square_task(11)) is None
    assert TaskAugmentation("padding", "input", 4).apply(square_task(28)) is not None
    assert TaskAugmentation("padding", "input", 4).apply(square_task(29)) is None
    assert TaskAugmentation("mirror", "input", "horizontal").apply(square_task(15)) is not None
    assert TaskAugmentation("mirror", "input", "horizontal").apply(square_task(16)) is None
    # Transposing a 30x5 grid gives 5x30, which still fits.
    wide = Task("wide", (Example([[1] * 5] * 30, [[2]]),), (Example([[1] * 5] * 30),))
    assert TaskAugmentation("geometric", "input", 7).apply(wide).train[0].input == [[1] * 30] * 5
    # The output side only looks at outputs: 1x1 outputs can be upscaled even when the inputs are 30x30.
    assert TaskAugmentation("upscale", "output", 3).apply(square_task(30)).test[0].output == [[2] * 3] * 3


def test_random_task_augmentation_picks_a_fitting_parameter():
    # 12x12 inputs and outputs: x3 would make 36x36 grids, so every seed picks x2.
    task = square_task(12, 12)
    ids = {random_task_augmentation(task, random.Random(seed), ("upscale",)).task_id for seed in range(8)}
    assert ids == {"big:input-upscale-2", "big:output-upscale-2"}
    # 16x16 grids: neither x2 nor x3 fits on either side.
    assert random_task_augmentation(square_task(16, 16), random.Random(0), ("upscale",)) is None


def test_random_task_augmentation_pinned():
    ids = [random_task_augmentation(SMALL, random.Random(seed)).task_id for seed in range(4)]
    assert ids == [
        "small:output-mirror-horizontal", "small:input-upscale-3", "small:input-geometric-1", "small:input-upscale-3"
    ]


def test_task_augmentation_rejects_bad_values():
    with pytest.raises(ValueError, match="allowed: geometric, upscale, padding, mirror"):
        TaskAugmentation("rotate", "input", 1)
    with pytest.raises(ValueError, match=r"'upscale' takes a parameter in \[2, 3\], got 4"):
        TaskAugmentation("upscale", "input", 4)
    with pytest.raises(ValueError, match="side 'both'"):
        TaskAugmentation("upscale", "both", 2)


# --- AugmentationPolicy -------------------------------------------------------------------------------------------


def test_policy_sample_pinned():
    policy = AugmentationPolicy()
    assert [policy.sample(random.Random(seed)).name for seed in range(3)] == [
        "d6+c[0,8,9,2,6,4,5,3,1,7]",
        "d2+c[0,7,9,3,8,6,4,1,5,2]",
        "d0+c[0,2,1,4,5,8,7,9,3,6]",
    ]
    assert policy.sample(np.random.default_rng(0)).name == "d6+c[0,5,7,8,3,1,4,6,2,9]"
    assert AugmentationPolicy(dihedral=False, color_permutation=False).sample(random.Random(0)) == IDENTITY
    assert AugmentationPolicy(color_probability=0.0).sample(random.Random(0)).name == "d6"


def test_policy_call_pinned():
    task = Task.from_dict(
        "abcd0123",
        {
            "train": [
                {"input": [[1, 0]], "output": [[2, 2]]},
                {"input": [[0, 3]], "output": [[4]]},
                {"input": [[5], [6]], "output": [[7, 8]]},
            ],
            "test": [{"input": [[9, 1]], "output": [[1, 9]]}],
        },
    )
    augmented, augmentation = AugmentationPolicy()(task, random.Random(1))
    assert augmentation.name == "d2+c[0,7,9,3,8,6,4,1,5,2]"
    assert augmented.task_id == "abcd0123"
    # Recolored, turned 180 degrees, train order shuffled to (1, 2, 0).
    assert augmented.train == (Example([[3, 0]], [[8]]), Example([[4], [6]], [[5, 1]]), Example([[0, 7]], [[9, 9]]))
    assert augmented.test == (Example([[7, 2]], [[2, 7]]),)
    assert augmentation.revert_grid(augmented.test[0].output) == [[1, 9]]

    policy = AugmentationPolicy(task_augmentation_probability=0.5)
    ids = [policy(task, random.Random(seed))[0].task_id for seed in range(6)]
    assert ids == [
        "abcd0123",
        "abcd0123:output-geometric-1",
        "abcd0123",
        "abcd0123:output-upscale-3",
        "abcd0123:output-geometric-4",
        "abcd0123",
    ]


def test_policy_none_keeps_task():
    task = make_task(4)
    assert AugmentationPolicy(dihedral=False, color_permutation=False, shuffle_train=False)(task, random.Random(0)) == (
        task,
        IDENTITY,
    )


def test_enumerate_views():
    views = AugmentationPolicy().enumerate_views(10, random.Random(0))
    assert [v.name for v in views] == [
        "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7",
        "d0+c[0,8,6,2,4,5,3,1,9,7]", "d1+c[0,3,1,4,9,7,2,5,6,8]",
    ]
    assert len(set(AugmentationPolicy().enumerate_views(40, random.Random(0)))) == 40
    assert AugmentationPolicy().enumerate_views(3, random.Random(0)) == [Augmentation(k) for k in range(3)]
    color_only = AugmentationPolicy(dihedral=False)
    assert [v.name for v in color_only.enumerate_views(3, random.Random(0))] == [
        "d0", "d0+c[0,8,6,2,4,5,3,1,9,7]", "d0+c[0,3,1,4,9,7,2,5,6,8]"
    ]
    geometric = AugmentationPolicy(color_permutation=False)
    assert len(geometric.enumerate_views(8, random.Random(0))) == 8
    with pytest.raises(ValueError, match="allows only 8 distinct views, asked for 9"):
        geometric.enumerate_views(9, random.Random(0))
    none = AugmentationPolicy(dihedral=False, color_permutation=False)
    assert none.enumerate_views(1, random.Random(0)) == [IDENTITY]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"color_probability": 1.5}, r"augmentation.color_probability must be a probability between 0 and 1, got 1.5"),
        ({"task_augmentation_probability": -0.1}, r"augmentation.task_augmentation_probability must be a probability"),
        (
            {"task_augmentations": ["geometric", "rotate"]},
            r"augmentation.task_augmentations holds unknown \['rotate'\]; "
            r"allowed values: geometric, upscale, padding, mirror",
        ),
        ({"task_augmentations": "mirror"}, r"augmentation.task_augmentations must be a list"),
        ({"task_augmentations": [], "task_augmentation_probability": 0.5}, r"task_augmentations is empty"),
        ({"dihedral": "yes"}, r"augmentation.dihedral must be true or false, got 'yes'"),
    ],
)
def test_policy_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        AugmentationPolicy(**changes)


# --- YAML configs -------------------------------------------------------------------------------------------------

EXPECTED_POLICIES = {
    "default": AugmentationPolicy(),
    "none": AugmentationPolicy(dihedral=False, color_permutation=False, shuffle_train=False),
    "geometric": AugmentationPolicy(color_permutation=False, shuffle_train=False),
    "color": AugmentationPolicy(dihedral=False, shuffle_train=False),
    "task_augmentation": AugmentationPolicy(task_augmentation_probability=0.5),
}


def test_every_yaml_is_listed():
    assert sorted(p.stem for p in (CONF_DIR / "augmentation").glob("*.yaml")) == sorted(EXPECTED_POLICIES)


@pytest.mark.parametrize("name", sorted(EXPECTED_POLICIES))
def test_yaml_instantiates(name):
    policy = instantiate(OmegaConf.load(CONF_DIR / "augmentation" / f"{name}.yaml"))
    assert policy == EXPECTED_POLICIES[name]
    assert policy.task_augmentations == TASK_AUGMENTATIONS  # a tuple, not a ListConfig


def test_yaml_composes_as_group_with_overrides():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=["+augmentation=geometric", "augmentation.task_augmentations=[mirror]"])
        assert instantiate(cfg.augmentation) == AugmentationPolicy(
            color_permutation=False, shuffle_train=False, task_augmentations=("mirror",)
        )
        bad = compose(overrides=["+augmentation=default", "augmentation.color_probability=2"])
        with pytest.raises(Exception, match="augmentation.color_probability must be a probability"):
            instantiate(bad.augmentation)
