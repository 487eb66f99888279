"""Builders of the evaluation benchmarks, registered by name (`datasets: {mme: {...}}`).

Place in the flow: a dataset config section -> the benchmark's reader of its released files
(`lavis/datasets/eval_data/`) -> one `EvalDataset` as the `test` split -> the benchmark task
named by `BENCHMARK_TASK` (`lavis/tasks/benchmark_task.py`) asks, generates and scores.

Config: `build_info.annotations.test.storage` holds the reader's files, in its argument order (a
path or a list), `build_info.images.storage` the image folder where the benchmark has one; both
relative to the cache root (`cache/dataset/<benchmark>/...` in the shipped defaults).  Nothing is
fetched: a missing file is reported with its key and where it goes, before anything loads.
"""

import os

from lavis.common.config import ConfigError
from lavis.common.registry import registry
from lavis.common.utils import get_cache_path
from lavis.datasets.builders.base_dataset_builder import BaseDatasetBuilder
from lavis.datasets.datasets.eval_dataset import EvalDataset
from lavis.datasets.eval_data import coco_caption, mmbench, mme, pope, seed_bench, vqa
from lavis.datasets.synthetic.shapes_benchmarks import PROMPT_LANG, ensure_shapes_benchmarks
from lavis.processors import load_processor


class BenchmarkBuilder(BaseDatasetBuilder):
    """A benchmark read from its released files by `read(*files, image_root)`."""

    BENCHMARK_TASK = ""  # the registered task that asks and scores this benchmark
    uses_images_folder = True  # False: the images are inside the annotation file (MMBench) or its folder (MME)

    def _files(self):
        info = self.config.build_info
        if "test" not in info.annotations:
            raise ConfigError("a benchmark's config needs build_info.annotations.test.storage (its released files)")
        storage = info.annotations["test"].storage
        files = [storage] if isinstance(storage, str) else list(storage)
        files = [get_cache_path(f) for f in files]
        if self.uses_images_folder:
            if info.images is None:
                raise ConfigError("this benchmark's config needs build_info.images.storage (its image folder)")
            files.append(get_cache_path(info.images.storage))
        return files

    def read(self, *files):
        raise NotImplementedError

    def required(self, *files):
        raise NotImplementedError

    def missing_files(self, name=""):
        keys = {"image_root": f"datasets.{name}.build_info.images"}
        return [
            (keys.get(arg, f"datasets.{name}.build_info.annotations.test"), path, what)
            for arg, path, what in self.required(*self._files())
            if path is not None and not os.path.exists(path)
        ]

    def build_datasets(self):
        self.prepare()
        section = self.config.vis_processor.get("eval") or self.config.vis_processor.get("train")
        if section is None:
            raise ConfigError("a benchmark's config needs vis_processor.eval (how its images are prepared)")
        # only images: the prompt comes from the benchmark's task, so no text processor is read
        return {"test": EvalDataset(self.read(*self._files()), load_processor(section.name, section))}


@registry.register_builder("mme")
class MMEBuilder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/mme/defaults.yaml"}
    BENCHMARK_TASK = "mme"
    uses_images_folder = False

    def read(self, root):
        return mme.read_mme(root)

    def required(self, root):
        return mme.required_files(root)


@registry.register_builder("mmbench")
class MMBenchBuilder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/mmbench/defaults.yaml"}
    BENCHMARK_TASK = "mmbench"
    uses_images_folder = False

    def read(self, path):
        return mmbench.read_mmbench(path)

    def required(self, path):
        return mmbench.required_files(path)


@registry.register_builder("mmbench_cn")
class MMBenchCNBuilder(MMBenchBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/mmbench/defaults_cn.yaml"}


@registry.register_builder("pope")
class POPEBuilder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/pope/defaults.yaml"}
    BENCHMARK_TASK = "pope"

    def read(self, root, image_root):
        return pope.read_pope(root, image_root)

    def required(self, root, image_root):
        return pope.required_files(root, image_root)


@registry.register_builder("coco_caption")
class COCOCaptionBuilder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/coco_caption/defaults.yaml"}
    BENCHMARK_TASK = "caption"

    def read(self, annotations, gt, image_root):
        return coco_caption.read_coco_caption(annotations, gt, image_root)

    def required(self, annotations, gt, image_root):
        return coco_caption.required_files(annotations, gt, image_root)


@registry.register_builder("vqav2")
class VQAv2Builder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/vqav2/defaults.yaml"}
    BENCHMARK_TASK = "vqa"
    image_pattern = vqa.COCO_VAL_PATTERN

    def read(self, questions, annotations, image_root):
        return vqa.read_vqa(questions, annotations, image_root, self.image_pattern)

    def required(self, questions, annotations, image_root):
        return vqa.required_files(questions, annotations, image_root, self.image_pattern)


@registry.register_builder("okvqa")
class OKVQABuilder(VQAv2Builder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/okvqa/defaults.yaml"}


@registry.register_builder("gqa")
class GQABuilder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/gqa/defaults.yaml"}
    BENCHMARK_TASK = "gqa"

    def read(self, questions, image_root):
        return vqa.read_gqa(questions, image_root)

    def required(self, questions, image_root):
        return vqa.gqa_required_files(questions, image_root)


@registry.register_builder("seed_bench")
class SEEDBenchBuilder(BenchmarkBuilder):
    DATASET_CONFIG_DICT = {"default": "configs/datasets/seed_bench/defaults.yaml"}
    BENCHMARK_TASK = "seed_bench"

    def read(self, path, image_root):
        return seed_bench.read_seed_bench(path, image_root)

    def required(self, path, image_root):
        return seed_bench.required_files(path, image_root)


class ShapesBenchmarkBuilder:
    """A synthetic shapes benchmark (`lavis/datasets/synthetic/shapes_benchmarks.py`): generated
    on first use (`generator`: its root under the cache and its sizes), then read by the real
    benchmark's reader (the class it is mixed into)."""

    DATASET_CONFIG_DICT = {"default": "configs/datasets/shapes_benchmarks/defaults.yaml"}
    lang = None  # a Chinese set whose reader does not say so

    def missing_files(self, name=""):
        return []  # generated on first use

    def prepare(self):
        generator = dict(self.config.generator or {})
        ensure_shapes_benchmarks(get_cache_path(generator.pop("root", "dataset/shapes_benchmarks")), **generator)

    def read(self, *files):
        items = super().read(*files)
        for item in items if self.lang else ():
            item["meta"]["lang"] = self.lang
        return items


def _register_shapes(name, real, lang=None):
    cls = type(f"Shapes_{name}_Builder", (ShapesBenchmarkBuilder, real), {"lang": lang, "__doc__": f"shapes {name}"})
    registry.register_builder(f"shapes_{name}")(cls)


for _name, _real in {
    "mme": MMEBuilder,
    "mmbench": MMBenchBuilder,
    "mmbench_cn": MMBenchCNBuilder,
    "pope": POPEBuilder,
    "coco_caption": COCOCaptionBuilder,
    "vqav2": VQAv2Builder,
    "vqav2_zh": VQAv2Builder,
    "gqa": GQABuilder,
    "gqa_zh": GQABuilder,
    "seed_bench": SEEDBenchBuilder,
}.items():
    _register_shapes(_name, _real, PROMPT_LANG.get(_name))
