"""`python test_model_chat.py` end to end: answers, and one-line failures with exit status 2."""

import pytest

from lavis.datasets.synthetic.shapes import FORMAT_VERSION
from tests.helpers.chat import QUESTION_EN, QUESTION_ZH, run_script
from tests.helpers.entry import run_in_process


@pytest.fixture
def cache_env(tmp_path):
    """A private cache root, so the generated example image does not land in the repo's cache/."""
    return {"LAVIS_CACHE_ROOT": str(tmp_path / "cache")}


def test_default_questions_are_answered(trained_checkpoint, cache_env, tmp_path):  # noqa: F811
    result = run_script("test_model_chat.py", "--ckpt-path", trained_checkpoint, env=cache_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"checkpoint: {trained_checkpoint} (model type tiny)" in lines
    # generated, named after the drawing's format version so a stale cached image is never reused
    assert f"image: {tmp_path / 'cache' / 'examples' / f'red_circle_224_v{FORMAT_VERSION}.png'}" in lines
    # the fixture model learnt exactly this conversation; history carries the image into turn 2
    assert lines[-4:] == [
        f"User: <Img><ImageHere></Img> {QUESTION_EN}",
        "MiniGPT4Qwen: red",
        f"User: {QUESTION_ZH}",
        "MiniGPT4Qwen: 圆形",
    ]


def test_own_image_and_questions(trained_checkpoint, chat_image):  # noqa: F811
    result = run_in_process(
        "test_model_chat.py", "--ckpt-path", trained_checkpoint, "--img-path", chat_image,
        "--question", QUESTION_EN, "--max-new-tokens", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [f"User: {QUESTION_EN}", "MiniGPT4Qwen: red"]


def test_missing_checkpoint_is_one_line(tmp_path, cache_env):
    result = run_in_process("test_model_chat.py", "--ckpt-path", str(tmp_path / "none.pth"), env=cache_env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: checkpoint not found: {tmp_path / 'none.pth'}"]
    assert result.stdout == ""


def test_unreadable_image_is_one_line(trained_checkpoint, tmp_path):  # noqa: F811
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"\x00\x01 definitely not a jpeg")
    result = run_in_process("test_model_chat.py", "--ckpt-path", trained_checkpoint, "--img-path", str(fake))
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: photo.jpg is not an image (or not a format Pillow reads)"]
    missing = run_in_process(
        "test_model_chat.py", "--ckpt-path", trained_checkpoint, "--img-path", str(tmp_path / "x.png")
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"error: no such file: {tmp_path / 'x.png'}"]
