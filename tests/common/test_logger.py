"""Run logs on a real tiny training: TensorBoard scalars read back, wandb (a recording fake), curves.png."""

import logging
import sys
import types

import psutil
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lavis.common.logger import RunLogger, StepMeter
from tests.helpers.runs import make_runner, read_log, run_config

EPOCHS, ACCUM = 2, 2  # 40 samples in batches of 8: 5 iterations, 3 optimizer steps (2 + 2 + 1) per epoch
TAGS = {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/padded_tokens_per_s", "train/rss_mib"}


class FakeWandb(types.ModuleType):
    """Stands in for the wandb package: records init, log and finish."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self

    def log(self, values, step):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished += 1


@pytest.fixture(scope="module")
def trained(shapes_root, tmp_path_factory):
    """One tiny training (clipping at 1.0, as the default) with TensorBoard and the wandb fake."""
    tmp_path = tmp_path_factory.mktemp("logged")
    fake = FakeWandb()
    clipped_norms = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "wandb", fake)
        cfg = run_config(
            shapes_root,
            tmp_path,
            max_epoch=EPOCHS,
            valid_splits=[],
            accum_grad_iters=ACCUM,
            wandb=True,
            wandb_project="proj",
        )
        assert cfg.run_cfg.tensorboard is True and cfg.run_cfg.grad_norm_clip == 1.0
        runner = make_runner(cfg)
        step = runner.optimizer.step

        def recording_step(*args, **kwargs):  # the gradients' norm as the optimizer sees them: after clipping
            grads = [p.grad for g in runner.optimizer.param_groups for p in g["params"] if p.grad is not None]
            clipped_norms.append(torch.nn.utils.get_total_norm(grads).item())
            return step(*args, **kwargs)

        patch.setattr(runner.optimizer, "step", recording_step)
        runner.train()
    job = tmp_path / "job"
    events = EventAccumulator(str(job / "tensorboard"))
    events.Reload()
    return job, events, fake, clipped_norms


def scalars(events, tag):
    return [(e.step, e.value) for e in events.Scalars(tag)]


def step_records(job):
    """{optimizer step: its log.jsonl training records}."""
    by_step = {}
    for record in read_log(job / "log.jsonl"):
        if "loss" in record:
            by_step.setdefault(record["step"], []).append(record)
    return by_step


def test_tensorboard_scalars_match_log_jsonl_at_every_optimizer_step(trained):
    job, events, _, _ = trained
    assert set(events.Tags()["scalars"]) == TAGS  # no CUDA here: no cuda_max_allocated_mib
    by_step = step_records(job)
    assert sorted(by_step) == list(range(1, 2 * 3 + 1))
    assert [len(by_step[s]) for s in sorted(by_step)] == [2, 2, 1] * EPOCHS
    for tag in TAGS:
        assert [step for step, _ in scalars(events, tag)] == sorted(by_step), tag
    for step, loss in scalars(events, "train/loss"):  # the mean of the step's micro-batch losses
        records = by_step[step]
        assert loss == pytest.approx(sum(r["loss"] for r in records) / len(records), abs=1e-5)
    for step, lr in scalars(events, "train/lr"):
        assert lr == pytest.approx(by_step[step][-1]["lr"], rel=1e-6)
    for step, norm in scalars(events, "train/grad_norm"):
        assert norm == pytest.approx(by_step[step][-1]["grad_norm"], rel=1e-5, abs=1e-6)
        assert all("grad_norm" not in r for r in by_step[step][:-1])  # only the stepping iteration has it


def test_grad_norm_is_measured_before_clipping(trained):
    job, _, _, clipped_norms = trained
    norms = [records[-1]["grad_norm"] for _, records in sorted(step_records(job).items())]
    assert max(norms) > 1.0  # from scratch the early gradients exceed the clip threshold
    assert clipped_norms == pytest.approx([min(n, 1.0) for n in norms], rel=1e-4)


def test_tokens_per_second_and_memory_are_plausible(trained):
    job, events, _, _ = trained
    labelled, padded = dict(scalars(events, "train/tokens_per_s")), dict(scalars(events, "train/padded_tokens_per_s"))
    by_step = step_records(job)
    for step, records in by_step.items():
        assert 0 < labelled[step] < padded[step]
        # both rates divide the step's counts by the same seconds
        counts = sum(r["num_tokens"] for r in records), sum(r["num_padded_tokens"] for r in records)
        assert labelled[step] / padded[step] == pytest.approx(counts[0] / counts[1], rel=1e-4)
    rss = [value for _, value in scalars(events, "train/rss_mib")]
    assert all(100 < value < psutil.virtual_memory().total / 2**20 for value in rss)  # torch alone is > 100 MiB


def test_wandb_gets_the_same_scalars(trained):
    job, events, fake, _ = trained
    (init,) = fake.inits
    assert init["project"] == "proj" and init["name"] == "job" and init["dir"] == str(job)
    assert init["config"]["run"]["accum_grad_iters"] == ACCUM
    assert fake.finished == 1
    assert [step for step, _ in fake.logged] == list(range(1, 2 * 3 + 1))
    for tag in TAGS:
        tensorboard = [value for _, value in scalars(events, tag)]
        assert [values[tag] for _, values in fake.logged] == pytest.approx(tensorboard, rel=1e-6), tag


def test_curves_png_is_drawn_at_the_end(trained):
    job, _, _, _ = trained
    with Image.open(job / "curves.png") as image:
        assert image.format == "PNG" and image.size == (1000, 400)
        assert len(image.convert("RGB").getcolors(maxcolors=100000)) > 10  # drawn, not blank


def test_missing_wandb_and_tensorboard_warn_once_and_training_goes_on(shapes_root, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[], wandb=True)
    with caplog.at_level(logging.WARNING, logger="lavis.common.logger"):
        make_runner(cfg).train()
    warnings = [r.getMessage() for r in caplog.records if r.name == "lavis.common.logger"]
    assert warnings == [
        "run.tensorboard is true but tensorboard is not installed: no TensorBoard logs (pip install tensorboard)",
        "run.wandb is true but wandb is not installed: training goes on without it (pip install wandb)",
    ]
    assert len([r for r in read_log(tmp_path / "job" / "log.jsonl") if "loss" in r]) == 5
    assert (tmp_path / "job" / "checkpoint_0.pth").exists() and (tmp_path / "job" / "curves.png").exists()
    assert not (tmp_path / "job" / "tensorboard").exists()


def test_tensorboard_off_and_other_ranks_write_nothing(tmp_path):
    off = RunLogger(str(tmp_path / "off"), {"tensorboard": False}, is_main=True)
    off.scalars(1, {"train/loss": 1.0})
    off.close()
    other_rank = RunLogger(str(tmp_path / "rank1"), {"tensorboard": True, "wandb": True}, is_main=False)
    other_rank.scalars(1, {"train/loss": 1.0})
    other_rank.close()
    assert list(tmp_path.iterdir()) == []


def test_an_error_in_training_still_closes_the_logs_and_draws_the_curves(shapes_root, tmp_path, monkeypatch):
    cfg = run_config(shapes_root, tmp_path, max_epoch=1, valid_splits=[])
    runner = make_runner(cfg)
    train_step, calls = runner.task.train_step, []

    def failing_third(model, samples):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return train_step(model, samples)

    monkeypatch.setattr(runner.task, "train_step", failing_third)
    with pytest.raises(RuntimeError, match="out of memory"):
        runner.train()
    events = EventAccumulator(str(tmp_path / "job" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert (tmp_path / "job" / "curves.png").exists()


def test_step_meter_averages_the_micro_batches_and_restarts():
    meter = StepMeter()
    meter.add(2.0, 10, 40)
    meter.add(4.0, 30, 40)
    first = meter.pop()
    assert first["train/loss"] == 3.0
    assert first["train/tokens_per_s"] * 2 == pytest.approx(first["train/padded_tokens_per_s"])
    meter.add(1.0, 5, 5)
    assert meter.pop()["train/loss"] == 1.0


def test_truncating_a_damaged_log_keeps_the_records_before_the_checkpoint(tmp_path):
    from lavis.common.logger import truncate_log

    log = tmp_path / "log.jsonl"
    log.write_bytes(
        b'{"epoch": 0, "iter": 0, "loss": 1.0}\n'
        b"\xff\xfe not UTF-8\n"
        b"[1, 2]\n"
        b'{"iter": 3}\n'
        b'{"epoch": 0, "iter": "x"}\n'
        b'{"eval_split": "val", "accuracy": 0.5}\n'
        b'{"epoch": 0, "iter": 1, "loss": 0.5}\n'
        b'{"epoch": 0, "iter": 2, "lo'
    )
    truncate_log(str(log), 0, 1)
    assert log.read_text().splitlines() == [
        '{"epoch": 0, "iter": 0, "loss": 1.0}',
        '{"iter": 3}',
        '{"epoch": 0, "iter": "x"}',
        '{"eval_split": "val", "accuracy": 0.5}',
    ]
