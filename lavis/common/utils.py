"""Path helpers: where a relative path in a config points (cache root first, then the package),
and atomic file writes."""

import contextlib
import os
import tempfile
from pathlib import Path

from lavis.common.registry import registry


def get_cache_path(rel_path=""):
    """`rel_path` under the cache root (absolute paths are returned unchanged)."""
    rel_path = os.path.expanduser(str(rel_path))
    if os.path.isabs(rel_path):
        return rel_path
    return os.path.join(registry.get_path("cache_root"), rel_path)


def get_abs_path(rel_path):
    """`rel_path` inside the lavis package (for shipped configs and files)."""
    return os.path.join(registry.get_path("library_root"), rel_path)


def resolve_path(path):
    """A config path: absolute as is; relative under the cache root, or else shipped in the package,
    or else under the working directory (a run's `output/...`, as `run.output_dir` writes it).

    Relative paths that exist in none of these places resolve under the cache root, so that
    error messages say where the user should put the file.
    """
    path = os.path.expanduser(str(path))
    if os.path.isabs(path):
        return path
    cached = get_cache_path(path)
    for candidate in (cached, get_abs_path(path), os.path.abspath(path)):
        if os.path.exists(candidate):
            return candidate
    return cached


def is_url(path):
    return str(path).startswith(("http://", "https://"))


def ensure_dir(path):
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_open(path, mode="wb", **kwargs):
    """Write `path` all or nothing: a temporary file beside it, fsynced and renamed into place on
    success, removed on any error, so an interrupted write leaves the previous file intact."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
