"""VQAv2 (and OK-VQA, same format) and GQA testdev-balanced."""

import os

import pytest

from lavis.common.errors import MissingFilesError
from lavis.datasets.eval_data import vqa
from tests.helpers.benchmark_files import VQA_ANSWERS


def test_vqav2_questions_with_their_ten_answers(vqa_files):
    questions, annotations, images = vqa_files
    items = vqa.read_vqa(str(questions), str(annotations), str(images))
    assert [i["question_id"] for i in items] == ["262148000", "262148001", "393225000"]
    for item in items:
        assert item["answers"] == VQA_ANSWERS[int(item["question_id"])][0] and len(item["answers"]) == 10
    assert items[0]["question"] == "Where is he looking?"
    assert items[0]["image"] == os.path.join(str(images), "COCO_val2014_000000262148.jpg")
    assert items[2]["meta"] == {"image_id": 393225, "answer_type": "yes/no", "question_type": "is this a"}
    # test-dev: no annotations file, no ground truth
    assert [i["answers"] for i in vqa.read_vqa(str(questions), None, str(images))] == [[], [], []]


def test_missing_annotations_file_is_named(vqa_files):
    questions, annotations, images = vqa_files
    os.remove(annotations)
    with pytest.raises(MissingFilesError) as err:
        vqa.read_vqa(str(questions), str(annotations), str(images))
    assert err.value.missing[0][:2] == ("annotations_path", str(annotations))


def test_gqa(gqa_files):
    questions, images = gqa_files
    first, second = vqa.read_gqa(str(questions), str(images))
    assert first["question_id"] == "201307251" and second["question_id"] == "20515613"
    assert first["question"] == "Is it an indoors or outdoors scene?" and first["answers"] == ["indoors"]
    assert first["image"] == os.path.join(str(images), "n161313.jpg")
    assert second["meta"] == {
        "image_id": "n344366",
        "structural": "verify",
        "semantic": "rel",
        "detailed": "relVerify",
        "full_answer": "No, the man is not wearing a hat.",
    }
