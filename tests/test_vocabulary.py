"""The reduced vocabulary (model.reduce_vocab=true): which tokens are kept, exact round trips of every encoder's text
and of rendered prompts, identical logits over the kept tokens, the out-of-vocabulary error, vocabulary.json, and a
tiny training run whose checkpoint evaluate.py restores."""
from __future__ import annotations

import json
import random

import pytest
import torch
from hydra.utils import instantiate

from arc_exp import schemas
from arc_exp.model.adapters import AdapterConfig, apply_adapter
from arc_exp.data.samples import task_sample
from arc_exp.data.tasks import Example, Task
from arc_exp.data.encoders import ENCODER_COMPOSITIONS, create_grid_encoder
from arc_exp.evaluation.checkpoints import Checkpoint, CheckpointError, load_model_for_evaluation
from arc_exp.inference.config import InferenceConfig
from arc_exp.inference.generator import create_generator
from arc_exp.inference.requests import GenerationRequest
from arc_exp.model.loader import load_model
from arc_exp.data.prompts import PROMPT_VERSIONS, build_messages, render_prompt
from arc_exp.model.vocabulary import (
    VOCABULARY_FILE,
    OutOfVocabularyError,
    ReducedVocabulary,
    VocabularyError,
    build_reduced_vocabulary,
    check_checkpoint_vocabulary,
    read_vocabulary,
    resolve_vocabulary,
)
from arc_exp.model.vocabulary_probes import alphabet_token_ids, cell_symbols, chat_texts
from arc_exp.model.surgery import parameter_summary, reduce_model_vocabulary
from arc_exp.model.tokenizer import ReducedTokenizer
from conftest import CONF, TINY, compose_train, run_recipe, run_train

DEFAULT_ENCODER = "grid_shape_row_number"
DEFAULT_PROMPT = "output-from-examples-v0"
# SmolLM2: 17 special tokens, 10 digits, newline, space and 79 tokens of the shape header, fences, chat template and
# the words of output-from-examples-v0 and its system prompt
PINNED_SIZE = 107
PINNED_VAL_LOSS = 4.634750843048096  # the tiny run of test_training_with_reduce_vocab_... after 2 steps, seed 0


def random_grid(rng: random.Random, height: int = 0, width: int = 0, colors: int = 10) -> list[list[int]]:
    height, width = height or rng.randint(1, 30), width or rng.randint(1, 30)
    return [[rng.randrange(colors) for _ in range(width)] for _ in range(height)]


def test_grids(seed: int = 0) -> list:
    """Random grids of random shapes, the extreme shapes, a uniform grid and a grid of every color."""
    rng = random.Random(seed)
    grids = [random_grid(rng) for _ in range(20)] + [random_grid(rng, 2, 2, colors=2) for _ in range(10)]
    grids += [[[0]], [[9]], [[7] * 30] * 30, random_grid(rng, 30, 30), random_grid(rng, 1, 30), random_grid(rng, 30, 1),
              [list(range(10))]]
    return grids


def test_task(seed: int = 0, n_train: int = 3) -> Task:
    rng = random.Random(seed)
    train = tuple(Example(random_grid(rng, rng.randint(1, 8), rng.randint(1, 8)),
                          random_grid(rng, rng.randint(1, 8), rng.randint(1, 8))) for _ in range(n_train))
    return Task(f"task{seed}", train, (Example(random_grid(rng, 5, 5), random_grid(rng, 4, 6)),))


test_grids.__test__ = test_task.__test__ = False  # helpers, not tests


@pytest.fixture(scope="module")
def default_vocabulary(tokenizer) -> ReducedVocabulary:
    return build_reduced_vocabulary(tokenizer, create_grid_encoder(DEFAULT_ENCODER), [DEFAULT_PROMPT],
                                    base_model="smollm2-135m")


@pytest.fixture(scope="module")
def reduced(tokenizer, default_vocabulary) -> ReducedTokenizer:
    return ReducedTokenizer(tokenizer, default_vocabulary)


def tiny_model():
    """A fresh tiny random model (reduction works in place: never the shared fixture)."""
    return load_model(instantiate(schemas.load_option(CONF / "model" / "tiny-random.yaml")), seed=0).eval()


