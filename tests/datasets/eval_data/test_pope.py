"""POPE's three JSON-lines files."""

import os

import pytest

from lavis.common.errors import MissingFilesError
from lavis.datasets.eval_data import pope


def test_each_category_file_read_in_order(pope_files):
    root, images = pope_files
    items = pope.read_pope(str(root), str(images))
    assert [i["question_id"] for i in items] == [
        f"{c}/{n}" for c in ("random", "popular", "adversarial") for n in (1, 2, 3)
    ]
    first = items[0]
    assert first["question"] == "Is there a snowboard in the image?" and first["answers"] == ["yes"]
    assert first["image"] == os.path.join(str(images), "COCO_val2014_000000310196.jpg")
    assert first["meta"] == {"category": "random", "question_index": 1, "image_id": "COCO_val2014_000000310196.jpg"}
    assert [i["answers"][0] for i in items[:3]] == ["yes", "no", "yes"]
    assert items[3]["question"] == "Is there a person in the image?"
    assert [i["meta"]["category"] for i in pope.read_pope(str(root), str(images), categories=["popular"])] == [
        "popular"
    ] * 3


def test_a_missing_category_file_is_named(pope_files):
    root, images = pope_files
    os.remove(root / "coco_pope_adversarial.json")
    with pytest.raises(MissingFilesError) as err:
        pope.read_pope(str(root), str(images))
    assert [(k, p) for k, p, _ in err.value.missing] == [
        ("root", os.path.join(str(root), "coco_pope_adversarial.json"))
    ]
