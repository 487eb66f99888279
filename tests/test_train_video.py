"""The synthetic proof of the video path, end to end with `python train.py`.

Trains the tiny model on the generated moving-shape clips (which way does the shape move, in
English and Chinese; chance 25 %) and reads the held-out accuracies the run prints: on the val
clips, and (its test split) on the same clips reversed, each answered with the opposite
direction.  A model
blind to the frames' order answers a clip and its reverse alike and cannot score high on both.
(A file of its own, so that the suite's two workers can run it beside the image-pair proof.)
"""

import json

import pytest

from lavis.datasets.synthetic.moving_shapes import DIRECTIONS
from tests.helpers.train_script import as_test_split, train

REVERSED = "dataset/moving_shapes/val_reversed.json"  # written by the generator beside val.json


@pytest.mark.slow
def test_moving_shapes_learns_the_direction_and_follows_reversed_frames(tmp_path):
    cfg = "lavis/projects/synthetic/moving_shapes_tiny.yaml"
    # 3 of the config's 4 epochs, to keep the suite short (97.5 % of 200 held-out, 2026-12-03);
    # the same run scores the reversed clips as its test split (one process, one model load)
    options = [f"run.output_dir={tmp_path / 'out'}", "run.max_epoch=3", *as_test_split("moving_shapes", REVERSED)]
    runs = train(tmp_path, cfg, *options)
    (accuracy, total, groups), (accuracy_reversed, total_reversed, _) = runs["val"], runs["test"]
    assert total == total_reversed == 200 and accuracy >= 90.0 and min(groups.values()) >= 85.0, groups  # chance: 25 %
    assert set(groups) == {"direction/en", "direction/zh"}
    assert accuracy_reversed >= 90.0
    root = tmp_path / "cache" / "dataset" / "moving_shapes"
    reversed_rows = json.loads((root / "val_reversed.json").read_text(encoding="utf-8"))
    answers = [row["conversations"][1]["value"] for row in json.loads((root / "val.json").read_text(encoding="utf-8"))]
    # each reversed clip is answered the other way: the direction counts are the same, pairs differ
    assert all(a != r["conversations"][1]["value"] for a, r in zip(answers, reversed_rows, strict=True))
    assert {a for a in answers if a.isascii()} == set(DIRECTIONS)