# ---------------------------------------------------------------------------------------------------------------------
# Which tokens are kept.


def test_kept_size_is_pinned_for_the_default_encoder_and_prompt(tokenizer, default_vocabulary):
    vocabulary = default_vocabulary
    assert len(tokenizer) == 49152 and len(vocabulary) == PINNED_SIZE
    assert vocabulary.kept_ids[:17] == tuple(range(17))  # every special token
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "Ċ", "Ġ", "x", "```", "grid", "Ġshape", ":", "user",
            "system", "ass", "istant", *"0123456789"} <= set(vocabulary.tokens)
    assert (vocabulary.base_model, vocabulary.encoder, vocabulary.prompt_versions, vocabulary.original_size) == \
        ("smollm2-135m", repr(create_grid_encoder(DEFAULT_ENCODER)), (DEFAULT_PROMPT,), 49152)
    # deterministic: the same arguments keep the same ids
    again = build_reduced_vocabulary(tokenizer, create_grid_encoder(DEFAULT_ENCODER), [DEFAULT_PROMPT],
                                     base_model="smollm2-135m")
    assert again == vocabulary


def test_every_prompt_version_adds_its_words(tokenizer, default_vocabulary):
    every = build_reduced_vocabulary(tokenizer, create_grid_encoder(DEFAULT_ENCODER), sorted(PROMPT_VERSIONS))
    assert set(default_vocabulary.kept_ids) < set(every.kept_ids)
    assert {"ĠNew", "Ġdistribution"} <= set(every.tokens) - set(default_vocabulary.tokens)
    assert len(every) == 118


def test_cell_symbols_and_their_tokens(tokenizer):
    assert cell_symbols(create_grid_encoder("grid_shape_row_number")) == "0123456789"
    assert cell_symbols(create_grid_encoder("code_block_replace_number")) == "".join(sorted("ñò÷ûąćďęĚĞ"))
    digits = alphabet_token_ids(tokenizer, "0123456789")
    assert sorted(tokenizer.convert_ids_to_tokens(sorted(digits))) == list("0123456789")  # SmolLM2 splits digits
    # the symbols: whole characters (Ã± is ñ) and halves of two-byte characters (Ä then ħ is ą)
    symbols = set(tokenizer.convert_ids_to_tokens(sorted(alphabet_token_ids(tokenizer, "ñò÷ûąćďęĚĞ"))))
    assert {"Ã±", "Ã²", "Ä", "ħ"} <= symbols and "Ġ" not in symbols and "ĠĠ" not in symbols


@pytest.mark.parametrize("name", sorted(ENCODER_COMPOSITIONS))
def test_encoder_text_and_prompts_round_trip(tokenizer, name):
    """Every grid's text tokenizes inside the vocabulary into the base tokenizer's very tokens, and decodes back;
    so do rendered prompts and training samples."""
    encoder = create_grid_encoder(name)
    vocabulary = build_reduced_vocabulary(tokenizer, encoder, [DEFAULT_PROMPT])
    reduced = ReducedTokenizer(tokenizer, vocabulary)
    for grid in test_grids():
        text = encoder.encode(grid)
        ids = reduced(text, add_special_tokens=False)["input_ids"]
        assert vocabulary.to_original(ids) == tokenizer(text, add_special_tokens=False)["input_ids"]
        assert reduced.decode(ids) == text
        assert encoder.decode(reduced.decode(ids)) == grid
    for seed in range(3):
        messages = build_messages(test_task(seed), encoder, DEFAULT_PROMPT)
        prompt = render_prompt(messages, tokenizer)
        ids = reduced(prompt, add_special_tokens=False)["input_ids"]
        assert reduced.decode(ids) == prompt
        assert vocabulary.to_original(ids) == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        sample = task_sample(test_task(seed), encoder, DEFAULT_PROMPT, reduced, max_seq_len=8192)
        full = task_sample(test_task(seed), encoder, DEFAULT_PROMPT, tokenizer, max_seq_len=8192)
        assert vocabulary.to_original(sample.input_ids) == full.input_ids
        assert [-100 if i == -100 else vocabulary.kept_ids[i] for i in sample.labels] == full.labels


