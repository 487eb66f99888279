"""Serving a trained MiniGPT4Qwen behind OpenAI's chat-completions API: `python -m lavis.serve`.

An application layer beside :mod:`lavis.chat`, built on it (checkpoint loading, checked image
loading, prompt building, token streaming and text shaping all come from there).  In the order
of the flow (each module says its place):

* :mod:`~lavis.serve.errors`: :class:`RequestError`, OpenAI's error body naming the field;
* :mod:`~lavis.serve.parsing`: a request's JSON -> :class:`ChatRequest` (conversation, images,
  settings) -> prompt ids within the context window;
* :mod:`~lavis.serve.batching`: :class:`Batcher`, concurrent requests generated together, one
  :class:`Row` each (left padding, per-row stopping, cancelling);
* :mod:`~lavis.serve.app`: :func:`create_app`, the FastAPI routes (`/v1/chat/completions`,
  `/v1/models`, `/health`), streaming as server-sent events, the API key;
* :mod:`lavis.serve.__main__`: the command line (flags, binding, uvicorn).
"""

from lavis.serve.app import create_app
from lavis.serve.batching import Batcher, Row
from lavis.serve.errors import RequestError
from lavis.serve.parsing import ChatRequest, Limits, Sampling, build_prompt, parse_body, parse_request

__all__ = [
    "create_app",
    "Batcher",
    "Row",
    "RequestError",
    "ChatRequest",
    "Limits",
    "Sampling",
    "build_prompt",
    "parse_body",
    "parse_request",
]
