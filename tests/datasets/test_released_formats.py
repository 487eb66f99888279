"""LLaVA's JSON files and LAVIS's caption rows read as released, and text-only rows in a batch."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lavis.common.config import build_dataset_config
from lavis.common.registry import registry
from lavis.datasets.datasets.instruction_dataset import AnnotationError, InstructionDataset

PROCESSORS = {"vis_processor": {"train": {"name": "blip_image_eval", "image_size": 64}}}


def write_image(root, relative, colour):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def build(name, tmp_path, rows, **extra):
    """The registered dataset `name` on `rows`, written as its released file would be."""
    (tmp_path / "ann.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    user = {
        "build_info": {
            "annotations": {"train": {"storage": str(tmp_path / "ann.json")}},
            "images": {"storage": str(tmp_path / "data")},
        },
        **PROCESSORS,
        **extra,
    }
    cfg = build_dataset_config(name, OmegaConf.create(user))
    return registry.get_builder_class(name)(cfg).build_datasets()["train"]


# rows exactly as LLaVA-1.5's llava_v1_5_mix665k.json writes them (ids, nested source folders, text-only rows)
LLAVA_ROWS = [
    {
        "id": "000000033471",
        "image": "coco/train2017/000000033471.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
            {"from": "gpt", "value": "The bus in the image is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "The back of the bus features an advertisement."},
        ],
    },
    {
        "id": "1",
        "image": "gqa/images/2354786.jpg",
        "conversations": [
            {"from": "human", "value": "Is the sky dark?\n<image>"},
            {"from": "gpt", "value": "Yes"},
        ],
    },
    {
        "id": "i6IyJda_0",
        "conversations": [
            {"from": "human", "value": "How to tell if a customer segment is well segmented?"},
            {"from": "gpt", "value": "1. Homogeneity: similar characteristics."},
        ],
    },
    {"id": "bad", "image": "coco/train2017/000000033471.jpg", "conversations": [{"from": "human", "value": "no mark"}]},
]


@pytest.fixture
def llava(tmp_path):
    write_image(tmp_path / "data", "coco/train2017/000000033471.jpg", "red")
    write_image(tmp_path / "data", "gqa/images/2354786.jpg", "blue")
    with pytest.warns(UserWarning, match=r"ann.json row 3: 0 <image> in user turns but 1 image\(s\)"):
        return build("llava_mix665k", tmp_path, LLAVA_ROWS)


def test_llava_rows_as_released(llava):
    assert len(llava) == 3  # the bad row is skipped, named
    first, second, text_only = llava[0], llava[1], llava[2]
    assert first["conversations"][0]["value"] == "<ImageHere>\nWhat are the colors of the bus in the image?"
    assert [m["from"] for m in first["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert second["conversations"][0]["value"] == "Is the sky dark?\n<ImageHere>"
    assert first["image"][0].shape == (3, 64, 64) and text_only["image"] == []
    assert first["meta"] == {"id": "000000033471"} and first["where"].endswith("ann.json row 0")


def test_a_batch_mixing_image_and_text_only_rows_trains(llava, tiny_model):
    batch = InstructionDataset.collater([llava[2], llava[0], llava[2]])
    assert batch["image"].shape == (1, 3, 64, 64)
    loss = tiny_model(batch)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    assert tiny_model.llm_proj.weight.grad.abs().sum() > 0


def test_a_text_only_batch_gives_the_image_side_zero_gradients_without_running_it(llava, tiny_model, monkeypatch):
    """DDP reduces every trainable parameter's gradient: a rank whose batch has no image must still
    produce one for the image side (zeros), or the other ranks wait for it forever."""
    batch = InstructionDataset.collater([llava[2], llava[2]])
    assert batch["image"] is None
    monkeypatch.setattr(tiny_model, "encode_queries", lambda images: pytest.fail("the image side ran"))
    loss = tiny_model(batch)["loss"]
    loss.backward()
    for name, param in tiny_model.named_parameters():
        if param.requires_grad and name.startswith(("visual_encoder", "Qformer", "llm_proj", "query_tokens")):
            assert param.grad is not None and not param.grad.any(), name


def test_lavis_caption_rows_get_a_seeded_instruction(tmp_path):
    for k in range(12):
        write_image(tmp_path / "data", f"{k}.jpg", (20 * k, 0, 0))
    rows = [{"image": f"{k}.jpg", "caption": f"a red square number {k}", "image_id": k} for k in range(12)]
    asks = ["Describe it.", "用一句话描述。", "What is shown?"]
    dataset = build("caption", tmp_path, rows, caption_instructions=asks)
    first = [dataset[k]["conversations"] for k in range(12)]
    users = [c[0]["value"] for c in first]
    assert all(u.startswith("<Img><ImageHere></Img> ") and u.split("</Img> ")[1] in asks for u in users)
    assert len({u.split("</Img> ")[1] for u in users}) > 1  # drawn per sample
    assert [c[1]["value"] for c in first] == [f"a red square number {k}" for k in range(12)]
    again = build("caption", tmp_path, rows, caption_instructions=asks)
    assert [again[k]["conversations"] for k in range(12)] == first  # the same draw every time
    dataset.set_epoch(42, 1)
    epoch_one = [dataset[k]["conversations"][0]["value"] for k in range(12)]
    dataset.set_epoch(42, 1)
    assert [dataset[k]["conversations"][0]["value"] for k in range(12)] == epoch_one  # (seed, epoch, sample)
    assert epoch_one != users


def test_a_dataset_that_loses_too_many_rows_stops_and_says_so(tmp_path):
    write_image(tmp_path / "data", "coco/train2017/000000033471.jpg", "red")
    rows = LLAVA_ROWS[:1] + [{"id": str(k), "image": "missing.jpg", "conversations": []} for k in range(3)]
    with pytest.warns(UserWarning, match="skipped 3 unusable annotation row"):
        assert len(build("llava_mix665k", tmp_path, rows)) == 1  # the default limit: never stop
    with (
        pytest.warns(UserWarning),
        pytest.raises(
            AnnotationError, match=r"3 of 4 rows \(75%\) of .*ann.json'\] are unusable, more than max_skipped_share 50%"
        ),
    ):
        build("llava_mix665k", tmp_path, rows, max_skipped_share=0.5)
