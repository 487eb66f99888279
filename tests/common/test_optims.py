import math

import pytest
import torch

from lavis.common.optims import ConstantLRScheduler, LinearWarmupCosineLRScheduler


def make_optimizer():
    p = torch.nn.Parameter(torch.zeros(1))
    return torch.optim.AdamW([{"params": [p]}, {"params": [], "lr_scale": 0.5}], lr=1.0)


def test_warmup_then_per_epoch_cosine():
    opt = make_optimizer()
    sched = LinearWarmupCosineLRScheduler(
        opt, max_epoch=4, min_lr=1e-5, init_lr=1e-3, warmup_steps=10, warmup_start_lr=0.0
    )
    sched.step(cur_epoch=0, cur_step=0)
    assert opt.param_groups[0]["lr"] == 0.0
    sched.step(cur_epoch=0, cur_step=5)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert opt.param_groups[1]["lr"] == pytest.approx(2.5e-4)  # lr_scale
    sched.step(cur_epoch=0, cur_step=10)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    sched.step(cur_epoch=0, cur_step=11)  # after warmup, epoch 0: cosine(0) = init_lr
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    sched.step(cur_epoch=1, cur_step=0)
    expected = (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 1 / 4)) + 1e-5
    assert opt.param_groups[0]["lr"] == pytest.approx(expected)
    sched.step(cur_epoch=2, cur_step=3)
    assert opt.param_groups[0]["lr"] == pytest.approx((1e-3 - 1e-5) * 0.5 + 1e-5)


def test_negative_warmup_start_means_init_lr():
    opt = make_optimizer()
    sched = LinearWarmupCosineLRScheduler(opt, max_epoch=2, min_lr=0.0, init_lr=0.1, warmup_steps=5, warmup_start_lr=-1)
    sched.step(0, 0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_constant_after_warmup():
    opt = make_optimizer()
    sched = ConstantLRScheduler(opt, max_epoch=3, min_lr=0.0, init_lr=0.2, warmup_steps=4, warmup_start_lr=0.0)
    sched.step(0, 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    sched.step(2, 7)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
