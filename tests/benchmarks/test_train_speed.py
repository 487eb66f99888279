"""Smoke tests of benchmarks/train_speed.py: every mode runs and prints figures that add up (no timings asserted)."""

import re

import pytest

from benchmarks import train_speed  # the repository root is on sys.path (pytest's pythonpath)


def figures(line):
    return [float(x.replace(",", "")) for x in re.findall(r"([\d.]+) (?:samples/s|real tok/s|padded tok/s)", line)]


def test_tiny_ours_original_cached_and_packed_rows(capsys):
    argv = ["--configs", "tiny", "--steps", "1", "--threads", "1", "--cached-features", "--packing", "--in-process"]
    assert train_speed.main([*argv, "--batch", "3", "8"]) == 0
    out = capsys.readouterr().out
    assert "== tiny: batch 3," in out and "== tiny: batch 8," in out
    per_sample = {}  # (batch, row) -> computed (padded or packed) tokens per sample
    for batch, text in zip((3, 8), out.split("== tiny: batch 8,")):
        for line in text.splitlines():
            if re.match(r"\s+(ours|original|packed)\s+[\d.]+ samples/s", line):
                samples, real, padded = figures(line)
                assert samples > 0 and 0 < real <= padded
                per_sample[batch, line.split()[0]] = padded / samples
    assert {row for _, row in per_sample} == {"ours", "original", "packed"}
    # the original pads every sample to max_txt_len: per sample it computes more padded tokens;
    # packing the same samples computes fewer than padding them to the batch's longest
    assert per_sample[3, "original"] > per_sample[3, "ours"]
    assert per_sample[8, "ours"] > per_sample[8, "packed"]
    assert "ours is" in out and "cached: skipped (the image side trains" in out
    assert "packed is" in out and "x faster than unpacked" in out


def test_varied_lengths_groups_the_same_samples_with_less_padding(capsys):
    assert (
        train_speed.main(["--configs", "tiny", "--steps", "2", "--threads", "1", "--varied-lengths", "--in-process"])
        == 0
    )
    out = capsys.readouterr().out
    padding = {
        m.group(1): int(m.group(2)) for m in re.finditer(r"(random|grouped) .*padding (\d+)% of real tokens", out)
    }
    assert set(padding) == {"random", "grouped"} and padding["grouped"] < padding["random"]
    assert "length-grouped batches are" in out


def test_realistic_generator_hits_the_specified_lengths():
    model, _ = train_speed.build("tiny", "cpu", "realistic")
    samples = train_speed.realistic_conversations(model.llm_tokenizer, 2000, seed=0)
    stats = train_speed.length_statistics(model, samples)
    assert 0.37 <= stats["minigpt4_share"] <= 0.43 and stats["chinese_share"] == 0.5
    assert 105 <= stats["minigpt4_median"] <= 125 and 72 <= stats["llava_median"] <= 88
    # the answers and questions have the lengths drawn for them, within a token, in the model's tokenizer
    tok = model.llm_tokenizer
    for s in samples[:200]:
        question, answer = (m["value"] for m in s["conversations"])
        assert question.startswith("<Img><ImageHere></Img> ")
        assert 9 <= len(tok.encode_text(question.removeprefix("<Img><ImageHere></Img> "))) <= 30
        assert s["answer_tokens"] - 2 <= len(tok.encode_text(answer)) <= s["answer_tokens"]
    # tiny: 8 image slots and a 45-token template; answers ~100 and questions ~20 tokens on average
    assert 160 <= stats["mean"] <= 185 and stats["median"] <= stats["p90"] <= 256
    assert 0 < stats["truncated"] < 0.1
    assert train_speed.realistic_conversations(model.llm_tokenizer, 5, seed=0) == samples[:5]


def test_realistic_workload_runs_each_row_in_a_fresh_process(capfd):
    argv = ["--workload", "realistic", "--configs", "tiny", "--steps", "1", "--threads", "1", "--batch", "2"]
    assert train_speed.main([*argv, "--epoch", "1000000"]) == 0
    out = capfd.readouterr().out
    assert "rows each in a fresh process" in out
    # the statistics once, from this process (the rows' processes build the same batches silently)
    assert (
        len(re.findall(r"realistic workload .*mean [\d.]+, median \d+, p90 \d+; [\d.]+% cut at max_txt_len 256", out))
        == 1
    )
    lines = {
        line.split()[0]: line for line in out.splitlines() if re.match(r"\s+(ours|original)\s+[\d.]+ samples/s", line)
    }
    assert set(lines) == {"ours", "original"}
    for line in lines.values():
        samples, real, padded = figures(line)
        assert samples > 0 and 0 < real <= padded
        hours = float(re.search(r"epoch of 1000000 samples: ([\d.]+) h", line).group(1))
        assert hours == pytest.approx(1e6 / samples / 3600, rel=0.02)
    # both steps do the same useful work, so their useful FLOP rates are in the ratio of their speeds
    useful = {k: float(re.search(r"useful ([\d.]+) GFLOP/s", line).group(1)) for k, line in lines.items()}
    peak = {k: float(re.search(r"peak RSS ([\d.]+) GiB", line).group(1)) for k, line in lines.items()}
    speedup, memory = map(float, re.search(r"ours is ([\d.]+)x faster .* at ([\d.]+)x its peak memory", out).groups())
    assert useful["ours"] / useful["original"] == pytest.approx(speedup, rel=0.05)
    assert peak["ours"] / peak["original"] == pytest.approx(memory, abs=0.02)
