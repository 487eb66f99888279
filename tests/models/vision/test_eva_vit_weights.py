"""LAVIS's eva_vit_g.pth -> our ViT: numbers against an independent EVA reference, interpolation, precision, errors."""

import argparse
import logging

import pytest
import torch

from lavis.common.checkpoint import CheckpointError
from lavis.common.config import Config, ConfigError
from lavis.models.vision.eva_vit import vit_features
from lavis.models.vision.eva_vit_weights import build_vision_encoder, load_eva_vit
from lavis.models.weight_files import WeightFileError
from tests.models import reference_impl as ref
from tests.models.reference_files import VIT, eva_state, vit_arch


@pytest.fixture(scope="module")
def eva_file(tmp_path_factory):
    state = eva_state(seed=0)  # VIT["depth"] + 1 blocks, fp16, as the released file has one block more
    path = tmp_path_factory.mktemp("eva") / "eva_vit_g.pth"
    torch.save(state, path)
    return path, state


def _images(n, size, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_vit_matches_reference_fp32(eva_file):
    path, state = eva_file
    vit = load_eva_vit(path, vit_arch(), VIT["image"], precision="fp32").eval()
    images = _images(2, VIT["image"])
    with torch.no_grad():
        ours = vit_features(vit, images)
    expected = ref.eva_vit(state, images, VIT["depth"], VIT["heads"], VIT["patch"])
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), expected, atol=1e-5, rtol=1e-5), (ours.double() - expected).abs().max()
    with torch.no_grad():  # the mapping is exact: in float64 the two agree to rounding
        assert torch.allclose(vit_features(vit.double(), images.double()), expected, atol=1e-10)
    # the extra block of the file is not used: with it the output differs
    with_extra = ref.eva_vit(state, images, VIT["depth"] + 1, VIT["heads"], VIT["patch"])
    assert not torch.allclose(ours.double(), with_extra, atol=1e-3)


def test_vit_no_parameter_left_on_meta_and_k_bias_zero_and_trainable(eva_file):
    path, state = eva_file
    vit = load_eva_vit(path, vit_arch(), VIT["image"], precision="fp32")
    assert not any(t.is_meta for t in [*vit.parameters(), *vit.buffers()])
    d = VIT["embed"]
    bias = vit.encoder.layers[0].self_attn.qkv.bias
    assert torch.equal(bias[d : 2 * d], torch.zeros(d))
    assert torch.equal(bias[:d], state["blocks.0.attn.q_bias"].float())
    assert torch.equal(bias[2 * d :], state["blocks.0.attn.v_bias"].float())
    # the k part stays zero when the ViT is trained (its gradient is masked on the loaded parameter)
    vit_features(vit, _images(1, VIT["image"])).sum().backward()
    assert torch.equal(bias.grad[d : 2 * d], torch.zeros(d)) and bias.grad[:d].abs().sum() > 0


def test_extra_blocks_listed_at_info(eva_file, caplog):
    path, _ = eva_file
    with caplog.at_level(logging.INFO, logger="lavis.models"):
        load_eva_vit(path, vit_arch(), VIT["image"], precision="fp32")
    assert f"blocks.{VIT['depth']}.attn.qkv.weight" in caplog.text


