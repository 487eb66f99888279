"""Step 2 of serving: concurrent requests generated together, one row each.

The app hands each checked request to the :class:`Batcher` as a :class:`Row` (prompt ids,
processed images, settings).  The batcher's one generation thread takes the oldest waiting row
and, within a short window (`window_s`, or 5 % of what the previous batch took, and longer while
requests are still being received and checked: :meth:`Batcher.arriving`), every other waiting row
that may share its batch (up to `max_batch_size`), encodes all their images in one ViT + Q-former
pass and generates them in one `model.generate_from_ids` call (left padding; stop ids per row).
Each row has its own text
pipeline (the chat layer's :class:`~lavis.chat.TokenTextStreamer` and
:class:`~lavis.chat.TextShaper`, plus the request's `stop` strings) and its own end: a stop id, a
stop string, its `max_tokens` or its client leaving, after which its row is done (a stopping
criterion per row) while the others go on; the batch ends with its last row.

Rows share a batch when they choose tokens alike: all greedy rows, or sampled rows of one
temperature and top_p without a seed (transformers' logits processors are per batch).  A
sampled row with a `seed` runs alone, so that its seed alone decides its tokens and the same
request gives the same reply whatever else arrives.  The queue of waiting rows is bounded:
:meth:`Batcher.submit` raises a 503 :class:`~lavis.serve.errors.RequestError` when it is full.
"""

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from typing import Optional

import torch

from lavis.chat import Conversation, TextShaper, TokenTextStreamer, one_line
from lavis.serve.errors import RequestError
from lavis.serve.parsing import Sampling

#: Seconds a client is told to wait (Retry-After) when the queue is full
RETRY_AFTER_S = 1
#: The longest a batch waits for requests still being received and checked (their images decoded):
#: under load these take longer than the window, and a row that misses its batch waits a whole batch
ARRIVING_WAIT_S = 0.25
#: A batch waits for more requests at least this share of what the previous batch took (up to
#: ARRIVING_WAIT_S): clients whose answers that batch just gave send their next requests now, and a
#: request that misses a batch waits a whole batch; 5 % of latency buys them their place
LAST_BATCH_SHARE = 0.05


@dataclasses.dataclass(eq=False)
class Row:
    """One request's generation: what to generate and where its events go.

    `emit(event)` is called on the generation thread with `("text", piece)`, `("end",
    finish_reason, completion_tokens)` or `("error", message)`; the app passes it on to its
    event loop."""

    prompt_ids: list
    images: list  # processed image tensors, in slot order
    max_tokens: int
    sampling: Sampling
    emit: object
    seed: Optional[int] = None
    stop: list = dataclasses.field(default_factory=list)
    cancelled: bool = False  # its client left
    finished: bool = False  # its last event has been emitted

    @property
    def key(self):
        """Rows with equal keys may share a batch."""
        return self if self.sampling.do_sample and self.seed is not None else self.sampling


