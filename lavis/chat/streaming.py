"""Step 4 of the flow: one answer being generated, handed out as text while it comes.

:class:`Reply` runs generation either on the model's generation thread, for consumers that
iterate over the text (the web UI), or with :meth:`Reply.run` on the calling thread, handing
text to a callback (the CLI, `ask`): no thread hand-off, Ctrl-C lands inside `generate`; :class:`TokenTextStreamer`
turns the generated ids into text and stops generation at its next token once the reply is
cancelled (beam search, which does not stream, is stopped by a stopping criterion instead).
A finished reply commits its turn to the session that started it.
"""

import queue
import threading
import time

import torch

from lavis.chat.errors import ChatError, one_line

#: Streamed text is handed out at most this often (seconds); what arrives meanwhile is merged.
STREAM_INTERVAL = 0.02


class _Done:
    pass


_DONE = _Done()


class _Cancelled(Exception):
    """Raised by the streamer inside `generate` to stop a cancelled reply at its next token."""


class TokenTextStreamer:
    """A transformers streamer (`put`/`end`) that turns generated ids into text as it comes.

    The first `put` is the prompt and is skipped (transformers' contract).  Special ids are
    skipped, a stop id ends the text, and the ids go through the tokenizer's `stream_decoder()`,
    which emits a character split over several tokens once it is complete, so the streamed
    pieces add up to `tokenizer.decode` of the reply.  Text goes to `on_text`.  Once `cancel` (an optional
    `threading.Event`) is set, the next `put` raises, which ends `generate` there: this costs
    nothing per token, unlike a stopping criterion (a tensor op every step).
    """

    def __init__(self, tokenizer, stop_ids, on_text, cancel=None):
        self.tokenizer = tokenizer
        self.stop_ids = set(stop_ids)
        self.on_text = on_text
        self.cancel = cancel
        self.num_tokens = 0
        self.first_token_time = None
        self._prompt_seen = False
        self._stopped = False
        self._decoder = tokenizer.stream_decoder()

    @property
    def stopped(self):
        """True once a stop id has ended the text."""
        return self._stopped

    def put(self, value):
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if value.dim() > 1:
            if value.shape[0] != 1:
                raise ValueError("TokenTextStreamer streams one sequence at a time")
            value = value[0]
        for token in value.tolist():
            self.feed(int(token))

    def feed(self, token):
        if self._stopped:
            return
        if self.first_token_time is None:
            self.first_token_time = time.perf_counter()
        if token in self.stop_ids:
            self._stopped = True
            return
        self.num_tokens += 1
        text = self._decoder.feed(token)
        if text:
            self.on_text(text)

    def end(self):
        text = self._decoder.flush()
        if text:
            self.on_text(text)


class TextShaper:
    """Text pieces -> what to show (replies here, the server's streamed deltas): leading whitespace
    dropped, trailing whitespace held back until more text follows (the response is stripped), so
    the shown text equals the response."""

    def __init__(self):
        self.held = ""
        self.shown = False

    def feed(self, chunk):
        chunk = self.held + chunk
        body = chunk.rstrip()
        self.held = chunk[len(body) :]
        if not self.shown:
            body = body.lstrip()
        if body:
            self.shown = True
        return body


