"""Registered datasets: the original's two instruction sets, LLaVA's released files (the 558k
caption pairs of stage 1, the LLaVA-1.5 665k mixture of stage 2), LAVIS-format caption rows,
video conversations, and the synthetic sets (shapes, moving shapes, shape pairs)."""

import os

from lavis.common.registry import registry
from lavis.common.utils import get_cache_path
from lavis.datasets.builders.base_dataset_builder import BaseDatasetBuilder
from lavis.datasets.synthetic.moving_shapes import ensure_moving_shapes
from lavis.datasets.synthetic.shape_pairs import ensure_shape_pairs
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


@registry.register_builder("video_instruction")
class VideoInstructionBuilder(BaseDatasetBuilder):
    """Video conversations (`{"video": "x.mp4", "conversations": [...]}`, `<video>` in user turns),
    as the original's later data and VideoChatGPT's converted 100k; videos under the media folder."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/video_instruction/defaults.yaml"}


class GeneratedBuilder(BaseDatasetBuilder):
    """A synthetic set, generated once (by `generate`, from `generator`) under the media folder's parent."""

    generate = None

    def missing_files(self, name=""):
        return []  # generated on first use

    def prepare(self):
        root = os.path.dirname(get_cache_path(self.config.build_info.images.storage).rstrip("/"))
        type(self).generate(root, **(self.config.generator or {}))


@registry.register_builder("shapes_instruction")
class ShapesInstructionBuilder(GeneratedBuilder):
    """Synthetic bilingual coloured-shapes data (the default run's)."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shapes_instruction/defaults.yaml"}
    generate = ensure_shapes_dataset


@registry.register_builder("moving_shapes")
class MovingShapesBuilder(GeneratedBuilder):
    """Synthetic bilingual videos of a moving shape, asked which way it moves."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/moving_shapes/defaults.yaml"}
    generate = ensure_moving_shapes


@registry.register_builder("shape_pairs")
class ShapePairsBuilder(GeneratedBuilder):
    """Synthetic bilingual image pairs, asked which one is red."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shape_pairs/defaults.yaml"}
    generate = ensure_shape_pairs


@registry.register_builder("shapes_caption")
class ShapesCaptionBuilder(ShapesInstructionBuilder):
    """The same synthetic images as caption rows ("a red circle" / "红色的圆形"): the two-stage demo's stage 1."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shapes_caption/defaults.yaml"}
