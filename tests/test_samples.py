"""Tokenized samples: the answer mask token by token, multi-turn masks, fitting max_seq_len, collation, the stream."""
import pytest
import torch

from arc_exp.data.augmentation_policy import AugmentationPolicy
from arc_exp.data.datamodule import (
    ARCDataModule, NoSampleFitsError, SkipCounter, TrainingDataset, TrainingStream, training_variants,
    validation_samples,
)
from arc_exp.data.samples import IGNORE_INDEX, Sample, batches_by_length, chat_sample, collate, task_sample
from arc_exp.data.tasks import Task
from arc_exp.data.encoders import MinimalGridEncoder
from arc_exp.data.prompts import build_messages, render_segments
from conftest import CHAT

ENCODER = MinimalGridEncoder()
VERSION = "output-from-examples-v1"
TASK = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 2]], "output": [[2, 1]]}, {"input": [[3]], "output": [[4]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[6, 5], [8, 7]]}],
})
# three examples of the same shape, so each one costs the same number of tokens (18)
THREE = Task.from_dict("3e3e3e3e", {
    "train": [{"input": [[1, 1], [1, 1]], "output": [[2]]}, {"input": [[3, 3], [3, 3]], "output": [[4]]},
              {"input": [[5, 5], [5, 5]], "output": [[6]]}],
    "test": [{"input": [[7, 7], [7, 7]], "output": [[8]]}],
})
NO_AUGMENTATION = AugmentationPolicy(dihedral=False, color_permutation=False, shuffle_train=False)


def unmasked(sample: Sample) -> list[int]:
    return [token for token, label in zip(sample.input_ids, sample.labels) if label != IGNORE_INDEX]


def test_answer_mask_token_by_token(tokenizer):
    sample = task_sample(TASK, ENCODER, VERSION, tokenizer, max_seq_len=4096)
    prompt, answer = render_segments(build_messages(TASK, ENCODER, VERSION), tokenizer)
    prompt_ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    # "6" "5" "\n" "8" "7" <|im_end|> "\n"
    answer_ids = [38, 37, 198, 40, 39, 2, 198]
    assert tokenizer(answer.text, add_special_tokens=False)["input_ids"] == answer_ids
    assert len(sample) == 141 == len(prompt_ids) + len(answer_ids)
    assert sample.input_ids == prompt_ids + answer_ids
    assert sample.input_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") == 1
    for position, (token, label) in enumerate(zip(sample.input_ids, sample.labels)):
        if position < len(prompt_ids):
            assert label == IGNORE_INDEX, position
        else:
            assert label == token, position
    assert tokenizer.decode(unmasked(sample)) == "65\n87<|im_end|>\n"
    assert (sample.task_id, sample.loss_weight, sample.dropped_examples) == ("0a1b2c3d", 1.0, 0)


def test_loss_weight_is_carried(tokenizer):
    assert task_sample(TASK, ENCODER, VERSION, tokenizer, 4096, loss_weight=0.25).loss_weight == 0.25


def test_multi_turn_mask(tokenizer):
    sample = chat_sample(CHAT, tokenizer, task_id="counting", loss_weight=2.0)
    answer_runs, run = [], []
    for token, label in zip(sample.input_ids, sample.labels):
        if label == IGNORE_INDEX:
            if run:
                answer_runs.append(run)
            run = []
        else:
            assert label == token
            run.append(token)
    answer_runs.append(run)
    # "2" / "0" / "7" each followed by <|im_end|> "\n", and nothing else carries loss
    assert answer_runs == [[34, 2, 198], [32, 2, 198], [39, 2, 198]]
    assert [tokenizer.decode(r) for r in answer_runs] == ["2<|im_end|>\n", "0<|im_end|>\n", "7<|im_end|>\n"]
    assert sample.labels.index(34) == 25  # the first answer token follows a 25-token prompt
    assert tokenizer.decode(sample.input_ids) == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert (sample.task_id, sample.loss_weight) == ("counting", 2.0)


