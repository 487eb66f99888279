"""The runner's output folder and checkpoints under hostile conditions: a disk that fills up
while a checkpoint is written (tmpfs, as root), temporary files of an interrupted write, and
checkpoints of the right container but the wrong content given to resume."""

import json
import os
import subprocess

import pytest
import torch

from lavis.common.checkpoint import CheckpointError, load_file, save_file
from lavis.common.utils import DiskFullError
from tests.helpers.runs import make_runner, run_config


def test_a_disk_that_fills_up_keeps_the_last_checkpoint_and_log_and_a_resume_cleans_up(shapes_root, small_tmpfs):
    # a checkpoint of the tiny model is about 12 MB: one fits in 20 MB, the second does not
    output = small_tmpfs("20m") / "out"
    runner = make_runner(run_config(shapes_root, output, max_epoch=2, valid_splits=[], tensorboard=False))
    with pytest.raises(DiskFullError) as caught:
        runner.train()
    job = output / "job"
    assert str(caught.value).startswith(f"no space left to write {job / 'checkpoint_1.pth'}: it needs about ")
    assert sorted(os.listdir(job)) == ["checkpoint_0.pth", "config.json", "curves.png", "log.jsonl"]
    assert load_file(job / "checkpoint_0.pth")["epoch"] == 0
    records = [json.loads(line) for line in (job / "log.jsonl").read_text().splitlines()]  # whole lines only
    assert [r["epoch"] for r in records] == [0] * 5 + [1] * 5
    # the user makes room (a bigger tmpfs) and resumes; a write killed half way had left its
    # temporary file, which the resumed run removes before its first step
    subprocess.run(["mount", "-o", "remount,size=40m", str(output.parent)], check=True)
    (job / ".tmp-k1ll3d.pth").write_bytes(b"\0" * 1000)
    last = str(job / "checkpoint_0.pth")
    resume = run_config(shapes_root, output, max_epoch=2, valid_splits=[], tensorboard=False, resume_ckpt_path=last)
    make_runner(resume).train()
    assert sorted(os.listdir(job)) == ["checkpoint_0.pth", "checkpoint_1.pth", "config.json", "curves.png", "log.jsonl"]
    assert len((job / "log.jsonl").read_text().splitlines()) == 10


def test_resume_refuses_a_checkpoint_of_the_right_container_but_wrong_content(shapes_root, tmp_path):
    cfg = run_config(shapes_root, tmp_path / "out", max_epoch=1, valid_splits=[])
    model = make_runner(cfg).model
    state = model.trainable_state_dict()
    name, value = next(iter(state.items()))
    good = {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 0, "iters": None, "rng": []}
    for content, message in (
        ({**good, "model": [1]}, "its 'model' entry is a list, not a mapping of parameter names to tensors"),
        ({**good, "model": {name: 1.0}}, f"model state values that are not tensors: {name} (float)"),
        ({**good, "model": {name: torch.zeros(3)}}, f"shape mismatches {name}: file (3,) vs model"),
        ({**good, "epoch": "1"}, "its 'epoch' entry ('1') is not what a run writes"),
        ({**good, "optimizer": [1]}, "its 'optimizer' entry ('list') is not what a run writes"),
        (good, "its optimizer state does not fit this run (ValueError: "),
        (
            {**good, "optimizer": {"state": {0: {"exp_avg": torch.zeros(1)}}, "param_groups": []}},
            "its optimizer state does not fit this run",
        ),
    ):
        path = save_file(content, tmp_path / "bad.pth")
        cfg.config.run.resume_ckpt_path = path
        with pytest.raises(CheckpointError) as caught:
            make_runner(cfg).train()
        assert path in str(caught.value) and message in str(caught.value), str(caught.value)
    assert value.shape != (3,)


def test_train_splits_no_dataset_has_are_a_config_error(shapes_root, tmp_path):
    from lavis.common.config import ConfigError

    for splits, absent in ((["test"], "['test']"), ([], "[]")):
        runner = make_runner(run_config(shapes_root, tmp_path / "out", train_splits=splits, valid_splits=[]))
        with pytest.raises(ConfigError) as caught:
            runner.train()
        assert str(caught.value) == f"run.train_splits {splits}: no dataset has {absent}; they have ['train', 'val']"
