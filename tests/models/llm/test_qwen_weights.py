"""Qwen hub folders -> Qwen2ForCausalLM: numbers against an independent Qwen-1 reference, formats, dtypes, errors."""

import json
import logging
import os

import pytest
import torch
from safetensors.torch import save_file

from lavis.common.checkpoint import CheckpointError
from lavis.models.llm import qwen_weights as qwen_loader
from lavis.models.llm.hf_llm import load_llm
from lavis.models.llm.llm_tokenizer import HFQwenTokenizer, load_llm_tokenizer
from lavis.models.llm.qwen_tiktoken import QwenTokenizer
from lavis.models.llm.qwen_weights import SequenceTooLongError
from lavis.models.weight_files import WeightFileError
from tests.models import reference_impl as ref
from tests.models.reference_files import (
    TINY_VOCAB,
    qwen1_config,
    qwen1_state,
    write_qwen1_folder,
    write_qwen2_folder,
    write_qwen2_tokenizer,
)

IDS = [3, 17, 250, 101, 9, 640, 12, 33, 77, 5, 861, 2]


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    config = qwen1_config()
    state = qwen1_state(config)
    folder = write_qwen1_folder(str(tmp_path_factory.mktemp("qwen") / "Qwen7B-chat"), config, state, shards=3)
    return folder, config, state


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


def _check_against_reference(model, config, state):
    ours = _logits(model, IDS)
    expected = ref.qwen1_logits(state, config, ids=IDS)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), expected, atol=1e-5, rtol=1e-5), (ours.double() - expected).abs().max()


def test_sharded_safetensors_match_reference(qwen_folder):
    folder, config, state = qwen_folder
    tok = QwenTokenizer.from_pretrained(folder)
    model = load_llm(folder, tok)
    _check_against_reference(model, config, state)
    assert model.config.rope_parameters["rope_theta"] == config["rotary_emb_base"]
    assert model.config.rms_norm_eps == config["layer_norm_epsilon"]
    assert model.config.max_position_embeddings == config["seq_length"]
    assert model.config.intermediate_size == config["intermediate_size"] // 2
    assert model.qwen_generation_config["chat_format"] == "chatml"
    # Qwen's sampling settings do not become generation defaults (the original's demos pass their own)
    assert model.generation_config.repetition_penalty in (None, 1.0) and not model.generation_config.do_sample
    assert model.config.eos_token_id == model.generation_config.pad_token_id == tok.eod_id
    assert model.model.embed_tokens.padding_idx is None  # as Qwen-1's wte: the <|endoftext|> row trains too


def test_reference_is_sensitive_to_the_mlp_order(qwen_folder):
    """Swapping w1/w2 (gate/up) changes the output: the reference can tell the mapping apart."""
    _, config, state = qwen_folder
    swapped = dict(state)
    for i in range(config["num_hidden_layers"]):
        p = f"transformer.h.{i}.mlp."
        swapped[p + "w1.weight"], swapped[p + "w2.weight"] = state[p + "w2.weight"], state[p + "w1.weight"]
    assert not torch.allclose(
        ref.qwen1_logits(state, config, ids=IDS), ref.qwen1_logits(swapped, config, ids=IDS), atol=1e-3
    )


@pytest.mark.parametrize("fmt,shards", [("bin", 2), ("bin", 1), ("safetensors", 1)])
def test_other_layouts_match_reference(tmp_path, fmt, shards):
    config = qwen1_config()
    state = qwen1_state(config, seed=5)
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, fmt=fmt, shards=shards)
    _check_against_reference(load_llm(folder), config, state)


def test_meta_build_without_weight_init(qwen_folder, monkeypatch):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from transformers.models.qwen2.modeling_qwen2 import Qwen2PreTrainedModel

    calls = []
    original = Qwen2PreTrainedModel._init_weights
    monkeypatch.setattr(
        Qwen2PreTrainedModel, "_init_weights", lambda self, module: (calls.append(module), original(self, module))
    )
    devices = []
    real_build = qwen_loader.build_meta_qwen2

    def spy(config, dtype):
        model = real_build(config, dtype)
        devices.extend({p.device.type for p in model.parameters()})
        return model

    monkeypatch.setattr(qwen_loader, "build_meta_qwen2", spy)
    folder, config, state = qwen_folder
    model = load_llm(folder)
    assert calls == [], "loading ran the random weight initialisation"
    assert devices == ["meta"], "the model was not built on the meta device"
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    # positive control: building the model normally does initialise
    Qwen2ForCausalLM(
        Qwen2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=32)
    )
    assert calls


