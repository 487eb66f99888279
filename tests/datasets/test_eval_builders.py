"""The benchmark builders: config -> the released files' reader -> an EvalDataset; the synthetic
shapes benchmarks generated on first use; missing files named with their config keys."""

from omegaconf import OmegaConf

from lavis.common.config import build_dataset_config
from lavis.common.registry import registry
from lavis.processors.benchmark_prompts import benchmark_prompt
from tests.helpers import benchmark_files as files


def build(name, user=None):
    cfg = build_dataset_config(name, OmegaConf.create(user or {}))
    return registry.get_builder_class(name)(cfg)


def test_shapes_benchmarks_are_generated_then_read_by_the_real_readers(tmp_path):
    generator = {"root": str(tmp_path / "sets"), "num_images": 4}
    root = tmp_path / "sets"
    sets = {
        "shapes_mme": ({"build_info": {"annotations": {"test": {"storage": str(root / "mme")}}}}, 2 * 4 * 2),
        "shapes_vqav2_zh": (
            {
                "build_info": {
                    "annotations": {
                        "test": {
                            "storage": [
                                str(root / "vqav2_zh/v2_OpenEnded_mscoco_val2014_questions.json"),
                                str(root / "vqav2_zh/v2_mscoco_val2014_annotations.json"),
                            ]
                        }
                    },
                    "images": {"storage": str(root / "vqav2/val2014")},
                }
            },
            None,
        ),
    }
    for name, (user, count) in sets.items():
        builder = build(name, {"generator": generator, **user})
        assert builder.missing_files(name) == []
        test = builder.build_datasets()["test"]
        if count is not None:
            assert len(test) == count
        sample = test[0]
        assert tuple(sample["image"].shape) == (3, 64, 64)
    assert test.items[0]["meta"]["lang"] == "zh"
    assert "请用一个词或短语回答。" in benchmark_prompt("short_answer", test.items[0])


def test_a_real_benchmark_with_its_files_reads_and_without_names_them(tmp_path):
    tsv = files.mmbench_tsv(tmp_path)
    builder = build("mmbench", {"build_info": {"annotations": {"test": {"storage": str(tsv)}}}})
    assert builder.missing_files("mmbench") == []
    assert [i["question_id"] for i in builder.build_datasets()["test"].items] == ["241", "1001"]
    pope = build("pope", {"build_info": {"annotations": {"test": {"storage": str(tmp_path / "none")}}}})
    keys = {key for key, _, _ in pope.missing_files("pope")}
    assert keys == {"datasets.pope.build_info.annotations.test", "datasets.pope.build_info.images"}
