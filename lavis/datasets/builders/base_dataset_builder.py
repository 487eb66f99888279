"""Dataset builders: a dataset config section -> processors + one dataset per split.

Each registered builder names its default YAML (`DATASET_CONFIG_DICT`), merged under the run
config by `lavis/common/config.py`.  Annotation and image paths are relative to the cache root.
"""

import os

from lavis.common.config import ConfigError
from lavis.common.utils import get_abs_path, get_cache_path
from lavis.datasets.datasets.instruction_dataset import InstructionDataset
from lavis.processors import load_processor

SPLITS = ("train", "val", "test")


class BaseDatasetBuilder:
    train_dataset_cls = InstructionDataset
    eval_dataset_cls = InstructionDataset
    DATASET_CONFIG_DICT = {}

    def __init__(self, cfg):
        self.config = cfg
        self.vis_processors, self.text_processors = {}, {}

    @classmethod
    def default_config_path(cls, type="default"):
        return get_abs_path(cls.DATASET_CONFIG_DICT[type])

    def build_processors(self):
        for target, section in (
            (self.vis_processors, self.config.vis_processor),
            (self.text_processors, self.config.text_processor),
        ):
            for split in ("train", "eval"):
                if section.get(split) is not None:
                    target[split] = load_processor(section[split].name, section[split])
        for target, kind in ((self.vis_processors, "vis_processor"), (self.text_processors, "text_processor")):
            if "train" not in target and "eval" not in target:
                raise ConfigError(f"a dataset config needs {kind}.train or {kind}.eval (none given)")
            target.setdefault("eval", target.get("train"))
            target.setdefault("train", target["eval"])

    def missing_files(self, name=""):
        """[(config key, path, what)] for annotation files and image folders not on disk."""
        info = self.config.build_info
        missing = []
        for split, ann in info.annotations.items():
            for path in [ann.storage] if isinstance(ann.storage, str) else list(ann.storage):
                if not os.path.exists(get_cache_path(path)):  # a folder there: the reader says so
                    missing.append(
                        (f"datasets.{name}.build_info.annotations.{split}", get_cache_path(path), "annotation JSON")
                    )
        if info.images is not None and not os.path.isdir(get_cache_path(info.images.storage)):
            missing.append((f"datasets.{name}.build_info.images", get_cache_path(info.images.storage), "image folder"))
        return missing

    def prepare(self):
        """Hook: make sure the data exist (synthetic datasets generate them here)."""

    def build_datasets(self):
        self.prepare()
        self.build_processors()
        info = self.config.build_info
        vis_root = get_cache_path(info.images.storage) if info.images is not None else None
        datasets = {}
        for split, ann in info.annotations.items():
            if split not in SPLITS:
                continue
            paths = [ann.storage] if isinstance(ann.storage, str) else list(ann.storage)
            is_train = split == "train"
            cls = self.train_dataset_cls if is_train else self.eval_dataset_cls
            datasets[split] = cls(
                vis_processor=self.vis_processors["train" if is_train else "eval"],
                text_processor=self.text_processors["train" if is_train else "eval"],
                vis_root=vis_root,
                ann_paths=[get_cache_path(p) for p in paths],
                image_placeholder=self.config.image_placeholder,
                caption_instructions=self.config.caption_instructions,
                max_skipped_share=self.config.max_skipped_share,
                video_placeholder=self.config.video_placeholder,
                max_frames=self.config.max_frames,
                frame_marker=self.config.frame_marker,
            )
        return datasets
