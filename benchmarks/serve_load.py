"""Load on `python -m lavis.serve`: 1, 4 and 8 concurrent clients, requests/s side by side.

    python benchmarks/serve_load.py [--configs tiny small] [--clients 1 4 8] [--requests 8]
        [--new-tokens 32] [--max-batch-size 8] [--threads 0]

For each config it writes a checkpoint of a randomly initialised model (speed does not depend on
training; `small` is `benchmarks/train_speed.py`'s small config: ViT 256x6 at 224 px, Q-former
256x2 with 32 queries, LLM 512x4 with Qwen's vocabulary size; `tiny` the tiny default), starts the
server on it as a user would (`python -m lavis.serve --port 0`, a separate process), and for each
client count runs that many clients at once, each sending `--requests` chat completions one after
another with the official `openai` client: one generated image (a base64 `data:` URL) and a
question, greedy, `max_tokens = --new-tokens` (random weights: every answer runs to it).  Printed:
requests/s and completion tokens/s (over the wall time of the whole run), p50/p95 latency of a
request, the server process's peak RSS (sampled every 20 ms), the rows per batch the server
formed (from its /health counts) and the errors (any failed request).  The line under each config
compares 8 clients with one (target for small: >= 3x, batching at work).  A timing, never an assert.
"""

import argparse
import base64
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import psutil
import torch
from omegaconf import OmegaConf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import lavis  # noqa: E402,F401  (registers every component)
from lavis.common.checkpoint import save_file  # noqa: E402
from lavis.datasets.synthetic.shapes import COLOURS, SHAPES, draw_shape  # noqa: E402
from lavis.models import load_model  # noqa: E402

QUESTION = "What colour is the shape? Please describe the image in detail."


def train_speed_configs():
    spec = importlib.util.spec_from_file_location("train_speed", os.path.join(REPO, "benchmarks", "train_speed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CONFIGS


def write_checkpoint(config, folder):
    """A checkpoint as the runner writes one (its model config and trainable weights); -> (path, image size)."""
    torch.manual_seed(0)
    model = load_model("minigpt4qwen", "tiny", cfg_options=train_speed_configs()[config]["options"])
    path = os.path.join(folder, f"{config}.pth")
    save_file({"model": model.trainable_state_dict(), "config": {"model": OmegaConf.to_container(model.cfg)}}, path)
    return path, model.cfg.image_size


def image_urls(image_size, count=8):
    urls = []
    for i in range(count):
        image, _ = draw_shape(SHAPES[i % len(SHAPES)], list(COLOURS)[i % len(COLOURS)], image_size, rng=i)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


def start_server(checkpoint, max_batch_size, threads):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "lavis.serve", "--ckpt-path", checkpoint, "--port", "0", "--device", "cpu"]
    command += ["--max-batch-size", str(max_batch_size)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if line.startswith("serving "):
            threading.Thread(target=process.stdout.read, daemon=True).start()  # drained from now on
            return process, line.split()[-1]
    raise SystemExit(f"the server did not start (exit status {process.wait()})")


class PeakRSS:
    """The peak resident memory of a process, sampled on a thread."""

    def __init__(self, pid, every_s=0.02):
        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def one_request(client, url, new_tokens):
    start = time.perf_counter()
    reply = client.chat.completions.create(
        model="served",
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}],
            }
        ],
        max_tokens=new_tokens,
        temperature=0,
    )
    return time.perf_counter() - start, reply.usage.completion_tokens


def run_clients(client, urls, clients, requests, new_tokens):
    """`clients` threads, each sending `requests` requests in turn -> (wall s, latencies, tokens, errors)."""
    latencies, tokens, errors = [], 0, []
    lock = threading.Lock()

    def client_loop(k):
        nonlocal tokens
        for i in range(requests):
            try:
                seconds, count = one_request(client, urls[(k + i) % len(urls)], new_tokens)
            except Exception as err:  # counted and shown, the run goes on
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(seconds)
                tokens += count

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    return time.perf_counter() - start, latencies, tokens, errors


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_config(config, args, folder):
    checkpoint, image_size = write_checkpoint(config, folder)
    process, url = start_server(checkpoint, args.max_batch_size, args.threads)
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        urls = image_urls(image_size)
        run_clients(client, urls, 2, 1, args.new_tokens)  # warm-up: first batches, allocator
        rows = []
        for clients in args.clients:
            before = httpx.get(f"{url}/health", timeout=30).json()
            with PeakRSS(process.pid) as rss:
                wall, latencies, tokens, errors = run_clients(client, urls, clients, args.requests, args.new_tokens)
            after = httpx.get(f"{url}/health", timeout=30).json()
            per_batch = (after["rows"] - before["rows"]) / max(1, after["batches"] - before["batches"])
            rows.append((clients, len(latencies), wall, latencies, tokens, errors, rss.peak, per_batch))
    finally:
        process.terminate()
        process.wait(60)
    print(f"\n{config}: {args.requests} requests per client, {args.new_tokens} new tokens each, greedy, one image")
    header = f"{'clients':>7} {'requests':>8} {'req/s':>7} {'tokens/s':>9} {'p50 s':>7} {'p95 s':>7} {'peak RSS':>9}"
    print(header + f" {'rows/batch':>10} {'errors':>6}")
    for clients, done, wall, latencies, tokens, errors, peak, per_batch in rows:
        print(
            f"{clients:>7} {done:>8} {done / wall:>7.2f} {tokens / wall:>9.1f} {percentile(latencies, 0.5):>7.2f} "
            f"{percentile(latencies, 0.95):>7.2f} {peak / 2**20:>6.0f} MiB {per_batch:>10.1f} {len(errors):>6}"
        )
        for error in errors[:3]:
            print(f"        {error}")
    by_clients = {clients: done / wall for clients, done, wall, *_ in rows}
    if 1 in by_clients and max(by_clients) > 1:
        most = max(by_clients)
        ratio = by_clients[most] / by_clients[1]
        target = " (target for small: >= 3x)" if config == "small" else ""
        print(f"{config}: {most} clients {ratio:.1f}x the requests/s of one{target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=8, help="requests per client")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="the server's torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    print(
        f"{os.cpu_count()} CPUs; server threads: {args.threads or 'torch default'}; "
        f"--max-batch-size {args.max_batch_size}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for config in args.configs:
            bench_config(config, args, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
