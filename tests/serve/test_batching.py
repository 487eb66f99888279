"""Batching against the real server: concurrent greedy requests generated together give what each
gives alone (left padding, per-row max_tokens and images); a seeded sampled request gives the same
reply whatever runs beside it; a full queue answers 503 with Retry-After; a client that leaves
(mid-stream or while waiting for a whole reply) cancels its row; a batch waits for the requests
still being checked."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from lavis.serve.batching import Batcher, Row
from lavis.serve.parsing import Sampling
from tests.helpers.chat import LONG_QUESTION
from tests.serve.conftest import MAX_BATCH, MAX_QUEUE
from tests.serve.test_app import AUTH, data_url, image_part, text_part


def health(server):
    return httpx.get(f"{server.url}/health", timeout=30).json()


def wait_for(server, check, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = health(server)
        if check(state):
            return state
        time.sleep(0.02)
    raise AssertionError(f"the server never got there: {health(server)}")


def ask(client, content, **settings):
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}], **settings)
    return reply.choices[0].message.content, reply.choices[0].finish_reason, reply.usage.completion_tokens


def all_at_once(calls):
    """Run the calls on threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_a_batch_of_greedy_requests_equals_each_alone(client, server, image_dir):
    red, blue = data_url(image_dir / "red_circle.png"), data_url(image_dir / "blue_square.png")
    requests = [  # different prompt lengths, image counts and max_tokens in one batch
        ([image_part(red), text_part(LONG_QUESTION)], 30),
        ("Hello there, please tell me a long story about shapes and colours.", 9),
        ([image_part(blue), image_part(red), text_part("Which is which?")], 21),
        (LONG_QUESTION, 14),
    ]
    assert len(requests) == MAX_BATCH
    alone = [ask(client, content, max_tokens=tokens) for content, tokens in requests]
    before = health(server)
    together = all_at_once([lambda c=content, t=tokens: ask(client, c, max_tokens=t) for content, tokens in requests])
    after = health(server)
    assert together == alone
    assert [tokens for _, _, tokens in together][0] == 30 and together[0][1] == "length"
    assert all(tokens <= limit for (_, _, tokens), (_, limit) in zip(together, requests))
    assert after["rows"] - before["rows"] == MAX_BATCH
    assert after["batches"] - before["batches"] < MAX_BATCH  # some were generated together
    assert after["largest_batch"] >= 2


def test_a_seeded_sampled_request_gives_its_reply_whatever_runs_beside_it(client, server):
    sampled = {"temperature": 0.9, "seed": 1234, "max_tokens": 16}
    first = ask(client, LONG_QUESTION, **sampled)
    beside = [lambda: ask(client, "Hi there", max_tokens=12)] * 2
    again = all_at_once([lambda: ask(client, LONG_QUESTION, **sampled), *beside])[0]
    assert again == first
    assert ask(client, LONG_QUESTION, **{**sampled, "seed": 4321})[0] != first[0]
    greedy = ask(client, LONG_QUESTION, max_tokens=16)
    assert first[0] != greedy[0]  # it did sample


def long_stream(server, image_dir):
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [image_part(data_url(image_dir / "red_circle.png")), text_part(LONG_QUESTION)]}
        ],
        "max_tokens": 400,
        "stream": True,
    }
    return httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=60)


def full_queue_then_leave(client, server, image_dir):
    """A long stream keeps the batcher busy while MAX_QUEUE requests fill the queue and one more is
    refused; then its client leaves. False if the long row ended first (its 400 tokens take
    about half a second on the tiny model: a busy machine can be slower than that here)."""
    before = wait_for(server, lambda h: h["running_rows"] == 0 and h["waiting"] == 0)
    refused = None
    with ThreadPoolExecutor(MAX_QUEUE) as pool:
        with long_stream(server, image_dir) as response:
            lines = response.iter_lines()  # kept: a closed iterator would close the connection
            for line in lines:  # until its first text: the batcher is busy with it
                if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    break
            waiting = [pool.submit(ask, client, "Hi", max_tokens=3) for _ in range(MAX_QUEUE)]
            state = wait_for(server, lambda h: h["waiting"] == MAX_QUEUE or h["finished"] > before["finished"])
            if state["waiting"] == MAX_QUEUE:
                body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
                refused = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=30)
                busy = health(server)["active_rows"]
        # the stream is closed here, before its 400 tokens unless the machine was slower than them
        replies = [future.result(timeout=60) for future in waiting]
    after = wait_for(server, lambda h: h["running_rows"] == 0 and h["waiting"] == 0)
    assert all(tokens <= 3 for _, _, tokens in replies)
    if after["cancelled"] == before["cancelled"]:  # the long row ended on its own: try again
        assert after["finished"] - before["finished"] == MAX_QUEUE + 1
        return False
    assert refused is not None and refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "queue_full"
    assert busy == 1  # the long row, while the others waited
    assert after["cancelled"] - before["cancelled"] == 1
    assert after["finished"] - before["finished"] == MAX_QUEUE  # the long row never finished
    assert after["active_rows"] == 0
    return True


def test_a_full_queue_is_503_and_a_client_leaving_mid_stream_frees_its_row(client, server, image_dir):
    assert any(full_queue_then_leave(client, server, image_dir) for _ in range(3)), "the long row always ended first"


def test_a_client_leaving_before_its_whole_reply_cancels_its_row(server, image_dir):
    before = wait_for(server, lambda h: h["running_rows"] == 0)
    body = {"model": "m", "messages": [{"role": "user", "content": LONG_QUESTION}], "max_tokens": 400}
    started = time.monotonic()
    try:
        httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=0.3)
        raise AssertionError("the reply came back within 0.3 s")
    except httpx.TimeoutException:
        pass
    after = wait_for(server, lambda h: h["running_rows"] == 0 and h["cancelled"] > before["cancelled"])
    assert after["finished"] == before["finished"]  # stopped, not finished
    assert time.monotonic() - started < 30


def test_a_batch_waits_for_requests_still_being_checked():
    """In process, no model: the window alone (0 s here) would start the batch with the first row;
    a request being received and checked (`arriving`) gets its place in it."""
    batcher = Batcher(chat_model=None, max_batch_size=4, window_s=0.0)
    rows = [Row([1, 2], [], 4, Sampling(), emit=None) for _ in range(3)]
    batcher.submit(rows[0])
    taken = []
    with batcher.arriving():
        taker = threading.Thread(target=lambda: taken.append(batcher._take()))
        taker.start()
        time.sleep(0.05)
        assert not taken  # waiting for the request being checked
        batcher.submit(rows[1])
    taker.join(5)
    assert taken == [rows[:2]]
    batcher.running = []
    batcher.submit(rows[2])  # nothing arriving: the batch starts at once
    assert batcher._take() == [rows[2]]
    seeded = [Row([1], [], 4, Sampling(True, 0.8, 1.0), emit=None, seed=7) for _ in range(2)]
    for row in seeded:
        batcher.submit(row)
    assert batcher._take() == [seeded[0]]  # a seeded sampled row runs alone
    batcher.cancel(seeded[1])  # its client left while it waited: it leaves the queue
    assert not batcher.waiting and batcher.health()["cancelled"] == 1
