"""Registered datasets: the original's two instruction sets, LLaVA's released files (the 558k
caption pairs of stage 1, the LLaVA-1.5 665k mixture of stage 2), LAVIS-format caption rows, and
the synthetic shapes set."""

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


@registry.register_builder("llava_pretrain")
class LlavaPretrainBuilder(BaseDatasetBuilder):
    """LLaVA's `blip_laion_cc_sbu_558k.json` as released (caption pairs in LLaVA's conversation rows)."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/llava_pretrain/defaults.yaml"}


@registry.register_builder("llava_mix665k")
class LlavaMix665kBuilder(BaseDatasetBuilder):
    """LLaVA-1.5's `llava_v1_5_mix665k.json` as released: multi-turn rows, text-only rows, images
    under one root with its source folders (coco, gqa, ocr_vqa, textvqa, vg)."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/llava_mix665k/defaults.yaml"}


@registry.register_builder("caption")
class CaptionBuilder(BaseDatasetBuilder):
    """LAVIS's caption rows (`{"image", "caption"}`), each asked with an instruction drawn per sample."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/caption/defaults.yaml"}


@registry.register_builder("shapes_instruction")
class ShapesInstructionBuilder(BaseDatasetBuilder):
    """Synthetic bilingual coloured-shapes data, generated once under the image folder's parent."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shapes_instruction/defaults.yaml"}

    def missing_files(self, name=""):
        return []  # generated on first use

    def prepare(self):
        root = os.path.dirname(get_cache_path(self.config.build_info.images.storage).rstrip("/"))
        ensure_shapes_dataset(root, **(self.config.generator or {}))


@registry.register_builder("shapes_caption")
class ShapesCaptionBuilder(ShapesInstructionBuilder):
    """The same synthetic images as caption rows ("a red circle" / "红色的圆形"): the two-stage demo's stage 1."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shapes_caption/defaults.yaml"}
