"""Both annotation formats, bad rows, unreadable images, the builders and the collater."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lavis.common.config import build_dataset_config
from lavis.common.registry import registry
from lavis.datasets.datasets.instruction_dataset import AnnotationError, InstructionDataset
from lavis.processors import load_processor


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "image"
    images.mkdir()
    for name, colour in (("a.png", (255, 0, 0)), ("b.png", (0, 0, 255))):
        Image.new("RGB", (20, 20), colour).save(images / name)
    (images / "broken.png").write_bytes(b"not a png at all")
    return tmp_path


def dataset(folder, rows):
    ann = folder / "ann.json"
    ann.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return InstructionDataset(
        load_processor("blip_image_eval", {"image_size": 16}),
        load_processor("base_instruction"),
        str(folder / "image"),
        [str(ann)],
    )


def test_single_turn_and_multi_turn_rows(folder):
    ds = dataset(
        folder,
        [
            {"image": "a.png", "instruction": "<Img><ImageHere></Img> Describe.", "output": "Red."},
            {
                "image": ["a.png", "b.png"],
                "conversations": [
                    {"from": "user", "value": "<ImageHere> vs <ImageHere>?"},
                    {"from": "assistant", "value": "红和蓝"},
                ],
            },
            {"image": "b.png", "instruction": ["<ImageHere> one?", "two?"], "output": ["1", "2"]},
        ],
    )
    assert len(ds) == 3
    first = ds[0]
    assert first["conversations"] == [
        {"from": "user", "value": "<Img><ImageHere></Img> Describe."},
        {"from": "assistant", "value": "Red."},
    ]
    assert len(first["image"]) == 1 and first["image"][0].shape == (3, 16, 16)
    assert len(ds[1]["image"]) == 2
    assert [m["value"] for m in ds[2]["conversations"]] == ["<ImageHere> one?", "1", "two?", "2"]
    batch = InstructionDataset.collater([ds[0], ds[1]])
    assert batch["image"].shape == (3, 3, 16, 16) and len(batch["conversations"]) == 2
    # images keep their order: a (red), a (red), b (blue)
    assert (
        batch["image"][2, 2].mean() > batch["image"][2, 0].mean()
        and batch["image"][1, 0].mean() > batch["image"][1, 2].mean()
    )


def test_bad_rows_are_skipped_with_one_warning_naming_them(folder):
    rows = [
        {"image": "a.png", "instruction": "<ImageHere> ok", "output": "fine"},
        {"image": "a.png", "instruction": "no placeholder", "output": "x"},
        {"image": "missing.png", "instruction": "<ImageHere> x", "output": "x"},
        {"image": "a.png", "conversations": [{"from": "robot", "value": "<ImageHere>"}]},
        {"image": "a.png"},
        "not an object",
    ]
    with pytest.warns(UserWarning) as record:
        ds = dataset(folder, rows)
    assert len(ds) == 1
    message = str(record[0].message)
    assert "skipped 5" in message
    for fragment in (
        "row 1: 0 <ImageHere>",
        "row 2: image file not found",
        "row 3: conversations[0] has unknown role 'robot'",
        "row 4:",
        "row 5:",
    ):
        assert fragment in message


def test_unreadable_image_is_replaced_by_the_next_sample(folder, caplog):
    ds = dataset(
        folder,
        [
            {"image": "broken.png", "instruction": "<ImageHere> x", "output": "x"},
            {"image": "b.png", "instruction": "<ImageHere> y", "output": "y"},
        ],
    )
    sample = ds[0]
    assert sample["index"] == 1 and sample["conversations"][1]["value"] == "y"
    assert "unreadable image" in caplog.text and "broken.png" in caplog.text


def test_unusable_annotation_files(folder):
    with pytest.raises(AnnotationError, match="not found"):
        InstructionDataset(None, None, str(folder), [str(folder / "nope.json")])
    (folder / "bad.json").write_text("{oops")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        InstructionDataset(None, None, str(folder), [str(folder / "bad.json")])
    (folder / "dict.json").write_text("{}")
    with pytest.raises(AnnotationError, match="JSON list"):
        InstructionDataset(None, None, str(folder), [str(folder / "dict.json")])


def test_shapes_builder_generates_and_builds_splits(shapes_root):
    cfg = build_dataset_config(
        "shapes_instruction",
        OmegaConf.create(
            {
                "generator": {"num_train": 40, "num_val": 12},
                "build_info": {
                    "annotations": {
                        "train": {"storage": str(shapes_root / "train.json")},
                        "val": {"storage": str(shapes_root / "val.json")},
                    },
                    "images": {"storage": str(shapes_root / "image")},
                },
            }
        ),
    )
    splits = registry.get_builder_class("shapes_instruction")(cfg).build_datasets()
    assert len(splits["train"]) == 40 and len(splits["val"]) == 12
    sample = splits["val"][0]
    assert sample["image"][0].shape == (3, 64, 64) and set(sample["meta"]) >= {"qtype", "lang"}


def test_instruction_format_file_of_the_synthetic_set_loads(shapes_root):
    ds = InstructionDataset(
        load_processor("blip_image_eval", {"image_size": 64}),
        load_processor("base_instruction"),
        str(shapes_root / "image"),
        [str(shapes_root / "train_instruction.json")],
    )
    assert len(ds) == 40 and ds[0]["conversations"][0]["from"] == "user"
    assert isinstance(ds[0]["image"][0], torch.Tensor)


def test_augmentation_is_a_function_of_seed_epoch_and_sample(folder):
    rows = [
        {"image": "a.png", "instruction": "<ImageHere> 什么颜色?", "output": "red"},
        {"image": "b.png", "instruction": "<ImageHere> colour?", "output": "blue"},
    ]
    ann = folder / "ann.json"
    ann.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    gradient = bytes((7 * i) % 256 for i in range(400))  # a textured image, so crops differ
    Image.frombytes("L", (20, 20), gradient).convert("RGB").save(folder / "image" / "a.png")
    data = InstructionDataset(
        load_processor("blip2_image_train", {"image_size": 16, "min_scale": 0.3}),
        load_processor("base_instruction"),
        str(folder / "image"),
        [str(ann)],
    )
    data.set_epoch(seed=1, epoch=0)
    before = torch.get_rng_state()
    first = data[0]["image"][0]
    assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is untouched
    torch.manual_seed(99)  # another worker / process state: no influence
    assert torch.equal(data[0]["image"][0], first)
    data.set_epoch(seed=1, epoch=1)
    assert not torch.equal(data[0]["image"][0], first)  # a new epoch, a new crop
    data.set_epoch(seed=2, epoch=0)
    assert not torch.equal(data[0]["image"][0], first)


def test_lengths_estimate_tokens_from_text_bytes_and_images(folder):
    data = dataset(
        folder,
        [
            {"image": "a.png", "instruction": "<ImageHere> abcdef", "output": "xyz"},
            {
                "image": ["a.png", "b.png"],
                "conversations": [
                    {"from": "user", "value": "<ImageHere><ImageHere> 红色"},
                    {"from": "assistant", "value": "ok"},
                ],
            },
        ],
    )
    text_bytes = [len("<ImageHere> abcdef".encode()) + 3, len("<ImageHere><ImageHere> 红色".encode()) + 2]
    assert data.lengths(image_tokens=32) == [text_bytes[0] // 3 + 32, text_bytes[1] // 3 + 64]
