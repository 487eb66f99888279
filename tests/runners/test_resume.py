"""Exact resume: an interrupted run, resumed from any checkpoint, ends with the uninterrupted run's weights.

In-process runs cover mid-epoch checkpoints with gradient accumulation, dropout and random
image augmentation (so RNG states, data order and augmentation all have to come back); the
slow test kills a real `train.py` process with SIGKILL mid-epoch and resumes it with
`--resume auto`.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lavis.common import checkpoint
from tests.helpers import REPO
from tests.helpers.runs import make_runner, read_log, run_config

AUGMENTED = {"name": "blip2_image_train", "image_size": 64, "min_scale": 0.5}


def augmented_config(shapes_root, output_dir, **run):
    cfg = run_config(
        shapes_root, output_dir, max_epoch=2, valid_splits=[], accum_grad_iters=2, save_freq_iters=1, **run
    )
    cfg.config.datasets.shapes_instruction.vis_processor.train = AUGMENTED
    cfg.config.model.qformer_arch.dropout = 0.1  # so that RNG states matter
    return cfg


def final_weights(job_dir, epoch):
    return torch.load(os.path.join(job_dir, f"checkpoint_{epoch}.pth"), weights_only=True)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def uninterrupted(shapes_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    make_runner(augmented_config(shapes_root, out), job="job").train()
    return out / "job"


def test_a_run_writes_mid_epoch_checkpoints_after_optimizer_steps(uninterrupted):
    names = sorted(os.listdir(uninterrupted))
    # 40 samples / batch 8 = 5 micro-batches per epoch, accumulation 2: steps after 2 and 4 micro-batches
    assert [n for n in names if n.startswith("checkpoint_")] == [
        "checkpoint_0.pth",
        "checkpoint_0_iter2.pth",
        "checkpoint_0_iter4.pth",
        "checkpoint_1.pth",
        "checkpoint_1_iter2.pth",
        "checkpoint_1_iter4.pth",
    ]
    ckpt = torch.load(uninterrupted / "checkpoint_1_iter2.pth", weights_only=True)
    assert (ckpt["epoch"], ckpt["iters"]) == (1, 2) and ckpt["optimizer"]["state"]


@pytest.mark.parametrize("checkpoint", ["checkpoint_0_iter2.pth", "checkpoint_0.pth", "checkpoint_1_iter4.pth"])
def test_resuming_from_any_checkpoint_ends_with_the_same_weights(shapes_root, tmp_path, uninterrupted, checkpoint):
    cfg = augmented_config(shapes_root, tmp_path, resume_ckpt_path=str(uninterrupted / checkpoint))
    torch.manual_seed(1234)  # whatever the RNG holds before, the checkpoint's states take over
    runner = make_runner(cfg, job="resumed")
    runner.train()
    assert_same_weights(final_weights(tmp_path / "resumed", 1), final_weights(uninterrupted, 1))


def test_resume_without_rng_states_differs_so_the_states_matter(shapes_root, tmp_path, uninterrupted):
    ckpt = torch.load(uninterrupted / "checkpoint_0_iter2.pth", weights_only=True)
    ckpt["rng"] = []
    torch.save(ckpt, tmp_path / "no_rng.pth")
    runner = make_runner(
        augmented_config(shapes_root, tmp_path, resume_ckpt_path=str(tmp_path / "no_rng.pth")), job="resumed"
    )
    runner.train()
    ours, reference = final_weights(tmp_path / "resumed", 1), final_weights(uninterrupted, 1)
    assert any(not torch.equal(ours[n], reference[n]) for n in ours)  # dropout draws differ


def test_resume_auto_continues_the_newest_job_in_its_folder_and_rewrites_its_log(shapes_root, tmp_path, uninterrupted):
    job = tmp_path / "20260101000000"
    job.mkdir()
    for name in ("checkpoint_0.pth", "checkpoint_1_iter2.pth"):
        (job / name).write_bytes((uninterrupted / name).read_bytes())
    log = read_log(uninterrupted / "log.jsonl")
    with open(job / "log.jsonl", "w", encoding="utf-8") as handle:
        for record in log:
            handle.write(json.dumps(record) + "\n")
        handle.write('{"epoch": 1, "it')  # cut short by the kill
    shutil.copytree(uninterrupted / "tensorboard", job / "tensorboard")  # holds all 6 steps already
    runner = make_runner(augmented_config(shapes_root, tmp_path, resume_ckpt_path="auto"), job="new")
    assert runner.resume_path == str(job / "checkpoint_1_iter2.pth") and runner.output_dir == str(job)
    runner.train()
    assert not (tmp_path / "new").exists()
    assert_same_weights(final_weights(job, 1), final_weights(uninterrupted, 1))
    resumed_log = [r for r in read_log(job / "log.jsonl") if "iter" in r]
    assert [(r["epoch"], r["iter"]) for r in resumed_log] == [(e, i) for e in range(2) for i in range(5)]
    assert [r["loss"] for r in resumed_log] == [r["loss"] for r in log if "iter" in r]
    events = EventAccumulator(str(job / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]  # steps 5-6 purged, then rewritten


def test_resume_auto_without_checkpoints_starts_a_new_run(shapes_root, tmp_path):
    runner = make_runner(
        run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], resume_ckpt_path="auto"), job="new"
    )
    assert runner.resume_path is None and runner.output_dir == os.path.join(str(tmp_path), "new")


def test_keep_last_n_counts_mid_epoch_checkpoints(shapes_root, tmp_path):
    make_runner(augmented_config(shapes_root, tmp_path, keep_last_n=2), job="job").train()
    assert sorted(n for n in os.listdir(tmp_path / "job") if n.endswith(".pth")) == [
        "checkpoint_1.pth",
        "checkpoint_1_iter4.pth",
    ]


def test_checkpoint_positions_order_mid_epoch_before_epoch_end(tmp_path):
    for name in (
        "checkpoint_1.pth",
        "checkpoint_0_iter10.pth",
        "checkpoint_0.pth",
        "checkpoint_0_iter2.pth",
        "checkpoint_1_iter4.pth",
        "notes.pth",
    ):
        (tmp_path / name).write_bytes(b"")
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(tmp_path)] == [
        "checkpoint_0_iter2.pth",
        "checkpoint_0_iter10.pth",
        "checkpoint_0.pth",
        "checkpoint_1_iter4.pth",
        "checkpoint_1.pth",
    ]
    newer = tmp_path / "out" / "20260102000000"
    older = tmp_path / "out" / "20260101000000"
    for folder in (older, newer / "tensorboard"):
        folder.mkdir(parents=True)
    (older / "checkpoint_3.pth").write_bytes(b"")
    assert checkpoint.latest_checkpoint(tmp_path / "out") == str(older / "checkpoint_3.pth")  # newest job has none yet
    (newer / "checkpoint_0_iter2.pth").write_bytes(b"")
    assert checkpoint.latest_checkpoint(tmp_path / "out") == str(newer / "checkpoint_0_iter2.pth")


# -- a real process, killed -------------------------------------------------------------------
KILL_EPOCHS = 4  # the kill lands in epoch 1; the other epochs are the margin before the run ends


def train_cmd(shapes_root, output_dir, *extra):
    options = [
        "run.device=cpu",
        "run.threads=1",
        f"run.max_epoch={KILL_EPOCHS}",
        "run.batch_size_train=4",
        "run.save_freq_iters=1",
        "run.valid_splits=[]",
        f"run.output_dir={output_dir}",
        f"datasets.shapes_instruction.build_info.annotations.train.storage={shapes_root / 'train.json'}",
        f"datasets.shapes_instruction.build_info.annotations.val.storage={shapes_root / 'val.json'}",
        f"datasets.shapes_instruction.build_info.images.storage={shapes_root / 'image'}",
        "datasets.shapes_instruction.generator.num_train=40",
        "datasets.shapes_instruction.generator.num_val=12",
    ]
    return [sys.executable, os.path.join(REPO, "train.py"), *extra, "--options", *options]


def logged_iters(output_dir):
    logs = list(output_dir.glob("*/log.jsonl"))
    if not logs:
        return []
    return [line for line in logs[0].read_text(encoding="utf-8").splitlines() if '"iter"' in line]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_auto_ends_with_the_uninterrupted_weights(shapes_root, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    full = subprocess.run(
        train_cmd(shapes_root, tmp_path / "full"), cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert full.returncode == 0, full.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(shapes_root, killed_dir), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    # kill in epoch 1 (10 iterations per epoch), leaving the run 2 more epochs it could finish in
    while len(logged_iters(killed_dir)) < 13 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (job,) = list(killed_dir.iterdir())
    assert not (job / f"checkpoint_{KILL_EPOCHS - 1}.pth").exists()

    resumed = subprocess.run(
        train_cmd(shapes_root, killed_dir, "--resume", "auto"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert list(killed_dir.iterdir()) == [job]
    (full_job,) = list((tmp_path / "full").iterdir())
    assert_same_weights(final_weights(job, KILL_EPOCHS - 1), final_weights(full_job, KILL_EPOCHS - 1))
    assert [json.loads(line)["loss"] for line in logged_iters(killed_dir)] == [
        json.loads(line)["loss"] for line in logged_iters(tmp_path / "full")
    ]
