"""load_model_and_preprocess on the original files: loss and greedy generation against the references."""

import logging
import os

import pytest
import torch

from lavis.common.checkpoint import CheckpointError
from lavis.models import load_model_and_preprocess
from lavis.models.llm.llm_tokenizer import HFQwenTokenizer
from lavis.models.llm.qwen_weights import SequenceTooLongError
from lavis.models.weight_files import WeightFileError
from lavis.processors.chat_format import IGNORE_INDEX
from tests.models import reference_impl as ref
from tests.models.reference_files import (
    BERT,
    VIT,
    cfg_options,
    qwen1_config,
    qwen1_state,
    write_original_files,
    write_qwen1_folder,
    write_qwen2_folder,
)

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
PROMPT = SYSTEM + "<|im_start|>user\n<Img><ImageHere></Img> Describe this image.<|im_end|>\n<|im_start|>assistant\n"
CONVERSATIONS = [
    [
        {"from": "human", "value": "<Img><ImageHere></Img> What is in the picture?"},
        {"from": "gpt", "value": "A red square on a blue mat."},
    ],
    [
        {"from": "human", "value": "Hello, who are you?"},
        {"from": "gpt", "value": "An assistant."},
        {"from": "human", "value": "<Img><ImageHere></Img> Count the shapes."},
        {"from": "gpt", "value": "Three."},
    ],
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    files = write_original_files(root)
    # the original runner's checkpoint: {"model": trainable params + persistent buffers, "optimizer", ...}
    gen = torch.Generator().manual_seed(7)
    proj_w = torch.randn(files["qwen_config"]["hidden_size"], BERT["hidden"], generator=gen) * 0.2
    proj_b = torch.randn(files["qwen_config"]["hidden_size"], generator=gen) * 0.1
    checkpoint = {
        "model": {
            "llm_proj.weight": proj_w,
            "llm_proj.bias": proj_b,
            "Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0),
        },
        "optimizer": {
            "state": {
                0: {
                    "step": torch.tensor(10.0),
                    "exp_avg": torch.zeros_like(proj_w),
                    "exp_avg_sq": torch.zeros_like(proj_w),
                }
            },
            "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": [0, 1]}],
        },
        "config": {"model": {"arch": "minigpt4qwen", "model_type": "qwen7b_chat"}, "run": {"init_lr": 1e-4}},
        "scaler": None,
        "epoch": 9,
    }
    path = os.path.join(str(root), "checkpoint_9.pth")
    torch.save(checkpoint, path)
    files.update(finetuned=path, proj_w=proj_w, proj_b=proj_b)
    return files


def _load(files, **over):
    options = cfg_options(files, finetuned=files["finetuned"], load_finetuned=True)
    options.update(over)
    return load_model_and_preprocess("minigpt4qwen", "qwen7b_chat", is_eval=True, device="cpu", cfg_options=options)


@pytest.fixture(scope="module")
def loaded(files):
    return _load(files)


def _images(n, seed=0):
    return torch.randn(n, 3, VIT["image"], VIT["image"], generator=torch.Generator().manual_seed(seed))


def _ref_image_embeds(files, images, proj_w, proj_b):
    blip2 = files["blip2"]
    feats = ref.eva_vit(files["eva"], images, VIT["depth"], VIT["heads"], VIT["patch"])
    feats = ref.layer_norm(feats, blip2["ln_vision.weight"], blip2["ln_vision.bias"], 1e-5)
    return ref.linear(ref.qformer(blip2, feats, BERT["layers"], BERT["heads"]), proj_w, proj_b)


def _ref_embeds(files, ids, image_embeds, image_pad_id):
    embeds = ref.f64(files["qwen"]["transformer.wte.weight"])[torch.tensor(ids)].clone()
    slots = torch.tensor(ids) == image_pad_id
    embeds[slots] = image_embeds.reshape(-1, embeds.shape[-1])
    return embeds.unsqueeze(0)


