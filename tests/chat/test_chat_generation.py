"""Chat generation: stops, streaming text (partial UTF-8), padding rows never emitted,
left-padded batches, beam search, sampling seeds, repetition penalty, cancelling."""

import threading
import time

import pytest
import torch
from torch import nn

import lavis  # noqa: F401
from lavis.chat import ChatError, ChatModel, ChatSession, GenerationSettings, TokenTextStreamer
from lavis.models import load_model_and_preprocess
from lavis.processors.chat_format import IMAGE_SLOT


def fresh_chat_model(seed=0):
    torch.manual_seed(seed)
    model, vis, _ = load_model_and_preprocess("minigpt4qwen", "tiny", is_eval=True)
    return ChatModel(model, vis["eval"], None, "tiny", torch.device("cpu"))


@pytest.fixture
def chat_model():
    return fresh_chat_model()


class ScriptedHead(nn.Module):
    """An LM head whose every call puts a huge logit on the next token of a script (per row)."""

    def __init__(self, vocab_size, scripts):
        super().__init__()
        self.vocab_size = vocab_size
        self.scripts = scripts
        self.calls = 0

    def forward(self, hidden):
        logits = torch.zeros(*hidden.shape[:-1], self.vocab_size)
        for row in range(hidden.shape[0]):
            script = self.scripts[row % len(self.scripts)]
            logits[row, ..., script[min(self.calls, len(script) - 1)]] = 100.0
        self.calls += 1
        return logits


def script_model(chat_model, *scripts):
    config = chat_model.model.llm_model.config
    chat_model.model.llm_model.lm_head = ScriptedHead(config.vocab_size, list(scripts))
    return chat_model


def ids_of(tok, text):
    return tok.encode_text(text)


def stream_all(session, query):
    reply = session.stream(query)
    pieces = list(reply)
    return reply, pieces


# -- stops -------------------------------------------------------------------------------
def test_reply_stops_at_im_end(chat_model):
    tok = chat_model.tokenizer
    script_model(chat_model, ids_of(tok, "red") + [tok.im_end_id] + ids_of(tok, "blue"))
    reply, pieces = stream_all(ChatSession(chat_model), "colour?")
    assert reply.response == "red" and "".join(pieces) == "red"
    assert reply.reply_ids == ids_of(tok, "red")


def test_reply_stops_at_endoftext(chat_model):
    tok = chat_model.tokenizer
    script_model(chat_model, ids_of(tok, "green") + [tok.eod_id] + ids_of(tok, "blue"))
    reply, pieces = stream_all(ChatSession(chat_model), "colour?")
    assert reply.response == "green" and "".join(pieces) == "green"


def test_generate_from_ids_default_stops_and_padding(chat_model):
    """Without a stop the script runs to max_new_tokens; `<|im_end|>`/`<|endoftext|>` end it."""
    tok = chat_model.tokenizer
    model = chat_model.model
    prompt, _ = model.prompt.generation_ids("hi")
    script_model(chat_model, ids_of(tok, "a b c d e f g h"))
    assert len(model.generate_from_ids([prompt], max_new_tokens=6)[0]) == 6
    for stop in (tok.im_end_id, tok.eod_id):
        script_model(chat_model, ids_of(tok, "a b") + [stop] + ids_of(tok, "c d e"))
        assert model.generate_from_ids([prompt], max_new_tokens=6)[0] == ids_of(tok, "a b")


# -- streaming text ----------------------------------------------------------------------
def test_streamer_waits_for_whole_characters(chat_model):
    tok = chat_model.tokenizer
    out = []
    streamer = TokenTextStreamer(tok, [tok.im_end_id], out.append)
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt: skipped
    assert out == []
    byte_ids = [tok.convert_tokens_to_ids(bytes([b])) for b in "红".encode()]
    for i, token in enumerate(byte_ids):
        streamer.put(torch.tensor([token]))
        assert out == ([] if i < 2 else ["红"])
    streamer.put(torch.tensor([tok.convert_tokens_to_ids("<|extra_5|>")]))  # special: not text
    streamer.put(torch.tensor([tok.im_end_id]))
    streamer.put(torch.tensor([tok.convert_tokens_to_ids(b"a")]))  # after the stop: ignored
    streamer.end()
    assert out == ["红"] and streamer.num_tokens == 4