def test_fitting_drops_the_last_train_examples(tokenizer):
    # full: 161 tokens; each dropped example saves 18
    assert len(task_sample(THREE, ENCODER, VERSION, tokenizer, 4096)) == 161
    fitted = task_sample(THREE, ENCODER, VERSION, tokenizer, max_seq_len=160)
    assert (len(fitted), fitted.dropped_examples) == (143, 1)
    text = tokenizer.decode(fitted.input_ids)
    assert "## Input 2\n33\n33\n## Output 2\n4\n## Test input\n77\n77" in text and "## Input 3" not in text
    assert tokenizer.decode(unmasked(fitted)) == "8<|im_end|>\n"  # the target never changes
    assert task_sample(THREE, ENCODER, VERSION, tokenizer, max_seq_len=125).dropped_examples == 2
    # not even one example fits
    assert task_sample(THREE, ENCODER, VERSION, tokenizer, max_seq_len=124) is None


def test_collate_shapes_and_padding():
    short = Sample([5, 6, 7], [IGNORE_INDEX, 6, 7], "a", loss_weight=1.0, dropped_examples=1)
    long = Sample([1, 2, 3, 4, 5], [IGNORE_INDEX] * 3 + [4, 5], "b", loss_weight=0.5, dropped_examples=2)
    batch = collate([short, long], pad_token_id=2)
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        "input_ids": (2, 5), "attention_mask": (2, 5), "labels": (2, 5), "loss_weight": (2,), "dropped_examples": ()}
    assert batch["input_ids"].tolist() == [[5, 6, 7, 2, 2], [1, 2, 3, 4, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, -100], [-100, -100, -100, 4, 5]]
    assert batch["loss_weight"].tolist() == [1.0, 0.5]
    assert int(batch["dropped_examples"]) == 3
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long


def test_batches_by_length_groups_similar_lengths():
    samples = [Sample([0] * n, [0] * n, str(n)) for n in (7, 2, 9, 3, 5)]
    assert [[s.task_id for s in b] for b in batches_by_length(samples, 2)] == [["2", "3"], ["5", "7"], ["9"]]


def stream(tokenizer, tasks, max_seq_len=4096, **kwargs) -> TrainingStream:
    dataset = TrainingDataset(name="tiny", tasks=list(tasks), prompt=VERSION, swap_train_test=False)
    return TrainingStream([dataset], ENCODER, tokenizer, NO_AUGMENTATION, max_seq_len, batch_size=2, seed=3,
                          bucket_batches=2, **kwargs)


def test_stream_counts_dropped_examples_and_skipped_tasks(tokenizer):
    fits_with_one_drop = stream(tokenizer, [THREE], max_seq_len=150)
    assert fits_with_one_drop.sample(0).dropped_examples == 1
    assert fits_with_one_drop.sample(1).dropped_examples == 1
    assert (fits_with_one_drop.skips.dropped_examples, fits_with_one_drop.skips.skipped_tasks) == (2, 0)
    # with one example THREE takes 125 tokens, TASK 127: at 126 THREE fits (dropping 2), TASK is skipped
    too_long = stream(tokenizer, [THREE, TASK], max_seq_len=126)
    samples = [too_long.sample(k) for k in range(8)]
    skipped = sum(s is None for s in samples)
    assert skipped == too_long.skips.skipped_tasks > 0
    assert too_long.skips.skipped_ids == {"0a1b2c3d"}
    assert {(s.task_id, len(s), s.dropped_examples) for s in samples if s is not None} == {("3e3e3e3e", 125, 2)}
    assert too_long.skips.dropped_examples == 2 * (8 - skipped)


def test_stream_is_seeded_and_resumes_at_any_batch(tokenizer):
    tasks = [TASK, THREE]
    first = iter(stream(tokenizer, tasks))
    batches = [next(first) for _ in range(5)]
    again = iter(stream(tokenizer, tasks))
    for batch in batches:
        assert torch.equal(next(again)["input_ids"], batch["input_ids"])
    # start_batch=3 (a resumed run that trained on 3 batches) continues with batch 4, inside bucket 1
    resumed = iter(stream(tokenizer, tasks, start_batch=3))
    for batch in batches[3:]:
        assert torch.equal(next(resumed)["input_ids"], batch["input_ids"])