def test_everything_is_loaded_from_the_files(files, loaded):
    model, vis, txt = loaded
    assert "eval" in vis and "eval" in txt
    assert torch.equal(model.llm_proj.weight, files["proj_w"])
    assert torch.equal(model.Qformer.layernorm.bias, files["blip2"]["Qformer.bert.embeddings.LayerNorm.bias"])
    assert torch.equal(model.query_tokens, files["blip2"]["query_tokens"])
    assert torch.equal(model.llm_model.lm_head.weight, files["qwen"]["lm_head.weight"])
    assert torch.equal(
        model.visual_encoder.embeddings.patch_embedding.weight, files["eva"]["patch_embed.proj.weight"].float()
    )
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    # the released recipe's freezing: only llm_proj trains
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"llm_proj"}


def test_forward_loss_matches_reference(files, loaded):
    model, _, _ = loaded
    images = _images(2)
    with torch.no_grad():
        out = model({"image": images, "conversations": CONVERSATIONS})
    image_embeds = _ref_image_embeds(files, images, files["proj_w"], files["proj_b"])
    total, count = torch.zeros((), dtype=torch.float64), 0
    for i, conversation in enumerate(CONVERSATIONS):
        encoded = model.prompt.encode_conversation(conversation, model.max_txt_len)
        embeds = _ref_embeds(files, encoded.input_ids, image_embeds[i : i + 1], model.replace_image_token_id)
        logits = ref.qwen1_logits(files["qwen"], files["qwen_config"], embeds=embeds)[0]
        logp = torch.log_softmax(logits, dim=-1)
        for t in range(len(encoded.labels) - 1):
            target = encoded.labels[t + 1]
            if target != IGNORE_INDEX:
                total -= logp[t, target]
                count += 1
    assert out["num_tokens"] == count > 10
    expected = total / count
    assert abs(out["loss"].item() - expected.item()) < 1e-5, (out["loss"].item(), expected.item())


def test_greedy_generation_matches_reference(files, loaded):
    model, _, _ = loaded
    image = _images(1, seed=3)
    replies = model.generate({"image": image, "text": [PROMPT]}, max_new_tokens=5, do_sample=False)
    tok = model.llm_tokenizer
    ids = []
    for i, piece in enumerate(PROMPT.split("<ImageHere>")):
        ids += [model.replace_image_token_id] * model.num_query_token if i else []
        ids += tok.encode(piece)
    embeds = _ref_embeds(
        files, ids, _ref_image_embeds(files, image, files["proj_w"], files["proj_b"]), model.replace_image_token_id
    )
    new_ids, margin = ref.greedy(
        files["qwen"], files["qwen_config"], embeds, 5, {tok.im_end_id, tok.im_start_id, tok.eod_id}
    )
    assert margin > 1e-3, "the reference's argmax is too close to call"
    assert len(new_ids) >= 3
    assert replies == [tok.decode(new_ids, skip_special_tokens=True).strip()]


def test_finetuned_checkpoint_buffers_listed_at_info(files, caplog):
    with caplog.at_level(logging.INFO, logger="lavis.models"):
        _load(files)
    assert "Qformer.bert.embeddings.position_ids" in caplog.text


def test_unfrozen_llm_checkpoint_in_original_names(files, tmp_path):
    """What the original's pipemodel2pth.py writes: a bare state dict with llm_proj and Qwen-1 LLM keys."""
    config = files["qwen_config"]
    new_llm = qwen1_state(config, seed=11)
    state = {"llm_model." + k: v for k, v in new_llm.items()}
    state.update({"llm_proj.weight": files["proj_w"] * 2, "llm_proj.bias": files["proj_b"]})
    path = tmp_path / "unfreeze_llm_model.pth"
    torch.save(state, path)
    model, _, _ = _load(files, finetuned=str(path))
    ids = model.llm_tokenizer.encode("A red cat sits on the mat.")
    with torch.no_grad():
        logits = model.llm_model(input_ids=torch.tensor([ids])).logits
    assert torch.allclose(logits.double(), ref.qwen1_logits(new_llm, config, ids=ids), atol=1e-5, rtol=1e-5)
    assert torch.equal(model.llm_proj.weight, files["proj_w"] * 2)