def test_special_ids_and_lengths_are_reduced(tokenizer, reduced, default_vocabulary):
    assert (reduced.bos_token_id, reduced.eos_token_id, reduced.pad_token_id) == (1, 2, 2)  # kept ids 1, 2 first
    assert reduced.eos_token == "<|im_end|>" and reduced.chat_template == tokenizer.chat_template
    assert len(reduced) == reduced.vocab_size == PINNED_SIZE
    assert reduced.convert_tokens_to_ids("Ċ") == default_vocabulary.reduced_id(tokenizer.convert_tokens_to_ids("Ċ"))
    assert reduced.convert_ids_to_tokens(reduced.encode("12", add_special_tokens=False)) == ["1", "2"]
    assert reduced.decode([1, 2], skip_special_tokens=True) == ""
    with pytest.raises(AttributeError, match="does not map the ids of 'encode_plus'"):
        reduced.encode_plus("12")


def test_count_chats_are_covered_by_the_probe_chats(tokenizer, tmp_path):
    """A vocabulary built from 3 generated count chats covers 150 others: the probe chats ask every question type."""
    from arc_exp.synthetic import CountQAGenerator, load_chats, write_shards
    from arc_exp.synthetic.questions import count_qa_probe_chats

    write_shards(CountQAGenerator(), n=150, out=tmp_path / "count", seed=1, shard_size=150, workers=1)
    for name in (DEFAULT_ENCODER, "grid_shape_row_number_replace_number"):
        encoder = create_grid_encoder(name)
        chats = list(load_chats(tmp_path / "count", encoder=encoder))
        vocabulary = build_reduced_vocabulary(tokenizer, encoder, [DEFAULT_PROMPT],
                                              chats=[*chats[:3], *count_qa_probe_chats(encoder)])
        reduced = ReducedTokenizer(tokenizer, vocabulary)
        for text in chat_texts(chats, tokenizer):
            assert reduced.decode(reduced(text, add_special_tokens=False)["input_ids"]) == text


def test_train_config_collects_prompts_and_chats(tokenizer, tmp_path):
    from arc_exp.training import recipe as training
    from arc_exp.synthetic import CountQAGenerator, write_shards

    write_shards(CountQAGenerator(), n=20, out=tmp_path / "count", seed=0, shard_size=20, workers=1)
    encoder = create_grid_encoder(DEFAULT_ENCODER)
    assert training.build_vocabulary(compose_train(["model=tiny-random"]), tokenizer, encoder) is None
    cfg = compose_train(["model=tiny-random", "model.reduce_vocab=true", "data=count-qa",
                         f"data.train.0.chats={tmp_path / 'count'}", "data.val.prompt=output-from-examples-v1"])
    vocabulary = training.build_vocabulary(cfg, tokenizer, encoder)
    assert vocabulary.prompt_versions == (DEFAULT_PROMPT, "output-from-examples-v1")
    assert {"Objects", "connect", "ivity", "Ġbiggest", "none"} <= set(vocabulary.tokens)  # count chats
    assert len(vocabulary) == 167
    bad = compose_train(["model=tiny-random", "model.reduce_vocab=true", "data.train.0.prompt=nope"])
    with pytest.raises(ValueError, match=r"data.train\[0\].prompt: unknown prompt version 'nope'"):
        training.build_vocabulary(bad, tokenizer, encoder)


# ---------------------------------------------------------------------------------------------------------------------
# Errors and the file.


def test_out_of_vocabulary_text_names_the_token_and_its_context(reduced):
    with pytest.raises(OutOfVocabularyError) as error:
        reduced("## Test case\n\nPlease answer quickly", add_special_tokens=False)
    message = str(error.value)
    assert "token 'Please' (id 10180)" in message and "(and 2 more: 'Ġanswer', 'Ġquickly')" in message
    assert "in the text at token 5: ...## Test case\n\n[[Please]] answer quickly..." in message
    assert "107 tokens built for encoder GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder())) and prompts " \
           "output-from-examples-v0" in message
    assert "model.reduce_vocab=false" in message
    with pytest.raises(OutOfVocabularyError, match="token 'hello' is not in the reduced vocabulary"):
        reduced.convert_tokens_to_ids("hello")
    with pytest.raises(VocabularyError, match=r"reduced token id 107 is outside the reduced vocabulary \(0..106\)"):
        reduced.decode([5, 107])


