"""Smoke tests of benchmarks/train_speed.py: every mode runs and prints figures that add up (no timings asserted)."""

import re

from benchmarks import train_speed  # the repository root is on sys.path (pytest's pythonpath)


def figures(line):
    return [float(x.replace(",", "")) for x in re.findall(r"([\d.]+) (?:samples/s|real tok/s|padded tok/s)", line)]


def test_tiny_ours_original_and_cached_rows(capsys):
    assert train_speed.main(["--configs", "tiny", "--steps", "1", "--threads", "1", "--cached-features"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: figures(line)
        for line in out.splitlines()
        if re.match(r"\s+(ours|original)\s+[\d.]+ samples/s", line)
    }
    assert set(rows) == {"ours", "original"}
    for samples, real, padded in rows.values():
        assert samples > 0 and 0 < real <= padded
    # the original pads every sample to max_txt_len: per sample it computes more padded tokens
    assert rows["original"][2] / rows["original"][0] > rows["ours"][2] / rows["ours"][0]
    assert "ours is" in out and "cached: skipped (the image side trains" in out


def test_varied_lengths_groups_the_same_samples_with_less_padding(capsys):
    assert train_speed.main(["--configs", "tiny", "--steps", "2", "--threads", "1", "--varied-lengths"]) == 0
    out = capsys.readouterr().out
    padding = {
        m.group(1): int(m.group(2)) for m in re.finditer(r"(random|grouped) .*padding (\d+)% of real tokens", out)
    }
    assert set(padding) == {"random", "grouped"} and padding["grouped"] < padding["random"]
    assert "length-grouped batches are" in out
