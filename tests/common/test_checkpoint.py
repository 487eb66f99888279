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
    unsafe = "Unsupported global: GLOBAL tests.common.test_checkpoint.NotATensor was not an allowed global by default"
    with pytest.raises(CheckpointError, match=rf"refusing to load .*evil.pth: .* \({unsafe}\)\. Re-save"):
        load_file(path)


def test_random_bytes_are_not_a_checkpoint_rather_than_unsafe_objects(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match=r"^cannot read .*random.pth \(truncated or not a checkpoint\?\): "):
        load_file(path)


def test_truncated_file_named(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_file(path)


def test_a_file_that_is_not_a_checkpoint_at_all_is_named(tmp_path):
    (tmp_path / "text.pth").write_bytes(b"abc\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    for name, message in (
        ("text.pth", rf"^cannot read {tmp_path / 'text.pth'} \(truncated or not a checkpoint\?\): "),
        ("empty.pth", rf"^cannot read {tmp_path / 'empty.pth'}: the file is empty \(0 bytes"),
        ("empty.safetensors", rf"^cannot read {tmp_path / 'empty.safetensors'}: the file is empty"),
    ):
        for mmap in (False, True):
            with pytest.raises(CheckpointError, match=message):
                load_file(tmp_path / name, mmap=mmap)


def test_missing_file():
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_file("/nonexistent/ckpt.pth")


def test_a_folder_is_named_as_a_folder_with_its_newest_checkpoint(tmp_path):
    with pytest.raises(
        CheckpointError, match=rf"^{tmp_path} is a folder, not a checkpoint file; it holds no checkpoint"
    ):
        load_file(tmp_path)
    job = tmp_path / "20260101000000"
    job.mkdir()
    for epoch in (0, 1):
        save_file({"v": torch.tensor([1.0])}, job / f"checkpoint_{epoch}.pth")
    with pytest.raises(CheckpointError) as err:
        load_file(tmp_path)
    assert str(err.value) == f"{tmp_path} is a folder, not a checkpoint file; its newest epoch checkpoint is " + str(
        job / "checkpoint_1.pth"
    )


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


def test_a_model_entry_that_is_not_a_mapping_of_tensors_names_the_file_and_keys(tmp_path):
    from lavis.common.checkpoint import model_state

    assert set(model_state({"model": {"w": torch.zeros(1)}, "epoch": 0}, "f.pth")) == {"w"}
    assert set(model_state({"w": torch.zeros(1)}, "f.pth")) == {"w"}  # a bare state dict
    for content, message in (
        ([1, 2], "f.pth is not a checkpoint: it holds a list, not a mapping"),
        ({"model": [1, 2]}, "f.pth: its 'model' entry is a list, not a mapping of parameter names to tensors"),
        ({"model": "weights"}, "f.pth: its 'model' entry is a str, not a mapping of parameter names to tensors"),
        ({"model": {1: torch.zeros(1)}}, "f.pth: model state keys that are not parameter names: 1"),
        (
            {"model": {f"w{i}": i for i in range(7)}},
            "f.pth: model state values that are not tensors: w0 (int), w1 (int), w2 (int), w3 (int), w4 (int) "
            "... (7 in all)",
        ),
    ):
        with pytest.raises(CheckpointError) as caught:
            model_state(content, "f.pth")
        assert str(caught.value) == message


def test_tensors_of_another_shape_or_kind_of_dtype_are_named():
    from lavis.common.checkpoint import check_state_fits

    own = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "n": torch.zeros(2, dtype=torch.long)}
    check_state_fits({"a": torch.zeros(2, 3, dtype=torch.float16), "n": torch.ones(2, dtype=torch.int32)}, own, "f")
    with pytest.raises(CheckpointError) as caught:
        check_state_fits(
            {"a": torch.zeros(3, 2), "b": torch.zeros(4, dtype=torch.int64), "c": torch.zeros(1)}, own, "f.pth"
        )
    assert str(caught.value) == (
        "checkpoint f.pth does not fit this model: unknown keys c; shape mismatches a: file (3, 2) vs model (2, 3); "
        "dtype mismatches b: file torch.int64 vs model torch.float32"
    )


def test_model_load_checkpoint_checks_content(tiny_model, tmp_path):
    good = tiny_model.trainable_state_dict()
    name = next(iter(good))
    for content, message in (
        ({"model": [1, 2]}, "its 'model' entry is a list"),
        ({"model": {name: "x"}}, f"model state values that are not tensors: {name} (str)"),
        ({"model": {name: good[name].to(torch.int64)}}, f"dtype mismatches {name}: file torch.int64"),
    ):
        path = save_file(content, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError) as caught:
            tiny_model.load_checkpoint(path)
        assert str(tmp_path / "bad.pth") in str(caught.value) and message in str(caught.value)
    assert tiny_model.load_checkpoint(save_file({"model": good}, tmp_path / "good.pth")) == sorted(good)


