"""Helpers of the chat tests: tiny checkpoints laid out as `python train.py` writes them.

The fixtures built from them live in `tests/conftest.py`; checkpoints are built once per test
session (cached under pytest's base temp folder):

* `trained_checkpoint`: the tiny default model after 40 optimiser steps on one two-turn
  conversation about a red circle ("What colour is the shape?" -> "red", "图中是什么形状？"
  -> "圆形"): it answers those exactly, which checks that chat prompts are built as in
  training and that replies stop at `<|im_end|>`;
* `long_checkpoint`: an untrained tiny model (a seed is chosen and checked) whose greedy
  answer to `LONG_QUESTION` about the red circle runs at least `LONG_TOKENS` tokens without
  a stop token, so a streaming answer can be interrupted.
"""

import os
import subprocess
import sys

import torch
from omegaconf import OmegaConf

import lavis  # noqa: F401
from lavis.chat import load_image
from lavis.common.checkpoint import save_file
from lavis.datasets.synthetic.shapes import draw_shape
from lavis.models import load_model_and_preprocess
from tests.helpers import REPO

QUESTION_EN = "What colour is the shape?"
QUESTION_ZH = "图中是什么形状？"
TRAIN_CONVERSATION = [
    {"from": "user", "value": f"<Img><ImageHere></Img> {QUESTION_EN}"},
    {"from": "assistant", "value": "red"},
    {"from": "user", "value": QUESTION_ZH},
    {"from": "assistant", "value": "圆形"},
]
LONG_QUESTION = "Tell me a story."
LONG_TOKENS = 200
JOB_ID = "20250101000000"


def red_circle(folder):
    path = os.path.join(folder, "red_circle.png")
    if not os.path.exists(path):
        image, _ = draw_shape("circle", "red", 64, rng=3)
        image.save(path)
    return path


def save_runner_checkpoint(model, output_dir, job_id=JOB_ID, epoch=0, run=None):
    """What RunnerBase.save_checkpoint writes, at <output_dir>/<job_id>/checkpoint_<epoch>.pth."""
    path = os.path.join(output_dir, job_id, f"checkpoint_{epoch}.pth")
    config = {"model": OmegaConf.to_container(model.cfg, resolve=True), "run": dict(run or {"seed": 42})}
    save_file(
        {"model": model.trainable_state_dict(), "optimizer": {}, "scaler": None, "config": config, "epoch": epoch}, path
    )
    return path


def build_model(seed=0, cfg_options=None):
    torch.manual_seed(seed)
    return load_model_and_preprocess("minigpt4qwen", "tiny", cfg_options=cfg_options)


def train_tiny(image_path, steps=40, seed=0):
    model, vis, _ = build_model(seed)
    image = vis["eval"](load_image(image_path)).unsqueeze(0)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is as fast, and immune to busy CPUs
    try:
        for _ in range(steps):
            loss = model({"image": image, "conversations": [TRAIN_CONVERSATION]})["loss"]
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), vis, loss.item()


def cached(tmp_path_factory, name, build):
    folder = tmp_path_factory.getbasetemp() / "chat_checkpoints" / name
    marker = folder / "path.txt"
    if marker.exists():
        return marker.read_text()
    folder.mkdir(parents=True, exist_ok=True)
    path = build(str(folder))
    marker.write_text(path)
    return path


def run_script(*args, timeout=120, env=None):
    """Run a repo script with the current Python; -> CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env
    )
