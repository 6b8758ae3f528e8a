"""Questions about count grids, answered from their metadata, and the multi-turn chats that ask them.

A chat shows one grid (or a few) and asks several questions, one per user turn; each assistant turn is an answer, so
:func:`arc_exp.data.samples.chat_sample` puts the loss on the answers only. Question order is random per chat, so an
earlier answer is no shortcut to a later one (the number of objects is not always asked after their areas). With the
default encoder a chat about ``[[0, 1], [1, 0]]`` reads::

    user:      Here is a grid from an ARC task:
               ```grid shape: 2x2
               1 01
               2 10
               ```
               Objects are groups of cells of the same color, other than the background, ...
               How many objects are there with 8-connectivity?
    assistant: 1
    user:      What are the areas of the objects with 4-connectivity, in ascending order?
    assistant: 1, 1

Question types (:data:`QUESTION_TYPES`): ``count`` objects, ``areas`` in ascending order, ``biggest_area``,
``smallest_area``, ``count_color`` (objects of color c), ``background`` color, grid ``shape`` (rows x columns) and
``most_common_color`` (other than the background). Colors are written as the encoder writes cells (digits, or the
symbols of ``ReplaceNumberEncoder``).

Chat styles (:data:`CHAT_STYLES`): ``full`` (the default, above) and ``short``, a third of the prompt tokens for CPU
runs: a one-line system prompt, the grid, then the question, with no introduction and no definition of objects::

    system:    Answer questions about ARC grids.
    user:      ```grid shape: 2x2 ... ```
               How many objects are there with 8-connectivity?
    assistant: 1
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple, Optional, Sequence, Union

from arc_exp.data.encoders import DEFAULT_ENCODER, GridEncoder, ReplaceNumberEncoder, create_grid_encoder
from arc_exp.data.grid import N_COLORS
from arc_exp.synthetic.count import CountConfig, CountGridGenerator, GeneratorSettingsError, randint
from arc_exp.synthetic.objects import CONNECTIVITIES, CountGrid

QUESTION_TYPES = ("count", "areas", "biggest_area", "smallest_area", "count_color", "background", "shape",
                  "most_common_color")
DIGITS = "0123456789"  # how colors are written unless the encoder uses symbols
OBJECT_QUESTIONS = frozenset({"count", "areas", "biggest_area", "smallest_area", "count_color"})

SYSTEM_PROMPT = (
    "You are a helpful assistant that answers questions about grids from the Abstraction and Reasoning Corpus (ARC). "
    "Every cell of a grid is one of ten colors written as a symbol, and a grid is between 1x1 and 30x30."
)
OBJECTS_DEFINED = (
    "Objects are groups of cells of the same color, other than the background, that touch through their sides "
    "(4-connectivity) or also through their corners (8-connectivity). Answer each question with the answer only."
)

SHORT_SYSTEM_PROMPT = "Answer questions about ARC grids."
CHAT_STYLES = ("full", "short")

_TEXTS = {
    "count": "How many objects are there with {c}-connectivity?",
    "areas": "What are the areas of the objects with {c}-connectivity, in ascending order?",
    "biggest_area": "What is the area of the biggest object with {c}-connectivity?",
    "smallest_area": "What is the area of the smallest object with {c}-connectivity?",
    "count_color": "How many objects of color {color} are there with {c}-connectivity?",
    "background": "What is the background color?",
    "shape": "What is the shape of the grid (rows x columns)?",
    "most_common_color": "Which color, other than the background, covers the most cells?",
}


class Question(NamedTuple):
    """One question about grid ``grid`` of a chat; ``connectivity`` for object questions, ``color`` for count_color."""

    type: str
    grid: int = 0
    connectivity: Optional[int] = None
    color: Optional[int] = None

    def to_dict(self) -> dict:
        return {"type": self.type, "grid": self.grid, "connectivity": self.connectivity, "color": self.color}


class GridFacts(NamedTuple):
    """What the answers need from a grid's metadata, computed once per grid."""

    background: int
    shape: tuple[int, int]
    areas: dict            # connectivity -> sorted object areas
    colors: dict           # connectivity -> {color: number of objects}
    color_cells: list      # cells of each color covered by objects

    @classmethod
    def of(cls, grid: CountGrid) -> "GridFacts":
        areas, colors, color_cells = {}, {}, [0] * N_COLORS
        for connectivity, objects in grid.objects.items():
            areas[connectivity] = sorted(len(obj.cells) for obj in objects)
            counts = colors[connectivity] = {}
            for obj in objects:
                counts[obj.color] = counts.get(obj.color, 0) + 1
        for obj in grid.objects[4]:  # the same cells under either connectivity
            color_cells[obj.color] += len(obj.cells)
        return cls(grid.background, grid.shape, areas, colors, color_cells)


