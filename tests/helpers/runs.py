"""Helpers of the runner tests: the tiny default's run config on a small dataset, a runner built
from it as train.py builds one, and the run's log.jsonl."""

import json

import torch
from omegaconf import OmegaConf

from lavis.common.config import Config
from lavis.common.registry import registry
from lavis.tasks import setup_task


def run_config(shapes_root, output_dir, **run):
    user = OmegaConf.load("lavis/projects/instruction_tuning/train_tiny.yaml")
    user.datasets.shapes_instruction = {
        "generator": {"num_train": 40, "num_val": 12},
        "build_info": {
            "annotations": {
                "train": {"storage": str(shapes_root / "train.json")},
                "val": {"storage": str(shapes_root / "val.json")},
            },
            "images": {"storage": str(shapes_root / "image")},
        },
    }
    options = {
        "run": {"output_dir": str(output_dir), "batch_size_train": 8, "batch_size_eval": 12, "warmup_steps": 2, **run}
    }
    cfg = Config.__new__(Config)
    cfg.config = Config.build(user, OmegaConf.create(options))
    return cfg


def make_runner(cfg, job="job"):
    torch.manual_seed(cfg.run_cfg.seed)
    task = setup_task(cfg)
    datasets = task.build_datasets(cfg)
    model = task.build_model(cfg)
    return registry.get_runner_class(cfg.run_cfg.runner)(cfg, task, model, datasets, job)


def read_log(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]
