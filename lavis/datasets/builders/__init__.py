"""Dataset builders, registered by name (importing this package registers them)."""

from lavis.datasets.builders.base_dataset_builder import BaseDatasetBuilder
from lavis.datasets.builders.eval_builder import BenchmarkBuilder
from lavis.datasets.builders.instruction_builder import (
    LlavaInstructionBuilder,
    Minigpt4InstructionBuilder,
    ShapesInstructionBuilder,
)

__all__ = [
    "BaseDatasetBuilder",
    "BenchmarkBuilder",
    "LlavaInstructionBuilder",
    "Minigpt4InstructionBuilder",
    "ShapesInstructionBuilder",
]
