"""The augmentation policy (conf/augmentation/): which geometric, color, order and task augmentations a training sample
or an inference view draws, with which probabilities."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from arc_exp.data.augmentation import (
    IDENTITY_COLORS,
    Augmentation,
    Rng,
    randbelow,
    random_color_map,
    shuffle_train,
    uniform,
)
from arc_exp.data.task_augmentation import TASK_AUGMENTATIONS, random_task_augmentation
from arc_exp.data.tasks import Task


@dataclass
class AugmentationPolicy:
    """Which augmentations to use, built from ``conf/augmentation/<name>.yaml`` with ``hydra.utils.instantiate``.

    - ``dihedral``: sample one of the 8 dihedral transforms;
    - ``color_permutation`` / ``keep_background`` / ``color_probability``: permute colors (keeping 0) with that
      probability;
    - ``shuffle_train``: shuffle the order of train examples;
    - ``task_augmentation_probability`` / ``task_augmentations``: with that probability first make a new task with
      one of these :class:`TaskAugmentation` kinds (training only).
    """

    dihedral: bool = True
    color_permutation: bool = True
    keep_background: bool = True
    color_probability: float = 1.0
    shuffle_train: bool = True
    task_augmentation_probability: float = 0.0
    task_augmentations: tuple[str, ...] = field(default=TASK_AUGMENTATIONS)

    def __post_init__(self) -> None:
        for name in ("dihedral", "color_permutation", "keep_background", "shuffle_train"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"augmentation.{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("color_probability", "task_augmentation_probability"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation.{name} must be a probability between 0 and 1, got {value!r}")
            setattr(self, name, float(value))
        if isinstance(self.task_augmentations, str):
            raise ValueError(
                f"augmentation.task_augmentations must be a list, got the string {self.task_augmentations!r}; "
                f"allowed values: {', '.join(TASK_AUGMENTATIONS)}"
            )
        # Hydra hands over a ListConfig; keep a plain tuple.
        self.task_augmentations = tuple(self.task_augmentations)
        unknown = [k for k in self.task_augmentations if k not in TASK_AUGMENTATIONS]
        if unknown:
            raise ValueError(
                f"augmentation.task_augmentations holds unknown {unknown}; "
                f"allowed values: {', '.join(TASK_AUGMENTATIONS)}"
            )
        if self.task_augmentation_probability > 0 and not self.task_augmentations:
            raise ValueError(
                "augmentation.task_augmentations is empty but task_augmentation_probability is "
                f"{self.task_augmentation_probability}; list some of: {', '.join(TASK_AUGMENTATIONS)}"
            )

    def sample(self, rng: Rng) -> Augmentation:
        """A random invertible augmentation allowed by this policy."""
        k = randbelow(rng, 8) if self.dihedral else 0
        color_map = IDENTITY_COLORS
        if self.color_permutation and uniform(rng) < self.color_probability:
            color_map = random_color_map(rng, self.keep_background)
        return Augmentation(k, color_map)

    def __call__(self, task: Task, rng: Rng) -> tuple[Task, Augmentation]:
        """Augment one training task on the fly: maybe a task augmentation (kept only when it fits 30x30), then a
        sampled :class:`Augmentation`, then a train shuffle. Returns the task and the invertible augmentation used.
        """
        if self.task_augmentation_probability > 0 and uniform(rng) < self.task_augmentation_probability:
            task = random_task_augmentation(task, rng, self.task_augmentations) or task
        augmentation = self.sample(rng)
        task = augmentation.apply_task(task)
        if self.shuffle_train:
            task = shuffle_train(task, rng)
        return task, augmentation

    @property
    def max_views(self) -> Optional[int]:
        """How many distinct views :meth:`enumerate_views` can give (``None``: practically unlimited)."""
        if self.color_permutation:
            return None
        return 8 if self.dihedral else 1

    def enumerate_views(self, n: int, rng: Rng) -> list[Augmentation]:
        """``n`` distinct augmentations for inference: the identity first, then the other 7 dihedrals (if
        ``dihedral``), then dihedrals cycling 0..7 each with a new random color permutation (if
        ``color_permutation``). Raises ``ValueError`` when the policy allows fewer than ``n`` views.
        """
        if n < 1:
            raise ValueError(f"number of augmented views must be at least 1, got {n}")
        if self.max_views is not None and n > self.max_views:
            raise ValueError(
                f"augmentation policy (dihedral={self.dihedral}, color_permutation={self.color_permutation}) "
                f"allows only {self.max_views} distinct views, asked for {n}"
            )
        dihedrals = list(range(8)) if self.dihedral else [0]
        views = [Augmentation(k) for k in dihedrals][:n]
        seen = set(views)
        i = 0
        while len(views) < n:
            view = Augmentation(dihedrals[i % len(dihedrals)], random_color_map(rng, self.keep_background))
            if view not in seen:  # a repeated color map (rare) is simply drawn again
                seen.add(view)
                views.append(view)
                i += 1
        return views