def test_pos_embed_interpolation_against_independent_bicubic(eva_file):
    path, state = eva_file
    new_size = 48  # grid 4x4 in the file -> 6x6
    vit = load_eva_vit(path, vit_arch(), new_size, precision="fp32").eval()
    pos = ref.resize_pos_embed(state["pos_embed"], new_size // VIT["patch"])
    assert vit.embeddings.position_embedding.shape == pos.shape
    assert torch.allclose(vit.embeddings.position_embedding.double(), pos, atol=1e-5)
    assert torch.equal(vit.embeddings.position_embedding[0, 0], state["pos_embed"][0, 0].float())
    images = _images(1, new_size, seed=1)
    with torch.no_grad():
        ours = vit_features(vit, images)
    expected = ref.eva_vit(state, images, VIT["depth"], VIT["heads"], VIT["patch"], pos_embed=pos)
    assert torch.allclose(ours.double(), expected, atol=1e-5, rtol=1e-5)


def test_fp16_precision_as_lavis(eva_file):
    path, state = eva_file
    vit = load_eva_vit(path, vit_arch(), VIT["image"], precision="fp16")
    dtypes = {n: p.dtype for n, p in vit.named_parameters()}
    for name, dtype in dtypes.items():
        linear_or_conv = any(s in name for s in ("qkv.", "projection.", "fc1.", "fc2.", "patch_embedding."))
        assert dtype == (torch.float16 if linear_or_conv else torch.float32), name
    # the file is fp16: weights are bit-identical, not re-rounded
    assert torch.equal(vit.encoder.layers[1].mlp.fc1.weight, state["blocks.1.mlp.fc1.weight"])


def test_missing_key_names_file_and_key(tmp_path):
    state = eva_state(seed=0)
    del state["blocks.1.attn.v_bias"], state["blocks.0.norm2.weight"]
    path = tmp_path / "eva_vit_g.pth"
    torch.save(state, path)
    with pytest.raises(WeightFileError) as err:
        load_eva_vit(path, vit_arch(), VIT["image"], precision="fp32")
    assert str(path) in str(err.value)
    assert "blocks.1.attn.v_bias" in str(err.value) and "blocks.0.norm2.weight" in str(err.value)


def test_wrong_shapes_name_file_and_keys(eva_file):
    path, _ = eva_file
    with pytest.raises(WeightFileError) as err:
        load_eva_vit(path, vit_arch(embed=48), VIT["image"], precision="fp32")
    assert str(path) in str(err.value) and "blocks.0.attn.qkv.weight: file (96, 32) vs model (144, 48)" in str(
        err.value
    )


def test_truncated_file(eva_file, tmp_path):
    path, _ = eva_file
    data = path.read_bytes()
    cut = tmp_path / "eva_vit_g.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_eva_vit(cut, vit_arch(), VIT["image"], precision="fp32")
    assert str(cut) in str(err.value)


class Payload:
    def __reduce__(self):
        return (print, ("this would run at load time",))


def test_pickle_payload_refused(tmp_path):
    state = eva_state(seed=0)
    state["extra"] = Payload()
    path = tmp_path / "eva_vit_g.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="refusing to load") as err:
        load_eva_vit(path, vit_arch(), VIT["image"], precision="fp32")
    assert str(path) in str(err.value)


def test_bad_precision_refused(eva_file):
    path, _ = eva_file
    with pytest.raises(ValueError, match="vit_precision"):
        load_eva_vit(path, vit_arch(), VIT["image"], precision="bf16")


def test_reference_self_check():
    """The bicubic reference agrees with torch's definition (so it can catch a wrong mode/corners)."""
    grid = torch.randn(1, 5, 4, 4, dtype=torch.float64)
    ours = ref.bicubic_grid(grid[0].permute(1, 2, 0), 7).permute(2, 0, 1)
    theirs = torch.nn.functional.interpolate(grid, size=(7, 7), mode="bicubic", align_corners=False)[0]
    assert torch.allclose(ours, theirs, atol=1e-12)
    other = torch.nn.functional.interpolate(grid, size=(7, 7), mode="bicubic", align_corners=True)[0]
    assert not torch.allclose(ours, other, atol=1e-3)


def test_vit_model_names_the_vit_shape():
    """`model.vit_model` is read: an unknown name stops when the config is read, before any file is opened."""
    args = argparse.Namespace(
        cfg_path="lavis/projects/instruction_tuning/train.yaml", options=["model.vit_model=eva_vit_l"]
    )
    with pytest.raises(ConfigError, match=r"^config: model.vit_model = 'eva_vit_l': must be one of 'eva_clip_g'$"):
        Config(args)
    model_cfg = Config(argparse.Namespace(cfg_path=args.cfg_path, options=[])).model_cfg
    model_cfg.vit_model = "eva_vit_l"  # a config built in code, past the schema's check
    with pytest.raises(ValueError, match=r"model.vit_model 'eva_vit_l' is not one of \['eva_clip_g'\]"):
        build_vision_encoder(model_cfg)
