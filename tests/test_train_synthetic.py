"""The synthetic proofs of the multi-image and video paths, end to end with `python train.py`.

Each trains the tiny model on a generated set, reads the held-out accuracy the run prints, then
scores the same checkpoint (`run.evaluate=True` from `model.finetuned`) on the held-out samples
with their order turned around: image pairs swapped (answered with the other image), clips
reversed (answered with the opposite direction).  A model blind to the order answers both files
alike and cannot score high on both.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from lavis.datasets.synthetic.moving_shapes import DIRECTIONS
from lavis.datasets.synthetic.shape_pairs import ANSWERS as PAIR_ANSWERS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCURACY = re.compile(r"held-out exact-match accuracy: ([\d.]+)% of (\d+)\s+\((.*)\)")


def train(tmp_path, cfg, *options):
    env = dict(os.environ, LAVIS_CACHE_ROOT=str(tmp_path / "cache"))
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--cfg-path", os.path.join(REPO, cfg), "--options", *options]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = ACCURACY.search(proc.stdout)
    assert match, proc.stdout[-2000:]
    groups = {g: float(v) for g, v in re.findall(r"(\w+/\w+): ([\d.]+)%", match.group(3))}
    return float(match.group(1)), int(match.group(2)), groups


def evaluate_on(tmp_path, cfg, dataset, annotation, job, *options):
    storage = f"datasets.{dataset}.build_info.annotations.val.storage={annotation}"
    finetuned = ["model.load_finetuned=True", f"model.finetuned={job}", "run.evaluate=True"]
    return train(tmp_path, cfg, f"run.output_dir={tmp_path / 'eval'}", storage, *finetuned, *options)


@pytest.mark.slow
def test_shape_pairs_learns_which_image_is_red_and_follows_a_swap(tmp_path):
    cfg = "lavis/projects/synthetic/shape_pairs_tiny.yaml"
    accuracy, total, groups = train(tmp_path, cfg, f"run.output_dir={tmp_path / 'out'}")
    assert total == 200 and accuracy >= 90.0 and min(groups.values()) >= 85.0, groups  # chance: 50 %
    root = tmp_path / "cache" / "dataset" / "shape_pairs"
    swapped = []
    for row in json.loads((root / "val.json").read_text(encoding="utf-8")):
        answers = PAIR_ANSWERS[row["lang"]]
        answer = answers[1 - answers.index(row["conversations"][1]["value"])]
        swapped.append(
            {
                **row,
                "image": row["image"][::-1],
                "conversations": [row["conversations"][0], {"from": "assistant", "value": answer}],
            }
        )  # noqa: E501
    (root / "val_swapped.json").write_text(json.dumps(swapped, ensure_ascii=False), encoding="utf-8")
    (job,) = (tmp_path / "out").iterdir()
    accuracy_swapped, _, _ = evaluate_on(tmp_path, cfg, "shape_pairs", str(root / "val_swapped.json"), job)
    assert accuracy_swapped >= 90.0


@pytest.mark.slow
def test_moving_shapes_learns_the_direction_and_follows_reversed_frames(tmp_path):
    cfg = "lavis/projects/synthetic/moving_shapes_tiny.yaml"
    accuracy, total, groups = train(tmp_path, cfg, f"run.output_dir={tmp_path / 'out'}")
    assert total == 200 and accuracy >= 90.0 and min(groups.values()) >= 85.0, groups  # chance: 25 %
    assert set(groups) == {"direction/en", "direction/zh"}
    root = tmp_path / "cache" / "dataset" / "moving_shapes"
    reversed_rows = json.loads((root / "val_reversed.json").read_text(encoding="utf-8"))
    answers = [row["conversations"][1]["value"] for row in json.loads((root / "val.json").read_text(encoding="utf-8"))]
    # each reversed clip is answered the other way: the direction counts are the same, pairs differ
    assert all(a != r["conversations"][1]["value"] for a, r in zip(answers, reversed_rows, strict=True))
    assert {a for a in answers if a.isascii()} == set(DIRECTIONS)
    (job,) = (tmp_path / "out").iterdir()
    accuracy_reversed, _, _ = evaluate_on(tmp_path, cfg, "moving_shapes", str(root / "val_reversed.json"), job)
    assert accuracy_reversed >= 90.0
