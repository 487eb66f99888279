"""Step 3 of serving: the HTTP side, OpenAI's chat-completions API over the batcher.

:func:`create_app` builds the FastAPI app: `POST /v1/chat/completions` reads the body (bounded),
checks it (:mod:`~lavis.serve.parsing`, on a worker thread: images are decoded there), queues a
:class:`~lavis.serve.batching.Row` and answers with OpenAI's `chat.completion` object, or with
`chat.completion.chunk` server-sent events ending in `data: [DONE]` when `stream` is true.  A
client that disconnects cancels its row (waiting: it leaves the queue; running: it stops at the
next token).  `GET /v1/models` lists the one model; `GET /health` (no key needed) shows the
queue and the batcher's counts.  Every refusal is OpenAI's error body; with an API key every
`/v1` route needs `Authorization: Bearer KEY` (compared in constant time).
"""

import asyncio
import contextlib
import hmac
import json
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from lavis.chat import MAX_IMAGE_BYTES
from lavis.serve.batching import Row
from lavis.serve.errors import RequestError
from lavis.serve.parsing import build_prompt, parse_body, parse_request

#: Room in a request body besides its images' base64 (text, JSON)
TEXT_BYTES = 1 << 20


def create_app(chat_model, batcher, model_id, limits, api_key=None):
    """The app serving `chat_model` through `batcher` (started and stopped with the app)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())
    max_body = limits.max_images * (MAX_IMAGE_BYTES * 4 // 3 + 64) + TEXT_BYTES

    @app.exception_handler(RequestError)
    async def refused(request, err):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request, err):  # unknown routes and methods, in OpenAI's error shape
        body = RequestError(f"{request.method} {request.url.path}: {err.detail}", code=str(err.status_code)).body()
        return JSONResponse(body, status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.middleware("http")
    async def authorise(request, call_next):
        if api_key is not None and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            expected = f"Bearer {api_key}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                what = "a wrong API key" if given else "no API key (send Authorization: Bearer KEY)"
                err = RequestError(f"{what} was given", code="invalid_api_key", status=401)
                return JSONResponse(err.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, **batcher.health()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(model_id, created)]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name != model_id:
            raise RequestError(
                f"the model {name!r} does not exist; this server has {model_id!r}", "model", "model_not_found", 404
            )
        return _model_card(model_id, created)

    def prepare(body):
        request = parse_request(body, limits)
        return request, build_prompt(request, chat_model)

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def emit(event):  # on the generation thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
                loop.call_soon_threadsafe(events.put_nowait, event)

        with batcher.arriving():
            body = parse_body(await _read_body(request, max_body))
            parsed, (prompt_ids, images, max_tokens) = await run_in_threadpool(prepare, body)
            row = Row(prompt_ids, images, max_tokens, parsed.sampling, emit, parsed.seed, parsed.stop)
            batcher.submit(row)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_id}
        if parsed.stream:
            return StreamingResponse(
                _events(batcher, row, events, head, len(prompt_ids), parsed.include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        collect = asyncio.ensure_future(_collect(events))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not collect.done():  # the client left (or the server is stopping)
                collect.cancel()
                batcher.cancel(row)
        if not collect.done() or collect.cancelled():
            return Response(status_code=499)  # nobody reads it
        text, reason, tokens = collect.result()
        return {
            **head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reason,
                    "logprobs": None,
                }
            ],
            "usage": _usage(len(prompt_ids), tokens),
        }

    return app


def _model_card(model_id, created):
    return {"id": model_id, "object": "model", "created": created, "owned_by": "minigpt4qwen"}


def _usage(prompt_tokens, completion_tokens):
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


async def _read_body(request, limit):
    """The body, refused with 413 once it passes `limit` bytes (never held whole when too large)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the body is over {limit:,} bytes", code="request_too_large", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the body is over {limit:,} bytes", code="request_too_large", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _disconnected(request):
    """Returns when the client disconnects (the body has been read: the next message is that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _failure(message):
    return RequestError(message, code="generation_failed", status=500, type="server_error")


async def _collect(events):
    """A row's events -> (text, finish reason, completion tokens)."""
    pieces = []
    while True:
        event = await events.get()
        if event[0] == "text":
            pieces.append(event[1])
        elif event[0] == "end":
            return "".join(pieces), event[1], event[2]
        else:
            raise _failure(event[1])


def _sse(data):
    # OpenAI's stream is plain server-sent events, one `data: JSON` line each: written here rather
    # than adding a package for it
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(batcher, row, events, head, prompt_tokens, include_usage):
    """A row's events as OpenAI's stream: a role chunk, content chunks, the finish chunk, usage, [DONE]."""

    def chunk(delta, reason=None):
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        return _sse({**head, "object": "chat.completion.chunk", "choices": [choice]})

    ended = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            event = await events.get()
            if event[0] == "text":
                yield chunk({"content": event[1]})
                continue
            ended = True
            if event[0] == "error":
                yield _sse(_failure(event[1]).body())
                break
            yield chunk({}, event[1])
            if include_usage:
                yield _sse(
                    {**head, "object": "chat.completion.chunk", "choices": [], "usage": _usage(prompt_tokens, event[2])}
                )
            break
        yield "data: [DONE]\n\n"
    finally:
        if not ended:  # the client left mid-answer (starlette cancels this generator)
            batcher.cancel(row)
