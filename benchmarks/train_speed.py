"""Training speed of MiniGPT4Qwen steps, ours against the original's way of computing them.

    python benchmarks/train_speed.py [--configs tiny small] [--workload shapes|realistic] [--batch 4 16]
                                     [--steps 10] [--device cpu|cuda] [--amp bf16] [--llm-bf16]
                                     [--cached-features] [--packing] [--compile] [--epoch 18800]
                                     [--in-process]
    python benchmarks/train_speed.py --varied-lengths [--configs small]

For each named config (and each `--batch` size, default the config's own) it trains `--steps`
optimizer steps (after 2 warm-up steps) and prints samples/s, tokens/s (real = non-padding,
padded = batch x length), peak memory, achieved FLOP/s as a fraction of a matrix-product rate
measured on the same device and dtype (2048^3 on CPU, 8192^3 on a GPU) and, with `--epoch N`,
the hours an epoch of N samples takes at that rate.
Two workloads:

* shapes (the default): the synthetic shapes conversations, whose answers are a few tokens long;
* realistic: single-turn samples shaped like the MiniGPT-4 + LLaVA instruction data (the real
  recipe's 18.8k): `<Img><ImageHere></Img> ` + a question of 10-30 tokens, answers 40 %
  MiniGPT-4-style (uniformly 80-150 tokens) and 60 % LLaVA-style (log-normal, median 80, sigma
  0.5, clipped to 30-200), English and Chinese in turn, made from the shapes corpus's sentences
  (`corpus_lines()`) with a fixed seed, lengths in the config's own tokenizer's tokens; random
  images; max_txt_len 256 for every config. It prints the length statistics of its first 2,000
  samples (tokens per sample with the system prompt and image slots, share cut at max_txt_len).
  All configs here use the tiny preset's tokenizer, whose chat template costs 45 tokens: a sample
  is about 195 tokens with 32 image slots; with Qwen-7B-Chat's own qwen.tiktoken the same
  generator gives 178 on average (median 178, p90 224, 3 % cut), as the real data has.

Two step implementations:

* ours: `model(samples)`: batches padded to their longest sample, the LM head and loss only at
  labelled positions;
* original: what the original MiniGPT4Qwen step computes: every sample padded to `max_txt_len`
  and logits over the whole vocabulary at every position (transformers' own loss).

Both run the frozen ViT and Q-former at every step. With `--cached-features`, a third row, "cached":
our step when the frozen image side's outputs come from a cache (`run.use_cached_features`;
precomputed in memory here, the precomputation timed apart), so only llm_proj and the LLM run;
configs whose image side trains (tiny) have no cache and skip it. With `--packing`, a row
"packed": our step with `run.packing` (several samples per row, `lavis/models/llm/packing.py`),
from cached features where the "cached" row runs. `--compile` compiles the LLM's
decoder layers first (as `run.compile: true` does; compilation falls in the 2 warm-up steps).
`--varied-lengths` (shapes workload) gives the answers a spread of lengths like LLaVA's (each
answer repeated 1 to 60 times) and times our step on the same samples in random batches and in
length-grouped ones (`run.group_by_length`: `lavis/runners/samplers.py`). Configs:

* tiny: the embedded default (everything trains), batch 32;
* small: ViT 256x6 at 224 px, Q-former 256x2, Qwen-style LLM 512x4 with the real vocabulary size
  (151,936 rows), batch 4, max_txt_len 256, only llm_proj trains;
* 7b-shape: EVA-ViT-G + Q-former 768x12 + a Qwen-7B-shaped LLM with random weights, batch 4, bf16
  (a GPU with about 40 GB or more);
* 7b-recipe: 7b-shape as the real recipe trains it (`lavis/projects/instruction_tuning/train.yaml`):
  the LLM's weights in bf16, the ViT with gradient checkpointing, batch 1 (fits a 24 GB card?).

Each row (one step implementation on one config and batch size) runs in a fresh process
(`--in-process`: all in this one, faster to start), so its peak memory is its own: the peak RSS
on CPU (CUDA max allocated on a GPU), and in brackets the step's share above the built model and
data. Two FLOP counts, estimated from parameter counts: 2 x params x tokens for every forward
matmul, as much again for the gradients that flow back through the LLM to llm_proj, plus
2 x trainable params x tokens for weight gradients (embedding lookups and attention scores are
left out). "computed" counts the tokens each step really computes (padded ones too; the LM head
where it runs); "useful" counts what the step must compute: real tokens only, the LM head only at
labelled positions. Both steps do the same useful work, so their useful rates compare directly.
`--llm-bf16` keeps a frozen LLM's weights in bf16 (as the real recipe loads Qwen-7B-Chat), with
`--amp bf16`.
"""

