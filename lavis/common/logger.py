"""Run logs people look at: TensorBoard scalars, optional Weights & Biases, and curves.png.

The runner (`lavis/runners/runner_base.py`) builds one `RunLogger` per run and, at every
optimizer step, hands it the step's scalars (`train/loss`, `train/lr`, `train/grad_norm`,
`train/tokens_per_s`, `train/padded_tokens_per_s`, `train/rss_mib`, and on CUDA
`train/cuda_max_allocated_mib`); `StepMeter` gathers the micro-batches of one step and
`memory_scalars` reads the process's memory.  The logger writes them to
`<output_dir>/tensorboard/` (`run.tensorboard`) and to wandb (`run.wandb`, project
`run.wandb_project`; wandb reads its mode, e.g. WANDB_MODE=offline, from the environment).
`close()` ends both and draws `<output_dir>/curves.png` from `log.jsonl` (`lavis/common/plots.py`).
Only the main process writes: the others get a logger that does nothing.  A missing optional
library (tensorboard, wandb, matplotlib) is one warning, never a stopped run.

`truncate_log` cuts `log.jsonl` back to a checkpoint's position when a run resumes.
"""

import importlib
import json
import logging
import os
import time

import psutil
import torch

from lavis.common.utils import atomic_open

LOGGER = logging.getLogger(__name__)
MIB = 2**20


def memory_scalars(device):
    """This process's resident memory, and on CUDA the peak memory torch has allocated, in MiB."""
    scalars = {"train/rss_mib": psutil.Process().memory_info().rss / MIB}
    if device.type == "cuda":
        scalars["train/cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / MIB
    return scalars


class StepMeter:
    """The micro-batches of one optimizer step: their mean loss, and labelled and padded tokens
    per second of wall time since the previous step (data loading included)."""

    def __init__(self):
        self._reset()

    def _reset(self):
        self.losses, self.tokens, self.padded, self.started = [], 0, 0, time.perf_counter()

    def add(self, loss, num_tokens=0, num_padded_tokens=0):
        self.losses.append(loss)
        self.tokens += num_tokens
        self.padded += num_padded_tokens

    def pop(self):
        """The step's scalars; starts the next step."""
        seconds = max(time.perf_counter() - self.started, 1e-9)
        scalars = {
            "train/loss": sum(self.losses) / max(len(self.losses), 1),
            "train/tokens_per_s": self.tokens / seconds,
            "train/padded_tokens_per_s": self.padded / seconds,
        }
        self._reset()
        return scalars


def _optional(module, key):
    try:
        return importlib.import_module(module)
    except ImportError:
        LOGGER.warning(
            "run.%s is true but %s is not installed: training goes on without it (pip install %s)", key, module, module
        )
        return None


class RunLogger:
    """Scalars of one run to TensorBoard and wandb; `close()` also draws curves.png."""

    def __init__(self, output_dir, run_cfg, is_main, name=None, config=None):
        self.output_dir = output_dir
        self.is_main = is_main
        self.tensorboard = is_main and run_cfg.get("tensorboard", True)
        self.use_wandb = is_main and run_cfg.get("wandb", False)
        self.wandb_project = run_cfg.get("wandb_project", "minigpt4qwen")
        self.name, self.config = name, config
        self._writer = self._wandb_run = None
        self._started = False

    def _start(self, step):
        """Opened at the first scalars, so runs that never train leave no empty event files.
        Events at `step` or later already in the folder (logged by an interrupted run after
        the checkpoint this run resumes from) are purged."""
        self._started = True
        if self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                LOGGER.warning(
                    "run.tensorboard is true but tensorboard is not installed: no TensorBoard logs (pip "
                    "install tensorboard)"
                )
            else:
                self._writer = SummaryWriter(log_dir=os.path.join(self.output_dir, "tensorboard"), purge_step=step)
        if self.use_wandb:
            wandb = _optional("wandb", "wandb")
            if wandb is not None:
                self._wandb_run = wandb.init(
                    project=self.wandb_project, name=self.name, dir=self.output_dir, config=self.config
                )

    def scalars(self, step, values):
        """Log {tag: number} at optimizer step `step` (main process only)."""
        if not self.is_main:
            return
        if not self._started:
            self._start(step)
        if self._writer is not None:
            for tag, value in values.items():
                self._writer.add_scalar(tag, value, global_step=step)
        if self._wandb_run is not None:
            self._wandb_run.log(dict(values), step=step)

    def close(self):
        """Flush and close the writers, then, if the run trained, draw curves.png from log.jsonl."""
        if not self.is_main:
            return
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None
        log_path = os.path.join(self.output_dir, "log.jsonl")
        if self._started and os.path.exists(log_path):  # it trained
            # cycle: `python -m lavis.common.plots` imports lavis (and this module) before it runs
            # plots as __main__; a module-level import here would make runpy warn of a double import
            from lavis.common import plots

            try:
                plots.plot_curves(log_path, os.path.join(self.output_dir, "curves.png"))
            except plots.PlotError as error:
                LOGGER.warning("no curves.png: %s", error)


def truncate_log(log_path, epoch, iters):
    """Drop the training records at or after (epoch, iters) from `log.jsonl`: the steps an
    interrupted run logged after its last checkpoint are trained again by the resumed run."""
    if not os.path.exists(log_path):
        return
    kept = []
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a line cut short by the interruption (or not one of ours)
            if not isinstance(record, dict):
                continue
            position = (record.get("epoch"), record.get("iter"))
            if "iter" in record and all(isinstance(v, int) for v in position) and position >= (epoch, iters):
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
    text = "".join(kept)
    with atomic_open(log_path, "w", needed=len(text.encode("utf-8")), encoding="utf-8") as handle:
        handle.write(text)