def test_cancelled_streamer_ends_generate_at_its_next_token(chat_model):
    """Cancelling costs no per-token stopping criterion: the streamer raises inside generate."""
    tok = chat_model.tokenizer
    cancel = threading.Event()
    out, seen = [], []

    def on_text(text):
        out.append(text)
        seen.append(streamer.num_tokens)
        cancel.set()  # cancelled as soon as the first text arrives

    streamer = TokenTextStreamer(tok, [tok.im_end_id], on_text, cancel)
    prompt, _ = chat_model.model.prompt.generation_ids(["Tell me a story."])
    with pytest.raises(Exception) as raised:
        chat_model.model.generate_from_ids([prompt], max_new_tokens=50, min_new_tokens=50, streamer=streamer)
    assert type(raised.value).__name__ == "_Cancelled"
    assert len(out) == 1 and streamer.num_tokens == seen[0] < 50  # nothing after the cancel


def test_streamed_bytes_match_decode(chat_model):
    """Split characters, an invalid byte and specials: the stream equals tokenizer.decode."""
    tok = chat_model.tokenizer
    byte = lambda b: tok.convert_tokens_to_ids(bytes([b]))  # noqa: E731
    script = (
        ids_of(tok, " 圆")
        + [byte(b) for b in "形".encode()]
        + [byte(0xFF), tok.convert_tokens_to_ids("<|extra_3|>")]
        + ids_of(tok, " ok ")
        + [tok.im_end_id]
    )
    script_model(chat_model, script)
    reply, pieces = stream_all(ChatSession(chat_model), "shape?")
    expected = tok.decode(script[:-1], skip_special_tokens=True).strip()
    assert "".join(pieces) == reply.response == expected == "圆形\ufffd ok"


def test_stream_equals_response_on_a_real_model(chat_model):
    session = ChatSession(chat_model)
    session.settings.set("max_new_tokens", 40)
    reply, pieces = stream_all(session, "Tell me a story.")
    assert "".join(pieces) == reply.response
    assert session.history == [(["Tell me a story."], reply.response)]


# -- padding rows of the embedding -------------------------------------------------------
class PreferPaddingHead(nn.Module):
    """The real head plus a large bias on the padding rows (ids >= len(tokenizer))."""

    def __init__(self, head, num_tokens):
        super().__init__()
        self.head = head
        self.bias = torch.zeros(head.out_features)
        self.bias[num_tokens:] = 50.0

    def forward(self, hidden):
        return self.head(hidden) + self.bias


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"do_sample": True, "top_k": 0, "temperature": 1.5}, {"num_beams": 3}, {"num_beams": 2, "do_sample": True}],
    ids=["greedy", "sampling", "beam", "beam-sampling"],
)
def test_padding_rows_are_never_generated(chat_model, kwargs):
    model = chat_model.model
    tok = chat_model.tokenizer
    vocab = model.llm_model.config.vocab_size
    assert vocab > len(tok)  # the tiny default pads 864 tokens to 896 rows
    model.llm_model.lm_head = PreferPaddingHead(model.llm_model.lm_head, len(tok))
    prompt, _ = model.prompt.generation_ids("hi")
    torch.manual_seed(0)
    rigged = model.generate_from_ids([prompt], max_new_tokens=8, suppress_tokens=None, **kwargs)[0]
    assert rigged and all(t >= len(tok) for t in rigged)  # the rig works: unsuppressed, padding wins
    torch.manual_seed(0)
    out = model.generate_from_ids([prompt], max_new_tokens=8, min_new_tokens=8, **kwargs)[0]
    assert len(out) == 8 and all(t < len(tok) for t in out)


