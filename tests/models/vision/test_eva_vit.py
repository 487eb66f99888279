"""lavis/models/vision/eva_vit.py: a ViT built from scratch starts with 2D sin-cos positions."""

import math

import torch

from lavis.common.schema import VitArch
from lavis.models.vision.eva_vit import build_eva_vit, sincos_position_embedding


def test_sincos_rows_are_the_sines_and_cosines_of_row_and_column():
    table = sincos_position_embedding(8, 3)  # 2 frequencies per axis: 1 and 1/100
    assert table.shape == (1, 10, 8) and torch.equal(table[0, 0], torch.zeros(8))  # the class token's row
    row, col = 2, 1  # patch 2 * 3 + 1 = 7
    expected = [math.sin(row), math.sin(row / 100), math.cos(row), math.cos(row / 100)]
    expected += [math.sin(col), math.sin(col / 100), math.cos(col), math.cos(col / 100)]
    torch.testing.assert_close(table[0, 1 + 7], torch.tensor(expected))


def test_a_vit_from_scratch_starts_with_them_and_they_train():
    vit = build_eva_vit(VitArch(patch_size=8, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0), image_size=32)
    position = vit.embeddings.position_embedding
    torch.testing.assert_close(position.detach(), sincos_position_embedding(16, 4))
    assert position.requires_grad
    # patches that differ only in place now give different features
    features = vit(pixel_values=torch.zeros(1, 3, 32, 32)).last_hidden_state
    assert (features[0, 1] - features[0, 2]).abs().max() > 0.1