class _RowText:
    """One row's generated tokens -> its text events, stopping at a stop id, a stop string or max_tokens."""

    def __init__(self, row, tokenizer, stop_ids):
        self.row = row
        self.tokens = TokenTextStreamer(tokenizer, stop_ids, self._text)
        self.shaper = TextShaper()
        self.held = ""  # text that may be the start of a stop string
        self.done = False
        self.finish_reason = None

    def feed(self, token):
        if self.done:
            return
        if self.row.cancelled:
            self.done = True
            return
        self.tokens.feed(token)
        if not self.done and self.tokens.stopped:
            self.end("stop")
        elif not self.done and self.tokens.num_tokens >= self.row.max_tokens:
            self.end("length")

    def end(self, reason):
        """The row's tokens are over: flush what the decoder and the stop matcher hold back."""
        self.tokens.end()
        if not self.done:
            self._show(self.held)
            self._finish(reason)

    def _text(self, text):
        if self.done:
            return
        text = self.held + text
        found = [k for k in (text.find(stop) for stop in self.row.stop) if k >= 0]
        if found:
            self._show(text[: min(found)])
            self._finish("stop")
            return
        hold = max((k for stop in self.row.stop for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
        self.held = text[len(text) - hold :] if hold else ""
        self._show(text[: len(text) - hold])

    def _show(self, text):
        body = self.shaper.feed(text)
        if body:
            self.row.emit(("text", body))

    def _finish(self, reason):
        self.done = self.row.finished = True
        self.finish_reason = reason
        self.row.emit(("end", reason, self.tokens.num_tokens))


class _BatchStreamer:
    """A transformers streamer for a batch: each step's tokens go to their rows (the first put is the prompt)."""

    def __init__(self, texts):
        self.texts = texts
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for text, token in zip(self.texts, value.reshape(-1).tolist()):
            text.feed(int(token))

    def end(self):
        for text in self.texts:
            if not text.done and not text.row.cancelled:
                text.end("length")

    def __call__(self, input_ids, scores, **kwargs):
        """The stopping criterion: a row is finished once its text is done (or its client left)."""
        done = [text.done or text.row.cancelled for text in self.texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class Batcher:
    """The queue of waiting rows and the thread that generates them in batches."""

    def __init__(self, chat_model, max_batch_size=8, max_queue=64, window_s=0.01):
        self.chat_model = chat_model
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.window_s = window_s
        self.waiting = collections.deque()
        self.condition = threading.Condition()
        self.running = []  # the rows of the batch being generated
        self.counts = dict.fromkeys(("batches", "rows", "finished", "cancelled", "failed", "largest_batch"), 0)
        self._arriving = 0  # requests being received and checked (see `arriving`)
        self._last_batch_s = 0.0  # how long the previous batch took
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="serve-batcher", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=10.0):
        with self.condition:
            self._stopping = True
            for row in self.running:
                row.cancelled = True
            self.condition.notify_all()
        self._thread.join(timeout)

    # -- the request side (event loop) ---------------------------------------------------
    @contextlib.contextmanager
    def arriving(self):
        """Around receiving, checking and submitting a request: a batch about to start waits for it
        (up to ARRIVING_WAIT_S), so that requests sent together are generated together."""
        with self.condition:
            self._arriving += 1
        try:
            yield
        finally:
            with self.condition:
                self._arriving -= 1
                self.condition.notify_all()

    def submit(self, row):
        with self.condition:
            if len(self.waiting) >= self.max_queue:
                raise RequestError(
                    f"the server is busy: {len(self.waiting)} requests are waiting (--max-queue); retry later",
                    code="queue_full",
                    status=503,
                    type="server_error",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self.waiting.append(row)
            self.condition.notify_all()

    def cancel(self, row):
        """The client left: a waiting row leaves the queue, a running one stops at its next token."""
        with self.condition:
            if row.cancelled or row.finished:
                return
            row.cancelled = True
            self.counts["cancelled"] += 1
            if row in self.waiting:
                self.waiting.remove(row)

    def health(self):
        with self.condition:
            active = sum(1 for row in self.running if not (row.cancelled or row.finished))
            return {
                "waiting": len(self.waiting),
                "running_rows": len(self.running),
                "active_rows": active,
                **self.counts,
            }

    # -- the generation thread -------------------------------------------------------------
    def _take(self):
        """The next batch: the oldest row and those that may join it, waiting up to `window_s` for more."""
        with self.condition:
            while True:
                while not self.waiting and not self._stopping:
                    self.condition.wait()
                if self._stopping:
                    return None
                head = self.waiting[0]
                key, start = head.key, time.monotonic()
                window = max(self.window_s, min(ARRIVING_WAIT_S, LAST_BATCH_SHARE * self._last_batch_s))
                while not self._stopping and head in self.waiting:  # a cancelled head leaves the queue
                    mates = sum(1 for row in self.waiting if row.key == key)
                    wait = max(window, ARRIVING_WAIT_S) if self._arriving else window
                    left = start + wait - time.monotonic()
                    if key is head or mates >= self.max_batch_size or left <= 0:
                        break
                    self.condition.wait(left)
                if self._stopping:
                    return None
                if head in self.waiting:
                    break
            batch = [row for row in self.waiting if row.key == key][: self.max_batch_size]
            for row in batch:
                self.waiting.remove(row)
            self.running = batch
            self.counts["batches"] += 1
            self.counts["rows"] += len(batch)
            self.counts["largest_batch"] = max(self.counts["largest_batch"], len(batch))
            return batch

    def _loop(self):
        while True:
            batch = self._take()
            if batch is None:
                return
            start = time.monotonic()
            self._generate(batch)
            self._last_batch_s = time.monotonic() - start
            with self.condition:
                self.running = []

    def _generate(self, batch):
        from transformers import StoppingCriteriaList, set_seed

        chat_model = self.chat_model
        model = chat_model.model
        texts = [_RowText(row, chat_model.tokenizer, model.stop_ids) for row in batch]
        streamer = _BatchStreamer(texts)
        first = batch[0]
        try:
            if first.sampling.do_sample and first.seed is not None:  # then alone in its batch
                set_seed(first.seed)
            images = [image for row in batch for image in row.images]
            with chat_model.generation_lock, chat_model.autocast():
                features = chat_model.image_features(Conversation(images=images), len(images))
                model.generate_from_ids(
                    [row.prompt_ids for row in batch],
                    image_features=features,
                    max_new_tokens=max(row.max_tokens for row in batch),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([streamer]),
                    **first.sampling.generate_kwargs(),
                )
        except Exception as err:  # each waiting client gets the error; the thread lives on
            logging.exception("batch generation failed")
            for text in texts:
                if not text.done and not text.row.cancelled:
                    text.done = text.row.finished = True
                    text.row.emit(("error", f"generation failed: {type(err).__name__}: {one_line(err)}"))
            self.counts["failed"] += sum(1 for text in texts if not text.row.cancelled)
            return
        self.counts["finished"] += sum(1 for text in texts if text.finish_reason)
