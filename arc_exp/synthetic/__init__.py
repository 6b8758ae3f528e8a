"""Synthetic data that teaches priors: count grids with question/answer chats (``python generate.py generator=count``),
and new inputs of ARC tasks written by a model trained on ``input-from-inputs-v0`` (``generator=new_inputs``).

>>> import tempfile
>>> from arc_exp.synthetic import CountQAGenerator, write_shards, load_chats
>>> with tempfile.TemporaryDirectory() as out:  # e.g. out="data/count", n=100_000
...     summary = write_shards(CountQAGenerator(), n=10, out=out)
...     next(load_chats(out))[2]
{'role': 'assistant', 'content': '3'}
"""
from arc_exp.synthetic.count import CountConfig, CountGridGenerator, GeneratorSettingsError, make_rng
from arc_exp.synthetic.objects import CountGrid, GridObject, find_objects
from arc_exp.synthetic.questions import (
    QUESTION_TYPES,
    CountQAGenerator,
    Question,
    QuestionConfig,
    answer,
    build_chat,
    chat_from_record,
)
from arc_exp.synthetic.new_inputs import (
    NewInputsError,
    NewInputsGenerator,
    TaskNewInputs,
    generate_new_inputs,
    summarize,
    write_new_inputs,
)
from arc_exp.synthetic.writer import OutputMismatchError, WriteSummary, load_chats, load_records, write_shards

__all__ = [
    "CountConfig", "CountGrid", "CountGridGenerator", "GeneratorSettingsError", "GridObject", "find_objects",
    "make_rng", "QUESTION_TYPES", "CountQAGenerator", "Question", "QuestionConfig", "answer", "build_chat",
    "chat_from_record", "NewInputsError", "NewInputsGenerator", "TaskNewInputs", "generate_new_inputs", "summarize",
    "write_new_inputs", "OutputMismatchError", "WriteSummary", "load_chats", "load_records", "write_shards",
]
