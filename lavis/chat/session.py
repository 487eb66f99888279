"""Step 3 of the flow: one conversation, and the prompt of each query.

:class:`ChatSession` keeps a :class:`Conversation` (its images, its (query, response) turns)
and its :class:`~lavis.chat.settings.GenerationSettings`; it turns what a person types
into query parts (image slots placed by the session, never by typed text), builds the prompt
and starts a :class:`~lavis.chat.streaming.Reply`.
"""

import copy
import dataclasses
import logging
import os
from typing import List, Optional

import torch

from lavis.chat.errors import ChatError
from lavis.chat.images import load_image
from lavis.chat.streaming import Reply
from lavis.common.generation import check_setting
from lavis.processors.chat_format import IMAGE_SLOT, IMAGE_TOKEN

IMAGE_OPEN, IMAGE_CLOSE = "<Img>", "</Img>"


@dataclasses.dataclass
class Conversation:
    """What a chat holds between turns (plain data: the web UI keeps one per browser session)."""

    images: List[torch.Tensor] = dataclasses.field(default_factory=list)  # processed, in slot order
    labels: List[str] = dataclasses.field(default_factory=list)  # file names / paths, for display
    placed: int = 0  # images already given a slot in some turn; the rest go with the next query
    history: list = dataclasses.field(default_factory=list)  # [(query parts, response)]
    # Q-former outputs of images[:len(features)] as one (n, queries, hidden) tensor, filled when
    # an image is first answered about, so that later turns run only llm_proj on it, not the ViT
    features: Optional[torch.Tensor] = None

    @property
    def pending(self):
        return len(self.images) - self.placed


def image_parts(count):
    """Query parts that show `count` images, as the training data do: `<Img>[slots]</Img>` each."""
    parts = []
    for _ in range(count):
        parts += [IMAGE_OPEN, IMAGE_SLOT, IMAGE_CLOSE]
    return parts


def merge_parts(parts):
    """Join neighbouring strings (so text between image slots is encoded in one piece)."""
    merged = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif not (isinstance(part, str) and not part):
            merged.append(part)
    return merged


def parts_from_template(text):
    """Trusted text whose `<ImageHere>` mark image slots -> parts (for scripts, not for users)."""
    parts = []
    for i, piece in enumerate(text.split(IMAGE_TOKEN)):
        if i:
            parts.append(IMAGE_SLOT)
        parts.append(piece)
    return merge_parts(parts)


def render_query(parts):
    """A query's parts as text for display (`<ImageHere>` for each image slot)."""
    if isinstance(parts, str):
        return parts
    return "".join(IMAGE_TOKEN if part is IMAGE_SLOT else part for part in parts)


class ChatSession:
    """One conversation with a :class:`ChatModel`: images, history, settings, seed.

    Images added with :meth:`add_images` go into the next query, in front of its text
    (`<Img>[image]</Img>` each, then a space, as in the training data); :meth:`clear_history`
    keeps the images, which then go with the next query again.
    """

    def __init__(self, chat_model, settings=None, seed=42, system=None, conversation=None):
        self.chat_model = chat_model
        self.settings = settings if settings is not None else chat_model.default_settings()
        self.seed = seed
        self.system = system
        self.conversation = conversation if conversation is not None else Conversation()

    # -- state -----------------------------------------------------------------------
    @property
    def seed(self):
        """The sampling seed, an integer in 0..2**32-1 (checked when set)."""
        return self._seed

    @seed.setter
    def seed(self, value):
        self._seed = check_setting("seed", value)

    @property
    def history(self):
        return self.conversation.history

    @property
    def image_labels(self):
        return list(self.conversation.labels)

    def add_images(self, images, labels=None):
        """Add PIL images or image file paths (all or none: one bad file raises ImageError)."""
        loaded, names = [], []
        for i, image in enumerate(images):
            if isinstance(image, (str, os.PathLike)):
                names.append(os.fspath(image))
                image = load_image(image)
            else:
                names.append(f"image {len(self.conversation.images) + i + 1}")
            loaded.append(self.chat_model.process_image(image))
        if labels is not None:
            names = list(labels)
        self.conversation.images += loaded
        self.conversation.labels += names
        return names

    def set_images(self, images, labels=None):
        """Replace the images (the history, which refers to the old ones, is cleared)."""
        fresh = Conversation()
        old, self.conversation = self.conversation, fresh
        try:
            return self.add_images(images, labels)
        except BaseException:
            self.conversation = old
            raise

    def clear_history(self):
        count = len(self.conversation.history)
        self.conversation.history = []
        self.conversation.placed = 0
        return count

    def reset(self):
        self.conversation = Conversation()

    # -- prompts ---------------------------------------------------------------------
    def query_parts(self, text):
        """User text -> query parts: pending images first, then the text (always plain text)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        pending = self.conversation.pending
        parts = image_parts(pending) + ([" " + text] if pending else [text])
        return merge_parts(parts)

    def prompt(self, parts):
        """(prompt ids, number of images they show) for `parts` after the history; ChatError if too long."""
        conv = self.conversation
        slots = sum(1 for part in parts if part is IMAGE_SLOT)
        if conv.placed + slots > len(conv.images):
            raise ChatError(f"the query has {slots} image slot(s) but only {conv.pending} image(s) are waiting")
        window = self.settings.max_window_size
        ids, num_images = self.chat_model.model.prompt.generation_ids(parts, conv.history, self.system, window)
        if len(ids) > window:
            raise ChatError(
                f"the prompt needs {len(ids)} tokens (images and this query), more than max_window_size "
                f"{window}; shorten the query, clear the history or raise max_window_size"
            )
        return ids, num_images

    # -- answering -------------------------------------------------------------------
    def reply(self, query):
        """A Reply to `query` (user text, or parts from `parts_from_template`), not started:
        iterate it (generation thread) or `run(on_text)` it (this thread)."""
        parts = self.query_parts(query) if isinstance(query, str) else merge_parts(list(query))
        if not any(isinstance(p, str) and p.strip() for p in parts):
            raise ChatError("the query is empty")
        ids, num_images = self.prompt(parts)
        return Reply(self, parts, ids, num_images, copy.copy(self.settings), self.seed)

    def stream(self, query):
        """Start answering `query` on the model's generation thread -> Reply (iterate for text)."""
        return self.reply(query).start()

    def ask(self, query, on_text=None):
        """Answer `query` on this thread, handing text to `on_text` as it comes; returns the
        response (kept in the history)."""
        return self.reply(query).run(on_text or (lambda text: None))

    def _commit(self, reply):
        conv = self.conversation
        conv.placed += sum(1 for part in reply.query if part is IMAGE_SLOT)
        conv.history.append((reply.query, reply.response))
        logging.debug("turn %d: %d prompt tokens, %d new", len(conv.history), len(reply.prompt_ids), reply.num_tokens)