import argparse
import math
import multiprocessing
import os
import random
import re
import resource
import statistics
import sys
import time

import psutil
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lavis.common.utils import get_cache_path  # noqa: E402  (after the repository root is on sys.path)
from lavis.datasets.datasets.instruction_dataset import InstructionDataset  # noqa: E402
from lavis.datasets.synthetic.shapes import corpus_lines, ensure_shapes_dataset  # noqa: E402
from lavis.models import load_model  # noqa: E402
from lavis.processors import load_processor  # noqa: E402
from lavis.processors.chat_format import IGNORE_INDEX  # noqa: E402
from lavis.runners.compile import compile_llm_layers  # noqa: E402
from lavis.runners.samplers import ResumableSampler  # noqa: E402

QWEN_VOCAB_ROWS = 151_936
CONFIGS = {
    "tiny": {"batch": 32, "options": {}},
    "small": {
        "batch": 4,
        "options": {
            "image_size": 224,
            "vit_arch": {"patch_size": 14, "embed_dim": 256, "depth": 6, "num_heads": 4, "mlp_ratio": 4.0},
            "qformer_arch": {
                "hidden_size": 256,
                "num_layers": 2,
                "num_heads": 4,
                "intermediate_size": 1024,
                "cross_attention_freq": 1,
            },
            "num_query_token": 32,
            "llm_arch": {
                "hidden_size": 512,
                "num_layers": 4,
                "num_heads": 8,
                "intermediate_size": 1408,
                "max_position_embeddings": 2048,
                "vocab_pad_to": QWEN_VOCAB_ROWS,
            },
            "max_txt_len": 256,
            "freeze_vit": True,
            "freeze_qformer": True,
            "freeze_queries": True,
            "freeze_llm": True,
        },
    },
    "7b-shape": {
        "batch": 4,
        "options": {
            "image_size": 224,
            "vit_arch": {},  # EVA-ViT-G's defaults
            "qformer_arch": {},  # BERT-base Q-former defaults
            "num_query_token": 32,
            "llm_arch": {
                "hidden_size": 4096,
                "num_layers": 32,
                "num_heads": 32,
                "intermediate_size": 11008,
                "vocab_pad_to": QWEN_VOCAB_ROWS,
            },
            "max_txt_len": 256,
            "vit_precision": "fp16",
            "freeze_vit": True,
            "freeze_qformer": True,
            "freeze_queries": True,
            "freeze_llm": True,
        },
    },
}
# the real recipe (lavis/projects/instruction_tuning/train.yaml) on the 7b shapes: the LLM in bf16 (as
# Qwen-7B-Chat's weights load; `llm_dtype` applies to loaded weights only, so the random ones are cast),
# the ViT with gradient checkpointing, only llm_proj trains, batch 1 (its memory, on a 24 GB card?)
CONFIGS["7b-recipe"] = {
    "batch": 1,
    "options": {**CONFIGS["7b-shape"]["options"], "use_grad_checkpoint": True},
    "llm_bf16": True,
}


