"""Registered instruction-tuning datasets: the original's two, and the synthetic shapes set."""

import os

from lavis.common.registry import registry
from lavis.common.utils import get_cache_path
from lavis.datasets.builders.base_dataset_builder import BaseDatasetBuilder
from lavis.datasets.synthetic.shapes import ensure_shapes_dataset


@registry.register_builder("minigpt4_instruction")
class Minigpt4InstructionBuilder(BaseDatasetBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/minigpt4_instruction/defaults_instruction.yaml"}


@registry.register_builder("llava_instruction")
class LlavaInstructionBuilder(BaseDatasetBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/llava_instruction/defaults_instruction.yaml"}


@registry.register_builder("shapes_instruction")
class ShapesInstructionBuilder(BaseDatasetBuilder):
    """Synthetic bilingual coloured-shapes data, generated once under the image folder's parent."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shapes_instruction/defaults.yaml"}

    def missing_files(self, name=""):
        return []  # generated on first use

    def prepare(self):
        root = os.path.dirname(get_cache_path(self.config.build_info.images.storage).rstrip("/"))
        ensure_shapes_dataset(root, **(self.config.generator or {}))
