"""The server's command line: user errors are one `error:` line and exit status 2 (no traceback),
the port checked before the model loads."""

import socket

import pytest

from lavis.serve.__main__ import main, parse_args


def serve(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_missing_checkpoint_is_one_line(capsys):
    code, lines = serve(capsys, "--ckpt-path", "/no/such/checkpoint.pth", "--port", "0")
    assert code == 2 and lines == ["error: checkpoint not found: /no/such/checkpoint.pth"]


def test_a_port_in_use_is_one_line(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, lines = serve(capsys, "--ckpt-path", "/no/such/checkpoint.pth", "--port", str(port))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and "in use" in lines[0]


def test_a_missing_local_dir_and_bad_numbers_are_refused(capsys, tmp_path):
    code, lines = serve(capsys, "--allow-local-dir", str(tmp_path / "nope"), "--port", "0")
    assert code == 2 and lines == [f"error: --allow-local-dir {tmp_path / 'nope'}: not a folder"]
    with pytest.raises(SystemExit) as caught:
        serve(capsys, "--max-batch-size", "0")
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("--max-batch-size: must be >= 1, got 0")


def test_it_binds_to_this_machine_unless_told_otherwise():
    assert parse_args([]).host == "127.0.0.1"
