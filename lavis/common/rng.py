"""What a resumable checkpoint holds besides weights: names, RNG states, and the run's place.

`runner_base` writes `checkpoint_<epoch>.pth` when an epoch ends and, with
`run.save_freq_iters: N`, `checkpoint_<epoch>_iter<K>.pth` after every N-th optimizer step
(K micro-batches of the epoch done).  A checkpoint's position is (epoch, K); an epoch-end
checkpoint sorts after every mid-epoch one of its epoch.  `--resume auto` (or
`run.resume_ckpt_path: auto`) takes the newest position in the newest job folder under
`run.output_dir` that has any.
"""

import json
import os
import random
import re

import numpy as np
import torch

from lavis.common.utils import atomic_open

_NAME = re.compile(r"^checkpoint_(\d+)(?:_iter(\d+))?\.pth$")
EPOCH_END = float("inf")


def checkpoint_name(epoch, iters=None):
    return f"checkpoint_{epoch}.pth" if iters is None else f"checkpoint_{epoch}_iter{iters}.pth"


def checkpoint_position(filename):
    """(epoch, micro-batches done; inf at epoch end) of a checkpoint file name, or None."""
    match = _NAME.match(os.path.basename(filename))
    if not match:
        return None
    return int(match.group(1)), EPOCH_END if match.group(2) is None else int(match.group(2))


def list_checkpoints(job_dir):
    """The job folder's checkpoint paths, oldest position first."""
    if not os.path.isdir(job_dir):
        return []
    found = [(checkpoint_position(name), name) for name in os.listdir(job_dir)]
    return [os.path.join(job_dir, name) for position, name in sorted(p for p in found if p[0] is not None)]


def latest_checkpoint(output_dir):
    """The newest checkpoint of the newest job folder under `output_dir` that has one, or None.

    Job folders are named by their start time (`%Y%m%d%H%M%S`), so the newest sorts last.
    """
    if not os.path.isdir(output_dir):
        return None
    for job in sorted(os.listdir(output_dir), reverse=True):
        checkpoints = list_checkpoints(os.path.join(output_dir, job))
        if checkpoints:
            return checkpoints[-1]
    return None


def capture_rng_state():
    """This process's Python, NumPy, torch CPU and CUDA generator states."""
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state):
    random.setstate(_as_python_state(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state():
    # as plain values and a tensor: checkpoints load with weights_only=True, which refuses
    # NumPy arrays
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _as_python_state(state):
    # a checkpoint round trip may turn the state's tuples into lists
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def truncate_log(log_path, epoch, iters):
    """Drop the training records at or after (epoch, iters) from `log.jsonl`: the steps an
    interrupted run logged after its last checkpoint are trained again by the resumed run."""
    if not os.path.exists(log_path):
        return
    kept = []
    with open(log_path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption
            if "iter" in record and (record["epoch"], record["iter"]) >= (epoch, iters):
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
    with atomic_open(log_path, "w", encoding="utf-8") as handle:
        handle.writelines(kept)
