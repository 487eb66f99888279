"""Building a run from its config: the application layer above the runner.

Used by `train.py` and `python -m lavis.tools.cache_features`, which must build the very same
task, datasets and model from a config (the same seed, so parts built from scratch get the
same initial weights in both); and by the tools that start from a trained checkpoint
(`merge_lora`, `export_hf`): :func:`read_trained_checkpoint` -> :func:`trained_config` ->
:func:`build_trained_model` rebuild the model a run trained, as `train.py` built it.  The errors
that are the user's to fix all derive from :class:`lavis.common.errors.UserError`; the entry
points print them as one `error: ...` line.
"""

import argparse
import logging
import sys
import traceback

from omegaconf import OmegaConf

from lavis.common import dist_utils
from lavis.common.checkpoint import CheckpointError, load_file
from lavis.common.config import Config, load_yaml
from lavis.common.errors import MissingFilesError, UserError, report
from lavis.common.registry import registry
from lavis.common.rng import set_seed
from lavis.tasks import setup_task


class TrainedModelError(UserError, ValueError):
    """A checkpoint that cannot be rebuilt into the model it was trained as, worded for the user."""


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


def read_trained_checkpoint(path):
    """The checkpoint at `path` (read with weights_only): (its model state dict, the whole dict)."""
    checkpoint = load_file(path)
    if not isinstance(checkpoint, dict):
        raise TrainedModelError(f"{path} is not a checkpoint (expected a dict with a 'model' entry)")
    return checkpoint.get("model", checkpoint), checkpoint


def trained_config(cfg_path, checkpoint, options, ckpt_path):
    """The checked run config: `cfg_path` (YAML or a job folder's config.json) or the checkpoint's own."""
    if cfg_path:
        user = load_yaml(cfg_path)  # JSON is YAML: a job folder's config.json reads the same
    elif isinstance(checkpoint.get("config"), dict):
        user = OmegaConf.create(checkpoint["config"])
    else:
        raise TrainedModelError(f"{ckpt_path} has no 'config' entry: pass the run's config with --cfg-path")
    cfg = Config.__new__(Config)
    cfg.config = Config.build(user, OmegaConf.from_dotlist(list(options or [])))
    return cfg


def build_trained_model(cfg, state, ckpt_path):
    """The trained model: built as train.py builds it (same seed), then the checkpoint loaded; in eval mode."""
    set_seed(cfg.run_cfg.seed)  # parts built from *_arch (random init) come out as in training
    model = registry.get_model_class(cfg.model_cfg.arch).from_config(cfg.model_cfg)
    try:
        model.load_checkpoint(state)
    except CheckpointError as err:
        raise TrainedModelError(
            f"{ckpt_path} does not fit the config (another model, lora_r or target modules?): {err}"
        ) from None
    return model.eval()


def checkpoint_tool_parser(description, ckpt_help, output_help):
    """The arguments every trained-checkpoint tool takes: --ckpt-path, --output-dir, --cfg-path, --options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--ckpt-path", required=True, help=ckpt_help)
    parser.add_argument("--output-dir", required=True, help=output_help)
    parser.add_argument(
        "--cfg-path",
        default=None,
        help="the run's YAML or its job folder's config.json (default: the checkpoint's config)",
    )
    parser.add_argument("--options", nargs="+", default=[], help="overrides of config keys, e.g. model.llm_model=/path")
    return parser


def checkpoint_tool_main(run, args):
    """The main of a trained-checkpoint tool: `run(args)` -> {what: path written}, each printed;
    a user's error is one `error: ...` line.  Returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        written = run(args)
    except MissingFilesError as err:
        return report(err, fold=True)
    except (UserError, FileNotFoundError) as err:
        return report(err)
    for what, path in written.items():
        print(f"wrote {what}: {path}")
    return 0


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
