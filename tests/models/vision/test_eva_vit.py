"""The EVA-style ViT built from scratch: its position embeddings' start."""

import argparse
import math
from types import SimpleNamespace

import pytest
import torch

from lavis.common.config import Config, ConfigError
from lavis.models.vision.eva_vit import build_eva_vit


def test_a_vit_from_scratch_may_start_with_2d_sincos_positions():
    arch = SimpleNamespace(patch_size=8, embed_dim=8, depth=1, num_heads=2, mlp_ratio=2.0, pos_embed_init="sincos")
    position = build_eva_vit(arch, 16).embeddings.position_embedding.detach()[0]  # class token + 2 x 2 patches
    assert position.shape == (5, 8) and position[0].abs().max() == 0
    # patch (row 1, column 0): sin, cos of the row at frequencies 1 and 1/100, then of the column (0)
    expected = torch.tensor([math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01), 0, 0, 1, 1])
    assert torch.allclose(position[3], expected, atol=1e-6)
    normal = build_eva_vit(SimpleNamespace(**{**vars(arch), "pos_embed_init": "normal"}), 16)
    assert not torch.allclose(normal.embeddings.position_embedding.detach()[0, 3], expected, atol=1e-2)


def test_an_unknown_position_start_is_a_config_error():
    args = argparse.Namespace(cfg_path="lavis/projects/synthetic/moving_shapes_tiny.yaml", options=[])
    assert Config(args).model_cfg.vit_arch.pos_embed_init == "sincos"
    args.options = ["model.vit_arch.pos_embed_init=fourier"]
    message = r"^config: model.vit_arch.pos_embed_init = 'fourier': must be one of 'normal', 'sincos'$"
    with pytest.raises(ConfigError, match=message):
        Config(args)