def test_validation_samples_skip_what_does_not_fit(tokenizer):
    skips = SkipCounter()
    samples = validation_samples([TASK, THREE], ENCODER, VERSION, tokenizer, max_seq_len=126, skips=skips)
    assert [(s.task_id, len(s), s.dropped_examples) for s in samples] == [("3e3e3e3e", 125, 2)]
    assert (skips.skipped_tasks, skips.skipped_ids) == (1, {"0a1b2c3d"})


def test_datamodule_refuses_a_max_seq_len_no_task_fits(tokenizer):
    dataset = TrainingDataset(name="tiny", tasks=[THREE], prompt=VERSION, swap_train_test=False)
    with pytest.raises(NoSampleFitsError, match="data.max_seq_len=100 is too small for every sampled task"):
        ARCDataModule([dataset], [], VERSION, ENCODER, tokenizer, NO_AUGMENTATION, max_seq_len=100, batch_size=1,
                      bucket_batches=1)
    with pytest.raises(ValueError, match="data.max_seq_len must be at least 16, got 8"):
        ARCDataModule([dataset], [], VERSION, ENCODER, tokenizer, NO_AUGMENTATION, max_seq_len=8)


def test_without_dropping_examples_a_task_that_does_not_fit_whole_is_skipped(tokenizer):
    """data.drop_examples_to_fit=false (the seeds without --remove_train_samples_to_fit_max_seq_len)."""
    assert len(task_sample(THREE, ENCODER, VERSION, tokenizer, 161, drop_examples=False)) == 161
    assert task_sample(THREE, ENCODER, VERSION, tokenizer, 160, drop_examples=False) is None
    # at 150 THREE fits only by dropping an example: every sample of it is now a skip, counted as such
    whole = stream(tokenizer, [THREE, TASK], max_seq_len=150, drop_examples_to_fit=False)
    samples = [whole.sample(k) for k in range(8)]
    assert {s.task_id for s in samples if s is not None} == {"0a1b2c3d"}
    assert all(s.dropped_examples == 0 for s in samples if s is not None)
    assert whole.skips.skipped_tasks == sum(s is None for s in samples) > 0
    assert (whole.skips.skipped_ids, whole.skips.dropped_examples) == ({"3e3e3e3e"}, 0)
    # the default drops instead: the same draws, no skip
    dropping = stream(tokenizer, [THREE, TASK], max_seq_len=150)
    assert all(dropping.sample(k) is not None for k in range(8)) and dropping.skips.skipped_tasks == 0
    assert dropping.skips.dropped_examples == whole.skips.skipped_tasks


def test_datamodule_without_dropping_examples_names_the_key(tokenizer):
    dataset = TrainingDataset(name="tiny", tasks=[THREE], prompt=VERSION, swap_train_test=False)
    with pytest.raises(ValueError, match=r"none fits with all its train examples \(data.drop_examples_to_fit=false\)"):
        ARCDataModule([dataset], [], VERSION, ENCODER, tokenizer, NO_AUGMENTATION, max_seq_len=150, batch_size=1,
                      bucket_batches=1, drop_examples_to_fit=False)
    with pytest.raises(ValueError, match="data.drop_examples_to_fit must be true or false, got 'no'"):
        ARCDataModule([dataset], [], VERSION, ENCODER, tokenizer, NO_AUGMENTATION, max_seq_len=150,
                      drop_examples_to_fit="no")


@pytest.mark.parametrize("key, value, message", [
    ("loss_weight", -1, "data.train[0].loss_weight must be a number >= 0, got -1.0"),
    ("loss_weight", "abc", "data.train[0].loss_weight: Value 'abc' of type 'str' could not be converted to Float"),
    ("weight", 0, "data.train[0].weight must be a number > 0, got 0.0"),
    ("swap_train_test", "maybe", "data.train[0].swap_train_test: Value 'maybe' is not a valid bool (type str)"),
    ("first_n", 0, "data.train[0]: first_n must be an integer >= 1 or null, got 0"),
    ("wieght", 1, "data.train[0].wieght: Key 'wieght' not in 'TrainEntry'"),
    ("max_chats", 5, "data.train[0]: an ARC task entry (source: arc1-training) cannot set max_chats (a key of chats "
                     "entries)"),
])
def test_bad_entries_name_the_key(key, value, message):
    """A plain dict goes through the same schema (arc_exp.data.entries.TrainEntry) as a composed config."""
    entry = {"source": "arc1-training", "first_n": 1, "prompt": VERSION, key: value}
    with pytest.raises(ValueError) as error:
        TrainingDataset.from_config(entry, where="data.train[0]")
    assert str(error.value) == message


