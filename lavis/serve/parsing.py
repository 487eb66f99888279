"""Step 1 of serving: an OpenAI chat-completions request -> our conversation and its prompt.

:func:`parse_request` checks the JSON body field by field (each refusal a
:class:`~lavis.serve.errors.RequestError` naming the field) and turns `messages` into what the
chat layer holds: a system text, past (query parts, response) turns and the current query's
parts, with every image an `IMAGE_SLOT` that the server places itself (`<Img>[slot]</Img>`,
as in the training data), so typed text, `<ImageHere>` or `<|im_end|>` included, stays text.
Images come only from `data:` URLs or, under `--allow-local-dir`, local files (never the
network), opened by the chat layer's checked loaders.  :func:`build_prompt` makes the prompt
ids with the model's own builder and checks them against the context window.
"""

import base64
import binascii
import dataclasses
import json
import os
import re
from typing import List, Optional

from lavis.chat import (
    MAX_IMAGE_BYTES,
    ImageError,
    image_parts,
    load_image,
    load_image_bytes,
    merge_parts,
)
from lavis.common.generation import RULES, GenerationSettingError, check_setting
from lavis.processors.chat_format import IMAGE_SLOT
from lavis.serve.errors import RequestError

#: OpenAI's largest temperature; 0 means greedy here (our sampler needs > 0)
MAX_TEMPERATURE = 2.0
#: OpenAI's limit on stop sequences
MAX_STOPS = 4
ROLES = ("system", "developer", "user", "assistant")  # "developer": OpenAI's newer name for system
# fields of OpenAI's request that change nothing at these values (clients send them by default)
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logprobs": False}
FIELDS = {
    "model",  # not checked: one model is served, and replies name it
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",  # OpenAI's newer name of max_tokens
    "stop",
    "seed",
    "n",
    "stream",
    "stream_options",
    "user",  # a label for the caller's own logs; nothing here reads it
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may bring (the server's flags)."""

    max_images: int = 8
    allow_local_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are chosen; rows of one batch share it (transformers' processors are per batch)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0

    def generate_kwargs(self):
        if not self.do_sample:
            return {"do_sample": False}
        # top_k off: OpenAI has none (transformers' default would be 50), as the chat layer's default
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}


@dataclasses.dataclass
class ChatRequest:
    """A checked request: the conversation (images still PIL) and its settings."""

    system: Optional[str]
    history: list  # [(query parts, response text)]
    query: list  # the last user message's parts
    images: list  # PIL images in slot order
    sampling: Sampling
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    stop: List[str] = dataclasses.field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    model: Optional[str] = None


def parse_body(raw):
    """The request's bytes -> its JSON object."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise RequestError(f"the body is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object, got {type(body).__name__}", code="invalid_json")
    return body


def parse_request(body, limits=Limits()):
    """A request's JSON object -> :class:`ChatRequest`; RequestError naming the field otherwise."""
    for key, value in body.items():
        if key in NEUTRAL:
            if value is not None and value != NEUTRAL[key]:
                raise RequestError(f"{key} is not supported by this server", key, "unsupported_parameter")
        elif key not in FIELDS:
            raise RequestError(f"unrecognized request argument: {key}", key, "unknown_parameter")
    get = {key: value for key, value in body.items() if value is not None}.get
    if get("model") is not None and not isinstance(get("model"), str):
        raise RequestError("model must be a string", "model", "invalid_type")
    if get("n", 1) != 1 or isinstance(get("n"), bool):
        raise RequestError(f"n must be 1 (one choice per request), got {get('n')!r}", "n", "invalid_value")
    stream = _boolean(get("stream", False), "stream")
    options = get("stream_options", {})
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise RequestError('stream_options must be {"include_usage": true|false}', "stream_options", "invalid_value")
    if options and not stream:
        raise RequestError("stream_options needs stream: true", "stream_options", "invalid_value")
    include_usage = _boolean(options.get("include_usage", False), "stream_options.include_usage")

    temperature = get("temperature")
    if temperature is not None:
        temperature = _number(temperature, "temperature")
        if not 0 <= temperature <= MAX_TEMPERATURE:
            raise RequestError(f"temperature must be in 0..{MAX_TEMPERATURE:g}, got {temperature!r}", "temperature")
    top_p = None if get("top_p") is None else _setting(_number(get("top_p"), "top_p"), "top_p", "top_p")
    # sampling when asked for by a temperature > 0 or a top_p < 1 (OpenAI's default temperature then)
    do_sample = temperature is not None and temperature > 0 or temperature is None and top_p is not None and top_p < 1
    sampling = Sampling(do_sample, temperature or 1.0, 1.0 if top_p is None else top_p) if do_sample else Sampling()
    if get("max_tokens") is not None and get("max_completion_tokens") is not None:
        raise RequestError("give max_tokens or max_completion_tokens, not both", "max_completion_tokens")
    tokens_key = "max_tokens" if get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = get(tokens_key)
    if max_tokens is not None:
        max_tokens = _setting(_number(max_tokens, tokens_key), tokens_key, "max_new_tokens")
    seed = None if get("seed") is None else _setting(_number(get("seed"), "seed"), "seed", "seed")
    system, history, query, images = _conversation(get("messages"), limits)
    return ChatRequest(
        system, history, query, images, sampling, max_tokens, seed, _stops(get("stop")), stream, include_usage,
        get("model"),
    )  # fmt: skip


def build_prompt(request, chat_model):
    """(prompt ids, processed images, max new tokens) of `request`; RequestError when it does not
    fit the model's context window (no turn is dropped: the client owns its history)."""
    model = chat_model.model
    ids, num_images = model.prompt.generation_ids(request.query, request.history, request.system, None)
    assert num_images == len(request.images), (num_images, len(request.images))
    context = chat_model.max_position_embeddings
    if len(ids) >= context:
        raise RequestError(
            f"the prompt needs {len(ids)} tokens ({len(request.images)} image(s) of {model.num_query_token} each "
            f"included); the context window is {context}",
            "messages",
            "context_length_exceeded",
        )
    room = context - len(ids)
    if request.max_tokens is not None and request.max_tokens > room:
        key = "max_tokens"
        raise RequestError(
            f"{key} {request.max_tokens} + the prompt's {len(ids)} tokens exceed the context window of {context}; "
            f"at most {room} new tokens fit",
            key,
            "context_length_exceeded",
        )
    max_tokens = request.max_tokens or min(chat_model.default_settings().max_new_tokens, room)
    return ids, [chat_model.process_image(image) for image in request.images], max_tokens


# -- fields -------------------------------------------------------------------------
def _number(value, field):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{field} must be a number, got {value!r}", field, "invalid_type")
    return value


def _boolean(value, field):
    if not isinstance(value, bool):
        raise RequestError(f"{field} must be true or false, got {value!r}", field, "invalid_type")
    return value


def _setting(value, field, key):
    """`value` checked by the generation knobs' one rule for `key`, the message naming `field`."""
    try:
        return check_setting(key, value)
    except GenerationSettingError:
        raise RequestError(f"{field} must be {RULES[key][2]}, got {value!r}", field, "invalid_value") from None


def _stops(stop):
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not 1 <= len(stops) <= MAX_STOPS:
        raise RequestError(f"stop must be a string or a list of 1..{MAX_STOPS} strings", "stop", "invalid_value")
    for i, text in enumerate(stops):
        if not isinstance(text, str) or not text:
            raise RequestError("each stop sequence must be a non-empty string", f"stop[{i}]", "invalid_value")
    return list(stops)


# -- messages -------------------------------------------------------------------------
def _conversation(messages, limits):
    """`messages` -> (system text or None, [(query parts, response)], query parts, PIL images)."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", "messages", "invalid_value")
    count = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{i}] must be an object", f"messages[{i}]", "invalid_type")
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    if count > limits.max_images:
        raise RequestError(
            f"the messages hold {count} images; this server takes at most {limits.max_images} per request",
            "messages",
            "too_many_images",
        )
    system, turns, images = [], [], []  # turns: [role, parts or text], same roles merged
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        extra = set(message) - {"role", "content", "name"}
        if extra:
            raise RequestError(
                f"{where}.{min(extra)} is not supported", f"{where}.{min(extra)}", "unsupported_parameter"
            )
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(
                f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}", f"{where}.role", "invalid_value"
            )
        if role in ("system", "developer"):
            if turns:
                raise RequestError(f"{where}: a {role} message must come before the others", f"{where}.role")
            system.append(_text(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            parts = _user_parts(message.get("content"), f"{where}.content", limits, images)
        else:
            parts = _text(message.get("content"), f"{where}.content")
        if turns and turns[-1][0] == role:  # two messages of one role in a row: one turn
            turns[-1][1] = merge_parts([*turns[-1][1], "\n", *parts]) if role == "user" else turns[-1][1] + "\n" + parts
        else:
            turns.append([role, parts])
    if not turns or turns[-1][0] != "user":
        raise RequestError("the last message must be the user's", "messages", "invalid_value")
    if turns[0][0] != "user":
        raise RequestError("after the system message the conversation must start with a user message", "messages")
    history = [(turns[k][1], turns[k + 1][1]) for k in range(0, len(turns) - 1, 2)]
    return ("\n".join(system) if system else None), history, turns[-1][1], images


def _text(content, where):
    """A system or assistant message's content: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(f"{where} must be a string or a list of text parts", where, "invalid_type")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise RequestError(f'{where}[{j}] must be {{"type": "text", "text": "..."}}', f"{where}[{j}]")
        texts.append(part["text"])
    return "\n".join(texts)


def _user_parts(content, where, limits, images):
    """A user message's content -> query parts; its images are appended to `images`.

    Text parts are joined by newlines; each image is `<Img>[slot]</Img>`, followed by a space when
    text follows, as in the training data (`<Img><ImageHere></Img> question`)."""
    if isinstance(content, str):
        if not content.strip():
            raise RequestError(f"{where} is empty", where, "invalid_value")
        return [content]
    if not isinstance(content, list) or not content:
        raise RequestError(f"{where} must be a string or a non-empty list of parts", where, "invalid_type")
    parts, previous = [], None
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(("\n" if previous == "text" else " " if previous == "image" else "") + part["text"])
        elif kind == "image_url":
            images.append(_image(part.get("image_url"), f"{at}.image_url", limits))
            parts += image_parts(1)
        else:
            raise RequestError(
                f'{at} must be {{"type": "text", "text": ...}} or {{"type": "image_url", "image_url": {{"url": ...}}}}',
                at,
                "invalid_value",
            )
        previous = "text" if kind == "text" else "image"
    if IMAGE_SLOT not in parts and not "".join(parts).strip():
        raise RequestError(f"{where} is empty", where, "invalid_value")
    return merge_parts(parts)


# data: URLs (RFC 2397) parsed here: the standard library reads them only by "opening" them
# (urllib.request), the way every other URL is fetched, which the server never does
DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*),(.*)", re.S)


def _image(image_url, where, limits):
    """An `image_url` object -> a PIL image: a base64 `data:` URL, or a local file under `allow_local_dir`."""
    if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str):
        raise RequestError(f'{where} must be {{"url": "data:image/...;base64,..."}}', where, "invalid_value")
    url, where = image_url["url"], f"{where}.url"
    try:
        match = DATA_URL.fullmatch(url)
        if match:
            if "base64" not in match.group(2).split(";"):
                raise RequestError(f"{where}: a data: URL must be base64 (data:image/png;base64,...)", where)
            data = match.group(3)
            if len(data) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:  # refused before decoding
                raise RequestError(f"{where}: the image is over {MAX_IMAGE_BYTES >> 20} MiB", where, "invalid_image")
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as err:
                raise RequestError(f"{where}: bad base64 data ({err})", where, "invalid_base64") from None
            return load_image_bytes(raw, "the image")
        path = url[len("file://") :] if url.startswith("file://") else url
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", path) or not os.path.isabs(path):
            raise RequestError(
                f"{where}: images must be data: URLs (or, with --allow-local-dir, absolute local paths); "
                "this server never fetches from the network",
                where,
                "invalid_image_url",
            )
        if limits.allow_local_dir is None:
            raise RequestError(f"{where}: local files are refused (no --allow-local-dir)", where, "invalid_image_url")
        allowed, real = os.path.realpath(limits.allow_local_dir), os.path.realpath(path)
        if os.path.commonpath([allowed, real]) != allowed:
            raise RequestError(f"{where}: {path} is outside --allow-local-dir", where, "invalid_image_url")
        return load_image(real)
    except ImageError as err:
        raise RequestError(f"{where}: {err}", where, "invalid_image") from None
