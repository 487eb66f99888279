"""Random state: seeding a run, and capturing / restoring every generator for exact resume.

`set_seed` gives every run, tool and rank the same initial weights from `run.seed`; the runner
saves each rank's `capture_rng_state()` in its checkpoints and a resumed run restores it with
`restore_rng_state`, so its dropout and sampling draws continue as the interrupted run's would.
"""

import random

import numpy as np
import torch


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
