"""Count-QA accuracy per question type, with stand-in generators (an oracle and one that always says 0)."""
import re

import pytest

from arc_exp.inference.requests import FunctionGenerator
from arc_exp.synthetic import CountQAGenerator, make_rng
from arc_exp.synthetic.qa_eval import count_qa_accuracy, qa_requests


@pytest.fixture(scope="module")
def records():
    generator = CountQAGenerator()
    return [generator.sample(make_rng(7, i), f"r{i}") for i in range(6)]


def test_each_question_is_asked_after_the_true_earlier_answers(records, tokenizer):
    asked = qa_requests(records[0], tokenizer)
    assert [kind for _, kind, _ in asked] == [q["type"] for q in records[0]["questions"]]
    assert [answer for _, _, answer in asked] == [q["answer"] for q in records[0]["questions"]]
    second = asked[1][0].prompt
    assert second.endswith("<|im_start|>assistant\n")
    assert f"<|im_start|>assistant\n{asked[0][2]}<|im_end|>" in second  # the first true answer is in the prompt


def test_oracle_scores_one_and_zero_answers_score_their_share(records, tokenizer):
    answers = {req.prompt: expected for record in records for req, _, expected in qa_requests(record, tokenizer)}
    oracle = count_qa_accuracy(records, FunctionGenerator(lambda r: answers[r.prompt]), tokenizer)
    assert oracle["qa/all"] == 1.0 and all(v == 1.0 for k, v in oracle.items() if k != "qa/n_questions")
    questions = [q for r in records for q in r["questions"]]
    zeros = count_qa_accuracy(records, FunctionGenerator(lambda r: " 0\n"), tokenizer)
    assert zeros["qa/n_questions"] == len(questions)
    assert zeros["qa/all"] == sum(q["answer"] == "0" for q in questions) / len(questions)


def test_count_qa_settings_are_typed_and_named():
    """evaluation.count_qa is typed where train.py reads it (a root-schema type would refuse the override
    evaluation.count_qa={chats: ...}); each mistake names its key."""
    import doctest

    import arc_exp.synthetic.qa_eval
    from arc_exp.synthetic.qa_eval import CountQAError, CountQASettings, count_qa_settings

    assert count_qa_settings(None) is None and count_qa_settings({}) is None
    assert count_qa_settings({"chats": "held-out", "before": "true", "every_n_steps": "2"}) == \
        CountQASettings(chats="held-out", n_chats=None, before=True, every_n_steps=2, max_new_tokens=48)
    for config, message in [({"chats": "h", "n_chats": "many"}, "evaluation.count_qa.n_chats: Value 'many' of type "
                                                                "'str' could not be converted to Integer"),
                            ({"chats": "h", "befor": True}, "evaluation.count_qa.befor: Key 'befor' not in"),
                            ({"before": True}, "evaluation.count_qa.chats is required")]:
        with pytest.raises(CountQAError, match=re.escape(message)):
            count_qa_settings(config)
    assert doctest.testmod(arc_exp.synthetic.qa_eval).failed == 0
