"""Measure what the chat layer costs: time to first token and decode speed of a chat answer,
next to bare `transformers` `generate` on the same LLM and the same prompt embeddings.

Two models (random weights: speed does not depend on training):

* tiny  -- the tiny default (`model_type: tiny`);
* small -- the tiny default's ViT/Q-former with a larger LLM (hidden 512, 4 layers) and the
  real Qwen vocabulary of 151,851 tokens padded to 151,936 embedding rows.  The vocabulary is
  Qwen's `qwen.tiktoken` from the PyPI wheel `qwen-agent==0.0.34`
  (`pip install --no-deps qwen-agent==0.0.34`); without it the tiny vocabulary is used with
  its embedding padded to 151,936 rows (`llm_arch.vocab_pad_to`).

Each answer has a fixed length (`min_new_tokens = max_new_tokens`), greedy.  Rows:

* bare generate            -- `llm_model.generate(inputs_embeds=...)` with embeddings computed
                              beforehand;
* bare generate + embed    -- the same, timing the image encoding and prompt embedding too;
* chat (ChatSession.stream) -- prompt building, image encoding, generation on the model's
                              generation thread, streamed decoding to text handed over to the
                              iterating thread, history (the web UI's path);
* chat (Reply.run, CLI)     -- the same on the calling thread, text to a callback (the CLI's
                              and `ask`'s path: no thread hand-off).

Fair in both directions: the bare rows pass `generate` the very kwargs `generate_from_ids`
passes (stop ids, pad id, `suppress_tokens` for the embedding's padding rows, so no row can
emit a padding token) and a minimal streamer that only notes the first token; the warm-up
checks that bare and chat generate the same tokens.  Prompt ids and processed pixels are
made before the bare clock starts; chat builds its prompt from text inside its clock.

Time to first token: from the call to the first generated token (seen by the streamer).
Decode speed: (tokens - 1) / (end - first token); chat's end is when its text iterator ends.
Runs are interleaved (the order of the rows rotates each repetition, so load from other
processes hits every row alike); figures are medians of `--runs` repetitions.  The chat
layer's overhead is chat against "bare generate + embed" (target: <= 10%).  On a shared
machine use `--threads 1` and many runs.

    python benchmarks/chat_speed.py [--runs 30] [--new-tokens 64] [--models tiny small] [--device cpu] [--threads 1]
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lavis.chat import (  # noqa: E402  (after the repository root is on sys.path)
    ChatModel,
    ChatSession,
    GenerationSettings,
    example_image_path,
    image_parts,
    load_image,
    merge_parts,
)
from lavis.models import load_model_and_preprocess  # noqa: E402

SMALL_LLM = {
    "hidden_size": 512,
    "num_layers": 4,
    "num_heads": 8,
    "intermediate_size": 1408,
    "max_position_embeddings": 2048,
    "vocab_pad_to": 128,
}
QWEN_VOCAB_ROWS = 151_936
QUESTION = "What colour is the shape? Please describe the image in detail."


def qwen_vocab_file():
    """qwen.tiktoken inside the installed qwen-agent wheel (located without importing it)."""
    spec = importlib.util.find_spec("qwen_agent")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "utils", "qwen.tiktoken")
    return path if os.path.isfile(path) else None


def build(name, device):

    options, note = {}, "tiny default"
    if name == "small":
        vocab = qwen_vocab_file()
        if vocab:
            options = {"llm_tokenizer": vocab, "llm_arch": SMALL_LLM}
            note = "LLM hidden 512 x 4 layers, real Qwen vocabulary (qwen-agent's qwen.tiktoken)"
        else:
            options = {"llm_arch": {**SMALL_LLM, "vocab_pad_to": QWEN_VOCAB_ROWS}}
            note = "LLM hidden 512 x 4 layers, tiny vocabulary padded to 151,936 rows (qwen-agent not installed)"
    torch.manual_seed(0)
    model, vis, _ = load_model_and_preprocess("minigpt4qwen", "tiny", is_eval=True, device=device, cfg_options=options)
    chat_model = ChatModel(model, vis["eval"], None, "tiny", torch.device(device))
    rows = model.llm_model.config.vocab_size
    params = sum(p.numel() for p in model.llm_model.parameters()) / 1e6
    return chat_model, f"{note}; {len(model.llm_tokenizer):,} tokens, {rows:,} rows, LLM {params:.1f} M parameters"


def fixed_length_settings(chat_model, new_tokens):

    class FixedLength(GenerationSettings):
        def generate_kwargs(self):
            return {**super().generate_kwargs(), "min_new_tokens": self.max_new_tokens}

    settings = FixedLength(**chat_model.default_settings().to_dict())
    settings.set("max_new_tokens", new_tokens)
    return settings


class FirstTokenTimer:
    """A minimal transformers streamer: notes when the first generated token arrives."""

    def __init__(self):
        self.prompt_seen = False
        self.first = None

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
        elif self.first is None:
            self.first = time.perf_counter()

    def end(self):
        pass


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_chat(chat_model, image, settings, device, on_this_thread=False):

    session = ChatSession(chat_model, settings=settings)
    session.add_images([image])
    sync(device)
    start = time.perf_counter()
    reply = session.reply(QUESTION)
    if on_this_thread:
        reply.run(lambda text: None)
    else:
        for _ in reply:
            pass
    sync(device)
    end = time.perf_counter()
    first = reply.streamer.first_token_time
    assert reply.num_tokens == settings.max_new_tokens, reply.num_tokens
    return (
        first - start,
        (reply.num_tokens - 1) / (end - first),
        (reply.first_text_time or end) - start,
        reply.reply_ids,
    )


def run_bare(chat_model, image, settings, device, include_embedding):
    model = chat_model.model
    tok = chat_model.tokenizer
    ids, _ = model.prompt.generation_ids(merge_query(chat_model), [], None, settings.max_window_size)
    pixels = chat_model.process_image(image).unsqueeze(0).to(device)
    input_ids = torch.tensor([ids], device=device)
    mask = torch.ones_like(input_ids)
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        eos_token_id=[tok.im_end_id, tok.im_start_id, tok.eod_id],
        pad_token_id=tok.pad_token_id,
        suppress_tokens=list(range(len(tok), model.llm_model.config.vocab_size)) or None,
    )

    def embed():
        with torch.no_grad():
            return model.embed_with_images(input_ids, model.encode_image(pixels))

    embeds = None if include_embedding else embed()
    timer = FirstTokenTimer()
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        if include_embedding:
            embeds = embed()
        out = model.llm_model.generate(
            input_ids=input_ids, inputs_embeds=embeds, attention_mask=mask, streamer=timer, **kwargs
        )
    sync(device)
    end = time.perf_counter()
    new = out.shape[1] - input_ids.shape[1]
    assert new == settings.max_new_tokens, new
    return timer.first - start, (new - 1) / (end - timer.first), None, out[0, input_ids.shape[1] :].tolist()


def merge_query(chat_model):

    return merge_parts(image_parts(1) + [" " + QUESTION])


def measure(name, runs, new_tokens, device):

    chat_model, note = build(name, device)
    image = load_image(example_image_path("circle", "red"))
    settings = fixed_length_settings(chat_model, new_tokens)
    cases = {
        "bare generate": lambda: run_bare(chat_model, image, settings, device, False),
        "bare generate + embed": lambda: run_bare(chat_model, image, settings, device, True),
        "chat (ChatSession.stream)": lambda: run_chat(chat_model, image, settings, device),
        "chat (Reply.run, CLI)": lambda: run_chat(chat_model, image, settings, device, on_this_thread=True),
    }
    warm = {label: case() for label, case in cases.items()}
    tokens = {tuple(result[3]) for result in warm.values()}
    assert len(tokens) == 1, "bare generate and chat generated different tokens"
    results = {label: [] for label in cases}
    labels = list(cases)
    for run in range(runs):  # interleaved; the order rotates so that no row always comes first
        for label in labels[run % len(labels) :] + labels[: run % len(labels)]:
            results[label].append(cases[label]())
    prompt_len = len(chat_model.model.prompt.generation_ids(merge_query(chat_model))[0])
    print(f"\n== {name}: {note}")
    print(
        f"   prompt {prompt_len} tokens (1 image), {new_tokens} new tokens, greedy, {runs} runs (median), "
        f"device {device}, {torch.get_num_threads()} CPU threads"
    )
    print(f"   {'':28s} {'first token':>12s} {'decode':>12s}")
    medians = {}
    for label, values in results.items():
        ttft = statistics.median(v[0] for v in values)
        speed = statistics.median(v[1] for v in values)
        medians[label] = (ttft, speed)
        print(f"   {label:28s} {ttft * 1000:9.1f} ms {speed:8.1f} tok/s")
    first_text = statistics.median(v[2] for v in results["chat (ChatSession.stream)"])
    print(f"   {'chat (stream), first text shown':28s} {first_text * 1000:9.1f} ms")
    for chat_row in ("chat (ChatSession.stream)", "chat (Reply.run, CLI)"):
        chat_ttft, chat_speed = medians[chat_row]
        for base in ("bare generate + embed", "bare generate"):
            ttft, speed = medians[base]
            print(
                f"   {chat_row:26s} vs {base:21s} first token {100 * (chat_ttft / ttft - 1):+6.1f}%   "
                f"decode time per token {100 * (speed / chat_speed - 1):+6.1f}%"
            )
    return medians


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    for name in args.models:
        measure(name, args.runs, args.new_tokens, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