def build(name, device, workload="shapes", llm_bf16=False):

    torch.manual_seed(0)
    options = dict(CONFIGS[name]["options"])
    if workload == "realistic":
        options["max_txt_len"] = REALISTIC_MAX_TXT_LEN  # the original's, for every config (tiny's own is 160)
    model = load_model("minigpt4qwen", "tiny", device=device, cfg_options=options)
    if CONFIGS[name].get("llm_bf16") or llm_bf16:
        if any(p.requires_grad for p in model.llm_model.parameters()):
            raise SystemExit(f"--llm-bf16: the LLM of {name} trains (only a frozen LLM's weights are kept in bf16)")
        model.llm_model.to(torch.bfloat16)
    # images at the model's own size (the tiny preset's processor would give every config 64 px)
    return model.train(), load_processor("blip_image_eval", {"image_size": model.cfg.image_size})


def batches(model, processor, batch_size, count):
    """`count` batches of synthetic shapes conversations, images at the model's size."""

    root = ensure_shapes_dataset(get_cache_path("dataset/shapes_instruction"))
    dataset = InstructionDataset(
        processor, load_processor("base_instruction"), str(root / "image"), [str(root / "train.json")]
    )
    return [InstructionDataset.collater([dataset[i * batch_size + j] for j in range(batch_size)]) for i in range(count)]


REALISTIC_MAX_TXT_LEN = 256
REALISTIC_STATS_SAMPLES = 2000  # the length statistics are printed over this many samples of the stream
_CJK = re.compile(r"[\u4e00-\u9fff]")


def realistic_corpus():
    """{"en": [...], "zh": [...]}: the shapes corpus's plain sentences (no image marks), by language."""
    lines = [line for line in corpus_lines() if "<" not in line and len(line) > 3]
    return {"en": [x for x in lines if not _CJK.search(x)], "zh": [x for x in lines if _CJK.search(x)]}


def text_of_tokens(rng, tokenizer, lines, lang, n):
    """Random corpus sentences cut to about `n` tokens of `tokenizer` (the longest prefix of at most `n`)."""
    joiner = " " if lang == "en" else ""
    text = rng.choice(lines)
    while len(tokenizer.encode_text(text)) < n:
        text += joiner + rng.choice(lines)
    lo, hi = 1, len(text)  # the longest character prefix whose token count is at most n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(tokenizer.encode_text(text[:mid])) <= n else (lo, mid - 1)
    return text[:lo].strip()


def realistic_conversations(tokenizer, count, seed=0):
    """`count` single-turn samples shaped like the MiniGPT-4 + LLaVA instruction data (the 18.8k of
    the real recipe): a user turn `<Img><ImageHere></Img> ` + a question of 10-30 tokens; 40 % of the
    answers MiniGPT-4-style (uniformly 80-150 tokens), 60 % LLaVA-style (log-normal, median 80,
    sigma 0.5, clipped to 30-200); English and Chinese in turn. Lengths in `tokenizer`'s tokens.
    Returns [{"conversations", "style", "lang", "answer_tokens"}], the same for the same seed."""
    rng = random.Random(seed)
    corpus = realistic_corpus()
    out = []
    for i in range(count):
        lang = ("en", "zh")[i % 2]
        question = text_of_tokens(rng, tokenizer, corpus[lang], lang, rng.randint(10, 30))
        if rng.random() < 0.4:
            style, n = "minigpt4", rng.randint(80, 150)
        else:
            style, n = "llava", min(max(round(rng.lognormvariate(math.log(80), 0.5)), 30), 200)
        answer = text_of_tokens(rng, tokenizer, corpus[lang], lang, n)
        conversation = [
            {"from": "user", "value": "<Img><ImageHere></Img> " + question},
            {"from": "assistant", "value": answer},
        ]
        out.append({"conversations": conversation, "style": style, "lang": lang, "answer_tokens": n})
    return out


