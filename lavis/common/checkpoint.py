"""Reading and writing checkpoint files safely.

Reads never unpickle arbitrary objects (`torch.load(weights_only=True)`, or safetensors);
writes go to a temporary file in the same folder and are renamed into place, so an
interrupted write leaves the previous file intact.
"""

import os
import pickle
import zipfile

import torch

from lavis.common.utils import atomic_open


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with the file named."""


def load_file(path, map_location="cpu", mmap=False):
    """Load a `.pth`/`.bin`/`.safetensors` file as tensors and plain containers only.

    With `mmap`, a `.pth`/`.bin` stays backed by the file (pages are read on first use) instead
    of being copied into memory; torch's pre-1.6 (non-zip) format cannot be mapped and is read whole.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(path, device=str(map_location))
        except Exception as err:
            raise CheckpointError(f"cannot read safetensors file {path}: {err}") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects beyond tensors and plain containers "
            f"(weights_only=True rejected it: {str(err).splitlines()[0]}). Re-save it as a plain "
            "state dict or safetensors from code you trust."
        ) from None
    except RuntimeError as err:
        if mmap and _is_legacy_format(path):
            return load_file(path, map_location, mmap=False)
        raise CheckpointError(f"cannot read {path} (truncated or not a checkpoint?): {err}") from None
    except (EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path} (truncated or not a checkpoint?): {err}") from None


def _is_legacy_format(path):
    """True for torch's pre-zip pickle format (which `mmap=True` cannot read)."""
    with open(path, "rb") as f:
        return f.read(4) != b"PK\x03\x04"


def save_file(obj, path):
    """torch.save `obj` to `path` atomically (temporary file + fsync + rename)."""
    with atomic_open(path) as handle:
        torch.save(obj, handle)
    return os.fspath(path)
