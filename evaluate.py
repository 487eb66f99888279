"""Evaluate a model on benchmarks: `python evaluate.py --cfg-path lavis/projects/eval/<benchmark>.yaml
[--options model.finetuned=PATH ...] [--resume]`.

Config -> benchmark task + benchmark datasets + model (as `train.py` builds them) -> for each
dataset: batched greedy generation, the benchmark's parser and score
(`lavis/tasks/benchmark_task.py`) -> `<run.output_dir>/<dataset>/predictions.jsonl` (question id,
prompt, prediction, parsed answer, correct), `results.json`, and a printed table.

Several processes: `python -m torch.distributed.run --nproc_per_node=N evaluate.py ...`: each rank
generates for its share of the batches, rank 0 gathers and scores (1 and N ranks give the same
scores).  `--resume` keeps the predictions already written under the output folder (those made
for the prompts this run asks) and answers only the rest.
"""

import argparse
import os
import sys

import torch

import lavis  # noqa: F401  (registers every component)
from lavis.common import dist_utils
from lavis.common.checkpoint import check_output_folder
from lavis.common.config import ConfigError
from lavis.common.dtypes import autocast_dtype_named
from lavis.common.registry import registry
from lavis.run_builder import build_run, run_distributed_entry
from lavis.tasks.benchmark_task import BenchmarkTask, benchmark_task_of, evaluate_benchmark, format_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg-path", required=True, help="evaluation config YAML (lavis/projects/eval/...)")
    parser.add_argument("--options", nargs="+", default=[], help="overrides of config keys, e.g. model.finetuned=PATH")
    parser.add_argument("--resume", action="store_true", help="keep the predictions already written; answer the rest")
    return parser.parse_args(argv)


def benchmark_tasks(cfg):
    """{dataset name: its benchmark task}; run.task must be a benchmark task too."""
    task_cls = registry.get_task_class(cfg.run_cfg.task)
    if not (isinstance(task_cls, type) and issubclass(task_cls, BenchmarkTask)):
        names = sorted(n for n, c in registry.mapping["task"].items() if issubclass(c, BenchmarkTask))
        raise ConfigError(f"run.task {cfg.run_cfg.task!r} is not a benchmark; evaluate.py runs {', '.join(names)}")
    tasks = {}
    for name in cfg.datasets_cfg:
        tasks[name] = benchmark_task_of(name, cfg.run_cfg)
        if tasks[name] is None:
            raise ConfigError(f"datasets.{name} is not a benchmark (evaluate.py reads benchmarks' released files)")
    return tasks


def main(argv=None):
    args = parse_args(argv)
    return run_distributed_entry(args, lambda cfg: evaluate(cfg, args.resume))


def evaluate(cfg, resume=False):
    run = cfg.run_cfg
    if run.threads:
        torch.set_num_threads(run.threads)
    tasks = benchmark_tasks(cfg)  # before anything loads
    if dist_utils.is_main_process():  # a folder predictions can be written in, before the model loads
        check_output_folder(run.output_dir, 0)
    _, datasets, model = build_run(cfg)
    device = dist_utils.pick_device(run.device, dist_utils.is_dist_avail_and_initialized())
    model = model.to(device).eval()
    amp = autocast_dtype_named(run.autocast_dtype) if run.amp else None
    for name, splits in datasets.items():
        with torch.autocast(device_type=device.type, dtype=amp, enabled=amp is not None):
            scores = evaluate_benchmark(
                tasks[name],
                model,
                splits["test"],
                os.path.join(run.output_dir, name),
                batch_size=run.batch_size_eval,
                max_new_tokens=run.max_new_tokens,
                num_beams=run.num_beams,
                resume=resume,
                num_workers=run.num_workers,
            )
        if dist_utils.is_main_process():
            print(f"[{name}] {len(splits['test'])} items -> {os.path.join(run.output_dir, name)}")
            print(format_table(tasks[name], scores), flush=True)


if __name__ == "__main__":
    sys.exit(main())
