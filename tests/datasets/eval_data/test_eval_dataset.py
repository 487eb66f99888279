"""EvalDataset: items' images (paths and bytes) through the vis processor, and the collater."""

import pytest
import torch

from lavis.datasets.datasets.eval_dataset import EvalDataset
from lavis.datasets.eval_data import EvalDataError, mmbench, pope
from lavis.processors import load_processor


@pytest.fixture
def processor():
    return load_processor("blip_image_eval", {"image_size": 16})


def test_paths_and_bytes_become_image_tensors(processor, pope_files, mmbench_tsv):
    root, images = pope_files
    items = pope.read_pope(str(root), str(images), categories=["random"]) + mmbench.read_mmbench(str(mmbench_tsv))
    dataset = EvalDataset(items, processor)
    assert len(dataset) == 5
    sample = dataset[3]
    assert sample["question_id"] == "241" and sample["image"].shape == (3, 16, 16)
    assert "image" not in sample["item"] and sample["item"]["choices"] == {"A": "STOP", "B": "GO", "C": "EXIT"}
    batch = EvalDataset.collater([dataset[i] for i in range(5)])
    assert batch["image"].shape == (5, 3, 16, 16)
    assert batch["question_id"] == ["random/1", "random/2", "random/3", "241", "1001"]
    assert [item["answers"] for item in batch["item"]] == [["yes"], ["no"], ["yes"], ["A"], ["C"]]
    # red (pope's first image, mmbench's first) vs blue (mmbench's second): the channels say which
    red, blue = batch["image"][3], batch["image"][4]
    assert red[0].mean() > red[2].mean() and blue[2].mean() > blue[0].mean()
    assert torch.allclose(batch["image"][0], batch["image"][3], atol=0.05)  # red from a JPEG file and PNG bytes


def test_an_unreadable_image_names_the_question(processor, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    rest = {"question": "?", "choices": None, "hint": None, "answers": [], "meta": {}}
    items = [
        {"question_id": "q7", "image": str(broken), **rest},
        {"question_id": "q8", "image": b"\x89PNG garbage", **rest},
    ]
    dataset = EvalDataset(items, processor)
    for index, parts in ((0, ("question q7", str(broken))), (1, ("question q8", "12 bytes"))):
        with pytest.raises(EvalDataError) as err:
            dataset[index]
        assert "\n" not in str(err.value) and all(p in str(err.value) for p in parts), str(err.value)
