"""Which tokens a run can produce: texts rendered by probing every prompt version with tasks of every shape and color,
the chats' texts, and every vocabulary token made only of an encoder's cell symbols. The chats are given: the probe
count chats of generated data are :func:`arc_exp.synthetic.questions.count_qa_probe_chats`, passed in by the recipe."""
from __future__ import annotations

import re
from typing import Iterable, Iterator, Mapping, Sequence

from arc_exp.data.prompts import build_messages, render_prompt, render_segments
from arc_exp.data.tasks import Example, Task

DIGITS = "0123456789"


def probe_tasks() -> list:
    """30 tasks of 14 examples whose 900 grids take every shape 1x1..30x30 once, each using the ten colors in turn
    (so every shape header, row number, example number up to 14 and color shows up in the probe prompts)."""
    shapes = [(h, w) for h in range(1, 31) for w in range(1, 31)]
    grids = [[[(3 * r + 7 * c + h + w) % 10 for c in range(w)] for r in range(h)] for h, w in shapes]
    tasks = []
    for t in range(30):
        chunk = grids[30 * t: 30 * (t + 1)]
        train = tuple(Example(chunk[i], chunk[i + 1]) for i in range(0, 28, 2))
        tasks.append(Task(f"probe{t:02d}", train, (Example(chunk[28], chunk[29]),)))
    return tasks


def probe_texts(tokenizer, encoder, prompt_versions: Sequence[str]) -> Iterator[str]:
    """The texts the tokenizer sees for the probe tasks under each prompt version: the prompt and answer segments
    (tokenized apart, as in training) and the whole generation prompt (as inference tokenizes it)."""
    for version in prompt_versions:
        for task in probe_tasks():
            # index 0 has an answer; an index past the task's grids is the new-grid prompts' "write a new grid"
            for index in (0, 10 ** 6):
                try:
                    messages = build_messages(task, encoder, version, test_index=index)
                except IndexError:  # the output-from-examples prompts have no such test input
                    continue
                yield from (segment.text for segment in render_segments(messages, tokenizer))
                yield render_prompt(messages, tokenizer)


def chat_texts(chats: Iterable[Sequence[Mapping]], tokenizer) -> Iterator[str]:
    """The texts of chats as training tokenizes them (segments) and as inference does (the prompt before each
    answer)."""
    for messages in chats:
        messages = list(messages)
        yield from (segment.text for segment in render_segments(messages, tokenizer))
        for turn, message in enumerate(messages):
            if message["role"] == "assistant":
                yield render_prompt(messages[:turn], tokenizer)


def cell_symbols(encoder) -> str:
    """The characters ``encoder`` writes for the ten colors (``'0123456789'``, or its replacement symbols): those
    where the texts of the ten one-cell grids differ."""
    texts = [encoder.encode([[color]]) for color in range(10)]
    if len({len(text) for text in texts}) == 1:
        return "".join(sorted({text[i] for text in texts for i in range(len(texts[0]))
                               if len({t[i] for t in texts}) > 1}))
    common = set.intersection(*(set(text) for text in texts))
    return "".join(sorted(set("".join(texts)) - common))


def alphabet_token_ids(tokenizer, alphabet: str) -> set[int]:
    """Every token whose bytes are a piece of a string over ``alphabet``, alone or after one space or newline.

    Any text made of those characters (a row of cells, a number) tokenizes into such tokens, whatever merges the
    tokenizer makes. Byte-level BPE tokens (GPT-2 style) and SentencePiece tokens (``▁``, ``<0x0A>``) are read as
    bytes, so a token holding half of a two-byte symbol such as ``ñ`` counts too.
    """
    pieces = sorted({char.encode() for char in alphabet})
    allowed = set(b"".join(pieces))
    token_bytes = _token_bytes_reader(tokenizer)
    found = set()
    for token, index in tokenizer.get_vocab().items():
        data = token_bytes(token)
        if data is None:
            continue
        if data[:1] in (b" ", b"\n"):
            data = data[1:]
        if data and set(data) <= allowed and _piece_of_concatenation(data, pieces):
            found.add(index)
    return found


def _piece_of_concatenation(data: bytes, pieces: Sequence[bytes]) -> bool:
    """Whether ``data`` is a contiguous part of some concatenation of ``pieces`` (UTF-8 characters: prefix-free)."""
    for piece in pieces:
        for offset in range(len(piece)):
            head = piece[offset:]
            if head.startswith(data):
                return True
            if not data.startswith(head):
                continue
            rest = data[len(head):]
            while rest:
                whole = next((p for p in pieces if rest.startswith(p)), None)
                if whole is None:
                    break
                rest = rest[len(whole):]
            if not rest or any(p.startswith(rest) for p in pieces):
                return True
    return False


def _token_bytes_reader(tokenizer):
    """A function from a token string of ``tokenizer``'s vocabulary to its bytes (``None`` when unknown)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and "ByteLevel" in repr(backend.decoder):
        table = _byte_decoder()
        return lambda token: bytes(table[c] for c in token) if all(c in table for c in token) else None
    hex_byte = re.compile(r"<0x([0-9A-Fa-f]{2})>")

    def sentencepiece(token: str) -> bytes:
        match = hex_byte.fullmatch(token)
        return bytes([int(match.group(1), 16)]) if match else token.replace("\u2581", " ").encode()

    return sentencepiece


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte (the inverse of its ``bytes_to_unicode``)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}
