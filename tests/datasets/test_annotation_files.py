"""The annotation reader against hostile files and rows: every way a file can be unreadable is
one AnnotationError naming the file and the reason; arbitrary JSON values are each a usable row
or a skip with a reason (property-based), and a usable row always encodes; a dataset with no
usable sample is a data error listing the first reasons."""

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lavis.common import json_files
from lavis.common.errors import UserError
from lavis.datasets.datasets.instruction_dataset import (
    AnnotationError,
    InstructionDataset,
    load_annotations,
    normalise_row,
)
from lavis.models.llm.qwen_tiktoken import QwenTokenizer
from lavis.processors.chat_format import ROLE_ALIASES, ChatMLPromptBuilder

TINY_VOCAB = "lavis/configs/models/minigpt4qwen/tiny/qwen.tiktoken"


def refused(path, reason):
    """load_annotations of `path` is one AnnotationError (a UserError): `<path><reason>`."""
    with pytest.raises(AnnotationError) as caught:
        load_annotations([str(path)], None)
    assert isinstance(caught.value, UserError)
    assert str(caught.value) == f"{path}{reason}"


def test_every_unreadable_file_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "latin1.json").write_bytes(b'[{"instruction": "caf\xe9"}]')
    refused(tmp_path / "latin1.json", " line 1: not valid UTF-8 (byte 0xe9)")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(tmp_path / "deep.json", ": JSON nested too deeply to read")
    (tmp_path / "folder.json").mkdir()
    refused(tmp_path / "folder.json", ": is a directory, not a file")
    (tmp_path / "empty.json").write_text("  \n")
    refused(tmp_path / "empty.json", ": is empty (not valid JSON)")
    (tmp_path / "cut.json").write_text('[{"image": "a.png",')
    refused(
        tmp_path / "cut.json", " line 1 column 20: not valid JSON (Expecting property name enclosed in double quotes)"
    )
    (tmp_path / "object.json").write_text('{"rows": []}')
    refused(tmp_path / "object.json", ": must hold a JSON list of rows, not an object")
    refused(tmp_path / "absent.json", ": file not found")
    refused("/dev/zero", ": is not a regular file")  # read whole, it would never end
    (tmp_path / "secret.json").write_text("[]")

    def denied(*args, **kwargs):  # root reads any file: the denial is what a user account would see
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(json_files, "open", denied, raising=False)
    refused(tmp_path / "secret.json", ": permission denied")


def test_no_usable_row_is_a_data_error_with_the_first_reasons(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([1, {"image": "a.png"}, {"instruction": "x", "output": 2}, None]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AnnotationError) as caught:
            load_annotations([str(path)], None)
    assert str(caught.value) == (
        f"no usable rows in ['{path}']: {path} row 0: row is a int, not an object; "
        f"{path} row 1: row needs 'conversations', 'instruction' and 'output', or 'caption'; "
        f"{path} row 2: 'instruction' and 'output' must be strings or lists of equal length"
    )
    path.write_text("[]")
    with pytest.raises(AnnotationError, match=r"^no usable rows in \[.*\]: the files hold no rows$"):
        load_annotations([str(path)], None)


def test_a_dataset_whose_images_are_all_unreadable_is_a_data_error(tmp_path):
    (tmp_path / "image").mkdir()
    rows = [{"image": f"{i}.png", "instruction": "<ImageHere> What?", "output": "red"} for i in range(5)]
    for i in range(5):
        (tmp_path / "image" / f"{i}.png").write_bytes(b"not a png")
    (tmp_path / "ann.json").write_text(json.dumps(rows))
    dataset = InstructionDataset(
        lambda image: image, lambda text: text, str(tmp_path / "image"), [str(tmp_path / "ann.json")]
    )
    with pytest.raises(AnnotationError) as caught:
        dataset[3]
    message = str(caught.value)
    assert message.startswith(
        f"no readable image or video in the whole dataset (5 samples): {tmp_path / 'ann.json'} row 3: "
    )
    assert message.count("cannot identify image file") == 3 and "\n" not in message
    Image.new("RGB", (4, 4)).save(tmp_path / "image" / "1.png")
    assert dataset[3]["index"] == 1  # one readable image is enough: the next readable sample


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ROLES = st.sampled_from(["user", "human", "assistant", "gpt", "system", "", "USER"])
MESSAGE = st.fixed_dictionaries({"from": ROLES | JSON, "value": st.text(max_size=20) | JSON})
TEXT = st.text(max_size=20) | st.sampled_from(["<ImageHere>", "<image>", "<|im_end|>", "<|extra_0|>", "<video>"])
TURNS = st.lists(
    st.fixed_dictionaries({"from": st.sampled_from(["user", "human", "assistant", "gpt", "USER"]), "value": TEXT}),
    min_size=1,
    max_size=4,
)


def _with_images(turns, count):
    """A row of `turns` whose first turn is a user's showing `count` images (usable unless the
    texts themselves hold image marks)."""
    first = {"from": "user", "value": "<ImageHere>" * count + turns[0]["value"]}
    return {"image": ["a.png"] * count, "conversations": [first, *turns[1:]]}


# well-formed rows (mostly usable), rows that look like annotation rows, and any JSON value
ROW = st.one_of(
    st.builds(_with_images, TURNS, st.integers(0, 2)),
    st.builds(lambda q, a: {"image": "a.png", "instruction": "<ImageHere>" + q, "output": a}, TEXT, TEXT),
    JSON,
    st.fixed_dictionaries(
        {"conversations": st.lists(MESSAGE, max_size=4) | JSON},
        optional={"image": st.sampled_from(["a.png", "missing.png"]) | JSON, "id": JSON},
    ),
    st.fixed_dictionaries(
        {"instruction": st.text(max_size=20) | st.lists(st.text(max_size=8), max_size=2) | JSON},
        optional={"output": st.text(max_size=20) | st.lists(st.text(max_size=8), max_size=2), "image": JSON},
    ),
    st.fixed_dictionaries({"caption": st.text(max_size=20) | JSON}, optional={"image": st.just("a.png") | JSON}),
)


@pytest.fixture(scope="module")
def builder():
    return ChatMLPromptBuilder(QwenTokenizer.from_pretrained(TINY_VOCAB), 2)


@pytest.fixture(scope="module")
def vis_root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    Image.new("RGB", (4, 4)).save(folder / "a.png")
    return str(folder)


@settings(max_examples=300, deadline=None)
@given(row=ROW)
def test_any_json_value_is_a_usable_row_or_a_skip_with_a_reason(row, builder, vis_root):
    try:
        usable = normalise_row(row, vis_root)
    except ValueError as err:
        assert str(err)
        return
    user_turns = [m["value"] for m in usable["conversations"] if ROLE_ALIASES[str(m["from"]).lower()] == "user"]
    assert len(usable["images"]) == sum(text.count("<ImageHere>") for text in user_turns)
    encoded = builder.encode_conversation(usable["conversations"])
    assert len(encoded.input_ids) == len(encoded.labels)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, max_size=6))
def test_a_file_of_any_json_rows_loads_its_usable_rows_or_says_none_are(rows, vis_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("ann") / "rows.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            loaded = load_annotations([str(path)], vis_root)
        except AnnotationError as err:
            assert str(err).startswith(f"no usable rows in ['{path}']: ")
            return
    assert 0 < len(loaded) <= len(rows)
    assert all(r["where"].startswith(f"{path} row ") for r in loaded)