def test_q_k_v_do_not_share_storage(qwen_folder):
    folder, _, _ = qwen_folder
    attn = load_llm(folder).model.layers[0].self_attn
    ptrs = {m.weight.untyped_storage().data_ptr() for m in (attn.q_proj, attn.k_proj, attn.v_proj)}
    assert len(ptrs) == 3


@pytest.mark.parametrize(
    "flags,file_dtype,requested,expected",
    [
        ({}, torch.bfloat16, "", torch.bfloat16),  # weights' own dtype
        ({"bf16": True}, torch.float32, "", torch.bfloat16),  # Qwen's flag
        ({"fp16": True}, torch.float32, "", torch.float16),
        ({"fp32": True}, torch.bfloat16, "", torch.float32),
        ({"torch_dtype": "float16"}, torch.float32, "", torch.float16),
        ({"bf16": True}, torch.bfloat16, "fp32", torch.float32),  # the user's llm_dtype wins
    ],
)
def test_dtype_rules(tmp_path, flags, file_dtype, requested, expected):
    config = qwen1_config(**flags)
    state = qwen1_state(config, dtype=file_dtype)
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=2)
    model = load_llm(folder, dtype=requested)
    assert {p.dtype for p in model.parameters()} == {expected}
    if expected == torch.float32:
        _check_against_reference(model, config, state)


def test_bf16_close_to_reference(tmp_path):
    config = qwen1_config()
    state = qwen1_state(config, dtype=torch.bfloat16)
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=2)
    ours = _logits(load_llm(folder), IDS).double()
    expected = ref.qwen1_logits(state, config, ids=IDS)
    assert (ours - expected).abs().max() < 0.05 * expected.abs().max()


def test_index_missing_key(qwen_folder, tmp_path):
    folder, config, state = qwen_folder
    index_path = os.path.join(folder, "model.safetensors.index.json")
    index = json.load(open(index_path))
    del index["weight_map"]["transformer.h.1.mlp.w2.weight"]
    broken = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=3)
    json.dump(index, open(os.path.join(broken, "model.safetensors.index.json"), "w"))
    with pytest.raises(WeightFileError, match=r"transformer\.h\.1\.mlp\.w2\.weight") as err:
        load_llm(broken)
    assert "model.safetensors.index.json" in str(err.value)


def test_shard_lacks_tensor_of_its_index(tmp_path):
    config = qwen1_config()
    state = qwen1_state(config)
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=2)
    shard = os.path.join(folder, "model-00002-of-00002.safetensors")
    part = qwen_loader.SafetensorsReader(shard).read_all()
    dropped = sorted(part)[0]
    del part[dropped]
    save_file(part, shard)
    with pytest.raises(WeightFileError, match="lacks tensors its index") as err:
        load_llm(folder)
    assert shard in str(err.value) and dropped in str(err.value)


def test_missing_key_single_file(tmp_path):
    config = qwen1_config()
    state = qwen1_state(config)
    del state["transformer.h.0.ln_2.weight"]
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=1)
    with pytest.raises(WeightFileError, match=r"lack 1 tensor\(s\): transformer\.h\.0\.ln_2\.weight"):
        load_llm(folder)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_truncated_shard(tmp_path, fmt):
    config = qwen1_config()
    folder = write_qwen1_folder(str(tmp_path / "q"), config, qwen1_state(config), fmt=fmt, shards=2)
    name = "model-00001-of-00002.safetensors" if fmt == "safetensors" else "pytorch_model-00001-of-00002.bin"
    path = os.path.join(folder, name)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) - 3000])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_llm(folder)
    assert path in str(err.value)


def test_wrong_shapes(tmp_path):
    config = qwen1_config()
    state = qwen1_state(qwen1_config(intermediate_size=160))
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=2)
    with pytest.raises(WeightFileError, match=r"mlp\.w1\.weight: file \(80, 64\) vs config \(96, 64\)") as err:
        load_llm(folder)
    assert "config.json" in str(err.value) and ".safetensors" in str(err.value)


def test_missing_shard_file(qwen_folder, tmp_path):
    folder, config, state = qwen_folder
    broken = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=3)
    os.remove(os.path.join(broken, "model-00003-of-00003.safetensors"))
    with pytest.raises(WeightFileError, match="model-00003-of-00003.safetensors"):
        load_llm(broken)


class Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_payload_in_bin_shard(tmp_path):
    config = qwen1_config()
    folder = write_qwen1_folder(str(tmp_path / "q"), config, qwen1_state(config), fmt="bin", shards=2)
    path = os.path.join(folder, "pytorch_model-00002-of-00002.bin")
    part = torch.load(path, weights_only=True)
    part["evil"] = Payload()
    torch.save(part, path)
    with pytest.raises(CheckpointError, match="refusing to load") as err:
        load_llm(folder)
    assert path in str(err.value)


