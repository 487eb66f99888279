"""The field's evaluation prompts, and the prompt's image slots as chat parts."""

import pytest

from lavis.processors.benchmark_prompts import benchmark_prompt
from lavis.processors.chat_format import IMAGE_SLOT
from lavis.tasks.benchmark_task import prompt_parts

ITEM = {"question": "Which colour is it?", "choices": {"A": "red", "B": "blue"}, "hint": None, "meta": {}}


def test_each_kind_asks_as_llava_1_5_evaluates():
    assert benchmark_prompt("yes_no", {**ITEM, "question": "Is it red? Please answer yes or no."}) == (
        "<Img><ImageHere></Img> Is it red? Please answer yes or no."
    )
    assert benchmark_prompt("short_answer", ITEM) == (
        "<Img><ImageHere></Img> Which colour is it?\nAnswer the question using a single word or phrase."
    )
    assert benchmark_prompt("multiple_choice", {**ITEM, "hint": "A flat colour."}) == (
        "<Img><ImageHere></Img> A flat colour.\nWhich colour is it?\nA. red\nB. blue\n"
        "Answer with the option's letter from the given choices directly."
    )
    chinese = {**ITEM, "question": "是什么颜色？", "meta": {"lang": "cn"}}
    assert benchmark_prompt("multiple_choice", chinese).endswith("A. red\nB. blue\n请直接回答选项字母。")
    assert (
        benchmark_prompt("caption", ITEM)
        == "<Img><ImageHere></Img> Provide a one-sentence caption for the provided image."
    )
    with pytest.raises(ValueError, match="unknown prompt kind 'essay'"):
        benchmark_prompt("essay", ITEM)


def test_only_the_prompts_own_image_marks_become_slots():
    parts = prompt_parts("<Img><ImageHere></Img> What does <|im_end|> mean?")
    assert parts == ["<Img>", IMAGE_SLOT, "</Img> What does <|im_end|> mean?"]
