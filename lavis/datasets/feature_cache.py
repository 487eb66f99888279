"""On-disk cache of frozen-encoder features: keys, layout, writing and reading.

Written by `python -m lavis.tools.cache_features`, read when `run.use_cached_features` is on
(`lavis/datasets/cached_features.py` connects both to the config).  What is stored is the
Q-former's query outputs before `llm_proj` (`MiniGPT4Qwen.encode_queries`), one
(num_query_token, Q-former hidden) tensor per distinct image content, and one per sampled
frame of each distinct video content (its rows in frame order).

Layout, next to the images:

    <vis_root>/.feature_cache/<settings key>/
        index.json              {"format", "processor", "encoder", "dtype", "shape",
                                 "entries": {image sha256: [shard, row],
                                             video key: [[shard, row], ...]}, "shards": [...]}
        shard_00000.safetensors one tensor "features" (up to SHARD_SIZE, num_query_token, hidden)
        ...

The settings key hashes the image processor's settings (its repr), the encoder weights (a
hash of every tensor of ViT + ln_vision + Q-former + query tokens) and the stored dtype, so
other settings live in another folder and are never read.  Within a folder, an image is found
by the SHA-256 of its file's bytes: an edited or new image has no entry (stale / missing); a
video by `video_key` (its SHA-256 and the dataset's `max_frames`, which decide its frames).
A folder is written whole into a temporary sibling and renamed into place; shards are read
row by row through safetensors' memory map, never loaded whole.
"""

import hashlib
import json
import os
import shutil
import uuid

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from lavis.common.dtypes import DTYPES
from lavis.common.errors import UserError
from lavis.common.utils import atomic_open

FORMAT = 1
CACHE_DIR = ".feature_cache"
SHARD_SIZE = 1024  # images per shard: 1024 x 32 x 768 fp32 = 100 MB
COMMAND = "python -m lavis.tools.cache_features --cfg-path <your config> [--options ...]"


class FeatureCacheError(UserError, RuntimeError):
    """A feature cache that cannot be used (missing, stale, or refused by the config)."""


def file_sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def video_key(sha256, max_frames):
    """A video's entry: its content and how many frames are sampled from it."""
    return f"{sha256}@{max_frames}"


def tensors_hash(state):
    """A fast BLAKE2 hash of named tensors: names, dtypes, shapes and raw bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def settings(processor, encoder_hash, dtype):
    """What a cache folder depends on, besides the images themselves."""
    return {"format": FORMAT, "processor": repr(processor), "encoder": encoder_hash, "dtype": dtype}


def settings_key(info):
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def cache_folder(vis_root, info):
    return os.path.join(vis_root, CACHE_DIR, settings_key(info))


def write_cache(folder, info, entries, videos=None):
    """Write `entries` {image sha256: (num_query_token, hidden) tensor} and `videos` {video key:
    (frames, num_query_token, hidden) tensor} as a cache folder, whole."""
    dtype = DTYPES[info["dtype"]]
    videos = videos or {}
    rows = [(h, None, entries[h]) for h in sorted(entries)]
    rows += [(key, frame, features) for key in sorted(videos) for frame, features in enumerate(videos[key])]
    partial = f"{folder}.partial-{uuid.uuid4().hex[:8]}"
    try:
        os.makedirs(partial)
    except OSError as err:  # a read-only dataset folder, or one under a file
        raise FeatureCacheError(
            f"cannot write the feature cache beside the images, in {partial}: {err.strerror}"
        ) from None
    try:
        shards, index = [], {key: [] for key in videos}
        for start in range(0, len(rows), SHARD_SIZE):
            chunk = rows[start : start + SHARD_SIZE]
            name = f"shard_{len(shards):05d}.safetensors"
            block = torch.stack([features for _, _, features in chunk]).to(dtype).contiguous()
            with atomic_open(os.path.join(partial, name)) as handle:
                handle.write(safetensors_bytes({"features": block}))
            for row, (key, frame, _) in enumerate(chunk):
                if frame is None:
                    index[key] = [len(shards), row]
                else:
                    index[key].append([len(shards), row])
            shards.append(name)
        shape = list(rows[0][2].shape) if rows else []
        with atomic_open(os.path.join(partial, "index.json"), "w", encoding="utf-8") as handle:
            json.dump({**info, "shape": shape, "shards": shards, "entries": index}, handle)
        old = f"{folder}.old-{uuid.uuid4().hex[:8]}"
        if os.path.isdir(folder):
            os.rename(folder, old)
        os.rename(partial, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder


def read_index(folder):
    """The folder's index, or None when there is none (never written, interrupted or damaged)."""
    try:
        with open(os.path.join(folder, "index.json"), encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError, RecursionError):  # ValueError: not UTF-8 or not JSON
        return None
    return index if isinstance(index, dict) and {"shards", "entries"} <= set(index) else None


def why_missing(vis_root, info):
    """One phrase on why there is no cache folder for `info`: other settings found, or none."""
    root = os.path.join(vis_root, CACHE_DIR)
    others = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        index = read_index(os.path.join(root, name))
        if index is None:
            continue
        changed = [
            k
            for k, label in (
                ("processor", "image processor settings"),
                ("encoder", "encoder weights"),
                ("dtype", "dtype"),
                ("format", "format"),
            )
            if index.get(k) != info[k]
        ]
        others.append(f"{name} (differs in {', '.join(changed) or 'nothing?'})")
    if others:
        return "stale: the cache(s) there were written for other settings: " + "; ".join(others)
    return "missing: no feature cache has been written there"


class FeatureStore:
    """Cached features by path: store[image path] -> (num_query_token, hidden) tensor, store[video
    path] -> (frames, num_query_token, hidden).

    `paths` maps each image path to its file's sha256 and each video path to its `video_key`
    (checked against the index on opening); shards are memory-mapped lazily and reopened after
    pickling (DataLoader workers).
    """

    def __init__(self, folder, paths):
        self.folder = folder
        index = read_index(folder)
        if index is None:
            raise FeatureCacheError(f"feature cache {folder} has no readable index.json; run: {COMMAND}")
        self.shards = index["shards"]
        entries = index["entries"]
        stale = [p for p, h in paths.items() if h not in entries]
        if stale:
            raise FeatureCacheError(
                f"feature cache {folder} is stale: {len(stale)} of {len(paths)} image(s) or video(s) are new or "
                f"changed since it was written (e.g. {stale[0]}); run: {COMMAND}"
            )
        self.rows = {p: tuple(entries[h]) for p, h in paths.items()}
        self._open = {}

    def __len__(self):
        return len(self.rows)

    def _row(self, shard, row):
        if shard not in self._open:
            self._open[shard] = safe_open(os.path.join(self.folder, self.shards[shard]), framework="pt")
        return self._open[shard].get_slice("features")[row]

    def __getitem__(self, path):
        where = self.rows[path]
        if where and isinstance(where[0], list):  # a video: its frames' rows
            return torch.stack([self._row(shard, row) for shard, row in where])
        return self._row(*where)

    def __getstate__(self):
        return {**self.__dict__, "_open": {}}
