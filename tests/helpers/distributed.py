"""Helpers of the multi-process tests: a run config for 2 gloo ranks, `train.py` under torchrun
or alone in a subprocess, and the job folder's training records."""

import json
import os
import socket
import subprocess
import sys
import textwrap

from tests.helpers import REPO

BATCH, EPOCHS = 4, 2  # 40 train samples: 20 per rank, 5 steps per epoch


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(shapes_root, tmp_path):
    path = tmp_path / "ddp.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            model: {{arch: minigpt4qwen, model_type: tiny}}
            datasets:
              shapes_instruction:
                generator: {{num_train: 40, num_val: 12}}
                build_info:
                  annotations:
                    train: {{storage: {shapes_root / "train.json"}}}
                    val: {{storage: {shapes_root / "val.json"}}}
                  images: {{storage: {shapes_root / "image"}}}
            run:
              lr_sched: linear_warmup_cosine_lr
              init_lr: 1e-3
              min_lr: 1e-4
              warmup_lr: 1e-5
              warmup_steps: 6
              betas: [0.9, 0.95]
              grad_norm_clip: 1.0
              max_epoch: {EPOCHS}
              batch_size_train: {BATCH}
              batch_size_eval: 12
              seed: 42
              valid_splits: []
              max_new_tokens: 4
              device: cpu
              threads: 1
              dist_timeout_s: 60
            """
        )
    )
    return path


def python_path():
    """The repository first, then what the caller's PYTHONPATH holds (gpu_check.sh's carried wheels)."""
    return os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))


def torchrun(cfg_path, *options, nproc=2, timeout=300):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={free_port()}",
        os.path.join(REPO, "train.py"),
        "--cfg-path",
        str(cfg_path),
        "--options",
        *options,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=python_path())
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def single(script, cfg_path, *options, timeout=300):
    cmd = [sys.executable, "-c", script, "--cfg-path", str(cfg_path), "--options", *options]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=python_path())
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def job_dir(output_dir):
    (job,) = list(output_dir.iterdir())
    return job


def steps(job):
    return [r for r in (json.loads(line) for line in open(job / "log.jsonl", encoding="utf-8")) if "loss" in r]
