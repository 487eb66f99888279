"""Learning-rate schedules (registered by name) with the original LAVIS semantics.

`linear_warmup_cosine_lr`: during epoch 0 the lr rises linearly from `warmup_lr` to `init_lr`
over `warmup_steps` iterations; from then on it follows a per-epoch cosine from `init_lr`
down to `min_lr` at `max_epoch`.  `step(cur_epoch, cur_step)` is called before every iteration.
Parameter groups may carry an `lr_scale`.
"""

import math

from lavis.common.registry import registry


def _set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def warmup_lr(step, max_step, init_lr, max_lr):
    return min(max_lr, init_lr + (max_lr - init_lr) * step / max(max_step, 1))


def cosine_lr(epoch, max_epoch, init_lr, min_lr):
    return (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / max_epoch)) + min_lr


@registry.register_lr_scheduler("linear_warmup_cosine_lr")
class LinearWarmupCosineLRScheduler:
    def __init__(self, optimizer, max_epoch, min_lr, init_lr, warmup_steps=0, warmup_start_lr=-1, **kwargs):
        self.optimizer = optimizer
        self.max_epoch = max_epoch
        self.min_lr = min_lr
        self.init_lr = init_lr
        self.warmup_steps = warmup_steps
        self.warmup_start_lr = warmup_start_lr if warmup_start_lr >= 0 else init_lr

    def lr_at(self, cur_epoch, cur_step):
        if cur_epoch == 0 and cur_step <= self.warmup_steps:
            return warmup_lr(cur_step, self.warmup_steps, self.warmup_start_lr, self.init_lr)
        return cosine_lr(cur_epoch, self.max_epoch, self.init_lr, self.min_lr)

    def step(self, cur_epoch, cur_step):
        _set_lr(self.optimizer, self.lr_at(cur_epoch, cur_step))


@registry.register_lr_scheduler("constant_lr")
class ConstantLRScheduler(LinearWarmupCosineLRScheduler):
    """Warmup as above, then `init_lr` for good."""

    def lr_at(self, cur_epoch, cur_step):
        if cur_epoch == 0 and cur_step <= self.warmup_steps:
            return warmup_lr(cur_step, self.warmup_steps, self.warmup_start_lr, self.init_lr)
        return self.init_lr