def length_statistics(model, samples):
    """Tokens per sample as the model encodes them (system prompt and image slots included)."""
    full = [len(model.prompt.encode_conversation(s["conversations"]).input_ids) for s in samples]
    kept = sorted(min(n, model.max_txt_len) for n in full)
    answers = {style: [s["answer_tokens"] for s in samples if s["style"] == style] for style in ("minigpt4", "llava")}
    return {
        "samples": len(samples),
        "mean": statistics.fmean(kept),
        "median": statistics.median(kept),
        "p90": kept[int(0.9 * (len(kept) - 1))],
        "truncated": sum(n > model.max_txt_len for n in full) / len(full),
        "minigpt4_share": len(answers["minigpt4"]) / len(samples),
        "minigpt4_median": statistics.median(answers["minigpt4"]),
        "llava_median": statistics.median(answers["llava"]),
        "chinese_share": sum(s["lang"] == "zh" for s in samples) / len(samples),
    }


def print_length_statistics(model, samples, seed):
    st = length_statistics(model, samples)
    print(
        f"   realistic workload (seed {seed}, {st['samples']} samples): answers {st['minigpt4_share']:.0%} "
        f"MiniGPT-4-style (median {st['minigpt4_median']:.0f} tokens), {1 - st['minigpt4_share']:.0%} LLaVA-style "
        f"(median {st['llava_median']:.0f}), {st['chinese_share']:.0%} Chinese; tokens per sample with the system "
        f"prompt and {model.num_query_token} image slots: mean {st['mean']:.1f}, median {st['median']:.0f}, "
        f"p90 {st['p90']}; {st['truncated']:.1%} cut at max_txt_len {model.max_txt_len}"
    )


def realistic_batches(model, batch_size, count, seed=0, show_statistics=False):
    """`count` batches of realistic samples (the stream's first ones), random images at the model's
    size; with `show_statistics`, prints the length statistics of the stream's first
    REALISTIC_STATS_SAMPLES samples."""
    pool = realistic_conversations(
        model.llm_tokenizer, max(REALISTIC_STATS_SAMPLES if show_statistics else 0, batch_size * count), seed
    )
    if show_statistics:
        print_length_statistics(model, pool[:REALISTIC_STATS_SAMPLES], seed)
    images = torch.randn(
        batch_size * count, 3, model.cfg.image_size, model.cfg.image_size, generator=torch.Generator().manual_seed(seed)
    )
    samples = [{"image": images[i], "conversations": pool[i]["conversations"]} for i in range(batch_size * count)]
    return [_collate(samples[k : k + batch_size]) for k in range(0, len(samples), batch_size)]


def varied_length_batches(model, processor, batch_size, count, seed=0):
    """(random batches, length-grouped batches) of the same `count` x `batch_size` samples whose
    answers are repeated 1 to 60 times (a long-tailed spread of lengths, as in LLaVA's data)."""
    import random

    rng = random.Random(seed)
    pool = [dict(s) for b in batches(model, processor, batch_size, count) for s in _unbatch(b)]
    for sample in pool:
        *turns, answer = sample["conversations"]
        repeats = min(int(rng.paretovariate(1.2)), 60)
        sample["conversations"] = [*turns, dict(answer, value=" ".join([answer["value"]] * repeats))]
    rng.shuffle(pool)
    lengths = [len(model.prompt.encode_conversation(s["conversations"], model.max_txt_len).input_ids) for s in pool]
    sampler = ResumableSampler(pool, batch_size, seed=seed, lengths=lengths)
    grouped = list(sampler)

    def chunk(order):
        return [_collate([pool[i] for i in order[k : k + batch_size]]) for k in range(0, len(order), batch_size)]

    return chunk(list(range(len(pool)))), chunk(grouped)


def _unbatch(batch):
    images = iter(batch["image"])
    return [{"image": next(images), "conversations": c} for c in batch["conversations"]]  # one image per sample here


def _collate(samples):
    return {"image": torch.stack([s["image"] for s in samples]), "conversations": [s["conversations"] for s in samples]}


