"""Checkpoint files: reading and writing them safely, and how a run names and finds them.

Reads never unpickle arbitrary objects (`torch.load(weights_only=True)`, or safetensors);
writes go to a temporary file in the same folder and are renamed into place, so an
interrupted write leaves the previous file intact, and one that runs out of space is a
DiskFullError naming the path, the bytes needed and the bytes free.  Before a run's first step
:func:`check_output_folder` makes sure its folder can take a checkpoint at all.

Names: the runner writes `checkpoint_<epoch>.pth` when an epoch ends and, with
`run.save_freq_iters: N`, `checkpoint_<epoch>_iter<K>.pth` after every N-th optimizer step
(K micro-batches of the epoch done).  A checkpoint's position is (epoch, K); an epoch-end
checkpoint sorts after every mid-epoch one of its epoch.  `--resume auto` (or
`run.resume_ckpt_path: auto`) takes the newest position in the newest job folder under
`run.output_dir` that has any; the chat front ends take the newest epoch-end one.
"""

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Mapping

import torch

from lavis.common.errors import UserError
from lavis.common.utils import TEMP_PREFIX, DiskFullError, atomic_open, free_bytes

#: A checkpoint's bytes beyond its tensors (zip entries, pickled config and RNG states), a margin
CHECKPOINT_OVERHEAD = 1 << 20


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used, with the file named."""


class OutputFolderError(UserError, OSError):
    """A run's output folder that cannot be made or written in."""


def load_file(path, map_location="cpu", mmap=False):
    """Load a `.pth`/`.bin`/`.safetensors` file as tensors and plain containers only.

    With `mmap`, a `.pth`/`.bin` stays backed by the file (pages are read on first use) instead
    of being copied into memory; torch's pre-1.6 (non-zip) format cannot be mapped and is read whole.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(not_a_checkpoint_file(path))
    if os.path.getsize(path) == 0:  # torch calls an empty file a pickle of unsafe objects
        raise CheckpointError(f"cannot read {path}: the file is empty (0 bytes; an interrupted copy?)")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(path, device=str(map_location))
        except Exception as err:
            raise CheckpointError(f"cannot read safetensors file {path}: {err}") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if not _starts_like_a_checkpoint(path):  # random bytes, another format: not a pickle at all
            raise CheckpointError(
                f"cannot read {path} (truncated or not a checkpoint?): neither torch's zip nor pickle format"
            ) from None
        # torch's message is a page of advice; the line that says why is "WeightsUnpickler error: ..."
        why = [line.partition("WeightsUnpickler error:")[2].strip() for line in str(err).splitlines()]
        why = next((w.split(". ")[0] for w in why if w), "weights_only=True rejected it")
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects beyond tensors and plain containers "
            f"({why}). Re-save it as a plain state dict or safetensors from code you trust."
        ) from None
    except RuntimeError as err:
        if mmap and _is_legacy_format(path):
            return load_file(path, map_location, mmap=False)
        raise CheckpointError(f"cannot read {path} (truncated or not a checkpoint?): {err}") from None
    except (EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path} (truncated or not a checkpoint?): {err}") from None
    except Exception as err:  # torch's legacy reader fails on other bytes with IndexError, KeyError...
        reason = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
        raise CheckpointError(f"cannot read {path} (truncated or not a checkpoint?): {reason}") from None


def _first(keys, count=5):
    keys = [str(k) for k in keys]
    return ", ".join(keys[:count]) + (f" ... ({len(keys)} in all)" if len(keys) > count else "")


def model_state(checkpoint, source):
    """The trainable state a checkpoint holds: its `model` entry (the runner's and LAVIS's
    checkpoints) or, without one, the whole mapping (a bare state dict).  CheckpointError naming
    `source` unless it is a mapping of parameter names to tensors."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source} is not a checkpoint: it holds a {type(checkpoint).__name__}, not a mapping")
    state = checkpoint["model"] if "model" in checkpoint else checkpoint
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{source}: its 'model' entry is a {type(state).__name__}, not a mapping of parameter names to tensors"
        )
    not_names = [k for k in state if not isinstance(k, str)]
    if not_names:
        raise CheckpointError(
            f"{source}: model state keys that are not parameter names: {_first(map(repr, not_names))}"
        )
    not_tensors = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: model state values that are not tensors: {_first(not_tensors)}")
    return dict(state)