def answer(question: Question, grid: Union[CountGrid, GridFacts], color_names: Sequence[str] = DIGITS
           ) -> Optional[str]:
    """The answer text from the grid's metadata, or None when the question has no single answer.

    >>> grid = CountGrid.from_grid([[0, 1], [1, 0]], background=0)
    >>> answer(Question("count", connectivity=4), grid), answer(Question("count", connectivity=8), grid)
    ('2', '1')

    No answer: biggest or smallest area of no objects, most common color with a tie or without objects.
    """
    facts = grid if isinstance(grid, GridFacts) else GridFacts.of(grid)
    kind = question.type
    if kind == "background":
        return color_names[facts.background]
    if kind == "shape":
        return "{}x{}".format(*facts.shape)
    if kind == "most_common_color":
        most = max(facts.color_cells)
        if most == 0 or facts.color_cells.count(most) > 1:
            return None
        return color_names[facts.color_cells.index(most)]
    if kind == "count_color":
        return str(facts.colors[question.connectivity].get(question.color, 0))
    areas = facts.areas[question.connectivity]
    if kind == "count":
        return str(len(areas))
    if kind == "areas":
        return ", ".join(map(str, areas)) if areas else "none"
    if not areas:
        return None
    return str(areas[-1] if kind == "biggest_area" else areas[0])


def question_text(question: Question, n_grids: int = 1, color_names: Sequence[str] = DIGITS) -> str:
    """The question as asked; with several grids it names its grid.

    >>> question_text(Question("count_color", grid=1, connectivity=8, color=3), n_grids=2)
    'In grid 2, how many objects of color 3 are there with 8-connectivity?'
    """
    color = None if question.color is None else color_names[question.color]
    text = _TEXTS[question.type].format(c=question.connectivity, color=color)
    if n_grids > 1:
        text = f"In grid {question.grid + 1}, {text[0].lower()}{text[1:]}"
    return text


def color_names(encoder: GridEncoder) -> str:
    """How ``encoder`` writes each color: ``'0123456789'``, or its symbols when it replaces digits."""
    inner = encoder
    while inner is not None:
        if isinstance(inner, ReplaceNumberEncoder):
            return ReplaceNumberEncoder.SYMBOLS
        inner = getattr(inner, "inner", None)
    return DIGITS


def build_chat(grids: Sequence[CountGrid], questions: Sequence[Question], encoder: GridEncoder,
               system_prompt: Optional[str] = None, answers: Optional[Sequence[str]] = None,
               style: str = "full") -> list[dict]:
    """The chat: system, then the grids and the first question, then one user turn per further question.

    Deterministic, so a stored sample can be rendered again with another encoder (see ``load_chats``). ``answers``
    (as the encoder writes colors) saves computing them again. ``style`` is ``full`` or ``short`` (see the module
    docstring); ``system_prompt`` defaults to the style's.
    """
    check_chat_style(style)
    names = color_names(encoder)
    if answers is None:
        facts = [GridFacts.of(grid) for grid in grids]
        answers = [answer(q, facts[q.grid], names) for q in questions]
    short = style == "short"
    if len(grids) == 1:
        shown = encoder.encode(grids[0].grid) if short else \
            f"Here is a grid from an ARC task:\n\n{encoder.encode(grids[0].grid)}"
    else:
        shown = "\n\n".join(([] if short else [f"Here are {len(grids)} grids from ARC tasks:"]) +
                            [f"## Grid {i}\n\n{encoder.encode(g.grid)}" for i, g in enumerate(grids, start=1)])
    intro = f"{shown}\n" if short else f"{shown}\n\n{OBJECTS_DEFINED}\n\n"
    system_prompt = system_prompt or (SHORT_SYSTEM_PROMPT if short else SYSTEM_PROMPT)
    messages = [{"role": "system", "content": system_prompt}]
    for i, question in enumerate(questions):
        text = question_text(question, len(grids), names)
        messages.append({"role": "user", "content": f"{intro}{text}" if i == 0 else text})
        messages.append({"role": "assistant", "content": answers[i]})
    return messages


