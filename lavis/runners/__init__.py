"""Runners (registered by name): the training loop."""

from lavis.runners.runner_base import RunnerBase

__all__ = ["RunnerBase"]
