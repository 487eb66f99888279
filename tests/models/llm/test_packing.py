"""Sequence packing's row layout (lavis/models/llm/packing.py) and the packed model's loss and
gradients against the unpacked batch's."""

import pytest
import torch

from lavis.models import load_model
from lavis.models.llm.packing import pack_rows, packed_batch
from lavis.processors.chat_format import IGNORE_INDEX, EncodedConversation


def test_first_fit_decreasing_fills_rows_up_to_the_capacity():
    lengths = [9, 2, 5, 4, 7, 3, 1]
    rows = pack_rows(lengths, capacity=10)
    assert rows == [[0, 6], [1], [2, 3], [4, 5]]
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows)


def test_a_sample_longer_than_the_capacity_gets_a_row_of_its_own():
    assert pack_rows([12, 3, 3], capacity=6) == [[0], [1, 2]]
    assert pack_rows([4], capacity=4) == [[0]]


def test_packed_rows_restart_positions_ignore_each_first_label_and_pad_at_the_end():
    def enc(ids, labels):
        return EncodedConversation(input_ids=ids, labels=labels)

    encoded = [enc([1, 2, 3], [-100, 5, 6]), enc([7, 8], [9, 10]), enc([4, 4, 4, 4], [-100, -100, 4, 4])]
    ids, labels, positions = packed_batch(encoded, [[0, 1], [2]], pad_id=0, device="cpu")
    assert ids.tolist() == [[1, 2, 3, 7, 8], [4, 4, 4, 4, 0]]
    assert labels.tolist() == [[IGNORE_INDEX, 5, 6, IGNORE_INDEX, 10], [IGNORE_INDEX, IGNORE_INDEX, 4, 4, IGNORE_INDEX]]
    assert positions.tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]


def _convs():
    """Five conversations of different lengths (two short ones fit beside each other in the longest's
    length): two images in one, one without any, three turns."""
    short = [{"from": "user", "value": "<Img><ImageHere></Img> colour?"}, {"from": "assistant", "value": "red"}]
    return [
        short,
        [
            {"from": "user", "value": "<Img><ImageHere></Img> 图中是什么形状？"},
            {"from": "assistant", "value": "三角形，在图的中间"},
            {"from": "user", "value": "And the colour of the shape in the picture, in one word?"},
            {"from": "assistant", "value": "green"},
            {"from": "user", "value": "Describe the picture in a long sentence, please, with every detail you see."},
            {"from": "assistant", "value": "A green triangle sits in the middle of a light grey square picture."},
        ],
        [{"from": "user", "value": "Hello there, no image today."}, {"from": "assistant", "value": "Hi."}],
        [
            {"from": "user", "value": "<Img><ImageHere></Img> and <Img><ImageHere></Img>: which is red?"},
            {"from": "assistant", "value": "the second one"},
        ],
        short,
    ]


def _loss_and_grads(model_type, packing):
    torch.manual_seed(0)
    model = load_model("minigpt4qwen", model_type)
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.pack_sequences = packing
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = model({"image": images, "conversations": _convs()})
    out["loss"].backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("model_type", ["tiny", "tiny_llama"])
def test_packed_batch_gives_the_loss_and_gradients_of_the_unpacked_one(model_type):
    plain, plain_grads = _loss_and_grads(model_type, packing=False)
    packed, packed_grads = _loss_and_grads(model_type, packing=True)
    assert packed["num_tokens"] == plain["num_tokens"]
    assert packed["num_padded_tokens"] < plain["num_padded_tokens"]  # fewer rows of the same length
    assert packed["loss"].item() == pytest.approx(plain["loss"].item(), abs=1e-5)
    assert packed_grads.keys() == plain_grads.keys() and len(packed_grads) > 20
    for name, grad in packed_grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    # the image side's gradients too: each image's slots got that image's embeddings
    assert any(name.startswith("visual_encoder") for name in packed_grads)