def test_checkpoint_with_unknown_keys_refused(files, tmp_path):
    path = tmp_path / "bad.pth"
    torch.save(
        {"model": {"llm_proj.weight": files["proj_w"], "llm_model.transformer.h.0.attn.c_attn.lora_A": torch.zeros(2)}},
        path,
    )
    with pytest.raises(CheckpointError, match=r"unknown keys.*lora_A") as err:
        _load(files, finetuned=str(path))
    assert str(path) in str(err.value)


def test_pickle_payload_finetuned_refused(files, tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"llm_proj.bias": files["proj_b"]}, "config": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load") as err:
        _load(files, finetuned=str(path))
    assert str(path) in str(err.value)


def test_options_and_freeze_flags(files):
    model, _, _ = _load(
        files,
        load_finetuned=False,
        vit_precision="fp16",
        freeze_vit=False,
        freeze_llm=False,
        freeze_qformer=False,
        image_size=48,
        max_txt_len=64,
        llm_dtype="bf16",
    )
    assert model.visual_encoder.encoder.layers[0].self_attn.qkv.weight.dtype == torch.float16
    assert model.visual_encoder.embeddings.position_embedding.shape[1] == 1 + (48 // VIT["patch"]) ** 2
    assert model.llm_model.lm_head.weight.dtype == torch.bfloat16
    assert all(p.requires_grad for p in model.llm_model.parameters())
    assert all(p.requires_grad for p in model.visual_encoder.parameters())
    assert model.max_txt_len == 64 and model.llm_tokenizer.model_max_length == 64


def test_too_long_refused(tmp_path, files):
    folder = str(tmp_path / "Qwen7B-chat")
    config = qwen1_config(vocab_size=files["qwen_config"]["vocab_size"], seq_length=40)
    write_qwen1_folder(folder, config, qwen1_state(config))
    model, _, _ = _load(files, llm_model=folder, load_finetuned=False)
    with pytest.raises(SequenceTooLongError, match="seq_length 40"):
        model({"image": _images(2), "conversations": CONVERSATIONS})
    with pytest.raises(SequenceTooLongError, match="seq_length 40"):
        model.generate({"image": _images(1), "text": [PROMPT]}, max_new_tokens=5, do_sample=False)


def test_missing_llm_weights_named(tmp_path, files):
    folder = str(tmp_path / "Qwen7B-chat")
    config = files["qwen_config"]
    state = qwen1_state(config)
    del state["transformer.h.1.attn.c_proj.weight"]
    write_qwen1_folder(folder, config, state, shards=1)
    with pytest.raises(WeightFileError, match=r"transformer\.h\.1\.attn\.c_proj\.weight"):
        _load(files, llm_model=folder, load_finetuned=False)


def test_qwen2_folder_end_to_end(tmp_path, files):
    folder = str(tmp_path / "Qwen2-0.5B")
    llm, n_tokens = write_qwen2_folder(folder)
    model, _, _ = _load(files, llm_model=folder, load_finetuned=False)
    assert isinstance(model.llm_tokenizer, HFQwenTokenizer)
    assert model.replace_image_token_id == model.llm_tokenizer.image_pad_id == n_tokens
    out = model({"image": _images(2), "conversations": CONVERSATIONS})
    assert torch.isfinite(out["loss"]) and out["num_tokens"] > 10
    replies = model.generate({"image": _images(1), "text": [PROMPT]}, max_new_tokens=3, do_sample=False)
    assert isinstance(replies[0], str)


def test_qwen2_folder_chat_streams_its_reply(tmp_path, files):
    """A Qwen2 folder's tokenizer gives byte-level strings for its tokens: streaming decodes them
    (it used to fail with `TypeError: can't concat str to bytes`)."""
    from lavis.chat import ChatModel, ChatSession

    folder = str(tmp_path / "Qwen2-0.5B")
    write_qwen2_folder(folder)
    model, vis, _ = _load(files, llm_model=folder, load_finetuned=False)
    session = ChatSession(ChatModel(model.eval(), vis["eval"], None, "qwen7b_chat", torch.device("cpu")))
    session.settings.set("max_new_tokens", 12)
    pieces = []
    reply = session.reply("Describe this image.")
    response = reply.run(pieces.append)
    assert reply.num_tokens > 0 and "".join(pieces) == response
    assert response == model.llm_tokenizer.decode(reply.reply_ids, skip_special_tokens=True).strip()
