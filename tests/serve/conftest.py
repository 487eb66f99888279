"""The server tests' fixtures: one real `python -m lavis.serve` process (uvicorn, a free port)
on the untrained tiny checkpoint whose answers run long (`long_checkpoint`), so that batches,
per-row stops and cancelling have tokens to work on; the same checkpoint loaded in this process,
for the chat layer's replies to compare with; two images in the folder the server may read."""

import os
import queue
import subprocess
import sys
import threading

import openai
import pytest

from lavis.chat import load_chat_model
from lavis.datasets.synthetic.shapes import draw_shape
from tests.helpers import REPO

API_KEY = "test-key-0123456789"
MAX_BATCH = 4
MAX_QUEUE = 4
MAX_IMAGES = 3
START_TIMEOUT_S = 120


class Server:
    def __init__(self, process, url, lines):
        self.process = process
        self.url = url
        self.lines = lines  # what it printed after starting


def start_server(checkpoint, *flags):
    """`python -m lavis.serve` on a free port; returns a Server once it prints its address."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "lavis.serve", "--ckpt-path", checkpoint, "--port", "0", "--device", "cpu"]
    process = subprocess.Popen(
        command + list(flags), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = queue.SimpleQueue()

    def drain():  # the pipe never fills, whatever the server prints
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            process.kill()
            raise AssertionError(f"the server did not start: {seen}") from None
        seen.append(line)
        if line.startswith("serving "):
            return Server(process, line.rsplit(" ", 1)[1], seen)
        if process.poll() is not None and lines.empty():
            raise AssertionError(f"the server exited with {process.returncode}: {seen}")


def stop_server(server):
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory, chat_image):
    folder = tmp_path_factory.mktemp("serve_images")
    red = folder / "red_circle.png"
    red.write_bytes(open(chat_image, "rb").read())
    image, _ = draw_shape("square", "blue", 64, rng=5)
    image.save(folder / "blue_square.png")
    return folder


@pytest.fixture(scope="session")
def server(long_checkpoint, image_dir):
    flags = ["--api-key", API_KEY, "--max-batch-size", str(MAX_BATCH), "--max-queue", str(MAX_QUEUE)]
    flags += ["--max-images", str(MAX_IMAGES), "--allow-local-dir", str(image_dir), "--batch-window-ms", "50"]
    running = start_server(long_checkpoint, *flags)
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def local_chat_model(long_checkpoint):
    """The server's checkpoint, loaded here: the chat layer's replies are the reference."""
    return load_chat_model(long_checkpoint, device="cpu")