def test_stale_temporary_files_are_removed(tmp_path):
    from lavis.common.utils import remove_stale_temp_files

    (tmp_path / ".tmp-abc123.pth").write_bytes(b"half a checkpoint")
    (tmp_path / "checkpoint_0.pth").write_bytes(b"kept")
    assert remove_stale_temp_files(tmp_path) == [str(tmp_path / ".tmp-abc123.pth")]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_0.pth"]


def test_an_output_folder_under_a_file_or_read_only_is_refused(tmp_path, small_tmpfs):
    from lavis.common.checkpoint import OutputFolderError, check_output_folder

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputFolderError) as caught:
        check_output_folder(tmp_path / "file" / "out" / "job", 10)
    assert str(caught.value) == (
        f"run.output_dir: cannot make the folder {tmp_path / 'file' / 'out' / 'job'}: {tmp_path / 'file'} is a file"
    )
    read_only = small_tmpfs("1m", read_only=True)
    with pytest.raises(OutputFolderError, match=r"cannot make the folder .*/job: Read-only file system$"):
        check_output_folder(read_only / "job", 10)
    with pytest.raises(OutputFolderError, match=r"^run.output_dir: cannot write in .*: Read-only file system$"):
        check_output_folder(read_only, 10)


def test_a_full_disk_while_saving_is_one_error_and_keeps_the_previous_file(small_tmpfs):
    from lavis.common.utils import DiskFullError

    folder = small_tmpfs("1m")
    path = folder / "checkpoint_0.pth"
    save_file({"v": torch.tensor([1.0])}, path)
    with pytest.raises(DiskFullError) as caught:
        save_file({"v": torch.zeros(512 * 1024)}, path)  # 2 MiB of float32
    message = str(caught.value)
    assert message.startswith(f"no space left to write {path}: it needs about 3,145,728 bytes and ")
    assert message.endswith(
        " are free there (the files already there are unchanged); free some space or write elsewhere"
    )
    assert load_file(path)["v"].item() == 1.0
    assert sorted(os.listdir(folder)) == ["checkpoint_0.pth"]  # no temporary file left behind


def test_an_output_folder_without_room_for_one_checkpoint_is_refused(small_tmpfs):
    from lavis.common.checkpoint import check_output_folder
    from lavis.common.utils import DiskFullError

    folder = small_tmpfs("1m")
    check_output_folder(folder / "job", 100_000)
    with pytest.raises(
        DiskFullError, match=r"not enough space in .*/job for a checkpoint of this model: it needs about "
    ):
        check_output_folder(folder / "job", 5_000_000)
    with pytest.raises(DiskFullError):
        check_output_folder(folder / "refused", 5_000_000)
    assert sorted(os.listdir(folder)) == ["job"]  # a refused run leaves no empty job folder


def test_any_atomic_write_that_fills_the_disk_says_so(small_tmpfs):
    from lavis.common.utils import DiskFullError, atomic_open

    folder = small_tmpfs("1m")
    with pytest.raises(DiskFullError) as caught:
        with atomic_open(folder / "big.json", "w", encoding="utf-8") as handle:
            handle.write("x" * 2_000_000)
    assert str(caught.value).startswith(f"no space left to write {folder / 'big.json'}: ")
    assert " bytes are free there (the files already there are unchanged)" in str(caught.value)
    assert os.listdir(folder) == []


def test_atomic_writes_leave_the_permissions_a_plain_write_would(tmp_path):
    """Not mkstemp's 0o600: a new file gets 0o666 less the umask, a rewritten one keeps its mode."""
    from lavis.common.utils import atomic_open

    previous = os.umask(0o022)
    try:
        save_file({"w": torch.zeros(2)}, tmp_path / "ckpt.pth")
        with atomic_open(tmp_path / "log.json", "w", encoding="utf-8") as handle:
            handle.write("{}")
        os.chmod(tmp_path / "log.json", 0o640)
        with atomic_open(tmp_path / "log.json", "w", encoding="utf-8") as handle:
            handle.write("[]")
    finally:
        os.umask(previous)
    assert oct(os.stat(tmp_path / "ckpt.pth").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "log.json").st_mode & 0o777) == oct(0o640)
    assert (tmp_path / "log.json").read_text() == "[]"
