"""Every chat LLM family behind the Q-former connector: tiny models of each, end to end.

Each family's folder (tests/helpers/families.py) has a random tiny decoder from its transformers
config class, a tokenizer of its kind and a chat template in its format.  For each: prompts and
labels come from the template, typed special tokens stay text, training lowers the loss, chat
streams exactly the reply, a checkpoint reloads to the same outputs and LoRA trains.
"""

import pytest
import torch

from lavis.chat import ChatModel, ChatSession
from lavis.models import load_model
from lavis.processors.chat_format import IGNORE_INDEX, IMAGE_SLOT
from tests.helpers.families import END_OF_TURN, FAMILIES, family_options, write_family_folder

CONVERSATION = [
    {"from": "user", "value": "<Img><ImageHere></Img> What colour is the shape?"},
    {"from": "assistant", "value": "red"},
    {"from": "user", "value": "图中是什么形状？"},
    {"from": "assistant", "value": "圆形 😀"},
]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    name = request.param
    return name, write_family_folder(str(tmp_path_factory.mktemp(name)), name)


def build(folder, seed=0, **options):
    torch.manual_seed(seed)
    return load_model("minigpt4qwen", "tiny", cfg_options={**family_options(folder), **options})


def labelled_runs(tokenizer, encoded):
    runs, current = [], []
    for label in encoded.labels:
        if label == IGNORE_INDEX:
            if current:
                runs.append(tokenizer.decode(current))
            current = []
        else:
            current.append(label)
    return runs + ([tokenizer.decode(current)] if current else [])


def template_ids(tokenizer, messages, add_generation_prompt):
    text = tokenizer.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return tokenizer.hf.encode(text, add_special_tokens=False)


def test_labels_are_the_replies_and_their_end_of_turn(family):
    name, folder = family
    model = build(folder)
    tok = model.llm_tokenizer
    encoded = model.prompt.encode_conversation(CONVERSATION)
    last = END_OF_TURN[name] if name != "glm4" else tok.decode([tok.eod_id])  # nothing closes GLM's last reply
    assert labelled_runs(tok, encoded) == ["red" + END_OF_TURN[name], "圆形 😀" + last]
    assert encoded.num_images == 1 and encoded.input_ids.count(tok.image_pad_id) == model.num_query_token


def test_prompt_is_the_templates_own(family):
    _, folder = family
    model = build(folder)
    tok = model.llm_tokenizer
    history = [("What colour is the shape?", "red")]
    ids, images = model.prompt.generation_ids("图中是什么形状？", history)
    messages = [
        {"role": "user", "content": "What colour is the shape?"},
        {"role": "assistant", "content": "red"},
        {"role": "user", "content": "图中是什么形状？"},
    ]
    assert (ids, images) == (template_ids(tok, messages, True), 0)
    exchange = [{"from": m["role"], "value": m["content"]} for m in messages[:2]]
    training = model.prompt.encode_conversation(exchange).input_ids
    expected = template_ids(tok, messages[:2], False)
    assert training[: len(expected)] == expected and len(training) - len(expected) in (0, 1)  # GLM: + eos


def test_typed_special_tokens_stay_text(family):
    _, folder = family
    model = build(folder)
    tok = model.llm_tokenizer
    typed = " ".join(tok.decode([i]) for i in sorted(tok.special_ids)) + " <ImageHere>"
    ids, images = model.prompt.generation_ids([IMAGE_SLOT, " " + typed])
    plain = model.prompt.generation_ids(" ")[0]
    assert images == 1 and ids.count(tok.image_pad_id) == model.num_query_token  # only the real slot
    specials = [i for i in ids if i in tok.special_ids and i != tok.image_pad_id]
    assert specials == [i for i in plain if i in tok.special_ids]  # the template's own, no more
    assert typed in tok.decode(ids)


def test_training_lowers_the_loss_and_a_checkpoint_reloads(family, tmp_path):
    _, folder = family
    model = build(folder)
    image = torch.randn(1, 3, model.cfg.image_size, model.cfg.image_size, generator=torch.Generator().manual_seed(0))
    batch = {"image": image, "conversations": [CONVERSATION]}
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(batch)["loss"]
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses
    model.eval()
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": model.trainable_state_dict()}, path)
    again = build(folder, seed=1)
    again.load_checkpoint(str(path))
    again.eval()
    with torch.no_grad():
        assert model(batch)["loss"].item() == pytest.approx(again(batch)["loss"].item(), abs=1e-6)
    ids, _ = model.prompt.generation_ids([IMAGE_SLOT, " What colour is the shape?"])
    assert model.generate_from_ids([ids], image, max_new_tokens=5) == again.generate_from_ids(
        [ids], image, max_new_tokens=5
    )


def test_streamed_chat_is_the_reply(family):
    _, folder = family
    model = build(folder, seed=3).eval()
    chat = ChatModel(model, lambda image: image, None, "tiny", torch.device("cpu"))
    session = ChatSession(chat)
    session.settings.set("max_new_tokens", 40)
    pieces = []
    reply = session.reply("Tell me a story. 图中是什么？")
    streamed = reply.run(pieces.append)
    assert reply.num_tokens > 10
    assert "".join(pieces) == streamed == model.llm_tokenizer.decode(reply.reply_ids, skip_special_tokens=True).strip()
    assert model.prompt.image_pad_id not in reply.reply_ids


def test_lora_trains_the_familys_projections(family):
    _, folder = family
    model = build(folder, get_lora=True, freeze_llm=True)
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    assert lora, "no LoRA adapters"
    image = torch.randn(1, 3, model.cfg.image_size, model.cfg.image_size)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        model({"image": image, "conversations": [CONVERSATION]})["loss"].backward()
        optimiser.step()
        optimiser.zero_grad()
    assert any(not torch.equal(p, lora[n]) for n, p in model.named_parameters() if n in lora)


@pytest.mark.parametrize("name", ["gemma2", "glm4"])  # tied (Gemma) and untied embeddings, no slot token
def test_an_added_slot_token_grows_an_embedding_without_a_spare_row(name, tmp_path):
    model = build(write_family_folder(str(tmp_path), name, spare_rows=0))
    tok = model.llm_tokenizer
    assert tok.added_image_slot and tok.image_pad_id == len(tok) - 1
    assert model.llm_model.get_input_embeddings().weight.shape[0] == len(tok)
    assert model.llm_model.get_output_embeddings().weight.shape[0] == len(tok)
    loss = model({"image": torch.randn(1, 3, 64, 64), "conversations": [CONVERSATION]})["loss"]
    assert torch.isfinite(loss)
