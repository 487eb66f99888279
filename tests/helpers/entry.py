"""An entry script (`train.py`, `evaluate.py`, the chat scripts, a `lavis` tool) run inside the
test process, as `python SCRIPT ARGS` runs it: `sys.argv`, `__name__ == "__main__"`, its exit
status, its stdout and stderr (logging included), an uncaught exception's traceback and exit 1.

Why not a subprocess: a new interpreter spends about 5 CPU seconds importing torch and
transformers before it reads its first option, and the tests of a run that stops early (a user's
error, a missing file) are dozens. Whole trainings, torchrun, kill -9, stdin and timeouts keep
their own process (`tests/helpers/chat.py::run_script`, `tests/helpers/train_script.py`).

What the test process keeps unchanged across a call: the working folder, `os.environ`, the
registry's cache root (`LAVIS_CACHE_ROOT` is read when `lavis` is imported, so an `env` that
sets it sets the registry's path for the call), torch's thread count (`OMP_NUM_THREADS` in `env`
sets it for the call), the random generators, the root logger's level and handlers.
"""

import contextlib
import io
import logging
import os
import random
import runpy
import subprocess
import sys
import traceback
import warnings

import numpy as np
import torch

from lavis.common.registry import registry
from tests.helpers import REPO

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"  # the entry scripts' logging.basicConfig format


@contextlib.contextmanager
def _patched_environment(env):
    saved_environ, saved_cache = dict(os.environ), registry.get_path("cache_root")
    threads = torch.get_num_threads()
    os.environ.update(env)
    if "LAVIS_CACHE_ROOT" in env:
        registry.register_path("cache_root", env["LAVIS_CACHE_ROOT"])
    if "OMP_NUM_THREADS" in env:
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        registry.register_path("cache_root", saved_cache)
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _captured_logging(stream):
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved_level, saved_handlers = root.level, list(root.handlers)
    root.handlers = [handler]  # so the script's basicConfig is a no-op, as after its own first call
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def _exit_status(code):
    """What the interpreter makes of `SystemExit(code)`: None -> 0, an int as it is, else 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_in_process(script, *args, env=None, module=False):
    """`python SCRIPT ARGS` (or `python -m SCRIPT ARGS` with `module=True`) from the repository
    root, in this process -> CompletedProcess(args, returncode, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with (
        _patched_environment(env or {}),
        torch.random.fork_rng(devices=[]),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        _captured_logging(stderr),
    ):
        sys.argv = [script, *args]
        os.chdir(REPO)
        try:
            if module:
                with warnings.catch_warnings():
                    # the module is already imported by the tests (python -m would import it once)
                    warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                    runpy.run_module(script, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(os.path.join(REPO, script), run_name="__main__")
            returncode = 0
        except SystemExit as exit_:
            returncode = _exit_status(exit_.code)
        except Exception:
            traceback.print_exc()
            returncode = 1
        finally:
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            random.setstate(python_state)
            np.random.set_state(numpy_state)
    command = [sys.executable, *(["-m"] if module else []), script, *args]
    return subprocess.CompletedProcess(command, returncode, stdout.getvalue(), stderr.getvalue())