def test_vocabulary_file_round_trip_and_errors(tokenizer, reduced, default_vocabulary, tmp_path):
    files = reduced.save_pretrained(tmp_path / "saved")
    assert str(tmp_path / "saved" / VOCABULARY_FILE) in files
    data = json.loads((tmp_path / "saved" / VOCABULARY_FILE).read_text())
    assert (data["size"], data["tokens"]["0"], data["tokens"]["198"]) == (PINNED_SIZE, "<|endoftext|>", "Ċ")
    loaded = read_vocabulary(tmp_path / "saved")
    assert loaded == default_vocabulary and loaded.where.endswith(VOCABULARY_FILE)
    restored = ReducedTokenizer.from_pretrained(tmp_path / "saved")
    assert restored("1 01", add_special_tokens=False)["input_ids"] == reduced("1 01", add_special_tokens=False)[
        "input_ids"]
    assert read_vocabulary(tmp_path) is None

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / VOCABULARY_FILE).write_text('{"tokens": [1, 2]}')
    with pytest.raises(VocabularyError, match=f"'{bad / VOCABULARY_FILE}' is not a reduced vocabulary file"):
        read_vocabulary(bad)
    (bad / VOCABULARY_FILE).write_text('{"tokens": {"5": "a", "3": "b"}}')
    with pytest.raises(VocabularyError, match="must be distinct, >= 0 and in ascending order"):
        read_vocabulary(bad)
    data["tokens"]["198"] = "Ġ"  # another tokenizer
    (bad / VOCABULARY_FILE).write_text(json.dumps(data))
    with pytest.raises(VocabularyError, match="built for another tokenizer .smollm2-135m.: token 198 is 'Ġ' there and "
                                              "'Ċ' in this one"):
        ReducedTokenizer(tokenizer, read_vocabulary(bad))


# ---------------------------------------------------------------------------------------------------------------------
# The model.


