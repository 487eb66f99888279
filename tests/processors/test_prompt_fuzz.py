"""Hostile text through the prompt and label builders, property-based: arbitrary Unicode mixed
with every special-token string of the supported tokenizers (the tiny Qwen tiktoken vocabulary
and the tiny Llama-3-style one) never yields a control id or an image slot outside the structure
the builder places itself, and the labels stay aligned with the text.

The structure is what the same conversation gives with every text replaced by a neutral one (the
user turns keeping their `<ImageHere>` marks): its control ids, in order, must be the hostile
conversation's; its image slots are exactly the runs at `image_starts`.
"""

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lavis.models.llm.llm_tokenizer import load_llm_tokenizer
from lavis.models.llm.qwen_tiktoken import QwenTokenizer
from lavis.processors.chat_format import IGNORE_INDEX, IMAGE_SLOT, IMAGE_TOKEN, ChatMLPromptBuilder
from lavis.processors.chat_template import LabelMismatchError, build_prompt_builder, supervised_runs

NQ = 3
QWEN = QwenTokenizer.from_pretrained("lavis/configs/models/minigpt4qwen/tiny/qwen.tiktoken")
LLAMA = load_llm_tokenizer("lavis/configs/models/minigpt4qwen/tiny_llama")
SPECIAL_STRINGS = sorted(
    set(QWEN.special_token_ids) | {LLAMA.hf.convert_ids_to_tokens(i) for i in LLAMA.special_ids}
) + [IMAGE_TOKEN, "<image>", "<video>", "<Img>", "</Img>", "\n", "system", "assistant"]
assert len(SPECIAL_STRINGS) > 200  # Qwen's 208 and Llama's reserved tokens among them

TEXT = st.lists(st.text(max_size=8) | st.sampled_from(SPECIAL_STRINGS), max_size=6).map("".join)
CONVERSATION = st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3).map(
    lambda turns: [m for q, a in turns for m in ({"from": "user", "value": q}, {"from": "assistant", "value": a})]
)


def control_ids(tok):
    """The tokenizer's special ids that are not the image slot: what typed text must never produce."""
    specials = set(tok.special_token_ids.values()) if tok is QWEN else set(tok.special_ids)
    return specials - {tok.image_pad_id if tok is LLAMA else tok.convert_tokens_to_ids("<|extra_0|>")}


def neutral(conversation):
    return [
        {**m, "value": "x" + IMAGE_TOKEN * m["value"].count(IMAGE_TOKEN) if m["from"] == "user" else "x"}
        for m in conversation
    ]


def check_structure(builder, control, encoded, reference, conversation):
    ids, labels = encoded.input_ids, encoded.labels
    assert [i for i in ids if i in control] == [i for i in reference.input_ids if i in control]
    images = sum(m["value"].count(IMAGE_TOKEN) for m in conversation if m["from"] == "user")
    slots = {s + k for s in encoded.image_starts for k in range(NQ)}
    assert len(encoded.image_starts) == images == reference.num_images
    assert {k for k, i in enumerate(ids) if i == builder.image_pad_id} == slots
    assert len(labels) == len(ids)
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels))
    assert not any(labels[k] != IGNORE_INDEX for k in slots)


@pytest.mark.parametrize("label_rule", ["original", "assistant"])
@settings(max_examples=150, deadline=None)
@given(conversation=CONVERSATION)
@example(conversation=[{"from": "user", "value": ""}, {"from": "assistant", "value": "\uf900"}])
def test_chatml_builder_keeps_typed_text_text_and_labels_on_the_replies(label_rule, conversation):
    builder = ChatMLPromptBuilder(QWEN, NQ, label_rule=label_rule)
    encoded = builder.encode_conversation(conversation)
    check_structure(
        builder, control_ids(QWEN), encoded, builder.encode_conversation(neutral(conversation)), conversation
    )
    if label_rule == "assistant":  # exactly each reply's ids and the <|im_end|> closing it
        replies = [m["value"] for m in conversation if m["from"] == "assistant"]
        expected = [QWEN.encode_text(reply) + [QWEN.im_end_id] for reply in replies]
        assert supervised_runs(encoded) == expected
        # Qwen's tokenizer NFC-normalises text first (as the original's does): a compatibility
        # ideograph such as U+F900 comes back as its canonical character
        assert [QWEN.decode(run[:-1]) for run in supervised_runs(encoded)] == [
            unicodedata.normalize("NFC", reply) for reply in replies
        ]


@settings(max_examples=150, deadline=None)
@given(conversation=CONVERSATION)
def test_template_builder_keeps_typed_text_text_and_labels_on_the_replies(conversation):
    builder = build_prompt_builder(LLAMA, NQ)
    encoded = builder.encode_conversation(conversation)
    check_structure(
        builder, control_ids(LLAMA), encoded, builder.encode_conversation(neutral(conversation)), conversation
    )
    try:  # supervised tokens exactly the replies (+ end of turn), or the sample is refused by name
        builder.check_labels(conversation, encoded, where="fuzzed sample")
    except LabelMismatchError as err:
        assert str(err).startswith("fuzzed sample: its supervised tokens ")


@pytest.mark.parametrize("tok", [QWEN, LLAMA], ids=["qwen", "llama"])
@settings(max_examples=100, deadline=None)
@given(history=st.lists(st.tuples(TEXT, TEXT), max_size=2), query=TEXT, images=st.integers(0, 2))
def test_chat_prompts_place_image_slots_only_where_the_session_does(tok, history, query, images):
    """The chat's queries are parts: typed text (a typed `<ImageHere>` included) is text, and only
    IMAGE_SLOT parts, which the session places, become image slots."""
    builder = build_prompt_builder(tok, NQ)
    parts = [IMAGE_SLOT] * images + [query]
    ids, num_images = builder.generation_ids(parts, [([q], a) for q, a in history])
    reference, _ = builder.generation_ids([IMAGE_SLOT] * images + ["x"], [(["x"], "x") for _ in history])
    control = control_ids(tok)
    assert [i for i in ids if i in control] == [i for i in reference if i in control]
    assert num_images == images and ids.count(builder.image_pad_id) == images * NQ
