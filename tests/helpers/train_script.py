"""`python train.py` as a user runs it, for the end-to-end proofs: in a subprocess with a private
cache root, reading back the held-out accuracy the run prints; and the same checkpoint scored on
another annotation file (`run.evaluate=True` from `model.finetuned`)."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
