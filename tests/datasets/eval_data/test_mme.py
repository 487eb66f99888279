"""MME read from both of the release's layouts."""

import os

import pytest

from lavis.common.errors import MissingFilesError
from lavis.datasets.eval_data import mme


def test_both_layouts_give_one_item_per_line_in_sorted_order(mme_root):
    items = mme.read_mme(str(mme_root))
    assert [i["question_id"] for i in items] == [
        "artwork/10002.jpg/0",
        "artwork/10002.jpg/1",
        "artwork/10003.png/0",
        "artwork/10003.png/1",
        "count/000000006040.jpg/0",
        "count/000000006040.jpg/1",
    ]
    assert [i["answers"] for i in items] == [["yes"], ["no"], ["no"], ["yes"], ["yes"], ["no"]]
    first = items[0]
    assert first["question"] == "Does this artwork exist in the form of painting? Please answer yes or no."
    assert first["image"] == os.path.join(str(mme_root), "artwork", "images", "10002.jpg")
    assert first["meta"] == {"subtask": "artwork", "image_id": "10002.jpg"}
    assert first["choices"] is None and first["hint"] is None
    assert items[3]["question"] == "Is this artwork created by Vermeer? Please answer yes or no."  # CRLF dropped
    assert items[4]["image"] == os.path.join(str(mme_root), "count", "000000006040.jpg")
    assert items[4]["meta"] == {"subtask": "count", "image_id": "000000006040.jpg"}


def test_named_subtasks_and_the_nested_mirror_layout(mme_root, tmp_path):
    assert {i["meta"]["subtask"] for i in mme.read_mme(str(mme_root), subtasks=["count"])} == {"count"}
    nested = tmp_path / "mirror"
    nested.mkdir()
    os.rename(mme_root, nested / "MME_Benchmark")
    assert len(mme.read_mme(str(nested))) == 6


def test_missing_root_or_subtask_is_named(mme_root, tmp_path):
    with pytest.raises(MissingFilesError) as err:
        mme.read_mme(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(err.value) and "root" in str(err.value)
    with pytest.raises(MissingFilesError) as err:
        mme.read_mme(str(mme_root), subtasks=["count", "OCR"])
    assert err.value.missing == [("subtasks", os.path.join(str(mme_root), "OCR"), "MME subtask folder 'OCR'")]
