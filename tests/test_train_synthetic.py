"""The synthetic proof of the multi-image path, end to end with `python train.py`.

Trains the tiny model on the generated image pairs and reads the held-out accuracies the run
prints: on the val pairs, and (its test split) on the same pairs swapped, each answered with
the other image.  A model blind to the images' order answers both alike and cannot score high
on both.  (The video path's proof, the same way: tests/test_train_video.py.)
"""

import json

import pytest

from lavis.datasets.synthetic.shape_pairs import ANSWERS as PAIR_ANSWERS
from lavis.datasets.synthetic.shape_pairs import ensure_shape_pairs
from tests.helpers.train_script import as_test_split, train


@pytest.mark.slow
def test_shape_pairs_learns_which_image_is_red_and_follows_a_swap(tmp_path):
    cfg = "lavis/projects/synthetic/shape_pairs_tiny.yaml"
    root = tmp_path / "cache" / "dataset" / "shape_pairs"
    ensure_shape_pairs(str(root))  # the config's generator settings (the defaults): train.py reuses it
    swapped = []
    for row in json.loads((root / "val.json").read_text(encoding="utf-8")):
        answers = PAIR_ANSWERS[row["lang"]]
        answer = answers[1 - answers.index(row["conversations"][1]["value"])]
        turns = [row["conversations"][0], {"from": "assistant", "value": answer}]
        swapped.append({**row, "image": row["image"][::-1], "conversations": turns})
    (root / "val_swapped.json").write_text(json.dumps(swapped, ensure_ascii=False), encoding="utf-8")
    # the config's own 5 epochs (100.0 % held-out and swapped, 2026-12-03); 3 and 4 epochs fell
    # under the 90 % bars in some runs (README)
    swapped_split = as_test_split("shape_pairs", "dataset/shape_pairs/val_swapped.json")
    runs = train(tmp_path, cfg, f"run.output_dir={tmp_path / 'out'}", *swapped_split)
    (accuracy, total, groups), (accuracy_swapped, total_swapped, _) = runs["val"], runs["test"]
    assert total == total_swapped == 200 and accuracy >= 90.0 and min(groups.values()) >= 85.0, groups  # chance: 50 %
    assert accuracy_swapped >= 90.0
