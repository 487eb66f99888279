"""Reading weight files without unpickling code and without holding two copies.

* `.pth` / `.bin` go through ``torch.load(weights_only=True, mmap=True)``: a payload with
  Python objects beyond tensors and plain containers is refused, and the tensors stay
  backed by the file (pages are read on first use) instead of being copied into memory.
  Files in torch's legacy (pre-1.6, non-zip) format cannot be mapped and are read whole.
* `.safetensors` are read by :class:`SafetensorsReader`, one tensor at a time, with plain
  ``readinto`` into a freshly allocated tensor (no file mapping stays resident, so loading
  shard after shard costs the model's size, not the model plus a shard).

Every failure is a :class:`WeightFileError` (a ``CheckpointError``) that names the file,
and the keys where some keys are the problem.
"""

import json
import os

import torch

from lavis.common.checkpoint import CheckpointError, load_file


class WeightFileError(CheckpointError):
    """A weight file that is missing, unreadable, truncated or does not fit the model."""


def _short(keys, limit=12):
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def describe_keys(keys, limit=12):
    """`a, b, c ... (N in all)` for messages."""
    return _short(keys, limit)


# -- .pth / .bin ----------------------------------------------------------------------
# -- .safetensors -------------------------------------------------------------------------
_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsReader:
    """The header of a `.safetensors` file, checked against the file's size, and its tensors one by one."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise WeightFileError(f"weight file not found: {self.path}")
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightFileError(
                    f"cannot read {self.path}: {size} bytes, too short for a safetensors file (truncated?)"
                )
            n = int.from_bytes(head, "little")
            if n > min(size - 8, _MAX_HEADER):
                raise WeightFileError(
                    f"cannot read {self.path}: its header claims {n} bytes but the file has {size} (truncated, "
                    "or not safetensors?)"
                )
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise WeightFileError(f"cannot read {self.path}: bad safetensors header ({err})") from None
        if not isinstance(header, dict):
            raise WeightFileError(f"cannot read {self.path}: bad safetensors header")
        self.metadata = header.pop("__metadata__", None) or {}
        self.data_start = 8 + n
        self.entries = {}
        beyond = []
        for key, info in header.items():
            try:
                dtype = _ST_DTYPES[info["dtype"]]
                shape = tuple(int(d) for d in info["shape"])
                begin, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise WeightFileError(f"cannot read {self.path}: bad header entry for {key!r}: {info!r:.200}") from None
            numel = 1
            for d in shape:
                numel *= d
            if end - begin != numel * dtype.itemsize or begin < 0:
                raise WeightFileError(
                    f"cannot read {self.path}: header entry for {key!r} has {end - begin} bytes for shape "
                    f"{shape} {info['dtype']}"
                )
            if self.data_start + end > size:
                beyond.append(key)
            self.entries[key] = (dtype, shape, begin, end)
        if beyond:
            raise WeightFileError(
                f"{self.path} is truncated: {size} bytes, but the data of {len(beyond)} tensor(s) lies beyond "
                f"its end: {_short(beyond)}"
            )
        self._file = None

    def keys(self):
        return list(self.entries)

    def shape(self, key):
        return self.entries[key][1]

    def dtype(self, key):
        return self.entries[key][0]

    def __enter__(self):
        self._file = open(self.path, "rb")
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, key):
        """The tensor `key`, in newly allocated memory."""
        dtype, shape, begin, end = self.entries[key]
        out = torch.empty(shape, dtype=dtype)
        if end == begin:
            return out
        f = self._file or open(self.path, "rb")
        try:
            f.seek(self.data_start + begin)
            view = memoryview(out.reshape(-1).view(torch.uint8).numpy())
            done = 0
            while done < len(view):
                got = f.readinto(view[done:])
                if not got:
                    raise WeightFileError(f"{self.path} is truncated: the data of {key!r} ends early")
                done += got
        finally:
            if self._file is None:
                f.close()
        return out

    def read_all(self):
        with self:
            return {key: self.read(key) for key in self.entries}


def write_safetensors(path, tensors, metadata=None):
    """Write `{name: tensor}` as a `.safetensors` file."""
    write_safetensors_lazy(path, [(k, tuple(t.shape), t.dtype, (lambda t=t: t)) for k, t in tensors.items()], metadata)


def write_safetensors_lazy(path, specs, metadata=None):
    """`specs`: [(name, shape, dtype, make)] where `make()` returns the tensor when it is written."""
    header, offset, makers = {}, 0, []
    for key, shape, dtype, make in specs:
        numel = 1
        for d in shape:
            numel *= d
        nbytes = numel * dtype.itemsize
        header[key] = {"dtype": _ST_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        makers.append((key, make))
        offset += nbytes
    _write(path, header, metadata, makers)


def _write(path, header, metadata, makers):
    full = dict(header)
    if metadata:
        full["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(full, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for key, make in makers:
            tensor = make().contiguous()
            info = header[key]
            if list(tensor.shape) != info["shape"] or _ST_NAMES[tensor.dtype] != info["dtype"]:
                raise ValueError(f"{key}: made {tuple(tensor.shape)} {tensor.dtype}, declared {info}")
            if tensor.numel():
                f.write(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
            del tensor


# -- any state file ---------------------------------------------------------------------
def load_state_file(path, mmap=True):
    """A whole `.pth`/`.bin` (file-backed) or `.safetensors` file as loaded objects."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        return SafetensorsReader(path).read_all()
    return load_file(path, mmap=mmap)


def unwrap_model_state(obj, path):
    """`{"model": {...}, ...}` (LAVIS / runner checkpoints) or a bare state dict -> the state dict."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise WeightFileError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    not_tensors = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise WeightFileError(f"{path}: entries that are not tensors: {_short(not_tensors)}")
    return obj
