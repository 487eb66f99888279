"""`benchmarks/serve_load.py` starts the server, runs its clients and prints its rows (figures are
printed, never asserted; the error column must be zero)."""

import re

from tests.helpers.chat import run_script


def test_serve_load_smoke():
    result = run_script(
        "benchmarks/serve_load.py", "--configs", "tiny", "--clients", "1", "2", "--requests", "2",
        "--new-tokens", "4", "--threads", "1",
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = re.findall(
        r"^\s+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+ MiB\s+[\d.]+\s+(\d+)$", result.stdout, re.M
    )
    assert [(clients, done, errors) for clients, done, errors in rows] == [("1", "2", "0"), ("2", "4", "0")], (
        result.stdout
    )
    assert re.search(r"tiny: 2 clients [\d.]+x the requests/s of one", result.stdout), result.stdout
