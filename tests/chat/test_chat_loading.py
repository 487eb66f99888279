"""Chat model loading (checkpoint discovery, config carried by the checkpoint, one-line
errors) and defensive image loading."""

import os

import pytest
import torch
from PIL import Image

import lavis  # noqa: F401
from lavis.chat import ChatError, ImageError, find_latest_checkpoint, load_chat_model, load_image, one_line
from lavis.common.errors import MissingFilesError
from tests.helpers.chat import JOB_ID, build_model, save_runner_checkpoint


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


# -- which checkpoint ------------------------------------------------------------------------
def test_latest_checkpoint_is_the_newest_jobs_highest_epoch(tmp_path):
    root = tmp_path / "tiny"
    for epoch in (0, 2, 9, 10):
        touch(str(root / "20250101000000" / f"checkpoint_{epoch}.pth"))
    touch(str(root / "20250101000000" / "log.jsonl"))
    assert find_latest_checkpoint(str(root)) == str(root / "20250101000000" / "checkpoint_10.pth")
    touch(str(root / "20250102000000" / "checkpoint_1.pth"))
    assert find_latest_checkpoint(str(root)) == str(root / "20250102000000" / "checkpoint_1.pth")
    # a newer job still in its first epoch (no checkpoint yet) is passed over
    os.makedirs(root / "20250103000000")
    touch(str(root / "20250103000000" / "checkpoint_best.pth"))
    assert find_latest_checkpoint(str(root)) == str(root / "20250102000000" / "checkpoint_1.pth")
    # mid-epoch checkpoints are for resuming, not chat: later ones and jobs with only those are passed over
    touch(str(root / "20250102000000" / "checkpoint_2_iter4.pth"))
    touch(str(root / "20250104000000" / "checkpoint_0_iter2.pth"))
    assert find_latest_checkpoint(str(root)) == str(root / "20250102000000" / "checkpoint_1.pth")


def test_no_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(ChatError, match="python train.py"):
        find_latest_checkpoint(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty" / "20250101000000")
    with pytest.raises(ChatError, match="no checkpoint found in"):
        find_latest_checkpoint(str(tmp_path / "empty"))


def test_default_output_dir_is_the_tiny_defaults():
    from lavis import chat

    assert chat.TINY_OUTPUT_DIR == os.path.join("output", "instruction_tuning", "tiny")
    assert os.path.isfile(os.path.join(chat.REPO_ROOT, "train.py"))


# -- building the model a checkpoint was trained as ---------------------------------------------
def test_checkpoint_config_overrides_carry_over(tmp_path):
    """Trained with model.num_query_token=4 and a smaller LLM: rebuilt as such, weights loaded."""
    options = {"num_query_token": 4, "llm_arch": {"hidden_size": 64, "intermediate_size": 128}}
    model, _, _ = build_model(seed=5, cfg_options=options)
    path = save_runner_checkpoint(model, str(tmp_path))
    chat_model = load_chat_model(path, device="cpu")
    loaded = chat_model.model
    assert loaded.num_query_token == 4 and loaded.llm_model.config.hidden_size == 64
    assert torch.equal(loaded.llm_proj.weight, model.llm_proj.weight)
    assert not loaded.training and chat_model.model_type == "tiny" and chat_model.checkpoint == path
    # the default tiny config would not fit it
    with pytest.raises(Exception, match="does not fit"):
        build_model()[0].load_checkpoint(path)


def test_unknown_config_keys_of_other_versions_are_ignored(tmp_path):
    model, _, _ = build_model(seed=2)
    path = save_runner_checkpoint(model, str(tmp_path))
    state = torch.load(path, weights_only=True)
    state["config"]["model"]["some_future_key"] = 1
    torch.save(state, path)
    chat_model = load_chat_model(path, device="cpu")
    assert torch.equal(chat_model.model.llm_proj.weight, model.llm_proj.weight)


def test_checkpoint_without_config_uses_model_type(tmp_path):
    model, _, _ = build_model(seed=1)
    path = str(tmp_path / "bare.pth")
    torch.save({"model": model.trainable_state_dict()}, path)
    chat_model = load_chat_model(path, model_type="tiny", device="cpu")
    assert torch.equal(chat_model.model.llm_proj.weight, model.llm_proj.weight)


def test_model_type_mismatch_is_reported(tmp_path):
    path = save_runner_checkpoint(build_model()[0], str(tmp_path))
    with pytest.raises(ChatError, match="trained as model_type 'tiny', not 'qwen7b_chat'"):
        load_chat_model(path, model_type="qwen7b_chat", device="cpu")


def test_missing_real_weights_are_one_line(tmp_path):
    path = str(tmp_path / "proj_only.pth")
    torch.save({"model": {}}, path)
    nowhere = str(tmp_path / "nowhere")
    options = {"llm_model": nowhere, "vit_ckpt": nowhere + "/eva.pth", "pretrained": nowhere + "/blip2.pth"}
    with pytest.raises(ChatError) as info:
        load_chat_model(path, model_type="qwen7b_chat", device="cpu", cfg_options=options)
    message = str(info.value)
    assert "\n" not in message and "weight file(s) missing" in message and nowhere in message


def test_one_line_of_missing_weights():
    err = MissingFilesError([("llm_model", "/x/config.json", "config"), ("vit_ckpt", "/x/eva.pth", "vit")])
    assert one_line(err) == (
        "2 weight file(s) missing: llm_model: /x/config.json; vit_ckpt: /x/eva.pth (see README, 'Real weights')"
    )


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_unreadable_checkpoints_are_one_line(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(ChatError) as info:
        load_chat_model(str(path), device="cpu")
    assert "\n" not in str(info.value) and "broken.pth" in str(info.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ChatError, match="checkpoint not found"):
        load_chat_model(str(tmp_path / "nope.pth"), device="cpu")


# -- images -------------------------------------------------------------------------------------
def test_load_image_reads_any_mode_as_rgb(tmp_path):
    path = str(tmp_path / "grey.png")
    Image.new("L", (20, 10), 128).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (20, 10)


def test_bad_image_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is text")
    with pytest.raises(ImageError, match="notes.png is not an image"):
        load_image(str(text))
    with pytest.raises(ImageError, match="no such file"):
        load_image(str(tmp_path / "missing.png"))
    with pytest.raises(ImageError, match="not a file"):
        load_image(str(tmp_path))
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageError, match="truncated"):
        load_image(str(truncated))
    with pytest.raises(ImageError, match="too large"):
        load_image(str(good), max_bytes=10)


def test_decompression_bombs_are_refused(tmp_path):
    big = str(tmp_path / "big.png")
    Image.new("1", (7_000, 7_000)).save(big)  # 49 megapixels in a few kB: past our 40 M limit
    assert os.path.getsize(big) < 100_000
    with pytest.raises(ImageError, match="7000x7000 pixels"):
        load_image(big)
    bomb = str(tmp_path / "bomb.png")
    Image.new("1", (10_000, 10_000)).save(bomb)  # 100 megapixels: Pillow's own check refuses it
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(bomb, max_pixels=10**12)


def test_runner_checkpoint_layout(tmp_path):
    """The fixtures' checkpoints have the runner's keys and path layout."""
    model, _, _ = build_model()
    path = save_runner_checkpoint(model, str(tmp_path), epoch=3)
    assert path == os.path.join(str(tmp_path), JOB_ID, "checkpoint_3.pth")
    state = torch.load(path, weights_only=True)
    assert set(state) == {"model", "optimizer", "scaler", "config", "epoch"}
    assert state["config"]["model"]["model_type"] == "tiny"
