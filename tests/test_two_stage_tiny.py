"""The two-stage tiny demo end to end (lavis/projects/two_stage_tiny/): stage 1 trains the whole
tiny model on the shapes captions ("a red circle" / "红色的圆形"), stage 2 starts from stage 1's
newest checkpoint, found by its `model.finetuned` key alone, and trains the LLM side on the
colour / shape instructions to the default's bar on the held-out split.
"""

import os
import re
import subprocess
import sys

import pytest

from lavis.common.checkpoint import load_file
from tests.helpers import REPO

PROJECT = os.path.join(REPO, "lavis", "projects", "two_stage_tiny")


def run_stage(tmp_path, config, *options):
    env = dict(os.environ, LAVIS_CACHE_ROOT=str(tmp_path / "cache"))
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--cfg-path", os.path.join(PROJECT, config)]
    if options:
        cmd += ["--options", *options]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_two_stage_tiny_demo_reaches_the_default_bar_from_stage_1_weights(tmp_path):
    # stage 1 writes where its config says, relative to the working directory (here tmp_path)...
    stage1_dir = tmp_path / "output" / "two_stage_tiny" / "stage1_captions"
    # stage 1 on 3 of its 6 epochs, to keep the suite short (stage 2 then: 97.5 % of 400, 2026-12-03)
    proc = run_stage(tmp_path, "stage1_captions.yaml", f"run.output_dir={stage1_dir}", "run.max_epoch=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"^epoch \d+: mean loss ([\d.]+)", proc.stdout, re.M)]
    assert len(losses) >= 2 and losses[-1] < 0.5 * losses[0], proc.stdout[-2000:]  # it learned the captions
    assert "held-out" not in proc.stdout  # captions have no held-out split: nothing to evaluate
    (job1,) = list(stage1_dir.iterdir())
    stage1_ckpts = sorted(job1.glob("checkpoint_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
    assert stage1_ckpts, list(job1.iterdir())
    newest = stage1_ckpts[-1]

    # ...and stage 2 finds it by its `model.finetuned` key alone (no override of it here)
    proc = run_stage(tmp_path, "stage2_instructions.yaml", f"run.output_dir={tmp_path / 'stage2'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = re.search(r"loaded (\d+) tensors from (\S+)", proc.stderr)
    assert loaded, proc.stderr[-3000:]
    assert os.path.samefile(loaded.group(2), newest), (loaded.group(2), newest)
    saved = load_file(newest)["model"]
    assert int(loaded.group(1)) == len(saved)  # every tensor stage 1 trained: ViT, Q-former, proj, LLM
    assert any(k.startswith("visual_encoder.") for k in saved) and any(k.startswith("llm_model.") for k in saved)

    match = re.search(r"held-out exact-match accuracy: ([\d.]+)% of 400\s+\((.*)\)", proc.stdout)
    assert match, proc.stdout[-2000:]
    groups = {g: float(v) for g, v in re.findall(r"(\w+/\w+): ([\d.]+)%", match.group(2))}
    assert set(groups) == {"colour/en", "colour/zh", "shape/en", "shape/zh"}, groups
    assert float(match.group(1)) >= 90.0, proc.stdout[-2000:]  # the default's bar; chance is about 21%
    (job2,) = list((tmp_path / "stage2").iterdir())
    assert (job2 / "log.jsonl").exists() and list(job2.glob("checkpoint_*.pth"))