def original_step_loss(model, samples):
    """The original's computation: pad to max_txt_len, full-vocabulary logits at every position."""
    encoded = [model.prompt.encode_conversation(c, model.max_txt_len) for c in samples["conversations"]]
    pad = model.max_txt_len
    eod = model.llm_tokenizer.eod_id
    ids = torch.tensor([e.input_ids + [eod] * (pad - len(e.input_ids)) for e in encoded], device=model.device)
    labels = torch.tensor([e.labels + [-100] * (pad - len(e.labels)) for e in encoded], device=model.device)
    mask = torch.tensor([[1] * len(e.input_ids) + [0] * (pad - len(e.input_ids)) for e in encoded], device=model.device)
    embeds = model.embed_with_images(ids, model.encode_image(samples["image"]))
    # the head runs at every position of every padded row
    return model.llm_model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss, ids.numel(), ids.numel()


def our_step_loss(model, samples):
    """Ours: returns the loss, the positions where the LM head ran (labelled ones only) and the
    positions the decoder computed (rows x longest row: padded, or packed)."""
    out = model(samples)
    return out["loss"], out["num_tokens"], out["num_padded_tokens"]


def token_counts(model, batch):
    """(real tokens, labelled positions), counted outside the timing; the labelled positions are
    those whose next token is a label (where the LM head must run)."""
    encoded = [model.prompt.encode_conversation(c, model.max_txt_len) for c in batch["conversations"]]
    labelled = sum(sum(label != IGNORE_INDEX for label in e.labels[1:]) for e in encoded)
    return sum(len(e.input_ids) for e in encoded), labelled


MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}  # a 2048^3 product takes a GPU too short a time to reach its rate


def matmul_rate(device, dtype, n=2048, reps=10):
    """Best of three timings of `reps` n x n matrix products (FLOP/s)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * reps / best


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def flops_per_step(model, tokens, head_positions, images):
    """Matmul FLOPs of one step's forward and backward (see the module docstring)."""
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    vit_tokens = model.visual_encoder.embeddings.position_embedding.shape[1]
    head = count(model.llm_model.get_output_embeddings())
    body = count(model.llm_model) - head - count(model.llm_model.get_input_embeddings())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    forward = 2 * (count(model.visual_encoder) * vit_tokens + count(model.Qformer) * model.num_query_token) * images
    forward += 2 * body * tokens + 2 * head * head_positions
    return forward + 2 * body * tokens + 2 * head * head_positions + 2 * trainable * tokens