class _CancelCriteria:
    """Stopping criterion that ends generation once `event` is set (beam search: no streamer)."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Reply:
    """One answer being generated (on the model's generation thread); iterate for its text as it comes.

    Iterating yields text pieces whose concatenation is the final `response` (leading and
    trailing whitespace held back, as the response is stripped).  When the iteration ends
    normally, the turn is added to the session's history.  `cancel()` (or leaving the loop
    early, or Ctrl-C while iterating) stops generation; a cancelled reply adds nothing to
    the history.  With beam search (no streaming in transformers) the text comes at the end.
    """

    def __init__(self, session, query, prompt_ids, num_images, settings, seed):
        self.session = session
        self.query = query
        self.prompt_ids = prompt_ids
        self.settings = settings
        self.seed = seed
        self.text = ""
        self.response = None
        self.reply_ids = None
        self.cancelled = False
        self.finished = False
        self.start_time = time.perf_counter()
        self.first_text_time = None
        self.end_time = None
        self._conversation = session.conversation
        self._num_images = num_images
        self._queue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._error = None
        self._started = False
        self._consumed = False
        chat_model = session.chat_model
        tok = chat_model.tokenizer
        self._stop_ids = chat_model.model.stop_ids
        streams = settings.num_beams == 1
        self.streamer = TokenTextStreamer(tok, self._stop_ids, self._queue.put, self._cancel) if streams else None
        self._finished = threading.Event()

    def start(self):
        if not self._started:
            self._started = True
            self.session.chat_model.submit(self._generate)
        return self

    @property
    def done(self):
        """True once generation has ended (finished, cancelled or failed)."""
        return self._finished.is_set()

    @property
    def num_tokens(self):
        return len(self.reply_ids) if self.reply_ids is not None else (self.streamer.num_tokens if self.streamer else 0)

    def _generate(self):
        from transformers import StoppingCriteriaList, set_seed

        chat_model = self.session.chat_model
        model = chat_model.model
        try:
            kwargs = self.settings.generate_kwargs()
            if self.streamer is not None:
                kwargs["streamer"] = self.streamer  # stops a cancelled reply (raises _Cancelled)
            else:
                kwargs["stopping_criteria"] = StoppingCriteriaList([_CancelCriteria(self._cancel)])
            if not self._cancel.is_set():
                if self.settings.do_sample:  # greedy and beam search need no seed
                    set_seed(self.seed)
                with chat_model.generation_lock, chat_model.autocast():
                    features = chat_model.image_features(self._conversation, self._num_images)
                    self.reply_ids = model.generate_from_ids([self.prompt_ids], image_features=features, **kwargs)[0]
            if self.streamer is None and not self._cancel.is_set():
                self._queue.put(chat_model.tokenizer.decode(self.reply_ids, skip_special_tokens=True))
        except _Cancelled:
            pass
        except BaseException as err:  # handed to the consumer
            self._error = err
        finally:
            self._finished.set()
            self._queue.put(_DONE)

    def cancel(self):
        """Stop generating as soon as the current step ends; the turn is not kept."""
        self.cancelled = True
        self._cancel.set()

    def wait(self, timeout=None):
        """Wait for generation to end; True if it has."""
        return self._finished.wait(timeout)

    def __iter__(self):
        if self._consumed:
            raise RuntimeError("a Reply can be iterated once")
        self._consumed = True
        self.start()
        shaper = TextShaper()
        done = False
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.05)
                except queue.Empty:
                    continue
                woke = time.perf_counter()
                pieces = [item]
                while item is not _DONE:  # take everything already there: fewer, larger pieces
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    pieces.append(item)
                done = pieces[-1] is _DONE
                body = self._show(shaper, "".join(p for p in pieces if p is not _DONE))
                if body:
                    yield body
                if done:
                    break
                # Pace the updates (at most one per STREAM_INTERVAL): text arriving meanwhile
                # waits in the queue without waking this thread for every token; the end of
                # generation cuts the pause short.
                pause = STREAM_INTERVAL - (time.perf_counter() - woke)
                if pause > 0:
                    self._finished.wait(pause)
        finally:
            if not done:  # left early: the loop was broken off, closed, or interrupted (Ctrl-C)
                self.cancel()
            self._finished.wait()
            self.end_time = time.perf_counter()
        self._finish()

    def _show(self, shaper, chunk):
        body = shaper.feed(chunk)
        if body:
            if self.first_text_time is None:
                self.first_text_time = time.perf_counter()
            self.text += body
        return body

    def _finish(self):
        """After generation: raise its error, or commit the turn unless cancelled."""
        if self._error is not None:
            err = self._error
            if isinstance(err, KeyboardInterrupt):
                self.cancelled = True
                raise err
            if isinstance(err, ChatError):
                raise err
            raise ChatError(f"generation failed: {type(err).__name__}: {one_line(err)}") from err
        if self.cancelled:
            return
        self.finished = True
        self.response = self.session.chat_model.tokenizer.decode(self.reply_ids, skip_special_tokens=True).strip()
        self.session._commit(self)

    def run(self, on_text):
        """Generate on the calling thread, handing each new piece of text to `on_text` as it
        comes; returns the response (None if cancelled).  Ctrl-C (KeyboardInterrupt), raised
        inside `generate` or `on_text`, stops generation and propagates; the turn is not kept."""
        if self._started:
            raise RuntimeError("this Reply has already started")
        self._started = self._consumed = True
        shaper = TextShaper()

        def show(text):
            body = self._show(shaper, text)
            if body:
                on_text(body)

        if self.streamer is not None:
            self.streamer.on_text = show
        self._generate()
        while True:  # beam search: the whole text comes at the end, through the queue
            item = self._queue.get_nowait()
            if item is _DONE:
                break
            if self._error is None:
                show(item)
        self.end_time = time.perf_counter()
        self._finish()
        return self.response

    def collect(self):
        """Run to the end (on the calling thread if not started yet); returns the response."""
        if not self._started:
            return self.run(lambda text: None)
        for _ in self:
            pass
        return self.response
