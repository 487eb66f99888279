"""curves.png from log.jsonl: step grouping, the image, the command line and its errors."""

import json

import pytest
from PIL import Image

from lavis.common import plots
from tests.helpers.entry import run_in_process


def write_log(path, records, extra=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra, encoding="utf-8")
    return path


RECORDS = [  # two micro-batches per step, an evaluation record at the end
    {"epoch": 0, "iter": 0, "step": 1, "loss": 4.0, "lr": 1e-5},
    {"epoch": 0, "iter": 1, "step": 1, "loss": 2.0, "lr": 5e-4, "grad_norm": 3.0},
    {"epoch": 0, "iter": 2, "step": 2, "loss": 1.5, "lr": 1e-3},
    {"epoch": 0, "iter": 3, "step": 2, "loss": 0.5, "lr": 1e-3, "grad_norm": 1.0},
    {"eval_split": "val", "accuracy": 0.5, "total": 12, "by_group": {}},
]


def test_read_curves_means_each_steps_losses_and_keeps_its_last_lr(tmp_path):
    log = write_log(tmp_path / "log.jsonl", RECORDS)
    assert plots.read_curves(log) == ([1, 2], [3.0, 1.0], [5e-4, 1e-3])


def test_logs_without_steps_count_each_training_record_as_one(tmp_path):
    old = [{k: v for k, v in r.items() if k != "step"} for r in RECORDS]
    assert plots.read_curves(write_log(tmp_path / "log.jsonl", old)) == (
        [1, 2, 3, 4],
        [4.0, 2.0, 1.5, 0.5],
        [1e-5, 5e-4, 1e-3, 1e-3],
    )


def test_plot_curves_writes_a_1000_by_400_png(tmp_path):
    png = plots.plot_curves(write_log(tmp_path / "log.jsonl", RECORDS), tmp_path / "curves.png")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1000, 400)
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=100000)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours  # the loss (tab:blue) and lr (tab:orange) lines


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"eval_split": "val"}\n', r"has no training records \(loss and lr\)"),
        ('{"loss": 1.0, "lr": 0.1}\n{"loss": 1.0, "l', "line 2 is not JSON"),
    ],
)
def test_bad_logs_are_one_clear_error(tmp_path, content, message):
    log = tmp_path / "log.jsonl"
    log.write_text(content, encoding="utf-8")
    with pytest.raises(plots.PlotError, match=message):
        plots.plot_curves(log, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_command_line_draws_beside_the_log_or_says_what_is_wrong(tmp_path):
    log = write_log(tmp_path / "log.jsonl", RECORDS)
    done = run_in_process("lavis.common.plots", str(log), module=True)
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    missing = run_in_process("lavis.common.plots", str(tmp_path / "nope.jsonl"), module=True)
    assert missing.returncode == 2
    assert missing.stderr == f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory\n"
