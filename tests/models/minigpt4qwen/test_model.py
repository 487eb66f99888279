"""The tiny MiniGPT4Qwen: image slots, loss, padding, truncation, freezing, checkpoints."""

import pytest
import torch
import torch.nn.functional as F

from lavis.common.checkpoint import CheckpointError, save_file
from lavis.models import load_model
from lavis.processors.chat_format import IGNORE_INDEX

Q_IMG = "<Img><ImageHere></Img> What colour is the shape?"


def conv(question=Q_IMG, answer="red"):
    return [{"from": "user", "value": question}, {"from": "assistant", "value": answer}]


def images(n, seed=0):
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_image_embeddings_replace_the_slots_in_order(tiny_model):
    model = tiny_model.eval()
    encoded = model.prompt.encode_conversation(conv("a <ImageHere> b <ImageHere>", "x"))
    ids = torch.tensor([encoded.input_ids])
    feats = torch.randn(2, model.num_query_token, model.llm_model.config.hidden_size)
    embeds = model.embed_with_images(ids, feats)
    plain = model.llm_model.get_input_embeddings()(ids)
    s0, s1 = encoded.image_starts
    nq = model.num_query_token
    assert torch.equal(embeds[0, s0 : s0 + nq], feats[0]) and torch.equal(embeds[0, s1 : s1 + nq], feats[1])
    others = torch.ones(ids.shape[1], dtype=torch.bool)
    others[s0 : s0 + nq] = others[s1 : s1 + nq] = False
    assert torch.equal(embeds[0, others], plain[0, others])
    with pytest.raises(ValueError, match="8 image slots but 16"):
        model.embed_with_images(torch.tensor([encoded.input_ids[: s0 + nq]]), feats)


def test_loss_equals_full_vocabulary_cross_entropy(tiny_model):
    model = tiny_model.eval()
    convs = [
        conv(),
        conv("<ImageHere> 图中是什么形状？", "三角形")
        + [{"from": "user", "value": "again?"}, {"from": "assistant", "value": "yes"}],
    ]
    imgs = images(2)
    out = model({"image": imgs, "conversations": convs})
    # reference: every position's logits over the whole vocabulary, as transformers computes it
    enc = [model.prompt.encode_conversation(c, model.max_txt_len) for c in convs]
    length = max(len(e.input_ids) for e in enc)
    ids = torch.tensor([e.input_ids + [model.llm_tokenizer.eod_id] * (length - len(e.input_ids)) for e in enc])
    labels = torch.tensor([e.labels + [IGNORE_INDEX] * (length - len(e.labels)) for e in enc])
    mask = torch.tensor([[1] * len(e.input_ids) + [0] * (length - len(e.input_ids)) for e in enc])
    embeds = model.embed_with_images(ids, model.encode_image(imgs))
    logits = model.llm_model(inputs_embeds=embeds, attention_mask=mask).logits
    ref = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    assert out["loss"].item() == pytest.approx(ref.item(), abs=1e-5)
    assert out["num_tokens"] == int((labels[:, 1:] != IGNORE_INDEX).sum())
    assert out["num_padded_tokens"] == 2 * length > sum(len(e.input_ids) for e in enc)  # the shorter one is padded


def test_padding_to_the_batch_does_not_change_a_sample(tiny_model):
    model = tiny_model.eval()
    short, long = conv(), conv(Q_IMG + " Please answer in one word, thank you very much.", "red")
    imgs = images(2)
    alone = model({"image": imgs[:1], "conversations": [short]})
    both = model({"image": imgs, "conversations": [short, long]})
    other = model({"image": imgs[1:], "conversations": [long]})
    n1, n2 = alone["num_tokens"], other["num_tokens"]
    combined = (alone["loss"] * n1 + other["loss"] * n2) / (n1 + n2)
    assert both["loss"].item() == pytest.approx(combined.item(), abs=1e-5)


def test_batch_is_padded_to_its_longest_sample_not_max_txt_len(tiny_model, monkeypatch):
    model = tiny_model.eval()
    seen = {}
    decoder = model._decoder()
    original = decoder.forward

    def spy(*args, **kwargs):
        seen["shape"] = kwargs["inputs_embeds"].shape
        return original(*args, **kwargs)

    monkeypatch.setattr(decoder, "forward", spy)
    model({"image": images(1), "conversations": [conv()]})
    expected = len(model.prompt.encode_conversation(conv()).input_ids)
    assert seen["shape"][1] == expected < model.max_txt_len


