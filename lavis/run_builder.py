"""Building a run from its config: the application layer above the runner.

Used by `train.py` and `python -m lavis.tools.cache_features`, which must build the very same
task, datasets and model from a config (the same seed, so parts built from scratch get the
same initial weights in both).  The errors that are the user's to fix all derive from
:class:`lavis.common.errors.UserError`; the entry points print them as one `error: ...` line.
"""

import logging

from lavis.common.rng import set_seed
from lavis.tasks import setup_task


def build_run(cfg):
    """Config -> task -> datasets + model, as LAVIS wires them; returns (task, datasets, model).
    `cfg` is a `lavis.common.config.Config` (built after `import lavis` registered everything)."""
    set_seed(cfg.run_cfg.seed)  # the same initial weights in every run, tool and rank
    task = setup_task(cfg)
    task.check_files(cfg)
    datasets = task.build_datasets(cfg)
    model = task.build_model(cfg)
    split = cfg.run_cfg.train_splits[0] if cfg.run_cfg.train_splits else None
    for name, splits in datasets.items():  # what the first training sample looks like to the model
        if split in splits:
            logging.info(
                "first %s/%s sample, supervised spans in [[ ]]: %s", name, split, task.show_sample(model, splits[split])
            )
            break
    return task, datasets, model
