"""MMBench's dev TSV: options, NaN hints, base64 images, CSV quoting."""

import io
import os

from PIL import Image

from lavis.datasets.eval_data import mmbench
from tests.helpers.benchmark_files import BLUE, MMBENCH_HEADER, RED, mmbench_rows, png_bytes, write_tsv


def test_rows_become_items(mmbench_tsv):
    first, second = mmbench.read_mmbench(str(mmbench_tsv))
    assert first["question_id"] == "241" and second["question_id"] == "1001"
    assert first["question"] == 'Which "word" is on the sign?'  # quoted as pandas writes it
    assert first["choices"] == {"A": "STOP", "B": "GO", "C": "EXIT"}  # the empty D is absent
    assert first["hint"] is None  # "nan"
    assert first["answers"] == ["A"]
    assert first["meta"] == {
        "index": "241",
        "category": "ocr",
        "l2-category": "fine-grained_perception (instance-level)",
        "split": "dev",
        "source": "textvqa",
        "lang": "en",
    }
    assert second["question"] == "Which colour dominates?\nPick one."
    assert second["choices"] == {"A": "red", "B": "green", "C": "blue", "D": "yellow"}
    assert second["hint"] == "The image is a flat colour." and second["answers"] == ["C"]
    for item, colour in ((first, RED), (second, BLUE)):
        assert isinstance(item["image"], bytes) and item["image"] == png_bytes(colour)
        with Image.open(io.BytesIO(item["image"])) as image:
            assert image.convert("RGB").getpixel((3, 2)) == colour


def test_cn_file_name_short_image_references_and_test_split_without_answers(tmp_path):
    rows = mmbench_rows()
    rows.append(["1002", "第二个问题", "nan", "是", "否", "nan", "nan", "B", "ocr", "241", "x", "y", "nan", "dev"])
    items = mmbench.read_mmbench(str(write_tsv(tmp_path / "mmbench_dev_cn_20231003.tsv", [MMBENCH_HEADER] + rows)))
    assert items[2]["image"] == items[0]["image"] and items[2]["choices"] == {"A": "是", "B": "否"}
    assert {i["meta"]["lang"] for i in items} == {"cn"}
    header = [c for c in MMBENCH_HEADER if c != "answer"]
    rows = [[v for c, v in zip(MMBENCH_HEADER, row) if c != "answer"] for row in mmbench_rows()]
    items = mmbench.read_mmbench(str(write_tsv(tmp_path / "mmbench_test_en_20231003.tsv", [header] + rows)))
    assert [i["answers"] for i in items] == [[], []]


def test_required_files(tmp_path):
    path = os.path.join(str(tmp_path), "mmbench_dev_20230712.tsv")
    assert [(k, p) for k, p, _ in mmbench.required_files(path)] == [("path", path)]
