"""The LightningDataModule: a weighted mixture of task sets, augmented on the fly, batched by length.

Training data is an endless, seeded stream: sample ``k`` is fully determined by ``(seed, k)`` (which dataset, task,
test input and augmentation), so every epoch sees new views and a resumed run continues with exactly the batches an
uninterrupted run would have seen. Samples are taken ``bucket_batches`` batches at a time, sorted by length and cut
into batches (little padding), and those batches are shuffled.

Under DDP (``w`` processes of ``batch_size`` each) every process builds the same global batches of ``w * batch_size``
samples and process ``r`` trains on positions ``r, r + w, ...`` of each: the processes' batches are disjoint, their
union is the batch one process with ``w`` times the batch size trains on (same losses, same resume point), and the
interleaving of length-sorted samples gives every process batches of about the same length. Lightning splits only
map-style datasets (a DistributedSampler), so the stream splits itself.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import pytorch_lightning as pl
from torch.utils.data import DataLoader, IterableDataset

from arc_exp.data.augmentation import leave_one_out, swap_train_test
from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.entries import TrainEntry, TrainEntryError
from arc_exp.data.prompts import answer_indices, check_prompt_version, training_view
from arc_exp.data.samples import Sample, batches_by_length, chat_sample, collate, task_sample
from arc_exp.data.tasks import Task

ChatReader = Callable[[str, Any], Iterable[list]]  # (folder or glob, encoder) -> chats (lists of messages)

log = logging.getLogger(__name__)


class NoSampleFitsError(ValueError):
    """``data.max_seq_len`` is too small for every sampled task (TTFT skips such a task; training stops)."""


@dataclass
class TrainingDataset:
    """One entry of ``data.train``: a task set, the prompt version it is shown with, its sampling and loss weight.

    An entry with ``chats: <folder or glob>`` instead of ``source`` trains on generated multi-turn chats (e.g. the
    count question/answer chats of ``python generate.py generator=count``), mixed with ARC tasks by ``weight``.
    """

    name: str
    tasks: list[Task]
    prompt: str
    weight: float = 1.0
    loss_weight: float = 1.0
    swap_train_test: bool = True  # any example of a task with known test outputs can be the target
    chats: Optional[list] = None  # ready-made chats (lists of messages) instead of tasks

    @classmethod
    def from_config(cls, entry: Union[TrainEntry, Mapping], where: str = "data.train", encoder=None,
                    read_chats: Optional[ChatReader] = None) -> "TrainingDataset":
        """The dataset of one ``data.train`` entry (a :class:`~arc_exp.data.entries.TrainEntry` or a mapping of its
        keys, checked first): its tasks loaded and selected, or its chats read by ``read_chats(path, encoder)``
        (:func:`arc_exp.synthetic.load_chats`, passed in by the recipe: the data stage knows no generator; ``encoder``
        writes their grids)."""
        entry = TrainEntry.from_config(entry, where)
        if entry.is_chats:
            return cls.from_chats(entry, where, encoder, read_chats)
        check_prompt_version(entry.prompt)
        spec = entry.task_set()
        tasks = spec.load()
        if not tasks:
            raise TrainEntryError(f"{where}: source '{spec.source}' with this selection holds no task")
        swap = True if entry.swap_train_test is None else entry.swap_train_test
        # test outputs dropped on purpose (test_outputs: false) and swap: the n-1 tasks of the train examples; a
        # source that lacks solutions is still refused (its solutions file may be missing)
        n1 = swap and not spec.test_outputs
        unanswered = [t.task_id for t in tasks if not any(answer_indices(v, entry.prompt)
                                                          for v in training_variants(t, entry.prompt, n1))]
        if unanswered:
            hint = ("; with swap_train_test: true a task needs 2 train examples (its n-1 tasks)" if n1 else
                    "; or swap_train_test: true, to train the n-1 tasks of their train examples"
                    if not spec.test_outputs else "")
            raise ValueError(f"{where}: {len(unanswered)} tasks of '{spec.source}' have no known test output to "
                             f"train prompt '{entry.prompt}' on ({', '.join(unanswered[:5])}"
                             f"{', ...' if len(unanswered) > 5 else ''}); train input-from-inputs-v0 on them, or "
                             f"use a source with solutions{hint}")
        return cls(name=spec.source, tasks=tasks, prompt=entry.prompt, weight=entry.weight,
                   loss_weight=entry.loss_weight, swap_train_test=swap)

    @classmethod
    def from_chats(cls, entry: TrainEntry, where: str, encoder=None, read_chats: Optional[ChatReader] = None
                   ) -> "TrainingDataset":
        if read_chats is None:
            raise ValueError(f"{where}: a chats entry ({entry.chats}) needs a chat reader (read_chats="
                             f"arc_exp.synthetic.load_chats)")
        chats = list(islice(read_chats(entry.chats, encoder), entry.max_chats))
        if not chats:
            raise ValueError(f"{where}: no chats found at '{entry.chats}'")
        return cls(name=str(entry.chats), tasks=[], prompt="chat", weight=entry.weight,
                   loss_weight=entry.loss_weight, swap_train_test=False, chats=chats)


def training_variants(task: Task, prompt: str, swap: bool) -> list[Task]:
    """The tasks one training sample of ``task`` is drawn from (``data.train.<i>.swap_train_test``).

    Without swap: ``[task]`` (the test inputs with a known output are the targets). With swap, a task whose test
    outputs are all known pools train and test examples, each in turn the target (:func:`swap_train_test`); a task
    the prompt has no target in as it is (output-from-examples on a task whose test outputs were dropped,
    ``test_outputs: false``) gives its n-1 tasks instead: each train example in turn the target, the others shown,
    the test inputs left out, so never a target (:func:`leave_one_out`; ``[]`` with fewer than 2 train examples).
    A task that already has targets for the prompt (input-from-inputs: every input) and no known test outputs stays
    ``[task]``.

    >>> task = Task.from_dict("t", {"train": [{"input": [[1]], "output": [[2]]}, {"input": [[3]], "output": [[4]]}],
    ...                              "test": [{"input": [[5]]}]})
    >>> [(v.task_id, [e.output for e in v.test]) for v in training_variants(task, "output-from-examples-v0", True)]
    [('t:loo0', [[[2]]]), ('t:loo1', [[[4]]])]
    """
    if not swap:
        return [task]
    if task.has_solutions:
        return swap_train_test(task)
    if answer_indices(task, prompt):
        return [task]
    return leave_one_out(task)


@dataclass
class SkipCounter:
    """Examples dropped and tasks skipped to fit ``max_seq_len``; logged, never silent."""

    dropped_examples: int = 0
    skipped_tasks: int = 0
    skipped_ids: set = field(default_factory=set)


class TrainingStream(IterableDataset):
    """Endless batches (already collated) of augmented samples; ``start_batch`` skips batches already trained on.

    ``rank`` of ``world_size`` processes: the global batches hold ``batch_size * world_size`` samples, this process
    yields every ``world_size``-th sample of each from position ``rank`` (``batch_size`` samples).
    """

    def __init__(self, datasets: Sequence[TrainingDataset], encoder, tokenizer, policy: AugmentationPolicy,
                 max_seq_len: int, batch_size: int, seed: int = 0, bucket_batches: int = 64, start_batch: int = 0,
                 drop_examples_to_fit: bool = True, rank: int = 0, world_size: int = 1):
        self.datasets = list(datasets)
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.policy = policy
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.start_batch = start_batch
        # false: a task too long with all its examples is skipped (counted), as the journal's runs without
        # --remove_train_samples_to_fit_max_seq_len did, instead of dropping its last examples until it fits
        self.drop_examples_to_fit = drop_examples_to_fit
        self.set_rank(rank, world_size)
        self.skips = SkipCounter()
        self._weights = [d.weight for d in self.datasets]

    def set_rank(self, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for {world_size} processes")
        self.rank, self.world_size = rank, world_size

    def sample(self, k: int) -> Optional[Sample]:
        """Sample number ``k`` of the stream, or None if its task cannot fit ``max_seq_len``."""
        rng = random.Random(f"{self.seed}:sample:{k}")
        dataset = rng.choices(self.datasets, weights=self._weights)[0]
        if dataset.chats is not None:
            return self._chat_sample(dataset, rng.randrange(len(dataset.chats)))
        task = rng.choice(dataset.tasks)
        if dataset.swap_train_test:
            variants = training_variants(task, dataset.prompt, swap=True)
            if variants != [task]:
                task = rng.choice(variants)
        task, _ = self.policy(task, rng)
        targets = answer_indices(task, dataset.prompt)  # input-from-inputs: test inputs too, outputs or not
        if not targets:
            raise ValueError(f"task {task.task_id} from '{dataset.name}' has no known test output to train on")
        task, test_index = training_view(task, dataset.prompt, rng.choice(targets))
        sample = task_sample(task, self.encoder, dataset.prompt, self.tokenizer, self.max_seq_len, test_index,
                             dataset.loss_weight, drop_examples=self.drop_examples_to_fit)
        if sample is None:
            self.skips.skipped_tasks += 1
            self.skips.skipped_ids.add(task.task_id.split(":")[0])
        else:
            self.skips.dropped_examples += sample.dropped_examples
        return sample

    def _chat_sample(self, dataset: TrainingDataset, index: int) -> Optional[Sample]:
        sample = chat_sample(dataset.chats[index], self.tokenizer, f"chat{index}", dataset.loss_weight)
        if len(sample) > self.max_seq_len:
            self.skips.skipped_tasks += 1
            self.skips.skipped_ids.add(f"{dataset.name}#{index}")
            return None
        return sample

    def bucket(self, index: int) -> list[list[Sample]]:
        """Bucket ``index``: ``bucket_batches`` global batches of ``batch_size * world_size`` consecutive samples,
        grouped by length (the same on every process)."""
        global_batch = self.batch_size * self.world_size
        size = self.bucket_batches * global_batch
        samples = []
        k = index * size
        attempts = 0
        while len(samples) < size:
            sample = self.sample(k)
            k += 1
            attempts += 1
            if sample is not None:
                samples.append(sample)
            elif attempts > 50 * size and not samples:
                fit = "with a single train example" if self.drop_examples_to_fit else \
                    "with all its train examples (data.drop_examples_to_fit=false)"
                raise NoSampleFitsError(f"data.max_seq_len={self.max_seq_len} is too small for every sampled task: "
                                        f"none fits {fit}")
        # keep sample order keyed by index so a bucket is the same whatever was skipped before it
        batches = batches_by_length(samples, global_batch)
        random.Random(f"{self.seed}:bucket:{index}").shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[dict]:
        index, skip = divmod(self.start_batch, self.bucket_batches)
        while True:
            for batch in self.bucket(index)[skip:]:
                yield collate(batch[self.rank::self.world_size], self.tokenizer.pad_token_id)
            index, skip = index + 1, 0


def validation_samples(tasks: Sequence[Task], encoder, prompt: str, tokenizer, max_seq_len: int,
                       skips: Optional[SkipCounter] = None) -> list[Sample]:
    """Every test input of every validation task, un-augmented, fitted to ``max_seq_len``."""
    samples = []
    for task in tasks:
        if not task.has_solutions:
            continue
        for test_index in range(len(task.test)):
            sample = task_sample(task, encoder, prompt, tokenizer, max_seq_len, test_index)
            if sample is None:
                if skips is not None:
                    skips.skipped_tasks += 1
                    skips.skipped_ids.add(task.task_id)
                continue
            samples.append(sample)
    return samples


class ARCDataModule(pl.LightningDataModule):
    def __init__(self, train: Sequence[TrainingDataset], val_tasks: Sequence[Task], val_prompt: str, encoder,
                 tokenizer, policy: AugmentationPolicy, max_seq_len: int, batch_size: int = 1, seed: int = 0,
                 bucket_batches: int = 64, drop_examples_to_fit: bool = True):
        super().__init__()
        if max_seq_len < 16:
            raise ValueError(f"data.max_seq_len must be at least 16, got {max_seq_len}")
        if not isinstance(drop_examples_to_fit, bool):
            raise ValueError(f"data.drop_examples_to_fit must be true or false, got {drop_examples_to_fit!r}")
        self.train_stream = TrainingStream(train, encoder, tokenizer, policy, max_seq_len, batch_size, seed,
                                           bucket_batches, drop_examples_to_fit=drop_examples_to_fit)
        self.val_tasks = list(val_tasks)  # kept: the trained-outputs check of the validation loss reads them
        self.val_skips = SkipCounter()
        self.val_batches = [collate(b, tokenizer.pad_token_id) for b in batches_by_length(
            validation_samples(val_tasks, encoder, val_prompt, tokenizer, max_seq_len, self.val_skips), batch_size)]
        if self.val_skips.skipped_tasks:
            log.warning("validation: %d test inputs of %d tasks do not fit max_seq_len=%d and are left out",
                        self.val_skips.skipped_tasks, len(self.val_skips.skipped_ids), max_seq_len)
        self.check_fits()

    def _process(self) -> tuple[int, int]:
        """(global rank, number of processes) of the trainer this datamodule serves; (0, 1) outside one."""
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def check_fits(self) -> None:
        """Fail before training when max_seq_len is too small for any task (instead of looping forever)."""
        self.train_stream.bucket(0)
        self.train_stream.skips = SkipCounter()  # counted again when training reads the bucket

    def set_start_batch(self, start_batch: int) -> None:
        self.train_stream.start_batch = start_batch

    def train_dataloader(self) -> DataLoader:
        self.train_stream.set_rank(*self._process())
        # batches come collated from the stream; worker processes would break the exact-resume guarantee
        return DataLoader(self.train_stream, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        # every process its share of the batches (none twice: a DistributedSampler would pad with repeats); the
        # module sums loss and tokens over processes
        rank, world_size = self._process()
        return DataLoader(self.val_batches[rank::world_size], batch_size=None, num_workers=0)
