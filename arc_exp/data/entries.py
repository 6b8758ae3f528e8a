"""One entry of ``data.train``: an ARC task set shown with a prompt, or a folder of generated chats; its weights.

An entry is one of two kinds, told apart by the key that names where its data comes from::

    - {source: arc1-training, prompt: output-from-examples-v0, weight: 1.0, first_n: 100}   # ARC tasks
    - {chats: data/count, max_chats: 20000, weight: 1.0, loss_weight: 1.0}                  # generated chats

:class:`TrainEntry` holds both kinds in one dataclass, and the same class is the Hydra schema of the entries
(``List[TrainEntry]`` in :class:`arc_exp.schemas.DataSchema`), so a value of the wrong type
(``data.train.0.weight=abc``) or a misspelt key stops the composition of the config, naming the key.

Why one class with optional fields, not one dataclass per kind: OmegaConf types the items of a list with a single
class (a ``List[Union[TaskSource, Chats]]`` is refused), and two lists (``data.train_tasks`` and ``data.train_chats``)
would break every command and preset that names ``data.train.<i>`` (``data.train.1.weight=1e-6``) and the order of a
mixture. So every key of one kind is null by default, meaning "not set: the default of its kind" (``seed`` 0,
``val_fraction`` 0.2, ``swap_train_test`` and ``test_outputs`` true), and :meth:`TrainEntry.check` refuses an entry
that sets both ``source`` and ``chats``, neither, or a key of the other kind, naming the entry:

>>> TrainEntry.from_config({"chats": "data/count", "prompt": "output-from-examples-v0"}, where="data.train[1]")
Traceback (most recent call last):
...
arc_exp.data.entries.TrainEntryError: data.train[1]: a chats entry cannot set prompt (a key of ARC task entries)
>>> TrainEntry.from_config({"source": "arc1-training", "prompt": "output-from-examples-v0", "first_n": 2}).task_set()
TaskSetSpec(source='arc1-training', task_ids=None, first_n=2, sample_n=None, seed=0, split=None, val_fraction=0.2, \
max_grid_side=None, test_outputs=True)

Ranges (``weight`` > 0) and the kind are checked when an entry is built (:meth:`TrainEntry.from_config`); with a
composed config that is before any data is loaded. Plain dicts (tests, scripts) go through the same schema, so they
get the same type errors as an override.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from arc_exp.data.selection import TaskSetSpec


class TrainEntryError(ValueError):
    """A ``data.train`` entry that is not a valid task entry or chats entry; the message names the entry."""


# the keys of each kind; weight and loss_weight belong to both
TASK_KEYS = ("source", "prompt", "swap_train_test", "task_ids", "first_n", "sample_n", "seed", "split", "val_fraction",
             "max_grid_side", "test_outputs")
CHAT_KEYS = ("chats", "max_chats")
SELECTION_KEYS = TASK_KEYS[3:]  # the TaskSetSpec keys besides source
MAX_SEQ_LEN = 8192  # tokens of one sample unless data.max_seq_len says otherwise (the seeds' --max_seq_len)


@dataclass
class TrainEntry:
    """One ``data.train`` entry (see the module docstring for the two kinds). Null means "not set"."""

    # an ARC task set: a source (arc_exp.data.sources.load_source) and the prompt version its tasks are shown with
    source: Optional[str] = None
    prompt: Optional[str] = None
    # or generated chats: a folder of JSONL shards, one shard file, or a glob (python generate.py generator=count)
    chats: Optional[str] = None
    max_chats: Optional[int] = None  # load at most this many chats
    # both kinds
    weight: float = 1.0              # the share of samples drawn from this entry (relative to the other entries)
    loss_weight: float = 1.0         # multiplies this entry's answer-token loss
    # task sets only: any example of a task with known test outputs can be the target (null: true)
    swap_train_test: Optional[bool] = None
    # task sets only: the selection (arc_exp.data.selection.TaskSetSpec; null: its default)
    task_ids: Any = None             # a list of ids (quoted in YAML: 00576224 unquoted is a number); Any, so that
                                     # TaskSetSpec refuses a number instead of OmegaConf turning it into a wrong id
    first_n: Optional[int] = None
    sample_n: Optional[int] = None
    seed: Optional[int] = None
    split: Optional[str] = None
    val_fraction: Optional[float] = None
    max_grid_side: Optional[int] = None
    test_outputs: Optional[bool] = None  # false: drop the test outputs, as the tasks are at test time

    @property
    def is_chats(self) -> bool:
        return self.chats is not None

    def set_keys(self, keys: Sequence[str]) -> list[str]:
        """The keys among ``keys`` that this entry sets (not null)."""
        return [key for key in keys if getattr(self, key) is not None]

    def check(self, where: str = "data.train") -> "TrainEntry":
        """Raise :class:`TrainEntryError` naming ``where`` (``data.train[1]``) if this entry is neither kind or
        both, or a value is out of range; the types are the schema's. Returns the entry."""
        if (self.source is None) == (self.chats is None):
            raise TrainEntryError(f"{where}: an entry sets either 'source' (ARC tasks) or 'chats' (generated chats), "
                                  f"{'not both' if self.source is not None else 'got neither'}")
        if self.is_chats:
            mixed = self.set_keys(TASK_KEYS)
            if mixed:
                raise TrainEntryError(f"{where}: a chats entry cannot set {', '.join(mixed)} (a key of ARC task "
                                      f"entries)")
            if self.max_chats is not None and self.max_chats < 1:
                raise TrainEntryError(f"{where}.max_chats must be an integer >= 1 or null, got {self.max_chats!r}")
        else:
            mixed = self.set_keys(CHAT_KEYS)
            if mixed:
                raise TrainEntryError(f"{where}: an ARC task entry (source: {self.source}) cannot set "
                                      f"{', '.join(mixed)} (a key of chats entries)")
            if not self.source:
                raise TrainEntryError(f"{where}.source must be a task set name or path, got {self.source!r}")
            if self.prompt is None:
                raise TrainEntryError(f"{where}: missing key 'prompt' (a prompt version)")
            try:
                self.task_set()  # its selection checked (first_n >= 1, a known split, ...), nothing loaded
            except ValueError as error:
                raise TrainEntryError(f"{where}: {error}") from None
        if self.weight <= 0:
            raise TrainEntryError(f"{where}.weight must be a number > 0, got {self.weight!r}")
        if self.loss_weight < 0:
            raise TrainEntryError(f"{where}.loss_weight must be a number >= 0, got {self.loss_weight!r}")
        return self

    def task_set(self) -> TaskSetSpec:
        """The task set of an ARC task entry (the selection keys it sets; TaskSetSpec's defaults for the others)."""
        if self.is_chats:
            raise TrainEntryError(f"the chats entry '{self.chats}' has no task set")
        return TaskSetSpec(source=self.source, **{key: getattr(self, key) for key in self.set_keys(SELECTION_KEYS)})

    def limited(self, limit: Optional[Mapping]) -> "TrainEntry":
        """``data.limit`` (``{max_grid_side: 6, first_n: 16}``) applied: its keys that are set fill the same keys of
        an ARC task entry that does not set them, so ``debug=smoke`` shrinks any mixture; chats entries are kept."""
        values = {key: value for key, value in (limit or {}).items()
                  if value is not None and getattr(self, key) is None}
        unknown = sorted(set(values) - set(SELECTION_KEYS))
        if unknown:
            raise TrainEntryError(f"data.limit: {', '.join(unknown)} is not a selection key "
                                  f"({', '.join(SELECTION_KEYS)})")
        return self if self.is_chats or not values else replace(self, **values)

    @classmethod
    def from_config(cls, config: Any, where: str = "data.train") -> "TrainEntry":
        """A checked entry from a mapping: a node of a composed config (already typed) or a plain dict, typed
        here by the same schema; a wrong type or an unknown key raises :class:`TrainEntryError` naming the key."""
        if isinstance(config, cls):
            return config.check(where)
        if OmegaConf.is_dict(config):  # a node of a composed config: its interpolations resolved in place
            config = OmegaConf.to_container(config, resolve=True)
        if not isinstance(config, Mapping):
            raise TrainEntryError(f"{where}: an entry is a mapping with 'source' or 'chats', got {config!r}")
        try:
            typed = OmegaConf.merge(OmegaConf.structured(cls), config)
            entry = OmegaConf.to_object(typed)
        except OmegaConfBaseException as error:
            key = f".{error.full_key}" if getattr(error, "full_key", None) else ""
            message = str(error).splitlines()[0]
            raise TrainEntryError(f"{where}{key}: {message}") from None
        return entry.check(where)


def train_entries(configs: Sequence[Any], limit: Optional[Mapping] = None,
                  where: str = "data.train") -> list[TrainEntry]:
    """Every entry of ``data.train`` checked (each named ``data.train[i]`` in errors), ``data.limit`` applied."""
    if not configs:
        raise TrainEntryError(f"{where} is empty: list at least one dataset to train on")
    return [TrainEntry.from_config(config, f"{where}[{i}]").limited(limit) for i, config in enumerate(configs)]
