import os

import pytest
import torch

from lavis.common.checkpoint import CheckpointError, load_file, save_file


class NotATensor:
    pass


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "config": {"a": [1, "b"]}}
    path = save_file(state, tmp_path / "ckpt.pth")
    loaded = load_file(path)
    assert (
        torch.equal(loaded["model"]["w"], state["model"]["w"])
        and loaded["epoch"] == 3
        and loaded["config"] == {"a": [1, "b"]}
    )
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []


def test_pickle_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pth"):
        load_file(path)


def test_truncated_file_named(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_file(path)


def test_missing_file():
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_file("/nonexistent/ckpt.pth")


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    save_file({"v": torch.tensor([1.0])}, path)

    def boom(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_file({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert load_file(path)["v"].item() == 1.0
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth"]


def test_latest_epoch_checkpoint_of_an_output_or_a_job_folder(tmp_path):
    from lavis.common.checkpoint import latest_epoch_checkpoint

    def touch(relative):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")

    for name in (
        "20260101000000/checkpoint_0.pth",
        "20260101000000/checkpoint_1.pth",
        "20260102000000/checkpoint_0_iter4.pth",
    ):
        touch(name)
    assert latest_epoch_checkpoint(str(tmp_path)) == str(tmp_path / "20260101000000" / "checkpoint_1.pth")
    assert latest_epoch_checkpoint(str(tmp_path / "20260101000000")) == str(
        tmp_path / "20260101000000" / "checkpoint_1.pth"
    )
    assert latest_epoch_checkpoint(str(tmp_path / "20260102000000")) is None  # mid-epoch only
    assert latest_epoch_checkpoint(str(tmp_path / "absent")) is None
