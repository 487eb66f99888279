"""Benchmark evaluation speed: batched generation (left padding) against one question at a time.

    python benchmarks/eval_speed.py [--config small] [--questions 64] [--batch-size 16] [--new-tokens 8] [--threads 0]

Runs the real evaluation path (`lavis.tasks.benchmark_task.evaluate_benchmark`: the MME task's
prompt in the model's chat template, batched greedy generation, parsing, scoring, the outputs
written) twice on the same in-memory MME-style questions (shapes drawn by the project's
generator, two yes/no questions per image): with `--batch-size` and with batch size 1, and prints
questions/s side by side with how many predictions agree.  The model has random weights (speed
does not depend on training): `small` is `benchmarks/train_speed.py`'s small config (ViT 256x6 at
224 px, LLM 512x4 with Qwen's vocabulary size), `tiny` the tiny default.
"""

import argparse
import importlib.util
import io
import json
import os
import random
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import lavis  # noqa: E402,F401  (registers every component)
from lavis.datasets.datasets.eval_dataset import EvalDataset  # noqa: E402
from lavis.datasets.synthetic.shapes import COLOURS, SHAPES, draw_shape  # noqa: E402
from lavis.models import load_model  # noqa: E402
from lavis.processors import load_processor  # noqa: E402
from lavis.tasks.benchmark_task import MMETask, evaluate_benchmark  # noqa: E402


def train_speed_configs():
    spec = importlib.util.spec_from_file_location("train_speed", os.path.join(REPO, "benchmarks", "train_speed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CONFIGS


def questions(count, image_size, seed=0):
    """MME-style items: per image, "Is the shape <colour>?" right (yes) and wrong (no)."""
    rng = random.Random(f"eval-speed:{seed}")
    items = []
    for i in range(count // 2):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        image, _ = draw_shape(shape, colour, image_size, rng)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        other = rng.choice([c for c in COLOURS if c != colour])
        for k, (asked, answer) in enumerate(((colour, "yes"), (other, "no"))):
            items.append(
                {
                    "question_id": f"{i}/{k}",
                    "image": buffer.getvalue(),
                    "question": f"Is the shape in the image {asked}? Please answer yes or no.",
                    "choices": None,
                    "hint": None,
                    "answers": [answer],
                    "meta": {"subtask": "colour", "image_id": f"{i}.png"},
                }
            )
    return items


def timed(model, dataset, batch_size, new_tokens, folder):
    start = time.perf_counter()
    evaluate_benchmark(MMETask(), model, dataset, folder, batch_size=batch_size, max_new_tokens=new_tokens)
    seconds = time.perf_counter() - start
    with open(os.path.join(folder, "predictions.jsonl"), encoding="utf-8") as handle:
        predictions = [json.loads(line)["prediction"] for line in handle]
    return seconds, predictions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", choices=["tiny", "small"])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = train_speed_configs()[args.config]["options"]
    torch.manual_seed(0)
    model = load_model("minigpt4qwen", "tiny", cfg_options=options).eval()
    processor = load_processor("blip_image_eval", {"image_size": model.cfg.image_size})
    dataset = EvalDataset(questions(args.questions, model.cfg.image_size), processor)
    with tempfile.TemporaryDirectory() as out:
        timed(model, EvalDataset(dataset.items[:4], processor), 2, args.new_tokens, os.path.join(out, "warmup"))
        batched_s, batched = timed(model, dataset, args.batch_size, args.new_tokens, os.path.join(out, "batched"))
        single_s, single = timed(model, dataset, 1, args.new_tokens, os.path.join(out, "single"))
    n = len(dataset)
    same = sum(a == b for a, b in zip(batched, single))
    print(
        f"config {args.config}, {n} questions, {args.new_tokens} new tokens at most, {torch.get_num_threads()} threads"
    )
    print(f"{'evaluation':<24} {'seconds':>8} {'questions/s':>12}")
    print(f"{f'batched ({args.batch_size})':<24} {batched_s:>8.1f} {n / batched_s:>12.2f}")
    print(f"{'one at a time':<24} {single_s:>8.1f} {n / single_s:>12.2f}")
    print(f"speed-up {single_s / batched_s:.1f}x; predictions identical for {same} of {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
