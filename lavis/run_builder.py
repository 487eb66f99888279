"""Building a run from its config: the application layer above the runner.

Used by `train.py` and `python -m lavis.tools.cache_features`, which must build the very same
task, datasets and model from a config (the same seed, so parts built from scratch get the
same initial weights in both).  The errors that are the user's to fix all derive from
:class:`lavis.common.errors.UserError`; the entry points print them as one `error: ...` line.
"""

import logging
import sys
import traceback

from lavis.common import dist_utils
from lavis.common.config import Config
from lavis.common.errors import UserError, report
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


def rank_prefix():
    return f"rank {dist_utils.get_rank()}: " if dist_utils.is_dist_avail_and_initialized() else ""


def run_distributed_entry(args, body):
    """The main of `train.py` and `evaluate.py`: the config from `args`, the process group (under
    torchrun), then `body(cfg)`.  A user's error is one `error: ...` line (exit 2); under torchrun
    any other error is its traceback and one `error: rank R: ...` line (exit 1), so the other
    ranks are stopped; one process keeps Python's usual traceback.  Returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = Config(args)
        dist_utils.init_distributed_mode(cfg.run_cfg)
        if not dist_utils.is_main_process():
            logging.getLogger().setLevel(logging.WARNING)
        body(cfg)
    except UserError as err:
        return report(err, rank_prefix())
    except Exception as err:
        if not dist_utils.is_dist_avail_and_initialized():
            raise  # one process: the usual traceback
        traceback.print_exc()
        first_line = (str(err).strip().splitlines() or [""])[0]
        print(f"error: {rank_prefix()}{type(err).__name__}: {first_line}", file=sys.stderr, flush=True)
        return 1
    finally:
        dist_utils.destroy_process_group()
    return 0