def check_state_fits(state, own, source):
    """Every tensor of `state` (names already this model's) has a key, shape and kind of dtype
    (floating point or not) of the model's `own` state dict; else CheckpointError naming `source`
    and the first offending keys of each kind.  Floating-point tensors of another precision load
    (cast), as checkpoints written under AMP or in fp16 do."""
    unknown = sorted(k for k in state if k not in own)
    mismatched = sorted(
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    )
    wrong_dtype = sorted(
        f"{k}: file {v.dtype} vs model {own[k].dtype}"
        for k, v in state.items()
        if k in own and (v.dtype.is_floating_point != own[k].dtype.is_floating_point or v.is_complex())
    )
    problems = [
        f"{what} {_first(keys)}"
        for what, keys in (
            ("unknown keys", unknown),
            ("shape mismatches", mismatched),
            ("dtype mismatches", wrong_dtype),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit this model: " + "; ".join(problems))


def _starts_like_a_checkpoint(path):
    """True for a file that opens as torch's zip format or as a pickle (protocol 2 or later)."""
    with open(path, "rb") as f:
        start = f.read(4)
    return start == b"PK\x03\x04" or start[:1] == b"\x80"


def _is_legacy_format(path):
    """True for torch's pre-zip pickle format (which `mmap=True` cannot read)."""
    with open(path, "rb") as f:
        return f.read(4) != b"PK\x03\x04"


def tensor_bytes(obj):
    """Bytes of the tensors in `obj` (nested dicts, lists, tuples), each storage counted once."""
    seen, total, stack = set(), 0, [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def save_file(obj, path):
    """torch.save `obj` to `path` atomically (temporary file + fsync + rename); DiskFullError
    when the disk fills up on the way (the previous file at `path`, if any, stays)."""
    with atomic_open(path, needed=tensor_bytes(obj) + CHECKPOINT_OVERHEAD) as handle:
        torch.save(obj, handle)
    return os.fspath(path)


def checkpoint_bytes(model):
    """About the bytes of a runner checkpoint of `model`, as the runner writes one: its trainable
    parameters, AdamW's two moments of each (their shape and dtype) and its step (a float32
    scalar per parameter), plus :data:`CHECKPOINT_OVERHEAD`."""
    params = [p for p in model.parameters() if p.requires_grad]
    return sum(3 * p.numel() * p.element_size() + 4 for p in params) + CHECKPOINT_OVERHEAD


def check_output_folder(folder, needed):
    """Create `folder` (a run's job folder) and make sure a file can be written in it and that
    `needed` bytes (one checkpoint) are free there; a UserError saying which is not the case
    (the space is checked first, so a refused run leaves no empty folder behind)."""
    folder = os.path.abspath(folder)
    above = folder
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise OutputFolderError(f"run.output_dir: cannot make the folder {folder}: {above} is a file")
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(
            f"run.output_dir: not enough space in {folder} for a checkpoint of this model: it needs about "
            f"{needed:,} bytes and {free:,} are free; free some space or write elsewhere"
        )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OutputFolderError(f"run.output_dir: cannot make the folder {folder}: {err.strerror}") from None
    try:  # a real write: permission bits do not stop root, a read-only mount does
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputFolderError(f"run.output_dir: cannot write in {folder}: {err.strerror}") from None


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


def not_a_checkpoint_file(path):
    """Why `path` (a checkpoint asked for, not a file) cannot be read, in one line: missing, or a
    folder (then its newest epoch-end checkpoint, the file meant most often)."""
    if os.path.isdir(path):
        newest = latest_epoch_checkpoint(path)
        hint = f"; its newest epoch checkpoint is {newest}" if newest else "; it holds no checkpoint_<epoch>.pth"
        return f"{path} is a folder, not a checkpoint file{hint}"
    return f"checkpoint not found: {path}"


def latest_epoch_checkpoint(folder):
    """The highest-epoch `checkpoint_<epoch>.pth` (epoch-end, not mid-epoch) of `folder` itself or,
    for a run's output folder, of the newest job folder that has one; None if there is none."""
    if not os.path.isdir(folder):
        return None
    jobs = sorted((os.path.join(folder, d) for d in os.listdir(folder)), reverse=True)
    for job in [folder, *(j for j in jobs if os.path.isdir(j))]:
        ends = [p for p in list_checkpoints(job) if checkpoint_position(p)[1] == EPOCH_END]
        if ends:
            return ends[-1]  # the list is in position order: the highest epoch
    return None
