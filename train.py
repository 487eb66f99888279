"""Train MiniGPT4Qwen: `python train.py [--cfg-path CFG] [--options key=value ...]`.

With no arguments it runs the embedded tiny default (lavis/projects/instruction_tuning/
train_tiny.yaml) on CPU.  Config -> task -> datasets + model -> runner, as in LAVIS.

Several processes (DDP; see lavis/common/dist_utils.py):
`python -m torch.distributed.run --nproc_per_node=N train.py --cfg-path CFG ...`.  If any rank
fails, it prints `error: rank R: ...`, leaves the process group and exits non-zero; torchrun then
stops the other ranks (and `run.dist_timeout_s` bounds any collective still waiting).
"""

import argparse
import logging
import os
import sys
import time
import traceback

import lavis  # noqa: F401  (registers every component)
from lavis.common import dist_utils
from lavis.common.config import Config
from lavis.common.errors import UserError
from lavis.common.registry import registry
from lavis.run_builder import build_run

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CFG = os.path.join(REPO_ROOT, "lavis", "projects", "instruction_tuning", "train_tiny.yaml")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg-path", default=DEFAULT_CFG, help="run config YAML (default: the tiny CPU demo)")
    parser.add_argument(
        "--options", nargs="+", default=[], help="overrides of config keys, e.g. run.max_epoch=2 model.max_txt_len=128"
    )
    parser.add_argument(
        "--resume",
        metavar="auto|PATH",
        default=None,
        help="resume exactly from a checkpoint; 'auto': the newest under run.output_dir (sets run.resume_ckpt_path)",
    )
    args = parser.parse_args(argv)
    if args.resume:
        args.options = [*args.options, f"run.resume_ckpt_path={args.resume}"]
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = Config(args)
        dist_utils.init_distributed_mode(cfg.run_cfg)
        if not dist_utils.is_main_process():
            logging.getLogger().setLevel(logging.WARNING)
        task, datasets, model = build_run(cfg)
        job_id = time.strftime("%Y%m%d%H%M%S")
        runner = registry.get_runner_class(cfg.run_cfg.runner)(cfg, task, model, datasets, job_id)
        runner.train()
    except UserError as err:
        print(f"error: {rank_prefix()}{err}", file=sys.stderr, flush=True)
        return 2
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


def rank_prefix():
    return f"rank {dist_utils.get_rank()}: " if dist_utils.is_dist_avail_and_initialized() else ""


if __name__ == "__main__":
    sys.exit(main())