# -- batches -------------------------------------------------------------------------------
def test_left_padded_batch_equals_one_by_one(chat_model):
    model = chat_model.model
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    texts = [
        "<|im_start|>user\n<Img><ImageHere></Img> What colour is the shape?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<ImageHere> and <ImageHere>: which one is larger, and why do you think so?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    ]
    kwargs = dict(max_new_tokens=10, min_new_tokens=10)
    batched = model.generate({"image": images, "text": texts}, **kwargs)
    single = [
        model.generate({"image": images[:1], "text": texts[0]}, **kwargs)[0],
        model.generate({"image": images[1:3], "text": texts[1]}, **kwargs)[0],
        model.generate({"image": None, "text": texts[2]}, **kwargs)[0],
    ]
    assert batched == single
    assert all(batched)


def test_model_chat_accepts_parts_and_strings(chat_model):
    model = chat_model.model
    image = torch.zeros(2, 3, 64, 64)
    response, history = model.chat(["<Img>", IMAGE_SLOT, "</Img> hi <ImageHere>"], [], image, max_new_tokens=4)
    assert isinstance(response, str) and len(history) == 1
    response, history = model.chat("<Img><ImageHere></Img> again", history, image, max_new_tokens=4)
    assert len(history) == 2


# -- strategies and settings ------------------------------------------------------------------
def test_beam_search_answer_comes_whole(chat_model):
    session = ChatSession(chat_model)
    session.settings.set("num_beams", 3)
    session.settings.set("max_new_tokens", 12)
    reply, pieces = stream_all(session, "What colour is the shape?")
    assert reply.streamer is None and len(pieces) <= 1
    prompt, _ = chat_model.model.prompt.generation_ids(["What colour is the shape?"])
    expected = chat_model.model.generate_from_ids([prompt], num_beams=3, max_new_tokens=12, do_sample=False)[0]
    assert reply.reply_ids == expected


def test_sampling_is_seeded(chat_model):
    def answer(seed):
        session = ChatSession(chat_model, seed=seed)
        session.settings.set("do_sample", True)
        session.settings.set("max_new_tokens", 24)
        return session.stream("Tell me a story.").collect()

    assert answer(1) == answer(1)
    assert len({answer(1), answer(2), answer(3)}) > 1


def test_repetition_penalty_is_applied(chat_model):
    def reply_ids(penalty):
        session = ChatSession(chat_model)
        session.settings.set("max_new_tokens", 30)
        session.settings.set("repetition_penalty", penalty)
        reply = session.stream("Tell me a story.")
        reply.collect()
        return reply.reply_ids

    plain, penalised = reply_ids(1.0), reply_ids(10.0)
    assert plain != penalised
    assert len(set(penalised)) >= len(set(plain))


class TwoChoiceHead(nn.Module):
    """Logit 10 for `first`, 9 for `second`, 0 for everything else."""

    def __init__(self, vocab_size, first, second):
        super().__init__()
        self.bias = torch.zeros(vocab_size)
        self.bias[first], self.bias[second] = 10.0, 9.0

    def forward(self, hidden):
        return self.bias.expand(*hidden.shape[:-1], -1).clone()


def test_repetition_penalty_covers_the_prompt(chat_model):
    """As in Qwen's chat, a token the prompt already holds is penalised from the first step."""
    tok = chat_model.tokenizer
    red, other = tok.encode_text("red")[0], tok.convert_tokens_to_ids(b"x")
    chat_model.model.llm_model.lm_head = TwoChoiceHead(chat_model.model.llm_model.config.vocab_size, red, other)

    def first_token(penalty):
        session = ChatSession(chat_model)
        session.settings.set("max_new_tokens", 1)
        session.settings.set("repetition_penalty", penalty)
        reply = session.stream("red")
        reply.collect()
        return reply.reply_ids[0]

    assert first_token(1.0) == red
    assert first_token(2.0) == other  # 10 / 2 < 9: "red" was in the prompt


def test_generation_settings_validation():
    settings = GenerationSettings()
    assert settings.assign("top_p=0.5") == ("top_p", 0.5)
    assert settings.assign(" do_sample = true ") == ("do_sample", True)
    assert settings.assign("max_new_tokens=64") == ("max_new_tokens", 64)
    for bad in ("top_p=0", "top_p=1.5", "temperature=0", "num_beams=0", "max_new_tokens=2.5", "top_k=-1",
                "do_sample=maybe", "nonsense=1", "top_p", "=3", "repetition_penalty=__import__('os')"):  # fmt: skip
        with pytest.raises(ValueError):
            settings.assign(bad)
    assert settings.top_p == 0.5
    greedy = GenerationSettings(temperature=0.3).generate_kwargs()
    assert "temperature" not in greedy and greedy["do_sample"] is False
    sampling = GenerationSettings(do_sample=True, temperature=0.3, top_k=5).generate_kwargs()
    assert sampling["temperature"] == 0.3 and sampling["top_k"] == 5


# -- cancelling and errors ---------------------------------------------------------------------
def endless(chat_model):
    tok = chat_model.tokenizer
    script_model(chat_model, ids_of(tok, "red"))  # one token, repeated for ever
    session = ChatSession(chat_model)
    session.settings.set("max_new_tokens", 5000)
    return session


def test_cancel_stops_generation(chat_model):
    session = endless(chat_model)
    reply = session.stream("sing")
    pieces = iter(reply)
    first = next(pieces)  # "red", or several of them when the reader was slower than the generator
    assert first and first == "red" * (len(first) // 3)
    reply.cancel()
    rest = list(pieces)
    assert reply.cancelled and reply.num_tokens < 5000 and len(rest) < 5000
    assert session.history == []


def test_leaving_the_loop_stops_generation(chat_model):
    session = endless(chat_model)
    reply = session.stream("sing")
    for _ in reply:
        break
    time.sleep(0.1)
    assert reply.done and reply.cancelled and session.history == []


def test_interrupt_while_streaming_stops_generation(chat_model):
    session = endless(chat_model)
    reply = session.stream("sing")
    with pytest.raises(KeyboardInterrupt):
        for _ in reply:
            raise KeyboardInterrupt
    assert reply.done and reply.num_tokens < 5000 and session.history == []
    # the session is still usable
    script_model(chat_model, ids_of(chat_model.tokenizer, "ok") + [chat_model.tokenizer.im_end_id])
    assert session.ask("again") == "ok" and len(session.history) == 1


def test_generation_errors_surface_as_chat_errors(chat_model):
    session = ChatSession(chat_model)
    session.conversation.images.append(torch.zeros(2, 64, 64))  # two channels: the ViT fails
    session.conversation.labels.append("bad")
    with pytest.raises(ChatError, match="generation failed"):
        session.ask("what is it?")
    assert session.history == []


def test_one_generation_at_a_time(chat_model):
    """Answers run one after another on the model's one generation thread."""
    session = endless(chat_model)
    first = session.stream("one")
    pieces = iter(first)
    next(pieces)
    second = ChatSession(chat_model)
    second.settings.set("max_new_tokens", 3)
    waiting = second.stream("two")
    assert not waiting.wait(0.3) and not first.done  # queued behind the endless answer
    first.cancel()
    assert first.wait(10) and waiting.wait(10)
    assert waiting.collect() is not None and waiting.num_tokens <= 3
    workers = [t for t in threading.enumerate() if t.name == "chat-generate"]
    assert chat_model._worker.thread in workers


# -- image features kept across turns -----------------------------------------------------------
def test_images_are_encoded_once_per_conversation_and_replies_equal_model_chat(chat_model):
    from PIL import Image

    model = chat_model.model
    calls = []
    encode = model.encode_queries
    model.encode_queries = lambda images: (calls.append(len(images)), encode(images))[1]
    picture = Image.new("RGB", (64, 64), (200, 30, 30))
    session = ChatSession(chat_model)
    session.settings.set("max_new_tokens", 6)
    session.add_images([picture])
    first = session.ask("What colour is it?")
    second = session.ask("And the shape?")
    assert calls == [1]  # the second turn reuses the first turn's Q-former outputs
    session.add_images([picture])
    session.ask("Compare them.")
    assert calls == [1, 1]  # only the new image is encoded
    # the same answers as model.chat, which encodes every image at every turn
    pixels = chat_model.process_image(picture).unsqueeze(0)
    history = []
    for query, expected in zip(("<Img><ImageHere></Img> What colour is it?", "And the shape?"), (first, second)):
        response, history = model.chat(query, history, pixels, max_new_tokens=6)
        assert response == expected


# -- generation on the calling thread (the CLI's path) -------------------------------------------
def test_run_streams_on_the_calling_thread_and_keeps_the_turn(chat_model):
    session = ChatSession(chat_model)
    session.settings.set("max_new_tokens", 40)
    threads, pieces = [], []
    generate = chat_model.model.generate_from_ids
    chat_model.model.generate_from_ids = lambda *a, **k: (
        threads.append(threading.current_thread()),
        generate(*a, **k),
    )[1]
    response = session.ask("Tell me a story.", on_text=pieces.append)
    assert threads == [threading.current_thread()]
    assert "".join(pieces) == response and len(pieces) > 1  # streamed piece by piece
    assert session.history == [(["Tell me a story."], response)]
    # the same answer as on the generation thread
    other = ChatSession(chat_model)
    other.settings.set("max_new_tokens", 40)
    assert other.stream("Tell me a story.").collect() == response


def test_ctrl_c_during_run_stops_generation_and_keeps_nothing(chat_model):
    session = endless(chat_model)
    seen = []

    def interrupt(piece):
        seen.append(piece)
        if len(seen) == 3:
            raise KeyboardInterrupt

    reply = session.reply("sing")
    with pytest.raises(KeyboardInterrupt):
        reply.run(interrupt)
    assert reply.cancelled and reply.num_tokens == 3 and session.history == []
    script_model(chat_model, ids_of(chat_model.tokenizer, "ok") + [chat_model.tokenizer.im_end_id])
    assert session.ask("again") == "ok"  # the model is free again


def test_run_with_beam_search_hands_the_whole_text_at_the_end(chat_model):
    session = ChatSession(chat_model)
    session.settings.set("num_beams", 2)
    session.settings.set("max_new_tokens", 6)
    pieces = []
    response = session.ask("hello", on_text=pieces.append)
    assert pieces == ([response] if response else [])