def measure(model, data, step_loss, device, amp, warmup=2):
    """Time `step_loss` over `data` after `warmup` steps. Returns a dict of the figures: seconds,
    samples, real and padded tokens, computed FLOPs (padded tokens, the head where it ran), useful
    FLOPs (real tokens, the head at labelled positions only), peak memory (bytes; on CPU the peak
    RSS of the process so far) and the memory in use before the first step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp == "bf16")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    counts = [token_counts(model, batch) for batch in data]
    before = torch.cuda.memory_allocated() if cuda else psutil.Process().memory_info().rss
    samples = real = padded = heads = labelled = images = 0
    for i, batch in enumerate(data):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        if batch["image"] is not None:
            batch["image"] = batch["image"].to(device)
        if batch.get("image_features") is not None:
            batch["image_features"] = batch["image_features"].to(device)
        with autocast:
            loss, head_positions, computed_tokens = step_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            samples += len(batch["conversations"])
            real += counts[i][0]
            padded += computed_tokens
            labelled += counts[i][1]
            heads += head_positions
            images += 0 if batch["image"] is None else len(batch["image"])  # cached: no ViT / Q-former
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "samples": samples,
        "real": real,
        "padded": padded,
        "computed_flops": flops_per_step(model, padded, heads, images),
        # the image side runs for every sample's image either way; cached rows skip it
        "useful_flops": flops_per_step(model, real, labelled, images),
        "peak": peak,
        "before": before,
    }


def image_side_frozen(model):
    return (
        not any(p.requires_grad for m in (model.visual_encoder, model.ln_vision, model.Qformer) for p in m.parameters())
        and not model.query_tokens.requires_grad
    )


def cached_batches(model, data, device):
    """The batches with their images replaced by the frozen image side's outputs; (batches, seconds)."""
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        cached = [dict(b, image=None, image_features=model.encode_queries(b["image"].to(device))) for b in data]
    sync(device)
    return cached, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=list(CONFIGS))
    parser.add_argument("--workload", choices=["shapes", "realistic"], default="shapes")
    parser.add_argument("--batch", nargs="+", type=int, help="batch sizes to time (default: each config's own)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--llm-bf16",
        action="store_true",
        help="the frozen LLM's weights in bf16, as the real recipe loads Qwen-7B-Chat (with --amp bf16)",
    )
    parser.add_argument(
        "--cached-features", action="store_true", help="also time our step from cached Q-former outputs"
    )
    parser.add_argument(
        "--packing", action="store_true", help="also time our step with several samples per row (run.packing)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the LLM decoder layers (run.compile)")
    parser.add_argument(
        "--varied-lengths",
        action="store_true",
        help="our step on long-tailed lengths: random vs length-grouped batches",
    )
    parser.add_argument("--epoch", type=int, default=0, help="print how long an epoch of this many samples takes")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time every row in this process (faster to start; peak memory is then the process's so far)",
    )
    args = parser.parse_args(argv)
    if args.varied_lengths and args.workload != "shapes":
        parser.error("--varied-lengths spreads the shapes conversations' lengths: use it with --workload shapes")
    if args.llm_bf16 and args.amp != "bf16":
        parser.error("--llm-bf16 keeps the frozen LLM in bf16 under bf16 autocast: use it with --amp bf16")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float32
    size = MATMUL_SIZE[torch.device(args.device).type]
    rate = matmul_rate(args.device, dtype, size)
    print(
        f"device {args.device}, {torch.get_num_threads()} CPU threads, amp {args.amp}, LLM weights "
        f"{'bf16' if args.llm_bf16 else 'as built'}, compile {args.compile}, "
        f"workload {args.workload}; measured {dtype} {size}^3 matmul rate: {rate / 1e9:.1f} GFLOP/s; "
        f"rows {'in this process' if args.in_process else 'each in a fresh process'}"
    )
    for name in args.configs:
        for batch_size in args.batch or [CONFIGS[name]["batch"]]:
            time_config(args, name, batch_size, rate)
    return 0


