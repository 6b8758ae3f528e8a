"""A tokenizer that speaks the reduced vocabulary's ids: text in, reduced ids out and back; a text with a token outside
the vocabulary fails naming the token and the text around it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from arc_exp.model.vocabulary import (
    OutOfVocabularyError,
    ReducedVocabulary,
    VocabularyError,
)

# methods of a Hugging Face tokenizer that return token ids and are not mapped here: refused rather than leaking
# original ids into a reduced model
_UNMAPPED = frozenset({"encode_plus", "batch_encode_plus", "prepare_for_model", "build_inputs_with_special_tokens",
                       "pad", "_convert_token_to_id", "_convert_token_to_id_with_added_voc", "added_tokens_encoder",
                       "added_tokens_decoder", "vocab"})


class ReducedTokenizer:
    """A Hugging Face tokenizer whose token ids are those of a :class:`ReducedVocabulary`.

    ``tokenizer(text)["input_ids"]``, ``encode``, ``decode``, ``batch_decode``, ``convert_ids_to_tokens``,
    ``convert_tokens_to_ids``, ``apply_chat_template``, ``eos_token_id`` / ``pad_token_id`` / ``bos_token_id``
    (any ``*_token_id``), ``all_special_ids``, ``len()`` and ``get_vocab`` speak reduced ids; everything else
    (``chat_template``, ``eos_token``, ``tokenize``, ...) is the wrapped tokenizer's. ``save_pretrained`` writes the
    base tokenizer's files and ``vocabulary.json``; :meth:`from_pretrained` reads both back.
    """

    def __init__(self, tokenizer, vocabulary: ReducedVocabulary):
        if isinstance(tokenizer, ReducedTokenizer):
            raise VocabularyError("the tokenizer is already reduced")
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        if vocabulary.kept_ids[-1] >= len(tokenizer):
            raise VocabularyError(f"{vocabulary.where or 'the reduced vocabulary'} keeps token id "
                                  f"{vocabulary.kept_ids[-1]}, the tokenizer has {len(tokenizer)} tokens: it was "
                                  f"built for another tokenizer ({vocabulary.base_model or 'unknown model'})")
        actual = tokenizer.convert_ids_to_tokens(list(vocabulary.kept_ids))
        if tuple(actual) != vocabulary.tokens:
            index = next(i for i, (a, b) in enumerate(zip(actual, vocabulary.tokens)) if a != b)
            raise VocabularyError(
                f"{vocabulary.where or 'the reduced vocabulary'} was built for another tokenizer "
                f"({vocabulary.base_model or 'unknown model'}): token {vocabulary.kept_ids[index]} is "
                f"{vocabulary.tokens[index]!r} there and {actual[index]!r} in this one")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "ReducedTokenizer":
        """The tokenizer of a checkpoint folder written by :meth:`save_pretrained` (its files + ``vocabulary.json``)."""
        # transformers takes seconds to import: only when a model or tokenizer loads
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(tokenizer, ReducedVocabulary.load(folder))

    # -- text <-> reduced ids -----------------------------------------------------------------------------------------

    def __call__(self, text, *args, **kwargs):
        encoded = self.tokenizer(text, *args, **kwargs)
        encoded["input_ids"] = self._reduce(encoded["input_ids"], text)
        return encoded

    def encode(self, text: str, add_special_tokens: bool = True, **kwargs) -> list[int]:
        return self._reduce(self.tokenizer.encode(text, add_special_tokens=add_special_tokens, **kwargs), text)

    def decode(self, ids, *args, **kwargs) -> str:
        return self.tokenizer.decode(self._original(ids), *args, **kwargs)

    def batch_decode(self, sequences, *args, **kwargs) -> list[str]:
        return [self.decode(ids, *args, **kwargs) for ids in sequences]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        if isinstance(ids, int):
            return self.tokenizer.convert_ids_to_tokens(self.vocabulary.to_original([ids])[0], skip_special_tokens)
        return self.tokenizer.convert_ids_to_tokens(self._original(ids), skip_special_tokens)

    def convert_tokens_to_ids(self, tokens):
        single = isinstance(tokens, str)
        original = self.tokenizer.convert_tokens_to_ids([tokens] if single else list(tokens))
        reduced = self.vocabulary.to_reduced(original)
        for token, value in zip([tokens] if single else tokens, reduced):
            if value < 0:
                raise OutOfVocabularyError(f"token {token!r} is not in the reduced vocabulary ({self._built_for()})")
        return reduced[0] if single else reduced

    def apply_chat_template(self, conversation, *args, **kwargs):
        result = self.tokenizer.apply_chat_template(conversation, *args, **kwargs)
        if isinstance(result, str) or (isinstance(result, list) and result and isinstance(result[0], str)):
            return result  # tokenize=False: text
        context = lambda: self.tokenizer.apply_chat_template(  # noqa: E731 - the text, only for an error
            conversation, *args, **{**kwargs, "tokenize": False, "return_dict": False})
        if isinstance(result, Mapping):
            result["input_ids"] = self._reduce(result["input_ids"], context)
            return result
        return self._reduce(result, context)

    def save_pretrained(self, folder: str | Path, *args, **kwargs):
        """The base tokenizer's files and ``vocabulary.json``, so the folder restores this tokenizer."""
        files = self.tokenizer.save_pretrained(folder, *args, **kwargs)
        return (*tuple(files or ()), str(self.vocabulary.save(folder)))

    # -- ids of special tokens (any ``*_token_id``: :meth:`__getattr__`), size----------------------------------------

    @property
    def all_special_ids(self) -> list[int]:
        return [i for i in self.vocabulary.to_reduced(self.tokenizer.all_special_ids) if i >= 0]

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def get_vocab(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocabulary.tokens)}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("tokenizer", "vocabulary"):
            raise AttributeError(name)  # copy/pickle probe attributes before __init__ ran
        if name in _UNMAPPED:
            raise AttributeError(f"ReducedTokenizer does not map the ids of '{name}'; call the tokenizer "
                                 f"(tokenizer(text)['input_ids']) or use .tokenizer for original ids")
        value = getattr(self.tokenizer, name)
        if name.endswith("_token_id"):
            return self._reduced_or_none(value)
        return value

    def __repr__(self) -> str:
        return (f"ReducedTokenizer({len(self.vocabulary)} of {len(self.tokenizer)} tokens, "
                f"{type(self.tokenizer).__name__} {getattr(self.tokenizer, 'name_or_path', '')!r})")

    # -- mapping ------------------------------------------------------------------------------------------------------

    def _reduced_or_none(self, original: Optional[int]) -> Optional[int]:
        return None if original is None else self.vocabulary.reduced_id(original)

    def _original(self, ids) -> list[int]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self.vocabulary.to_original([int(i) for i in ids])

    def _reduce(self, ids, text):
        """Original ids (a list, a list of lists or a tensor) -> reduced ids; raises on a token that is not kept."""
        if isinstance(ids, torch.Tensor):
            return torch.tensor(self._reduce(ids.tolist(), text), dtype=ids.dtype, device=ids.device)
        if ids and isinstance(ids[0], (list, tuple)):
            texts = text if isinstance(text, (list, tuple)) else [text] * len(ids)
            return [self._reduce(row, row_text) for row, row_text in zip(ids, texts)]
        reduced = self.vocabulary.to_reduced(ids)
        if -1 in reduced:
            raise self._out_of_vocabulary(list(ids), reduced, text() if callable(text) else text)
        return reduced

    def _out_of_vocabulary(self, ids: list[int], reduced: list[int], text: Any) -> OutOfVocabularyError:
        position = reduced.index(-1)
        token = self.tokenizer.convert_ids_to_tokens(ids[position])
        before = self.tokenizer.decode(ids[max(0, position - 12):position])
        after = self.tokenizer.decode(ids[position + 1:position + 13])
        here = self.tokenizer.decode(ids[position:position + 1])
        others = sorted({self.tokenizer.convert_ids_to_tokens(i) for i, r in zip(ids, reduced) if r < 0} - {token})
        more = f" (and {len(others)} more: {', '.join(map(repr, others[:8]))}{', ...' if len(others) > 8 else ''})" \
            if others else ""
        return OutOfVocabularyError(
            f"token {token!r} (id {ids[position]}) is not in the reduced vocabulary ({self._built_for()}){more}; "
            f"in the text at token {position}: ...{before}[[{here}]]{after}... Texts outside what the vocabulary was "
            f"built for cannot be tokenized: train with model.reduce_vocab=false, or add the prompt version or "
            f"chats that produce this text to the run's data so the vocabulary covers them")

    def _built_for(self) -> str:
        v = self.vocabulary
        return (f"{len(v)} tokens built for encoder {v.encoder or '?'} and prompts "
                f"{', '.join(v.prompt_versions) or '?'}" + (f", {v.where}" if v.where else ""))


def wrap_tokenizer(tokenizer, vocabulary: Optional[ReducedVocabulary]):
    """``tokenizer`` speaking the ids of ``vocabulary``, or ``tokenizer`` itself when ``vocabulary`` is None."""
    return tokenizer if vocabulary is None else ReducedTokenizer(tokenizer, vocabulary)


def vocabulary_of(tokenizer) -> Optional[ReducedVocabulary]:
    """The reduced vocabulary of a :class:`ReducedTokenizer`, ``None`` for a plain tokenizer."""
    return tokenizer.vocabulary if isinstance(tokenizer, ReducedTokenizer) else None
