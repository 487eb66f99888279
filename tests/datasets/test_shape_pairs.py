"""The synthetic multi-image set: two images per row, exactly one red, answered by its place."""

import json
from collections import Counter

import numpy as np
from PIL import Image

from lavis.datasets.synthetic.shape_pairs import ANSWERS, ensure_shape_pairs
from lavis.datasets.synthetic.shapes import COLOURS


def red_pixels(path):
    array = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(array - np.array(COLOURS["red"])).sum(-1) < 30).sum())


def test_each_pair_has_one_red_image_and_the_answer_names_its_place(tmp_path):
    root = ensure_shape_pairs(tmp_path / "pairs", num_train=16, num_val=8, seed=0)
    for split in ("train", "val"):
        rows = json.loads((root / f"{split}.json").read_text(encoding="utf-8"))
        assert len(rows) == {"train": 16, "val": 8}[split]
        for row in rows:
            assert row["conversations"][0]["value"].count("<ImageHere>") == len(row["image"]) == 2
            reds = [red_pixels(root / "image" / name) > 50 for name in row["image"]]
            answer = row["conversations"][1]["value"]
            place = ANSWERS["en"].index(answer) if answer in ANSWERS["en"] else ANSWERS["zh"].index(answer)
            assert reds == [place == 0, place == 1]
        answers = Counter(r["conversations"][1]["value"] for r in rows)
        assert len(answers) == 4 and max(answers.values()) - min(answers.values()) <= 1  # both places, both languages
    val = json.loads((root / "val.json").read_text(encoding="utf-8"))
    assert {(r["qtype"], r["lang"]) for r in val} == {("which_red", "en"), ("which_red", "zh")}


def test_generation_is_deterministic_and_done_once(tmp_path):
    a = ensure_shape_pairs(tmp_path / "a", num_train=6, num_val=2, seed=3)
    b = ensure_shape_pairs(tmp_path / "b", num_train=6, num_val=2, seed=3)
    assert (a / "train.json").read_text() == (b / "train.json").read_text()
    assert all(
        (a / "image" / n).read_bytes() == (b / "image" / n).read_bytes() for n in ("00002_a.png", "val_00001_b.png")
    )
    other = ensure_shape_pairs(tmp_path / "c", num_train=6, num_val=2, seed=4)
    assert (other / "train.json").read_text() != (a / "train.json").read_text()
    stamp = (a / "manifest.json").stat().st_mtime_ns
    ensure_shape_pairs(a, num_train=6, num_val=2, seed=3)
    assert (a / "manifest.json").stat().st_mtime_ns == stamp
