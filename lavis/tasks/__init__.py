"""Tasks, registered by name; `setup_task(cfg)` builds the one the run config names."""

from lavis.common.registry import registry
from lavis.tasks.base_task import BaseTask
from lavis.tasks.benchmark_task import BenchmarkTask
from lavis.tasks.image_text_pretrain import ImageTextPretrainTask

__all__ = ["BaseTask", "BenchmarkTask", "ImageTextPretrainTask", "setup_task"]


def setup_task(cfg):
    return registry.get_task_class(cfg.run_cfg.task).setup_task(cfg)
