"""The synthetic proof of the evaluation path: `python train.py` on the shapes set asked in the
benchmarks' styles, then `python evaluate.py` on the shapes benchmarks (generated in the released
formats, read by the real readers, scored as the field scores them), then the same checkpoint on
a copy of those files whose images are shuffled between questions: the scores fall to chance, so
they came from the images and not from the text.

Three epochs (the recipe's 32 cut short, to fit the suite) learn the short answers, the captions,
SEED-Bench-format multiple choice as SEED-Bench ranks answers and MMBench-format circular choice
(the model names the right option's text, which MMBench's extraction maps to its letter).
Measured 2026-12-06: VQAv2-format 92.5 / 95.0 en / zh, GQA-format 90.0 / 96.0, SEED 97.0, MMBench
circular 89.0 / 94.0, CIDEr 2.05; with the images shuffled 22.0 / 22.5, 21.0 / 21.5, 30.0, 21.0 /
22.0 and 0.63 (a reply naming another image's colour or shape is right 1 time in 6 or 4).  The
yes/no sets need a longer run (README, "Measured": "Synthetic benchmarks")."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO
from tests.helpers.benchmark_files import shuffle_images

TRAIN = os.path.join(REPO, "lavis/projects/synthetic/shapes_styles_tiny.yaml")
SETS = (
    "shapes_vqav2",
    "shapes_vqav2_zh",
    "shapes_gqa",
    "shapes_gqa_zh",
    "shapes_seed_bench",
    "shapes_mmbench",
    "shapes_mmbench_cn",
    "shapes_coco_caption",
)


def run(script, cfg, cache, *options):
    env = dict(os.environ, LAVIS_CACHE_ROOT=str(cache))
    cmd = [sys.executable, os.path.join(REPO, script), "--cfg-path", str(cfg), "--options", *options]
    proc = subprocess.run(cmd, cwd=cache.parent, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def eval_config(tmp_path):
    """lavis/projects/eval/shapes_all.yaml with the sets this test scores."""
    with open(os.path.join(REPO, "lavis/projects/eval/shapes_all.yaml"), encoding="utf-8") as handle:
        cfg = yaml.safe_load(handle)
    assert set(SETS) <= set(cfg["datasets"])
    cfg["datasets"] = {name: {} for name in SETS}
    path = tmp_path / "shapes_eval.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def scores(output_dir):
    results = {name: json.loads((output_dir / name / "results.json").read_text())["scores"] for name in SETS}
    return {name: headline(s) for name, s in results.items()}


def headline(score):
    """The figure a set is judged by: CIDEr, MMBench's circular overall, or the overall accuracy."""
    if "CIDEr" in score:
        return score["CIDEr"]
    return score["circular"]["overall"] if "circular" in score else score["overall"]


@pytest.mark.slow
def test_trained_styles_score_well_above_chance_and_shuffled_images_fall_to_chance(tmp_path):
    cache = tmp_path / "cache"
    run("train.py", TRAIN, cache, f"run.output_dir={tmp_path / 'out'}", "run.max_epoch=3")
    (job,) = (tmp_path / "out").iterdir()
    cfg = eval_config(tmp_path)
    run("evaluate.py", cfg, cache, f"model.finetuned={job}", f"run.output_dir={tmp_path / 'right'}")
    shuffled = tmp_path / "shuffled" / "cache"
    shuffle_images(cache / "dataset" / "shapes_benchmarks", shuffled / "dataset" / "shapes_benchmarks")
    run("evaluate.py", cfg, shuffled, f"model.finetuned={job}", f"run.output_dir={tmp_path / 'wrong'}")
    right, wrong = scores(tmp_path / "right"), scores(tmp_path / "wrong")
    print(json.dumps({"right": right, "shuffled": wrong}))
    # VQA accuracy and GQA exact match in %: chance is 1/8 on a colour, 1/4 on a shape; SEED-Bench
    # (its own answer ranking over four options): 1/4; MMBench circular, for a reply that names a
    # colour or shape of another image: 1/6 or 1/4 (a letter guessed at random: 1/256)
    for name in SETS[:7]:
        assert right[name] >= 50.0 and wrong[name] <= 40.0, (name, right[name], wrong[name])
    # CIDEr: a caption of another image still shares its article and often a colour or a shape word
    assert right["shapes_coco_caption"] >= 1.2 and wrong["shapes_coco_caption"] <= right["shapes_coco_caption"] / 2
