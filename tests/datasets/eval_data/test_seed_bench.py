"""SEED-Bench v1: image questions only."""

import os

from lavis.datasets.eval_data import seed_bench


def test_image_questions_with_their_dimension(seed_files):
    path, images = seed_files
    items = seed_bench.read_seed_bench(str(path), str(images))
    assert [i["question_id"] for i in items] == ["101669", "1"]  # the video question is skipped
    first = items[0]
    assert first["choices"] == {"A": "One", "B": "Two", "C": "Three", "D": "Four"} and first["answers"] == ["A"]
    assert first["image"] == os.path.join(str(images), "1454426_2591111986")
    assert first["meta"] == {"dimension": "Instances Counting", "question_type_id": 5, "data_id": "1454426_2591111986"}
    assert items[1]["meta"]["dimension"] == "Scene Understanding" and items[1]["answers"] == ["C"]
