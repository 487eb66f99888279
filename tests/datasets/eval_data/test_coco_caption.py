"""COCO Karpathy test (LAVIS's two files) and NoCaps val."""

import json
import os

import pytest

from lavis.common.errors import MissingFilesError
from lavis.datasets.eval_data import EvalDataError, coco_caption
from tests.helpers.benchmark_files import KARPATHY_TEST, write_image, write_json


def test_one_item_per_image_with_the_gt_captions(karpathy_files):
    test, gt, images = karpathy_files
    items = coco_caption.read_coco_caption(str(test), str(gt), str(images))
    assert [i["question_id"] for i in items] == ["391895", "60623"]
    first = items[0]
    assert first["image"] == os.path.join(str(images), "val2014", "COCO_val2014_000000391895.jpg")
    assert first["answers"] == KARPATHY_TEST[0]["caption"] and len(first["answers"]) == 5
    assert first["meta"] == {"image_id": 391895} and first["question"] == ""
    assert coco_caption.image_id_of("val2014/COCO_val2014_000000060623.jpg") == 60623


def test_an_image_without_gt_captions_and_a_missing_gt_file(karpathy_files):
    test, gt, images = karpathy_files
    data = json.loads(gt.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 60623]
    gt.write_text(json.dumps(data))
    with pytest.raises(EvalDataError, match=r"coco_karpathy_test.json row 1: image id 60623 has no captions"):
        coco_caption.read_coco_caption(str(test), str(gt), str(images))
    os.remove(gt)
    with pytest.raises(MissingFilesError) as err:
        coco_caption.read_coco_caption(str(test), str(gt), str(images))
    assert [k for k, _, _ in err.value.missing] == ["gt_path"]


def test_nocaps_val(tmp_path):
    images = tmp_path / "nocaps" / "validation"
    write_image(images / "0013ea2087020901.jpg")
    ann = write_json(
        tmp_path / "nocaps" / "nocaps_val_4500_captions.json",
        {
            "licenses": [],
            "info": {},
            "images": [
                {"id": 0, "file_name": "0013ea2087020901.jpg", "domain": "in-domain",
                 "open_images_id": "0013ea2087020901", "height": 6, "width": 8, "coco_url": "", "date_captured": "",
                 "license": 0},
            ],
            "annotations": [{"image_id": 0, "id": 0, "caption": "A baby in a high chair."},
                            {"image_id": 0, "id": 1, "caption": "A child eating."}],
        },
    )  # fmt: skip
    (item,) = coco_caption.read_nocaps(str(ann), str(images))
    assert item["question_id"] == "0" and item["answers"] == ["A baby in a high chair.", "A child eating."]
    assert item["meta"] == {"image_id": 0, "domain": "in-domain"}
    assert item["image"] == os.path.join(str(images), "0013ea2087020901.jpg")
