"""Train MiniGPT4Qwen: `python train.py [--cfg-path CFG] [--options key=value ...]`.

With no arguments it runs the embedded tiny default (lavis/projects/instruction_tuning/
train_tiny.yaml) on CPU.  Config -> task -> datasets + model -> runner, as in LAVIS.

Several processes (DDP; see lavis/common/dist_utils.py):
`python -m torch.distributed.run --nproc_per_node=N train.py --cfg-path CFG ...`.  If any rank
fails, it prints `error: rank R: ...`, leaves the process group and exits non-zero; torchrun then
stops the other ranks (and `run.dist_timeout_s` bounds any collective still waiting).
"""

import argparse
import os
import sys
import time

import lavis  # noqa: F401  (registers every component)
from lavis.common.registry import registry
from lavis.run_builder import build_run, run_distributed_entry

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
    return run_distributed_entry(parse_args(argv), train)


def train(cfg):
    task, datasets, model = build_run(cfg)
    job_id = time.strftime("%Y%m%d%H%M%S")
    runner = registry.get_runner_class(cfg.run_cfg.runner)(cfg, task, model, datasets, job_id)
    runner.train()


if __name__ == "__main__":
    sys.exit(main())