def test_sample_truncated_to_no_labels_gives_zero_not_nan():
    torch.manual_seed(0)
    model = load_model("minigpt4qwen", "tiny", cfg_options={"max_txt_len": 10})
    out = model({"image": images(1), "conversations": [conv()]})
    assert out["num_tokens"] == 0 and out["loss"].item() == 0.0
    out["loss"].backward()  # still a graph, no NaN gradients
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_image_count_must_match_placeholders(tiny_model):
    with pytest.raises(ValueError, match="1 <ImageHere> but 2 images"):
        tiny_model({"image": images(2), "conversations": [conv()]})


def test_freeze_flags_as_in_the_original():
    model = load_model(
        "minigpt4qwen",
        "tiny",
        cfg_options={"freeze_vit": True, "freeze_qformer": True, "freeze_queries": True, "freeze_llm": True},
    )
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"llm_proj"}
    model.train()
    assert not model.visual_encoder.training and not model.Qformer.training and not model.llm_model.training
    assert model.llm_proj.training
    assert set(model.trainable_state_dict()) == {"llm_proj.weight", "llm_proj.bias"}


def test_frozen_vit_keeps_no_activations():
    model = load_model(
        "minigpt4qwen", "tiny", cfg_options={"freeze_vit": True, "freeze_qformer": True, "freeze_queries": True}
    )
    out = model.encode_image(images(2))
    assert out.requires_grad  # llm_proj trains
    seen = {}

    def hook(module, inputs, output):
        seen["grad"] = output.last_hidden_state.requires_grad

    handle = model.visual_encoder.register_forward_hook(hook)
    model.encode_image(images(1))
    handle.remove()
    assert seen["grad"] is False  # ran under no_grad: no graph, no stored activations


def test_trained_k_bias_of_the_vit_stays_zero(tiny_model):
    tiny_model.train()
    loss = tiny_model({"image": images(1), "conversations": [conv()]})["loss"]
    loss.backward()
    bias = tiny_model.visual_encoder.encoder.layers[0].self_attn.qkv.bias
    d = bias.shape[0] // 3
    assert bias.grad[:d].abs().sum() > 0 and torch.all(bias.grad[d : 2 * d] == 0)


def test_checkpoint_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    model = tiny_model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_file({"model": model.trainable_state_dict(), "epoch": 0}, tmp_path / "checkpoint_0.pth")
    torch.manual_seed(123)  # a differently initialised model
    fresh = load_model("minigpt4qwen", "tiny", checkpoint=str(tmp_path / "checkpoint_0.pth"), is_eval=True)
    sample = {"image": images(1), "conversations": [conv()]}
    assert torch.equal(model(sample)["loss"], fresh(sample)["loss"])
    assert torch.equal(model.encode_image(sample["image"]), fresh.encode_image(sample["image"]))