@dataclass(frozen=True)
class QuestionConfig:
    """How chats are drawn: how many grids and questions, which question types (repeat a type to weight it)."""

    types: tuple = QUESTION_TYPES
    min_questions: int = 3
    max_questions: int = 6
    max_grids: int = 3               # grids in a chat that shows several
    multi_grid_prob: float = 0.2     # chats that show several grids (2..max_grids); the others show one
    absent_color_prob: float = 0.2   # count_color about a color that may have no object (answer 0)

    def __post_init__(self):
        types = (self.types,) if isinstance(self.types, str) else tuple(self.types)
        object.__setattr__(self, "types", types)
        check_question_config(self)


def check_chat_style(style: str) -> None:
    if style not in CHAT_STYLES:
        raise GeneratorSettingsError(f"count generator: style={style!r}: unknown chat style; known styles: "
                                     f"{', '.join(CHAT_STYLES)}")


def check_question_config(config: QuestionConfig) -> None:
    """Raise :class:`GeneratorSettingsError` naming the first impossible setting."""
    def fail(key: str, message: str):
        value = getattr(config, key)
        value = list(value) if isinstance(value, tuple) else value
        raise GeneratorSettingsError(f"count generator: questions.{key}={value!r}: {message}")

    unknown = [t for t in config.types if t not in QUESTION_TYPES]
    if not config.types or unknown:
        fail("types", f"unknown question type(s) {unknown}; known types: {', '.join(QUESTION_TYPES)}")
    if not isinstance(config.min_questions, int) or config.min_questions < 1:
        fail("min_questions", "must be an integer >= 1")
    if not isinstance(config.max_questions, int) or config.max_questions < config.min_questions:
        fail("max_questions", f"must be an integer >= min_questions={config.min_questions}")
    if not isinstance(config.max_grids, int) or config.max_grids < 1:
        fail("max_grids", "must be an integer >= 1")
    for key in ("multi_grid_prob", "absent_color_prob"):
        if not 0.0 <= getattr(config, key) <= 1.0:
            fail(key, "a probability must be in 0..1")
    if config.max_grids == 1 and config.multi_grid_prob > 0:
        fail("multi_grid_prob", "chats with several grids need max_grids >= 2")


def ask_questions(grids: Sequence[CountGrid], rng: random.Random, config: QuestionConfig
                  ) -> list[tuple[Question, str]]:
    """Draw distinct questions that have an answer, in random order, with their answers (colors as digits).

    A few spare draws replace duplicates and questions without an answer.
    """
    wanted = randint(rng, config.min_questions, config.max_questions)
    facts = [GridFacts.of(grid) for grid in grids]
    asked: dict[Question, str] = {}
    for _ in range(4 * wanted):
        if len(asked) == wanted:
            break
        question = _draw(facts, rng, config)
        if question not in asked:
            text = answer(question, facts[question.grid])
            if text is not None:
                asked[question] = text
    return list(asked.items())


def _draw(facts: Sequence[GridFacts], rng: random.Random, config: QuestionConfig) -> Question:
    kind = config.types[int(rng.random() * len(config.types))]
    index = int(rng.random() * len(facts))
    if kind not in OBJECT_QUESTIONS:
        return Question(kind, index)
    connectivity = CONNECTIVITIES[int(rng.random() * 2)]
    if kind != "count_color":
        return Question(kind, index, connectivity)
    present = sorted(facts[index].colors[connectivity])
    if present and rng.random() >= config.absent_color_prob:
        color = present[int(rng.random() * len(present))]
    else:  # any color but the background, often one without objects
        color = [c for c in range(N_COLORS) if c != facts[index].background][int(rng.random() * (N_COLORS - 1))]
    return Question(kind, index, connectivity, color)


