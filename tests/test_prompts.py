"""Prompt versions: pinned texts of every version on a tiny task, errors, and chat rendering into prompt/answer segments."""
import doctest

import pytest

import arc_exp.data.prompts
from arc_exp.data.tasks import Example, Task
from arc_exp.data.encoders import MinimalGridEncoder
from arc_exp.data.prompts import (
    PROMPT_VERSIONS,
    SYSTEM_PROMPT,
    Segment,
    UnknownPromptError,
    answer_indices,
    build_messages,
    check_prompt_version,
    render_prompt,
    render_segments,
    training_view,
)
from conftest import CHAT

# two examples and one test input, each grid distinct so a pinned text shows exactly which grid went where
TASK = Task.from_dict("0a1b2c3d", {
    "train": [{"input": [[1, 2]], "output": [[2, 1]]}, {"input": [[3]], "output": [[4]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[6, 5], [8, 7]]}],
})
ENCODER = MinimalGridEncoder()

# version -> (user message, assistant answer) for test_index=0
PINNED = {
    "output-from-examples-v0": (
        "Let's see if you can solve this simple ARC task. These are some input-output grid examples that show the "
        "transformation.\n\n"
        "## Example 1\n\n### Input\n\n12\n\n### Output\n\n21\n\n"
        "## Example 2\n\n### Input\n\n3\n\n### Output\n\n4\n\n"
        "## Test case\n\n### Input\n\n56\n78",
        "65\n87",
    ),
    "output-from-examples-v1": (
        "Solve this ARC task. Examples:\n"
        "## Input 1\n12\n## Output 1\n21\n"
        "## Input 2\n3\n## Output 2\n4\n"
        "## Test input\n56\n78\n## Test output",
        "65\n87",
    ),
    # the target is input number test_index among train + test inputs; the others are shown
    "input-from-inputs-v0": (
        "Here are some input grids of an ARC task. Write a new input grid that follows the same distribution.\n\n"
        "## Input 1\n\n3\n\n## Input 2\n\n56\n78\n\n## New input",
        "12",
    ),
    "output-from-outputs-v0": (
        "Here are some output grids of an ARC task. Write a new output grid that follows the same distribution.\n\n"
        "## Output 1\n\n4\n\n## Output 2\n\n65\n87\n\n## New output",
        "21",
    ),
}


def test_every_version_is_pinned():
    assert sorted(PINNED) == sorted(PROMPT_VERSIONS)


@pytest.mark.parametrize("version", sorted(PINNED))
def test_pinned_messages(version):
    user, answer = PINNED[version]
    assert build_messages(TASK, ENCODER, version) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]


@pytest.mark.parametrize("version", sorted(PINNED))
def test_without_answer_the_chat_ends_with_the_user(version):
    messages = build_messages(TASK, ENCODER, version, include_answer=False)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"] == PINNED[version][0]


def test_new_grid_prompts_pick_the_target_by_index():
    inputs = build_messages(TASK, ENCODER, "input-from-inputs-v0", test_index=2)
    assert inputs[1]["content"] == ("Here are some input grids of an ARC task. Write a new input grid that follows "
                                    "the same distribution.\n\n## Input 1\n\n12\n\n## Input 2\n\n3\n\n## New input")
    assert inputs[2] == {"role": "assistant", "content": "56\n78"}
    # index past the last grid: every grid shown, nothing to answer (generation)
    outputs = build_messages(TASK, ENCODER, "output-from-outputs-v0", test_index=3)
    assert outputs[1]["content"] == ("Here are some output grids of an ARC task. Write a new output grid that follows "
                                     "the same distribution.\n\n## Output 1\n\n21\n\n## Output 2\n\n4\n\n"
                                     "## Output 3\n\n65\n87\n\n## New output")
    assert len(outputs) == 2


def test_answer_indices_of_each_version():
    # TASK: 2 train examples and 1 test input with its output; the same task without its test output
    unsolved = TASK.replace(test=[Example(TASK.test[0].input)])
    expected = {"output-from-examples-v0": ([0], []), "output-from-examples-v1": ([0], []),
                "input-from-inputs-v0": ([0, 1, 2], [0, 1, 2]), "output-from-outputs-v0": ([0, 1, 2], [0, 1])}
    assert {v: (answer_indices(TASK, v), answer_indices(unsolved, v)) for v in PROMPT_VERSIONS} == expected


@pytest.mark.parametrize("version", sorted(PINNED))
def test_training_view_gives_the_same_chat_with_the_target_last(version):
    for index in answer_indices(TASK, version):
        view, test_index = training_view(TASK, version, index)
        assert build_messages(view, ENCODER, version, test_index) == build_messages(TASK, ENCODER, version, index)
    # new-grid prompts: the target (here the test input, index 2) is the view's only test example, so dropping the
    # last train examples to fit max_seq_len drops shown grids, never the target
    if version == "input-from-inputs-v0":
        view, test_index = training_view(TASK, version, 2)
        assert (view.train, view.test, test_index) == (TASK.train, TASK.test, -1)
        view, _ = training_view(TASK, version, 0)
        assert (view.train, view.test) == ((TASK.train[1], TASK.test[0]), (TASK.train[0],))
        assert build_messages(view.replace(train=view.train[:1]), ENCODER, version, -1)[2] == \
            {"role": "assistant", "content": "12"}


def test_unknown_version_lists_the_known_ones():
    message = ("unknown prompt version 'output-from-examples-v9'; known versions: input-from-inputs-v0, "
               "output-from-examples-v0, output-from-examples-v1, output-from-outputs-v0")
    with pytest.raises(UnknownPromptError) as error:
        build_messages(TASK, ENCODER, "output-from-examples-v9")
    assert str(error.value) == message
    with pytest.raises(UnknownPromptError):
        check_prompt_version("v0")
    assert check_prompt_version("output-from-examples-v1") == "output-from-examples-v1"


def test_render_segments_of_a_task(tokenizer):
    segments = render_segments(build_messages(TASK, ENCODER, "output-from-examples-v1"), tokenizer)
    assert segments == [
        Segment(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
                f"<|im_start|>user\n{PINNED['output-from-examples-v1'][0]}<|im_end|>\n"
                "<|im_start|>assistant\n", False),
        Segment("65\n87<|im_end|>\n", True),
    ]
    # the prompt the model reads at inference is exactly the non-answer text the trainer used
    assert render_prompt(build_messages(TASK, ENCODER, "output-from-examples-v1"), tokenizer) == segments[0].text




def test_render_segments_of_a_multi_turn_chat(tokenizer):
    segments = render_segments(CHAT, tokenizer)
    assert [s.text for s in segments if s.is_answer] == ["2<|im_end|>\n", "0<|im_end|>\n", "7<|im_end|>\n"]
    assert [s.is_answer for s in segments] == [False, True, False, True, False, True]
    assert segments[2].text == "<|im_start|>user\nHow many objects of color 5?<|im_end|>\n<|im_start|>assistant\n"
    # the segments put together are the template's own rendering of the whole chat
    assert "".join(s.text for s in segments) == tokenizer.apply_chat_template(CHAT, tokenize=False)


def test_render_segments_of_a_chat_without_answer_is_the_generation_prompt(tokenizer):
    segments = render_segments(CHAT[:2], tokenizer)
    assert segments == [Segment("<|im_start|>system\nCount objects.<|im_end|>\n"
                                "<|im_start|>user\nHow many objects of color 3?<|im_end|>\n"
                                "<|im_start|>assistant\n", False)]


def test_module_doctest():
    assert doctest.testmod(arc_exp.data.prompts).failed == 0