@pytest.mark.parametrize("entry, message", [
    ({"chats": "data/count", "source": "arc1-training"}, "data.train[2]: an entry sets either 'source' (ARC tasks) "
                                                         "or 'chats' (generated chats), not both"),
    ({"weight": 1.0}, "data.train[2]: an entry sets either 'source' (ARC tasks) or 'chats' (generated chats), "
                      "got neither"),
    ({"chats": "data/count", "prompt": VERSION, "first_n": 3}, "data.train[2]: a chats entry cannot set prompt, "
                                                               "first_n (a key of ARC task entries)"),
    ({"chats": "data/count", "max_chats": 0}, "data.train[2].max_chats must be an integer >= 1 or null, got 0"),
    ({"source": "arc1-training"}, "data.train[2]: missing key 'prompt' (a prompt version)"),
    ("arc1-training", "data.train[2]: an entry is a mapping with 'source' or 'chats', got 'arc1-training'"),
])
def test_an_entry_is_one_kind(entry, message):
    with pytest.raises(ValueError) as error:
        TrainingDataset.from_config(entry, where="data.train[2]")
    assert str(error.value) == message


def test_an_entry_leaves_unset_keys_to_the_defaults_of_its_kind():
    from arc_exp.data.entries import TrainEntry
    from arc_exp.data.selection import TaskSetSpec

    entry = TrainEntry.from_config({"source": "arc1-training", "prompt": VERSION, "first_n": 2})
    assert entry.task_set() == TaskSetSpec("arc1-training", first_n=2, seed=0, val_fraction=0.2, test_outputs=True)
    dataset = TrainingDataset.from_config(entry)
    assert (dataset.name, len(dataset.tasks), dataset.weight, dataset.loss_weight, dataset.swap_train_test) == \
        ("arc1-training", 2, 1.0, 1.0, True)
    # data.limit fills what an entry leaves unset, never what it sets, and skips chats entries
    limited = entry.limited({"first_n": 16, "max_grid_side": 6})
    assert (limited.first_n, limited.max_grid_side) == (2, 6)
    chats = TrainEntry.from_config({"chats": "data/count", "weight": 0.5})
    assert chats.limited({"first_n": 16}) is chats


# a task as it is at test time: train pairs and a test input whose output is unknown
UNSOLVED = Task.from_dict("5e5e5e5e", {
    "train": [{"input": [[1]], "output": [[2]]}, {"input": [[3]], "output": [[4]]}],
    "test": [{"input": [[9, 9]]}],
})


def answer_text(tokenizer, sample: Sample) -> str:
    return tokenizer.decode(unmasked(sample))


def test_input_from_inputs_trains_on_test_inputs_of_tasks_without_outputs(tokenizer):
    """Seed iteration 22: every input of a task, its test inputs too, is a target; no test output is needed."""
    dataset = TrainingDataset(name="unsolved", tasks=[UNSOLVED], prompt="input-from-inputs-v0", swap_train_test=False)
    stream = TrainingStream([dataset], ENCODER, tokenizer, NO_AUGMENTATION, 4096, batch_size=2, seed=3,
                            bucket_batches=2)
    answers = [answer_text(tokenizer, stream.sample(k)) for k in range(12)]
    assert set(answers) == {"1<|im_end|>\n", "3<|im_end|>\n", "99<|im_end|>\n"}
    # the test input as target: both train inputs shown, in order
    test_target = next(stream.sample(k) for k in range(12) if answers[k] == "99<|im_end|>\n")
    assert "## Input 1\n\n1\n\n## Input 2\n\n3\n\n## New input" in tokenizer.decode(test_target.input_ids)