class CountQAGenerator:
    """Count grids plus question/answer chats: one record per chat, ready for JSONL.

    ``grids`` and ``questions`` are configs or dicts of their settings (as Hydra passes them); ``encoder`` is a
    :class:`GridEncoder` or a spec for :func:`create_grid_encoder`. Every setting is checked here, before any
    generation. A record holds the grids with their metadata, the questions with their answers and the messages::

        {"id": "count-0-00000000", "grids": [{"grid": [[0, 1], ...], "background": 0, "connectivity": 4,
         "objects": {"4": [{"color": 1, "area": 1, "bbox": [0, 1, 0, 1], "cells": [[0, 1]]}, ...], "8": [...]}}],
         "questions": [{"type": "count", "grid": 0, "connectivity": 8, "color": null, "answer": "1"}, ...],
         "messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", "content": "1"}, ...]}
    """

    name = "count"

    def __init__(self, grids: Union[CountConfig, dict, None] = None,
                 questions: Union[QuestionConfig, dict, None] = None,
                 encoder: Union[GridEncoder, str] = DEFAULT_ENCODER, system_prompt: Optional[str] = None,
                 style: str = "full"):
        check_chat_style(style)
        self.grid_config = _config(CountConfig, grids, "grids")
        self.question_config = _config(QuestionConfig, questions, "questions")
        self.encoder = create_grid_encoder(encoder)
        self.style = style
        self.system_prompt = system_prompt or (SHORT_SYSTEM_PROMPT if style == "short" else SYSTEM_PROMPT)
        self._grids = CountGridGenerator(self.grid_config)
        self._names = color_names(self.encoder)

    def sample(self, rng: random.Random, sample_id: str = "") -> dict:
        """One chat record drawn with ``rng``."""
        config = self.question_config
        n_grids = 1 if rng.random() >= config.multi_grid_prob else randint(rng, 2, config.max_grids)
        grids = [self._grids.generate(rng) for _ in range(n_grids)]
        asked = ask_questions(grids, rng, config)
        questions = [q for q, _ in asked]
        answers = [a for _, a in asked] if self._names == DIGITS else None
        record = {
            "id": sample_id,
            "grids": [g.to_dict() for g in grids],
            "questions": [{"type": q.type, "grid": q.grid, "connectivity": q.connectivity, "color": q.color,
                           "answer": a} for q, a in asked],
            "messages": build_chat(grids, questions, self.encoder, self.system_prompt, answers, self.style),
        }
        if self.style != "full":  # full-style records stay as they were (no key), so older outputs compare equal
            record["style"] = self.style
        return record

    def describe(self) -> dict:
        """Everything that shapes the output (stored next to it, so a resumed run can check it continues the same)."""
        described = {"generator": self.name, "grids": self.grid_config.to_dict(),
                     "questions": asdict(self.question_config) | {"types": list(self.question_config.types)},
                     "encoder": repr(self.encoder), "system_prompt": self.system_prompt}
        return described | ({"style": self.style} if self.style != "full" else {})


def chat_from_record(record: dict, encoder: Union[GridEncoder, str, None] = None,
                     system_prompt: Optional[str] = None) -> list[dict]:
    """The record's messages; with ``encoder``, its chat rendered again with that encoder (same grids, questions).

    ``system_prompt`` replaces the stored one.
    """
    messages = record["messages"]
    if encoder is not None:
        grids = [CountGrid.from_dict(g) for g in record["grids"]]
        questions = [Question(q["type"], q["grid"], q["connectivity"], q["color"]) for q in record["questions"]]
        messages = build_chat(grids, questions, create_grid_encoder(encoder), messages[0]["content"],
                              style=record.get("style", "full"))
    if system_prompt is not None:
        messages = [{"role": "system", "content": system_prompt}, *messages[1:]]
    return messages


def count_qa_probe_chats(encoder) -> list[list[dict]]:
    """Count question/answer chats that ask every question type, about every color and connectivity, of one to three
    grids, with answers of every form (numbers, lists, ``none``, shapes, colors): a reduced vocabulary built with
    them (:func:`arc_exp.model.vocabulary.build_reduced_vocabulary`) covers every generated count chat."""
    names = color_names(encoder)
    questions = []
    for kind in QUESTION_TYPES:
        for connectivity in (CONNECTIVITIES if kind in ("count", "areas", "biggest_area", "smallest_area",
                                                        "count_color") else (None,)):
            for color in (range(10) if kind == "count_color" else (None,)):
                questions.append(Question(kind, 0, connectivity, color))
    answers = [*names, "0", "1, 2, 30", "none", "30x30", "12", "2x3", *"0123456789"]
    grids = [CountGrid.from_grid([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], background=0)] * 3
    chats = []
    for n_grids in (1, 2, 3):
        for start in range(0, len(questions), 8):
            asked = [q._replace(grid=i % n_grids) for i, q in enumerate(questions[start: start + 8], start=start)]
            replies = [answers[(start + i) % len(answers)] for i in range(len(asked))]
            chats.append(build_chat(grids[:n_grids], asked, encoder, answers=replies))
    return chats


def _config(cls, value, key: str):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise GeneratorSettingsError(f"count generator: unknown setting(s) {unknown} under {key}; "
                                     f"known settings: {', '.join(sorted(known))}")
    return cls(**value)