def test_reduced_model_gives_the_full_logits_of_the_kept_tokens(tokenizer, reduced, default_vocabulary):
    full, small = tiny_model(), reduce_model_vocabulary(tiny_model(), default_vocabulary)
    prompt = render_prompt(build_messages(test_task(0), create_grid_encoder(DEFAULT_ENCODER), DEFAULT_PROMPT),
                           tokenizer)
    original = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = reduced(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = full(torch.tensor([original])).logits[0][:, list(default_vocabulary.kept_ids)]
        actual = small(torch.tensor([ids])).logits[0]
    assert actual.shape == (len(ids), PINNED_SIZE) and len(ids) > 300
    assert torch.allclose(actual, expected, rtol=0, atol=1e-6)


def test_reduced_model_shape_ties_and_special_ids(default_vocabulary):
    model = reduce_model_vocabulary(tiny_model(), default_vocabulary)
    assert model.get_input_embeddings().weight.shape == (PINNED_SIZE, 64)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied
    assert model.config.vocab_size == PINNED_SIZE and model.get_input_embeddings().padding_idx == 2
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (1, 2, 2)
    before, after = parameter_summary(tiny_model()), parameter_summary(model)
    assert (before["parameters"], after["parameters"]) == (3_219_776, 3_219_776 - (49152 - PINNED_SIZE) * 64)
    # PEFT's all-linear leaves the (new) output layer alone; an adapter cannot be reduced under
    peft = apply_adapter(model, AdapterConfig(r=2))
    assert not any("lm_head" in name for name in peft.peft_config["default"].target_modules)
    with pytest.raises(VocabularyError, match="before applying the PEFT adapter"):
        reduce_model_vocabulary(peft, default_vocabulary)
    with pytest.raises(VocabularyError, match="the model has 107 embedding rows"):
        reduce_model_vocabulary(reduce_model_vocabulary(tiny_model(), default_vocabulary),
                                ReducedVocabulary((0, 500), ("a", "b")))


def test_generation_with_the_reduced_model_is_greedy_over_the_kept_tokens(tokenizer, reduced, default_vocabulary):
    """HFGenerator works through the reduced tokenizer, and its greedy answer is the full model's greedy answer
    restricted to the kept tokens (the reduced model can only write those)."""
    full, small = tiny_model(), reduce_model_vocabulary(tiny_model(), default_vocabulary)
    prompt = render_prompt(build_messages(test_task(1), create_grid_encoder(DEFAULT_ENCODER), DEFAULT_PROMPT),
                           tokenizer)
    generator = create_generator(InferenceConfig(), small, reduced)
    generation = generator.generate([GenerationRequest(prompt, 10)])[0]
    kept = torch.tensor(default_vocabulary.kept_ids)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer = []
    with torch.no_grad():
        for _ in range(10):
            logits = full(torch.tensor([ids + answer])).logits[0, -1]
            token = int(kept[logits[kept].argmax()])
            if token == tokenizer.eos_token_id:
                break
            answer.append(token)
    assert generation.text == tokenizer.decode(answer, skip_special_tokens=True)
    assert generation.n_tokens == 10 or not generation.finished


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints: which vocabulary inference uses.


def test_resolve_vocabulary_rules(tokenizer, reduced, default_vocabulary, tmp_path):
    encoder = create_grid_encoder(DEFAULT_ENCODER)
    reduced.save_pretrained(tmp_path / "reduced")
    (tmp_path / "full").mkdir()
    # a checkpoint's vocabulary.json wins whatever model.reduce_vocab says
    for reduce_vocab in (True, False):
        assert resolve_vocabulary(tmp_path / "reduced", reduce_vocab, tokenizer, encoder, [DEFAULT_PROMPT]) == \
            default_vocabulary
    # without one: built from the config when model.reduce_vocab=true, else the whole vocabulary
    assert resolve_vocabulary(tmp_path / "full", True, tokenizer, encoder, [DEFAULT_PROMPT]) == \
        build_reduced_vocabulary(tokenizer, encoder, [DEFAULT_PROMPT])
    assert resolve_vocabulary(None, False, tokenizer, encoder, [DEFAULT_PROMPT]) is None
    # a prompt the checkpoint's vocabulary was not built for, and does not cover
    with pytest.raises(VocabularyError, match="with prompts output-from-examples-v1 needs 3 tokens it does not "
                                              "keep .'ve', 'ĠExamples', 'Sol'.: use the checkpoint's encoder"):
        resolve_vocabulary(tmp_path / "reduced", False, tokenizer, encoder, ["output-from-examples-v1"])
    # a loader given no vocabulary (or another one) for a reduced checkpoint
    with pytest.raises(VocabularyError, match="has a reduced vocabulary .107 tokens, vocabulary.json.: load it"):
        check_checkpoint_vocabulary(tmp_path / "reduced", None)
    other = build_reduced_vocabulary(tokenizer, create_grid_encoder("minimal"), [DEFAULT_PROMPT])
    with pytest.raises(VocabularyError, match="another reduced vocabulary"):
        check_checkpoint_vocabulary(tmp_path / "reduced", other)
    check_checkpoint_vocabulary(tmp_path / "full", other)  # a full checkpoint may be reduced at load time


def test_full_fine_tuned_reduced_weights_load_as_they_are(tokenizer, reduced, default_vocabulary, tmp_path):
    from arc_exp.model.checkpoints import save_checkpoint

    model = reduce_model_vocabulary(tiny_model(), default_vocabulary)
    save_checkpoint(model, reduced, tmp_path / "step-000001")
    spec = instantiate(schemas.load_option(CONF / "model" / "tiny-random.yaml"))
    checkpoint = Checkpoint(tmp_path / "step-000001")
    loaded = load_model_for_evaluation(spec, AdapterConfig(method="full"), checkpoint, vocabulary=default_vocabulary)
    assert loaded.get_input_embeddings().weight.shape[0] == PINNED_SIZE
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    with pytest.raises(CheckpointError, match="has a reduced vocabulary"):
        load_model_for_evaluation(spec, AdapterConfig(method="full"), checkpoint)


def compose(config_name: str, overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=config_name):
        return compose(config_name, overrides=list(overrides), return_hydra_config=True)


def test_training_with_reduce_vocab_writes_vocabulary_and_evaluate_and_solve_restore_it(tmp_path, tokenizer):
    """A 2-step tiny run with model.reduce_vocab=true: its checkpoint holds vocabulary.json (and an adapter without
    embedding rows); evaluate.py and solve.py on it, without model.reduce_vocab, predict (and fine-tune) through the
    checkpoint's vocabulary, and the TTFT adapter carries it on."""
    import evaluate
    import solve
    from safetensors.torch import load_file

    run = tmp_path / "train"
    val_loss = run_train(run, [*TINY, "logger=none", "model.reduce_vocab=true", "trainer.max_steps=2",
                    "trainer.val_check_interval=2", "callbacks.checkpoint_every_n_steps=0",
                    "data.limit.max_grid_side=4", "data.limit.first_n=4", "data.val.max_grid_side=4",
                    "data.val.first_n=1"])
    assert val_loss == pytest.approx(PINNED_VAL_LOSS, abs=1e-5)  # the softmax over 107 tokens: ln(107) = 4.67
    step = run / "checkpoints" / "step-000002"
    vocabulary = read_vocabulary(step)
    assert len(vocabulary) == PINNED_SIZE and vocabulary.base_model == "tiny-random"
    assert not any("embed" in k or "lm_head" in k for k in load_file(str(step / "adapter_model.safetensors")))

    out = tmp_path / "evaluate"
    overrides = ["model=tiny-random", "debug=smoke", f"checkpoint={run}", "logger=none", "progress=false",
                 "predictions_per_task=2", "data.eval.first_n=2", "data.eval.max_grid_side=4",
                 "inference.max_new_tokens=12"]
    assert run_recipe(evaluate.main, compose("evaluate", overrides), out) == 0.0
    predictions = json.loads((out / "predictions.json").read_text())
    texts = [p["text"] for task in predictions.values() for test in task["test_inputs"] for p in test["predictions"]]
    assert len(texts) == 4
    written = set("".join(tokenizer.convert_tokens_to_string([t]) for t in vocabulary.tokens))
    assert all(set(text) <= written for text in texts)  # whatever the random model wrote, it wrote kept tokens
    assert json.loads((out / "metrics.json").read_text())["metrics"]["unanswered"] == 1.0

    solved = tmp_path / "solve"
    run_recipe(solve.main, compose("solve", ["model=tiny-random", f"checkpoint={step}", "logger=none", "progress=false",
                                             "ttft.steps=1", "predictions_per_task=1", "data.eval.first_n=1",
                                             "data.eval.max_grid_side=4", "inference.max_new_tokens=8",
                                             "torch_threads=1"]), solved)
    assert read_vocabulary(solved / "ttft" / "adapter") == vocabulary
    assert json.loads((solved / "ttft" / "stage.json").read_text())["outcomes"][0]["steps"] == 1
    assert (solved / "predict" / "stage.json").exists()  # predicted with the TTFT adapter, without errors


@pytest.mark.slow
def test_reduced_smollm2_gives_the_full_logits_of_the_kept_tokens(tokenizer, reduced, default_vocabulary):
    """The real SmolLM2-135M (tied embeddings): the same logits over the kept tokens, 28.2M fewer parameters."""
    spec = instantiate(schemas.load_option(CONF / "model" / "smollm2-135m.yaml"))
    full = load_model(spec).eval()
    small = reduce_model_vocabulary(load_model(spec), default_vocabulary).eval()
    assert parameter_summary(full)["parameters"] - parameter_summary(small)["parameters"] == (49152 - 107) * 576
    prompt = render_prompt(build_messages(test_task(2), create_grid_encoder(DEFAULT_ENCODER), DEFAULT_PROMPT),
                           tokenizer)
    with torch.no_grad():
        expected = full(torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])).logits[0]
        actual = small(torch.tensor([reduced(prompt, add_special_tokens=False)["input_ids"]])).logits[0]
    assert torch.allclose(actual, expected[:, list(default_vocabulary.kept_ids)], rtol=0, atol=1e-5)
