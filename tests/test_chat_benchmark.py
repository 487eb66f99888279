"""`benchmarks/chat_speed.py` runs and prints its rows (figures are printed, never asserted)."""

import re

from test_chat_support import run_script


def test_chat_speed_smoke(tmp_path):
    result = run_script(
        "benchmarks/chat_speed.py", "--models", "tiny", "--runs", "1", "--new-tokens", "6",
        env={"LAVIS_CACHE_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in ("bare generate ", "bare generate + embed", "chat (ChatSession.stream)", "chat vs bare generate + embed"):
        assert row in out, out
    assert re.search(r"chat \(ChatSession\.stream\)\s+[\d.]+ ms\s+[\d.]+ tok/s", out), out
