"""`python train.py` as a user runs it, for the end-to-end proofs: in a subprocess with a private
cache root, reading back the held-out accuracy the run prints for each evaluated split (its
`run.valid_splits`, then its `run.test_splits`)."""

import os
import re
import subprocess
import sys

from tests.helpers import REPO

ACCURACY = re.compile(r"^\[(\w+)\] held-out exact-match accuracy: ([\d.]+)% of (\d+)\s+\((.*)\)", re.M)


def as_test_split(dataset, storage):
    """Options that make a run also score `storage` (an annotation file under the cache root) as
    its test split, printed after its held-out val split."""
    return [f"datasets.{dataset}.build_info.annotations.test.storage={storage}", "run.test_splits=[test]"]


def held_out(stdout):
    """{split: (accuracy in %, number of samples, {group: accuracy in %})} of the splits a run's
    printed output scored."""
    splits = {}
    for split, accuracy, total, groups in ACCURACY.findall(stdout):
        by_group = {g: float(v) for g, v in re.findall(r"(\w+/\w+): ([\d.]+)%", groups)}
        splits[split] = (float(accuracy), int(total), by_group)
    assert splits, stdout[-2000:]
    return splits


def train(tmp_path, cfg, *options):
    """`held_out` of `python train.py --cfg-path cfg --options ...`, which must succeed."""
    env = dict(os.environ, LAVIS_CACHE_ROOT=str(tmp_path / "cache"))
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--cfg-path", os.path.join(REPO, cfg), "--options", *options]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return held_out(proc.stdout)