def prepared(args, name, batch_size, show_statistics=False, with_batches=True):
    """(model, image processor, batches) of one config and batch size, the same in every process
    (batches None without `with_batches`)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = build(name, args.device, args.workload, args.llm_bf16)
    if args.compile:
        compile_llm_layers(model, True, args.device)
    if not with_batches:
        return model, processor, None
    if args.workload == "realistic":
        return model, processor, realistic_batches(model, batch_size, args.steps + 2, show_statistics=show_statistics)
    return model, processor, batches(model, processor, batch_size, args.steps + 2)


def time_row(args, name, batch_size, label):
    """The figures of one row ("ours", "original", "cached", "packed" / "cached+packed", or
    "random"/"grouped" with --varied-lengths), model and data built afresh (in a fresh process,
    its peak memory is the row's)."""
    varied = label in ("random", "grouped")  # these make their own batches
    model, processor, data = prepared(args, name, batch_size, with_batches=not varied)
    if varied:
        random_batches, grouped = varied_length_batches(model, processor, batch_size, args.steps)
        # the same 2 warm-up steps before each, then all the samples timed
        data = random_batches[:2] + (random_batches if label == "random" else grouped)
    cache_seconds, cache_images = None, sum(len(b["image"]) for b in data)
    if label.startswith("cached"):
        data, cache_seconds = cached_batches(model, data, args.device)
    model.pack_sequences = label.endswith("packed")
    step = original_step_loss if label == "original" else our_step_loss
    figures = measure(model, [dict(b) for b in data], step, args.device, args.amp)
    return dict(figures, cache_seconds=cache_seconds, cache_images=cache_images)


def row_figures(args, name, batch_size, label):
    if args.in_process:
        return time_row(args, name, batch_size, label)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(time_row, (args, name, batch_size, label))


def memory_text(device, figures):
    where = "CUDA max allocated" if torch.device(device).type == "cuda" else "peak RSS"
    return (
        f"{where} {figures['peak'] / 2**30:.2f} GiB (step {max(figures['peak'] - figures['before'], 0) / 2**30:+.2f})"
    )


def time_config(args, name, batch_size, rate):
    """Print the rows of one config at one batch size."""
    # this process's model: the statistics, the parameter counts and whether a cache row applies
    model, _, data = prepared(args, name, batch_size, show_statistics=True, with_batches=args.workload == "realistic")
    print(
        f"\n== {name}: batch {batch_size}, {args.steps} steps, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters "
        f"({sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f} M trainable)"
    )
    if args.varied_lengths:
        results = {}
        for label in ("random", "grouped"):
            f = results[label] = row_figures(args, name, batch_size, label)
            print(
                f"   {label:9s} {f['samples'] / f['seconds']:8.2f} samples/s  "
                f"{f['real'] / f['seconds']:9.0f} real tok/s  {f['padded'] / f['seconds']:9.0f} padded tok/s  "
                f"padding {f['padded'] / f['real'] - 1:.0%} of real tokens  {memory_text(args.device, f)}"
            )
        speedup = results["random"]["seconds"] / results["grouped"]["seconds"]
        print(f"   length-grouped batches are {speedup:.2f}x faster on the same samples")
        return
    labels = ["ours", "original"]
    if args.cached_features and image_side_frozen(model):
        labels.append("cached")
    elif args.cached_features:
        print("   cached: skipped (the image side trains in this config: nothing to cache)")
    if args.packing:
        labels.append("cached+packed" if "cached" in labels else "packed")
    del model, data
    results = {}
    for label in labels:
        f = results[label] = row_figures(args, name, batch_size, label)
        if label.startswith("cached"):
            print(
                f"   cache: {f['cache_images']} images through ViT + Q-former in {f['cache_seconds']:.2f} s "
                f"({f['cache_images'] / f['cache_seconds']:.1f} images/s), once"
            )
        seconds = f["seconds"]
        epoch = (
            f"  epoch of {args.epoch} samples: {args.epoch * seconds / f['samples'] / 3600:.2f} h" if args.epoch else ""
        )
        print(
            f"   {label:13s} {f['samples'] / seconds:8.2f} samples/s  {f['real'] / seconds:9.0f} real tok/s  "
            f"{f['padded'] / seconds:9.0f} padded tok/s  {memory_text(args.device, f)}  "
            f"computed {f['computed_flops'] / seconds / 1e9:.1f} GFLOP/s = {f['computed_flops'] / seconds / rate:.1%}, "
            f"useful {f['useful_flops'] / seconds / 1e9:.1f} GFLOP/s = {f['useful_flops'] / seconds / rate:.1%} "
            f"of matmul rate{epoch}"
        )
    ours, original = results["ours"], results["original"]
    print(
        f"   ours is {original['seconds'] / ours['seconds']:.2f}x faster than the original's step, at "
        f"{ours['peak'] / original['peak']:.2f}x its peak memory"
    )
    if "cached" in results:
        print(
            f"   ours from cached features is {ours['seconds'] / results['cached']['seconds']:.2f}x faster than "
            "ours from images"
        )
    packed = next((label for label in results if label.endswith("packed")), None)
    if packed:
        unpacked = results["cached" if packed == "cached+packed" else "ours"]
        print(
            f"   packed is {unpacked['seconds'] / results[packed]['seconds']:.2f}x faster than unpacked, at "
            f"{results[packed]['peak'] / unpacked['peak']:.2f}x its peak memory and "
            f"{results[packed]['peak'] / original['peak']:.2f}x the original's"
        )


if __name__ == "__main__":
    sys.exit(main())
