"""The Gradio web demo: its handlers directly, then the real page in headless Chromium.

The browser test needs Debian's `chromium` (`apt-get install -y chromium`) and Playwright's
Python client (`pip install playwright`; its own browser download is not used); it is
skipped, saying which is missing, when either is absent.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from tests.helpers import REPO
from tests.helpers.chat import LONG_QUESTION

gr = pytest.importorskip("gradio", reason="gradio is not installed (pip install gradio==6.31.0)")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def web(long_checkpoint):  # noqa: F811
    """The page's handlers on an untrained model whose answer to LONG_QUESTION runs long."""
    sys.path.insert(0, REPO)
    import webui_demo
    from lavis.chat import load_chat_model

    return webui_demo, webui_demo.WebChat(load_chat_model(long_checkpoint, device="cpu"))


def test_analytics_are_off(web):
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    from gradio import analytics

    assert not analytics.analytics_enabled()


def test_defaults_bind_locally_without_sharing(web):
    module, _ = web
    args = module.parse_args([])
    assert (args.host, args.port, args.share, args.checkpoint_path) == ("127.0.0.1", 7860, False, None)


def test_bad_uploads_get_a_message(web, tmp_path, chat_image):  # noqa: F811
    _, chat = web
    text = tmp_path / "notes.png"
    text.write_text("hello")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(b"\xff" * (21 * 1024 * 1024))
    files, gallery, status, state = chat.upload([str(text), chat_image, str(bomb), str(huge)], None)
    assert files is None
    assert [label for _, label in gallery] == [os.path.basename(chat_image)]
    assert "Added 1 image(s)" in status
    assert "notes.png is not an image" in status
    assert "bomb.png refused as a possible decompression bomb" in status
    assert "huge.jpg is too large" in status
    assert state["conversation"].pending == 1


def test_answer_streams_and_restart_clears(web, chat_image):  # noqa: F811
    module, chat = web
    _, _, _, state = chat.upload([chat_image], None)
    text, history, question, state = chat.submit(f"  {LONG_QUESTION}  ", [], state)
    assert text == "" and question == LONG_QUESTION
    assert history == [{"role": "user", "content": f"[1 image(s)] {LONG_QUESTION}"}]
    updates = list(chat.answer(question, history, state, False, 1, 1.0, 0, 1.0, 12))
    assert len(updates) >= 2  # an update per piece of text as it comes (pieces already waiting are merged)
    contents = [h[-1]["content"] for h, _ in updates]
    assert all(later.startswith(earlier) for earlier, later in zip(contents, contents[1:]))
    final, state = updates[-1]
    assert final[-1]["role"] == "assistant" and final[-1]["content"]
    assert len(state["conversation"].history) == 1 and state["conversation"].pending == 0
    # beam search and sampling settings pass through; bad settings are a message, not a crash
    _, history, question, state = chat.submit("again", final, state)
    final, state = list(chat.answer(question, history, state, True, 2, 0.7, 5, 0.9, 6))[-1]
    assert len(state["conversation"].history) == 2
    final, _ = list(chat.answer("x", final, state, False, 1, 1.0, 0, 1.0, 0))[-1]
    assert final[-1]["content"].startswith("Error: max_new_tokens must be")
    assert chat.submit("   ", final, state)[2] == ""
    shown = chat.submit("<b>hi</b> <ImageHere>", [], state)[1][-1]["content"]
    assert shown == "&lt;b&gt;hi&lt;/b&gt; &lt;ImageHere&gt;"  # shown as typed, not as markup
    assert chat.restart()[:5] == ([], [], "", None, "")
    assert chat.restart()[5]["conversation"].history == []


def test_demo_builds(web):
    module, chat = web
    demo = module.build_demo(chat.chat_model)
    assert isinstance(demo, gr.Blocks)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GUARDED_LAUNCH = """
import json, socket, sys, time
outside = []
LOCAL = ("127.0.0.1", "localhost", "::1", "0.0.0.0", None)
resolve, connect = socket.getaddrinfo, socket.socket.connect

def guarded_resolve(host, *args, **kwargs):
    if host not in LOCAL:
        outside.append(host)
        raise OSError("blocked")
    return resolve(host, *args, **kwargs)

def guarded_connect(sock, address):
    if isinstance(address, tuple) and address[0] not in LOCAL:
        outside.append(address[0])
        raise OSError("blocked")
    return connect(sock, address)

socket.getaddrinfo, socket.socket.connect = guarded_resolve, guarded_connect
import webui_demo  # sets the environment, then imports gradio
from lavis.chat import load_chat_model

demo = webui_demo.build_demo(load_chat_model(sys.argv[1], device="cpu"))
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), prevent_thread_lock=True, quiet=True)
time.sleep(1)
demo.close()
print("OUTSIDE", json.dumps(outside))
"""


def test_import_and_launch_contact_no_other_host(long_checkpoint):  # noqa: F811
    """No analytics, version check or telemetry: from importing gradio to serving, only localhost."""
    result = subprocess.run(
        [sys.executable, "-c", GUARDED_LAUNCH, long_checkpoint, str(free_port())],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "OUTSIDE []" in result.stdout.splitlines(), result.stdout


@pytest.fixture
def server(long_checkpoint, tmp_path):  # noqa: F811
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "LAVIS_CACHE_ROOT": str(tmp_path / "cache")}  # fmt: skip
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "webui_demo.py", "-c", long_checkpoint, "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the web demo did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.mark.slow
def test_browser_upload_ask_and_stream(server, chat_image, tmp_path):  # noqa: F811
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )

    fake = tmp_path / "fake.png"
    fake.write_text("not really a png")
    requests = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server, wait_until="load")
            question = page.locator("#question textarea")
            question.wait_for(timeout=60_000)

            upload = page.locator("#image-upload input[type=file]")
            upload.set_input_files(str(fake))
            status = page.locator("#upload-status")
            playwright_api.expect(status).to_contain_text("fake.png is not an image", timeout=30_000)
            upload.set_input_files(chat_image)
            playwright_api.expect(status).to_contain_text("Added 1 image(s)", timeout=30_000)
            playwright_api.expect(page.locator("#gallery img")).to_have_count(1, timeout=30_000)

            tokens = page.locator("#max-new-tokens input[type=number]")
            tokens.fill("400")
            tokens.press("Enter")
            question.fill(LONG_QUESTION)
            question.press("Enter")
            bot = page.locator("#chatbot .message.bot, #chatbot [data-testid='bot']").last
            bot.wait_for(timeout=60_000)
            lengths, stable_since = [], time.monotonic()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and time.monotonic() - stable_since < 3:
                length = len(bot.inner_text().strip())
                if not lengths or length != lengths[-1]:
                    lengths.append(length)
                    stable_since = time.monotonic()
                page.wait_for_timeout(40)
            answer = bot.inner_text().strip()
            page.screenshot(path=str(tmp_path / "webui.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'webui.png'}; answer lengths seen: {lengths}")
            assert answer and len([n for n in lengths if n]) >= 3, lengths  # it grew while we watched
            assert LONG_QUESTION in page.locator("#chatbot").inner_text()

            page.locator("#restart").click()
            playwright_api.expect(page.locator("#chatbot")).not_to_contain_text(LONG_QUESTION, timeout=30_000)
            playwright_api.expect(page.locator("#gallery img")).to_have_count(0, timeout=30_000)
        finally:
            browser.close()
    outside = sorted({url for url in requests if not url.startswith(server) and not url.startswith("data:")})
    assert not outside, f"the page contacted other hosts: {outside}"
