"""Write a synthetic dataset once, whole, under a lock (shared by every generated set here).

A set is complete when its `manifest.json` (format version + parameters, written last and
atomically) matches what is asked and its files are there; otherwise the manifest is removed and
the set regenerated, so an interrupted generation is redone rather than half-used.  Concurrent
processes (several ranks) wait on a file lock and generate once.  A disk that fills up on the
way is one DiskFullError naming the set's folder (the set stays incomplete and is redone next time).
"""

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from lavis.common.utils import DiskFullError, atomic_open, free_bytes, is_out_of_space


def balanced(rng, items, n: int) -> list:
    """`n` items cycling through shuffled copies of `items` (exact balance up to one partial block)."""
    out: list = []
    while len(out) < n:
        block = list(items)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def _complete(root: Path, params: dict, format_version: int, files, folder: str) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("format_version") != format_version or manifest.get("params") != params:
        return False
    return (root / folder).is_dir() and all((root / f).is_file() for f in files)


@contextlib.contextmanager
def _lock(root: Path):
    import fcntl  # POSIX only, like the rest of the project's multi-process code

    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_generated(root, params: dict, format_version: int, files, folder: str, generate) -> Path:
    """`root` as a Path, after `generate(root, params) -> stats` has written `files` and `folder`
    there unless a complete copy with these `params` and `format_version` already is."""
    root = Path(root)
    if _complete(root, params, format_version, files, folder):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root):
        if _complete(root, params, format_version, files, folder):  # another process finished meanwhile
            return root
        (root / "manifest.json").unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            stats = generate(root, params)
        except (OSError, RuntimeError) as err:
            if not is_out_of_space(err):
                raise
            raise DiskFullError(
                f"no space left to generate the synthetic set in {root} ({free_bytes(root):,} bytes free); "
                "free some space or point LAVIS_CACHE_ROOT elsewhere"
            ) from None
        manifest = {
            "format_version": format_version,
            "params": params,
            "files": list(files),
            "media_dir": folder,
            "stats": stats,
            "generation_seconds": round(time.perf_counter() - start, 3),
        }
        write_json(root / "manifest.json", manifest)
    return root
