"""`benchmarks/chat_speed.py` runs and prints its rows (figures are printed, never asserted)."""

import re

from tests.helpers.chat import run_script


def test_chat_speed_smoke(tmp_path):
    result = run_script(
        "benchmarks/chat_speed.py", "--models", "tiny", "--runs", "1", "--new-tokens", "6",
        env={"LAVIS_CACHE_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in ("bare generate ", "bare generate + embed", "chat (ChatSession.stream)", "chat (Reply.run, CLI)"):
        assert row in out, out
    for chat_row in (r"chat \(ChatSession\.stream\)", r"chat \(Reply\.run, CLI\)"):
        assert re.search(chat_row + r"\s+[\d.]+ ms\s+[\d.]+ tok/s", out), out
        assert re.search(chat_row + r"\s+vs bare generate \+ embed\s+first token\s+[+-][\d.]+%", out), out
