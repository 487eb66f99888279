"""Path helpers: where a relative path in a config points (cache root first, then the package),
atomic file writes, and what a write that ran out of space tells the user."""

import contextlib
import errno
import glob
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from lavis.common.errors import UserError
from lavis.common.registry import registry

#: How `atomic_open` names its temporary file beside the target: `.tmp-<random><target's extension>`
TEMP_PREFIX = ".tmp-"
#: What torch's zip writer says when the file under it stops growing (it writes through a
#: callback, so the OSError of a full disk reaches the caller as one of these RuntimeErrors)
_TORCH_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed")


class DiskFullError(UserError, OSError):
    """A write that failed for lack of space: the path, the bytes it needed and the bytes free."""


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


def is_out_of_space(err):
    """True for the errors a full disk (or quota) raises: OSError ENOSPC / EDQUOT, or torch's
    zip writer's RuntimeError about a short write."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(err, RuntimeError) and any(mark in str(err) for mark in _TORCH_SHORT_WRITE)


def free_bytes(path):
    """Bytes free to this user on the file system of `path` (its nearest existing folder)."""
    folder = os.path.abspath(path)
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder).free


def out_of_space(path, needed, what):
    """The DiskFullError of a write of about `needed` bytes (None: not known) to `path` that ran
    out of space."""
    free = free_bytes(path)
    sizes = f"it needs about {needed:,} bytes and {free:,} are free" if needed else f"{free:,} bytes are free"
    return DiskFullError(f"no space left to write {path}: {sizes} there ({what}); free some space or write elsewhere")


def new_file_mode():
    """0o666 less the umask: the permission bits a plain `open(path, "w")` gives a new file."""
    umask = os.umask(0o022)  # Python reads the umask only by setting it: set it straight back
    os.umask(umask)
    return 0o666 & ~umask


def _plain_write_mode(path):
    """The permission bits `open(path, "w")` would leave: the existing file's, else
    :func:`new_file_mode`.  (mkstemp's temporary file is 0o600, which would lock others out of
    every checkpoint, log and export, e.g. a server that runs under another user.)"""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return new_file_mode()


@contextlib.contextmanager
def atomic_open(path, mode="wb", needed=None, **kwargs):
    """Write `path` all or nothing: a temporary file beside it, fsynced and renamed into place on
    success, removed on any error, so an interrupted write leaves the previous file intact.  A
    write that runs out of space is a DiskFullError (`needed`: the bytes it would take, for it)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _plain_write_mode(path))
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        # torch's short-write RuntimeError does not say why: a full disk only when the space is short
        short = isinstance(err, OSError) or needed is None or free_bytes(path) < needed
        if is_out_of_space(err) and short:
            raise out_of_space(path, needed, "the files already there are unchanged") from None
        raise


def remove_stale_temp_files(folder):
    """Remove what interrupted `atomic_open` writes left in `folder` (their temporary files, which
    a killed process never renames into place); returns their paths."""
    stale = sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)), TEMP_PREFIX + "*")))
    for path in stale:
        if os.path.isfile(path):
            os.remove(path)
            logging.info("removed %s, left by an interrupted write", path)
    return stale