def test_checkpoint_that_does_not_fit_is_refused(tiny_model, tmp_path):
    state = tiny_model.trainable_state_dict()
    bad = dict(state)
    bad["llm_proj.weight"] = torch.zeros(3, 3)
    bad["not_a_module.weight"] = torch.zeros(1)
    save_file({"model": bad}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        tiny_model.load_checkpoint(str(tmp_path / "bad.pth"))
    assert (
        "bad.pth" in str(err.value) and "not_a_module.weight" in str(err.value) and "llm_proj.weight" in str(err.value)
    )


def test_generation_never_emits_padding_rows(tiny_model):
    model = tiny_model.eval()
    vocab_rows = model.llm_model.config.vocab_size
    assert vocab_rows > len(model.llm_tokenizer)  # the tiny LLM has padding rows like Qwen's
    with torch.no_grad():
        model.llm_model.lm_head.weight[len(model.llm_tokenizer) :] = 50.0  # padding rows would win
    ids, n = model.prompt.generation_ids(Q_IMG)
    reply = model.generate_from_ids([ids], images(1), max_new_tokens=5, min_new_tokens=5)[0]
    assert len(reply) == 5 and all(t < len(model.llm_tokenizer) for t in reply)


def test_generate_batches_with_left_padding(tiny_model):
    model = tiny_model.eval()
    prompts = [model.prompt.generation_ids(Q_IMG)[0], model.prompt.generation_ids(Q_IMG + " Answer briefly please.")[0]]
    imgs = images(2)
    batched = model.generate_from_ids(prompts, imgs, max_new_tokens=4)
    single = [model.generate_from_ids([p], imgs[i : i + 1], max_new_tokens=4)[0] for i, p in enumerate(prompts)]
    assert batched == single


def test_lora_trains_only_adapters_and_projection(tmp_path):
    torch.manual_seed(0)
    model = load_model(
        "minigpt4qwen",
        "tiny",
        cfg_options={
            "get_lora": True,
            "lora_r": 4,
            "freeze_llm": True,
            "freeze_vit": True,
            "freeze_qformer": True,
            "freeze_queries": True,
        },
    )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("llm_proj") for n in trainable)
    assert any(".q_proj.lora_A" in n for n in trainable) and any(".v_proj.lora_B" in n for n in trainable)
    assert not any(".k_proj.lora" in n for n in trainable)
    sample = {"image": images(1), "conversations": [conv()]}
    before = model(sample)["loss"].item()
    with torch.no_grad():  # LoRA B starts at zero: the adapters change nothing until trained
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)
    assert model(sample)["loss"].item() != before
    save_file({"model": model.trainable_state_dict()}, tmp_path / "lora.pth")
    torch.manual_seed(1)
    again = load_model(
        "minigpt4qwen",
        "tiny",
        checkpoint=str(tmp_path / "lora.pth"),
        cfg_options={
            "get_lora": True,
            "lora_r": 4,
            "freeze_llm": True,
            "freeze_vit": True,
            "freeze_qformer": True,
            "freeze_queries": True,
        },
    )
    assert torch.equal(again.llm_proj.weight, model.llm_proj.weight)
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert torch.equal(dict(again.named_parameters())[name], p)


def test_llm_gradient_checkpointing_gives_the_same_loss_and_gradients():
    def run(checkpointing):
        torch.manual_seed(0)
        model = load_model("minigpt4qwen", "tiny", cfg_options={"use_grad_checkpoint": checkpointing})
        model.train()
        for module in model.modules():  # no dropout, so both runs compute the same numbers
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        loss = model({"image": images(1), "conversations": [conv()]})["loss"]
        loss.backward()
        return model, loss

    plain, plain_loss = run(False)
    ckpt, ckpt_loss = run(True)
    assert ckpt.llm_model.is_activation_checkpointing and not plain.llm_model.is_activation_checkpointing
    assert torch.allclose(plain_loss, ckpt_loss, atol=1e-6)
    grads = dict(plain.named_parameters())
    for name, p in ckpt.named_parameters():
        if p.grad is not None:
            assert torch.allclose(p.grad, grads[name].grad, atol=1e-6), name


def test_processors_follow_the_models_image_size():
    from lavis.models import load_model_and_preprocess

    model, vis, _ = load_model_and_preprocess("minigpt4qwen", "tiny", cfg_options={"image_size": 96})
    image = vis["eval"](__import__("PIL.Image", fromlist=["Image"]).new("RGB", (50, 70)))
    assert image.shape == (3, 96, 96) and vis["train"].image_size == 96
    out = model({"image": image.unsqueeze(0), "conversations": [conv()]})
    assert torch.isfinite(out["loss"])


def test_a_sample_whose_labels_are_not_its_replies_is_named(monkeypatch, tmp_path):
    """Labels one token off their reply (as a template that merges a reply with its neighbours
    would make them) stop the step, naming the sample's file and row."""
    from lavis.processors.chat_template import LabelMismatchError
    from tests.helpers.families import family_options, write_family_folder

    model = load_model("minigpt4qwen", "tiny", cfg_options=family_options(write_family_folder(str(tmp_path), "llama3")))
    encode = model.prompt.encode_conversation

    def shifted(conversation, max_len=None):
        encoded = encode(conversation, max_len)
        encoded.labels = [IGNORE_INDEX] + encoded.labels[:-1]
        return encoded

    batch = {"image": images(1), "conversations": [conv()], "where": ["data/train.json row 7"]}
    assert torch.isfinite(model(batch)["loss"])  # as the template makes them: accepted
    monkeypatch.setattr(model.prompt, "encode_conversation", shifted)
    with pytest.raises(LabelMismatchError, match=r"data/train.json row 7: its supervised tokens .* are not .* 'red'"):
        model(batch)