def test_unexpected_and_buffer_keys(tmp_path, caplog):
    config = qwen1_config()
    state = qwen1_state(config)
    state["transformer.rotary_emb.inv_freq"] = torch.ones(8)
    state["transformer.h.0.attn.bias"] = torch.ones(4, 4)
    state["transformer.something_else"] = torch.ones(3)
    folder = write_qwen1_folder(str(tmp_path / "q"), config, state, shards=2)
    with caplog.at_level(logging.INFO, logger="lavis.models"):
        load_llm(folder)
    assert "transformer.something_else" in caplog.text and "transformer.rotary_emb.inv_freq" in caplog.text


def test_tokenizer_larger_than_vocab(tmp_path):
    config = qwen1_config(vocab_size=512)
    folder = write_qwen1_folder(str(tmp_path / "q"), config, qwen1_state(config), shards=2)
    with pytest.raises(ValueError, match=f"vocab_size 512 is smaller than the tokenizer's {TINY_VOCAB}"):
        load_llm(folder, QwenTokenizer.from_pretrained(folder))


def test_unsupported_configs(tmp_path):
    for over, message in [
        ({"rotary_pct": 0.5}, "rotary_pct"),
        ({"no_bias": False}, "no_bias"),
        ({"kv_channels": 8}, "kv_channels"),
    ]:
        config = qwen1_config(**over)
        folder = write_qwen1_folder(str(tmp_path / str(len(message))), config, qwen1_state(qwen1_config()), shards=1)
        with pytest.raises(ValueError, match=message):
            load_llm(folder)


def test_longer_than_seq_length_refused(tmp_path):
    config = qwen1_config(seq_length=16)
    state = qwen1_state(config)
    model = load_llm(write_qwen1_folder(str(tmp_path / "q"), config, state, shards=2))
    ids = list(range(3, 19))
    assert _logits(model, ids).shape[1] == 16  # exactly seq_length: fine
    with pytest.raises(SequenceTooLongError, match="17 tokens is longer than its seq_length 16"):
        _logits(model, ids + [5])
    with pytest.raises(SequenceTooLongError, match="seq_length 16"):  # cached tokens count too
        model.generate(input_ids=torch.tensor([ids[:12]]), max_new_tokens=8, do_sample=False, min_new_tokens=8)
    out = model.generate(input_ids=torch.tensor([ids[:12]]), max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape[1] == 16


# -- Qwen2-format folders ---------------------------------------------------------------------
def test_qwen2_folder_and_tokenizer_adapter(tmp_path):
    folder = str(tmp_path / "qwen2")
    saved, n_tokens = write_qwen2_folder(folder)
    tok = load_llm_tokenizer(folder, model_max_length=77)
    assert isinstance(tok, HFQwenTokenizer) and tok.model_max_length == 77
    # no spare special token in a Qwen2 tokenizer: <|image_pad|> is added on the first padding row
    assert tok.image_pad_token == "<|image_pad|>" and tok.image_pad_id == n_tokens == len(tok) - 1
    assert tok.convert_tokens_to_ids("<|extra_0|>") == tok.image_pad_id
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [tok.im_start_id, tok.im_end_id]
    with pytest.raises(KeyError):
        tok.convert_tokens_to_ids("<|nope|>")
    assert tok.pad_token_id == tok.eod_id
    text = "Describe <|im_end|> this <|image_pad|> image"
    plain = tok.encode_text(text)
    assert not {tok.im_end_id, tok.image_pad_id, tok.eod_id} & set(plain)
    assert tok.decode(plain) == text
    parsed = tok.encode(text)
    assert tok.im_end_id in parsed and tok.image_pad_id in parsed
    assert tok.decode(parsed, skip_special_tokens=True).replace("  ", " ") == "Describe this image"
    batch = tok(["a red cat", "cat"], padding=True, return_tensors="pt")
    assert batch.input_ids.shape == batch.attention_mask.shape and batch.attention_mask[1, -1] == 0

    model = load_llm(folder, tok)
    assert tok.image_pad_id < model.config.vocab_size
    ids = torch.tensor([tok.encode("A red cat sits on the mat.")])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, saved(input_ids=ids).logits)


def test_qwen2_tokenizer_with_image_pad(tmp_path):
    folder = str(tmp_path / "tok")
    n = write_qwen2_tokenizer(folder, with_image_pad=True)
    tok = HFQwenTokenizer.from_pretrained(folder)
    assert tok.image_pad_token == "<|image_pad|>" and tok.image_pad_id == n - 1 and len(tok) == n


def test_qwen2_dtype_override(tmp_path):
    folder = str(tmp_path / "qwen2")
    write_qwen2_folder(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in load_llm(folder).parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_llm(folder, dtype="fp32").parameters()} == {torch.float32}
