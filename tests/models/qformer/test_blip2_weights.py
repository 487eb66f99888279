"""BERT config + BLIP-2 checkpoint -> our Q-former: numbers against an independent BLIP-2 reference, and errors."""

import logging
import os

import pytest
import torch

from lavis.common.checkpoint import CheckpointError
from lavis.models import load_model
from lavis.models.qformer.blip2_qformer import query_features
from lavis.models.qformer.blip2_weights import read_bert_config
from lavis.models.vision.eva_vit import vit_features
from lavis.models.weight_files import WeightFileError
from tests.models import reference_impl as ref
from tests.models.reference_files import BERT, VIT, blip2_state, cfg_options, write_bert_config, write_original_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_original_files(tmp_path_factory.mktemp("orig"))


def _model(files, **over):
    options = cfg_options(
        files,
        llm_model="",
        llm_arch={
            "hidden_size": 32,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 256,
            "vocab_pad_to": 64,
        },
    )
    options["llm_tokenizer"] = "configs/models/minigpt4qwen/tiny/qwen.tiktoken"
    options.update(over)
    return load_model("minigpt4qwen", "qwen7b_chat", is_eval=True, cfg_options=options)


def _images(n=2, seed=0):
    return torch.randn(n, 3, VIT["image"], VIT["image"], generator=torch.Generator().manual_seed(seed))


def test_qformer_matches_reference(files):
    model = _model(files)
    images = _images()
    with torch.no_grad():
        feats = model.ln_vision(vit_features(model.visual_encoder, images))
        ours = query_features(model.Qformer, model.query_tokens, feats)
    blip2 = files["blip2"]
    vit = ref.eva_vit(files["eva"], images, VIT["depth"], VIT["heads"], VIT["patch"])
    ln = ref.layer_norm(vit, blip2["ln_vision.weight"], blip2["ln_vision.bias"], 1e-5)
    expected = ref.qformer(blip2, ln, BERT["layers"], BERT["heads"])
    assert ours.shape == expected.shape == (2, 8, BERT["hidden"])
    assert torch.allclose(ours.double(), expected, atol=1e-5, rtol=1e-5), (ours.double() - expected).abs().max()
    # the mapping is exact: in float64 the model agrees to rounding
    model.double()
    with torch.no_grad():
        feats = model.ln_vision(vit_features(model.visual_encoder, images.double()))
        exact = query_features(model.Qformer, model.query_tokens, feats)
    assert torch.allclose(exact, expected, atol=1e-10)
    # cross-attention in layers 0, 2, ... (LAVIS cross_attention_freq=2)
    assert [hasattr(layer, "crossattention") for layer in model.Qformer.encoder.layer] == [True, False, True]


def test_bert_config_is_read(tmp_path):
    folder = write_bert_config(str(tmp_path / "bert"), hidden=40, layers=1, heads=5, intermediate=50)
    assert read_bert_config(folder)["hidden_size"] == 40
    os.remove(os.path.join(folder, "config.json"))
    with pytest.raises(FileNotFoundError, match="qformer_config"):
        read_bert_config(folder)


def test_unused_keys_listed_at_info(files, caplog):
    with caplog.at_level(logging.INFO, logger="lavis.models"):
        _model(files)
    for key in (
        "t5_proj.weight",
        "Qformer.cls.predictions.bias",
        "Qformer.bert.embeddings.word_embeddings.weight",
        "Qformer.bert.encoder.layer.0.output.dense.weight",
        "temp",
    ):
        assert key in caplog.text, key


def _write_blip2(tmp_path, state, wrap=True):
    path = tmp_path / "blip2.pth"
    torch.save({"model": state} if wrap else state, path)
    return str(path)


def test_missing_qformer_key(files, tmp_path):
    state = blip2_state()
    del state["Qformer.bert.encoder.layer.2.crossattention.self.key.weight"], state["ln_vision.bias"]
    path = _write_blip2(tmp_path, state)
    with pytest.raises(WeightFileError) as err:
        _model(files, pretrained=path)
    assert path in str(err.value)
    assert "Qformer.bert.encoder.layer.2.crossattention.self.key.weight" in str(err.value) and "ln_vision.bias" in str(
        err.value
    )


def test_wrong_shapes(files, tmp_path):
    path = _write_blip2(tmp_path, blip2_state(hidden=32, intermediate=64))
    with pytest.raises(WeightFileError, match="shape mismatches") as err:
        _model(files, pretrained=path)
    assert path in str(err.value) and "Qformer.bert.embeddings.LayerNorm.weight: file (32,) vs model (48,)" in str(
        err.value
    )


def test_truncated(files, tmp_path):
    data = open(files["pretrained"], "rb").read()
    path = tmp_path / "blip2.pth"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match="truncated") as err:
        _model(files, pretrained=str(path))
    assert str(path) in str(err.value)


class Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_payload(files, tmp_path):
    path = tmp_path / "blip2.pth"
    torch.save({"model": blip2_state(), "config": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load") as err:
        _model(files, pretrained=str(path))
    assert str(path) in str(err.value)


def test_other_query_count_keeps_own_queries(files, caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        model = _model(files, num_query_token=4)
    assert "has 8 query tokens but model.num_query_token is 4" in caplog.text
    assert model.query_tokens.shape == (1, 4, BERT["hidden"])
    # everything else is loaded
    assert torch.equal(model.Qformer.layernorm.weight, files["blip2"]["Qformer.bert.embeddings.LayerNorm.weight"])


def test_visual_encoder_keys_in_the_file_are_loaded(files, tmp_path):
    """The original's non-strict load takes `visual_encoder.*` from the BLIP-2 file too, when present."""
    state = blip2_state()
    weight = torch.randn(VIT["embed"], VIT["embed"])
    state["visual_encoder.blocks.1.attn.proj.weight"] = weight
    state["visual_encoder.blocks.0.attn.q_bias"] = torch.ones(VIT["embed"])
    state["visual_encoder.blocks.0.attn.v_bias"] = torch.full((VIT["embed"],), 2.0)
    model = _model(files, pretrained=_write_blip2(tmp_path, state))
    assert torch.equal(model.visual_encoder.encoder.layers[1].self_attn.projection.weight, weight)
    bias = model.visual_encoder.encoder.layers[0].self_attn.qkv.bias
    assert torch.equal(
        bias, torch.cat([torch.ones(VIT["embed"]), torch.zeros(VIT["embed"]), torch.full((VIT["embed"],), 2.0)])
    )


def test_no_pretrained_when_load_pretrained_false(files):
    torch.manual_seed(0)
    model = _model(files, load_pretrained=False)
    assert not torch.equal(model.Qformer.layernorm.weight, files["blip2"]["Qformer.bert.embeddings.LayerNorm.weight"])