def test_dropping_examples_keeps_the_new_input_target(tokenizer):
    """Fitting max_seq_len drops shown grids, never the target (before, a dropped train example moved the index
    past the last grid and the sample had no answer)."""
    dataset = TrainingDataset(name="three", tasks=[THREE], prompt="input-from-inputs-v0", swap_train_test=False)
    full = TrainingStream([dataset], ENCODER, tokenizer, NO_AUGMENTATION, 4096, batch_size=1, seed=0,
                          bucket_batches=1)
    lengths = {len(full.sample(k)) for k in range(8)}
    assert len(lengths) == 1
    tight = TrainingStream([dataset], ENCODER, tokenizer, NO_AUGMENTATION, max(lengths) - 1, batch_size=1, seed=0,
                           bucket_batches=1)
    for k in range(8):
        whole, fitted = full.sample(k), tight.sample(k)
        assert fitted.dropped_examples == 1
        assert answer_text(tokenizer, fitted) == answer_text(tokenizer, whole) != ""


def test_output_from_examples_needs_known_test_outputs(tmp_path):
    from arc_exp.data.sources import save_tasks

    save_tasks([UNSOLVED], tmp_path / "unsolved.json")
    entry = {"source": str(tmp_path / "unsolved.json"), "prompt": "output-from-examples-v0", "swap_train_test": True}
    with pytest.raises(ValueError) as error:
        TrainingDataset.from_config(entry, where="data.train[1]")
    assert str(error.value) == (
        f"data.train[1]: 1 tasks of '{tmp_path / 'unsolved.json'}' have no known test output to train prompt "
        f"'output-from-examples-v0' on (5e5e5e5e); train input-from-inputs-v0 on them, or use a source with solutions")
    inputs = TrainingDataset.from_config({**entry, "prompt": "input-from-inputs-v0"})
    assert [t.task_id for t in inputs.tasks] == ["5e5e5e5e"]


def test_test_outputs_false_trains_on_the_evaluation_set_as_at_test_time():
    entry = {"source": "arc1-evaluation", "first_n": 3, "test_outputs": False, "prompt": "input-from-inputs-v0"}
    dataset = TrainingDataset.from_config(entry)
    assert [t.task_id for t in dataset.tasks] == ["00576224", "009d5c81", "00dbd492"]
    assert all(e.output is None for t in dataset.tasks for e in t.test)
    assert all(e.output is not None for t in dataset.tasks for e in t.train)
    with pytest.raises(ValueError, match="have no known test output to train prompt 'output-from-examples-v1'"):
        TrainingDataset.from_config({**entry, "prompt": "output-from-examples-v1", "swap_train_test": False})
    n1 = TrainingDataset.from_config({**entry, "prompt": "output-from-examples-v1"})  # swap (the default): n-1
    assert n1.swap_train_test and [t.task_id for t in n1.tasks] == ["00576224", "009d5c81", "00dbd492"]
    with pytest.raises(ValueError, match=r"data.train.test_outputs: Value 'nope' is not a valid bool"):
        TrainingDataset.from_config({**entry, "test_outputs": "nope"})


def test_test_outputs_false_with_swap_trains_the_n1_tasks_of_the_train_examples():
    """An evaluation task at test time (test outputs dropped) with swap_train_test: each train example in turn the
    target, the others shown; the test input is never shown nor a target."""
    entry = {"source": "arc1-evaluation", "task_ids": ["00576224"], "test_outputs": False,
             "prompt": "output-from-examples-v0", "swap_train_test": True}
    dataset = TrainingDataset.from_config(entry)
    task = dataset.tasks[0]
    assert (len(task.train), task.test[0].output) == (2, None)
    variants = training_variants(task, dataset.prompt, dataset.swap_train_test)
    assert [(v.task_id, v.train, v.test) for v in variants] == [
        ("00576224:loo0", (task.train[1],), (task.train[0],)), ("00576224:loo1", (task.train[0],), (task.train[1],))]
    with pytest.raises(ValueError, match="or swap_train_test: true, to train the n-1 tasks of their train examples$"):
        TrainingDataset.from_config({**entry, "swap_train_test": False})
