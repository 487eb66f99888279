"""Shared fixtures: a tiny model of the real architecture, a small synthetic dataset, the chat
tests' image and checkpoints (built by `tests/helpers/chat.py`), and small file systems to fill
up (tmpfs, when the tests run as root)."""

import importlib.util
import os
import pathlib
import subprocess

# The suite runs on three xdist workers (pyproject.toml): one thread each, for them and for the
# trainings they start, so the trainings share the 2 cores instead of fighting over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

import lavis  # noqa: F401  (registers every component)
from lavis.chat import ChatModel, ChatSession, load_image
from lavis.datasets.synthetic.moving_shapes import ensure_moving_shapes
from lavis.datasets.synthetic.shapes import ensure_shapes_dataset
from lavis.models import load_model
from tests.helpers.chat import (
    LONG_QUESTION,
    LONG_TOKENS,
    build_model,
    cached,
    red_circle,
    save_runner_checkpoint,
    train_tiny,
)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A small synthetic shapes dataset (40 train / 12 val samples)."""
    return ensure_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=40, num_val=12, image_size=64, seed=0)


@pytest.fixture(scope="session")
def moving_root(tmp_path_factory):
    """A small synthetic video set (12 train / 4 val clips of 8 frames, H.264 written by PyAV)."""
    return ensure_moving_shapes(tmp_path_factory.mktemp("moving"), num_train=12, num_val=4, num_frames=8, seed=0)


@pytest.fixture(scope="session")
def real_qwen_vocab():
    """Qwen's real qwen.tiktoken (151,643 ranks), shipped in the qwen-agent wheel; skips without it."""
    spec = importlib.util.find_spec("qwen_agent")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("Qwen's real qwen.tiktoken not available: pip install --no-deps qwen-agent==0.0.34")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "utils" / "qwen.tiktoken"
    if not path.is_file():
        pytest.skip(f"{path} missing: pip install --no-deps qwen-agent==0.0.34")
    return path


@pytest.fixture
def cuda_device():
    """The device of the tests marked `cuda`: "cuda"; without a GPU they skip, except under
    `benchmarks/gpu_check.sh --dry-run` (GPU_CHECK_DRY_RUN=1), which runs them on the CPU so that
    the check is known to start."""
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("GPU_CHECK_DRY_RUN") == "1":
        return "cpu"
    pytest.skip("needs a CUDA GPU")


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return load_model("minigpt4qwen", "tiny")


@pytest.fixture(scope="session")
def chat_image(tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "chat_images"
    folder.mkdir(exist_ok=True)
    return red_circle(str(folder))


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, chat_image):
    def build(folder):
        model, _, loss = train_tiny(chat_image)
        assert loss < 0.1, f"the fixture model did not learn its conversation (loss {loss:.3f})"
        return save_runner_checkpoint(model, os.path.join(folder, "output"))

    return cached(tmp_path_factory, "trained", build)


@pytest.fixture(scope="session")
def long_checkpoint(tmp_path_factory, chat_image):
    def build(folder):
        for seed in range(20):
            model, vis, _ = build_model(seed)
            model.eval()
            session = ChatSession(ChatModel(model, vis["eval"], None, "tiny", torch.device("cpu")))
            session.settings.set("max_new_tokens", LONG_TOKENS)
            session.add_images([load_image(chat_image)])
            reply = session.stream(LONG_QUESTION)
            reply.collect()
            if reply.num_tokens >= LONG_TOKENS:
                return save_runner_checkpoint(model, os.path.join(folder, "output"))
        raise AssertionError("no seed gave an untrained model with a long answer")

    return cached(tmp_path_factory, "long", build)


@pytest.fixture
def small_tmpfs(tmp_path):
    """`mount(size, read_only=False)` -> a folder on a tmpfs of `size` (e.g. "20m"), unmounted
    after the test.  Mounting needs root (CI runs as root): the test is skipped otherwise."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(size, read_only=False):
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first (in file order otherwise): the workers then start the
    longest files early instead of ending on them one after the other."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