def test_finetuned_may_name_a_runs_output_folder(tmp_path):
    """Stage 2 names stage 1's output folder: its newest job's highest epoch-end checkpoint loads."""
    trained = load_model("minigpt4qwen", "tiny")
    torch.nn.init.constant_(trained.llm_proj.bias, 0.25)
    save_file({"model": trained.trainable_state_dict()}, tmp_path / "20260101000000" / "checkpoint_3.pth")
    save_file({"model": {}}, tmp_path / "20260101000000" / "checkpoint_2.pth")
    model = load_model("minigpt4qwen", "tiny", cfg_options={"load_finetuned": True, "finetuned": str(tmp_path)})
    assert torch.equal(model.llm_proj.bias, trained.llm_proj.bias)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="model.finetuned: no epoch-end checkpoint_<epoch>.pth under"):
        load_model("minigpt4qwen", "tiny", cfg_options={"load_finetuned": True, "finetuned": str(empty)})
    # a stage 1 that trained llm_proj for an LLM of another width: refused, the key and both shapes named
    projection = {"llm_proj.weight": torch.zeros(64, 96), "llm_proj.bias": torch.zeros(64)}
    save_file({"model": projection}, tmp_path / "other" / "20260101000000" / "checkpoint_0.pth")
    mismatches = (
        r"llm_proj.bias: file \(64,\) vs model \(128,\), llm_proj.weight: file \(64, 96\) vs model \(128, 96\)$"
    )
    with pytest.raises(CheckpointError, match=rf"does not fit this model: shape mismatches {mismatches}"):
        load_model("minigpt4qwen", "tiny", cfg_options={"load_finetuned": True, "finetuned": str(tmp_path / "other")})


def test_reply_losses_are_each_conversations_mean_cross_entropy(tiny_model):
    model = tiny_model.eval()
    convs = [conv(answer="red"), conv(answer="a long answer about the red shape"), conv("<ImageHere> 形状？", "圆形")]
    imgs = images(3)
    losses = model.reply_losses({"image": imgs, "conversations": convs})
    # reference: each conversation alone, the whole vocabulary's logits at its labelled positions
    for i, c in enumerate(convs):
        e = model.prompt.encode_conversation(c, model.max_txt_len)
        ids, labels = torch.tensor([e.input_ids]), torch.tensor([e.labels])
        logits = model.llm_model(inputs_embeds=model.embed_with_images(ids, model.encode_image(imgs[i : i + 1]))).logits
        ref = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE_INDEX)
        assert losses[i].item() == pytest.approx(ref.item(), abs=1e-5)
    assert losses[0] != losses[1]


def test_chunked_head_loss_gives_the_loss_and_gradients_of_the_whole_head():
    """The tiny default trains everything, the LM head included: every gradient equal in fp32."""

    def run(chunk_elements):
        torch.manual_seed(0)
        model = load_model("minigpt4qwen", "tiny")
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        model.loss_chunk_elements = chunk_elements
        convs = [conv(), conv("<ImageHere> 图中是什么形状？", "三角形，在图的中间")]
        loss = model({"image": images(2), "conversations": convs})["loss"]
        loss.backward()
        return model, loss

    whole, whole_loss = run(0)
    vocab = whole.llm_model.get_output_embeddings().weight.shape[0]
    chunked, chunked_loss = run(3 * vocab)  # 3 labelled positions per chunk
    assert chunked_loss.item() == pytest.approx(whole_loss.item(), abs=1e-5)
    grads = dict(whole.named_parameters())
    checked = 0
    for name, p in chunked.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-5, atol=1e-6, msg=name)
            checked += 1
    assert chunked.llm_model.get_output_embeddings().weight.grad is not None and checked > 20
