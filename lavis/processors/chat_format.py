"""ChatML prompts and training labels: conversations -> token ids, as MiniGPT4Qwen builds them.

Layout (each `<|im_end|>` is followed by a newline):

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n<Img>[32 x <|extra_0|>]</Img> question<|im_end|>\\n
    <|im_start|>assistant\\nanswer<|im_end|>\\n

Labels follow the original `preprocess`: every turn keeps its `<|im_start|>` and its closing
`<|im_end|>` + newline; assistant turns also keep their reply; everything else is -100.
One deliberate difference: message text is encoded as plain text, so special-token strings
typed in data or by users (`<|im_end|>`, `<|extra_0|>`...) are never control tokens or image
slots.  Only the literal `<ImageHere>` in a user turn becomes an image slot.
"""

import functools
from dataclasses import dataclass, field

IGNORE_INDEX = -100
IMAGE_TOKEN = "<ImageHere>"
IMAGE_PAD = "<|extra_0|>"
DEFAULT_SYSTEM = "You are a helpful assistant."
ROLE_ALIASES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


class _ImageSlot:
    """Type of :data:`IMAGE_SLOT`."""

    __slots__ = ()

    def __repr__(self):
        return "IMAGE_SLOT"


#: An image slot in a query given as a list of parts (see `ChatMLPromptBuilder.generation_ids`).
IMAGE_SLOT = _ImageSlot()


class ConversationError(ValueError):
    """A conversation that cannot be turned into a prompt (bad roles, missing text...)."""


@dataclass
class EncodedConversation:
    input_ids: list
    labels: list
    image_starts: list = field(default_factory=list)  # positions of each image's first slot
    num_images_total: int = 0  # images the text asked for before truncation

    @property
    def num_images(self):
        return len(self.image_starts)


def show_encoded(tokenizer, encoded, slot_id, num_query_token):
    """An encoded conversation as text for a person: supervised spans between `[[` and `]]`, each
    image's slots as `<image: N slots>`, special tokens as they are."""
    out, k, ids, labels = [], 0, encoded.input_ids, encoded.labels
    while k < len(ids):
        if ids[k] == slot_id:
            out.append(f"<image: {num_query_token} slots>")
            k += num_query_token
            continue
        supervised = labels[k] != IGNORE_INDEX
        end = k
        while end < len(ids) and ids[end] != slot_id and (labels[end] != IGNORE_INDEX) == supervised:
            end += 1
        text = tokenizer.decode(ids[k:end])
        out.append(f"[[{text}]]" if supervised else text)
        k = end
    return "".join(out)


def normalise_message(index, message):
    """A conversation's message `index` -> (user | assistant, its text); ConversationError if unusable."""
    if not isinstance(message, dict) or "from" not in message or "value" not in message:
        raise ConversationError(f"message {index} must be a dict with 'from' and 'value', got {message!r:.120}")
    role = ROLE_ALIASES.get(str(message["from"]).lower())
    if role is None:
        raise ConversationError(f"message {index}: unknown role {message['from']!r}; use one of {sorted(ROLE_ALIASES)}")
    return role, message["value"]


def truncated(ids, labels, image_starts, max_len, num_query_token):
    """An EncodedConversation cut to `max_len` tokens, never through an image's slots: an image that
    would not fit whole is dropped with everything after it."""
    total = len(image_starts)
    if max_len is not None and len(ids) > max_len:
        cut = max_len
        for start in image_starts:
            if start < cut < start + num_query_token:
                cut = start
        ids, labels = ids[:cut], labels[:cut]
        image_starts = [s for s in image_starts if s + num_query_token <= cut]
    return EncodedConversation(ids, labels, image_starts, total)


class ChatMLPromptBuilder:
    """Turns conversations into ids/labels for training and into prompts for generation."""

    def __init__(self, tokenizer, num_query_token, system=DEFAULT_SYSTEM, label_rule="original"):
        if label_rule not in ("original", "assistant"):
            raise ValueError(f"model.label_rule must be 'original' or 'assistant', got {label_rule!r}")
        self.tok = tokenizer
        self.num_query_token = num_query_token
        self.system = system
        self.label_rule = label_rule
        self.image_pad_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.nl = tokenizer.encode_text("\n")
        self.im_start = tokenizer.im_start_id
        self.im_end = tokenizer.im_end_id
        self.stop_ids = [self.im_end, self.im_start, tokenizer.eod_id]  # ids that end a generated reply
        self._headers = {
            role: [self.im_start] + tokenizer.encode_text(role) + self.nl for role in ("system", "user", "assistant")
        }
        # Chat prompts re-encode the same texts every turn (system prompt, <Img> markers, past
        # turns): remember the ids of recent ones.
        self._encode_cached = functools.lru_cache(maxsize=1024)(lambda text: tuple(tokenizer.encode_text(text)))

    # -- pieces ------------------------------------------------------------
    def encode_content(self, text, role):
        """Message text -> (ids, offsets of image slots). `<ImageHere>` is a slot in user turns only."""
        if not isinstance(text, str):
            raise ConversationError(f"message value must be a string, got {type(text).__name__}")
        if role != "user" or IMAGE_TOKEN not in text:
            return self.tok.encode_text(text), []
        ids, starts = [], []
        pieces = text.split(IMAGE_TOKEN)
        for i, piece in enumerate(pieces):
            if i:
                starts.append(len(ids))
                ids += [self.image_pad_id] * self.num_query_token
            ids += self.tok.encode_text(piece)
        return ids, starts

    def system_ids(self, system=None):
        system = self.system if system is None else system
        return self._headers["system"] + list(self._encode_cached(system)) + [self.im_end] + self.nl

    def turn_ids(self, role, text):
        """One ChatML turn: ids, labels, image slot positions (relative to the turn)."""
        header = self._headers[role]
        content, starts = self.encode_content(text, role)
        ids = header + content + [self.im_end] + self.nl
        if role == "user":
            labels = [self.im_start] + [IGNORE_INDEX] * (len(ids) - 2 - len(self.nl)) + [self.im_end] + self.nl
        else:
            labels = [self.im_start] + [IGNORE_INDEX] * (len(header) - 1) + content + [self.im_end] + self.nl
        if self.label_rule == "assistant":  # only the reply and the <|im_end|> that closes it
            keep = len(header) + len(content) + 1 if role == "assistant" else 0
            labels = [label if len(header) <= k < keep else IGNORE_INDEX for k, label in enumerate(labels)]
        return ids, labels, [len(header) + s for s in starts]

    def show(self, encoded):
        """`encoded` as text, supervised spans marked (see :func:`show_encoded`)."""
        return show_encoded(self.tok, encoded, self.image_pad_id, self.num_query_token)

    # -- training ------------------------------------------------------------
    def encode_conversation(self, conversation, max_len=None, system=None):
        """A list of {"from": role, "value": text} -> EncodedConversation, truncated to `max_len`.

        As in the original, a conversation that starts with an assistant message drops it.
        Truncation never cuts an image's slots in half: an image that would not fit whole is
        dropped together with everything after it.
        """
        turns = [normalise_message(i, message) for i, message in enumerate(conversation)]
        if turns and turns[0][0] != "user":
            turns = turns[1:]
        input_ids = self.system_ids(system)
        labels = [self.im_start] + [IGNORE_INDEX] * (len(input_ids) - 2 - len(self.nl)) + [self.im_end] + self.nl
        if self.label_rule == "assistant":
            labels = [IGNORE_INDEX] * len(input_ids)
        image_starts = []
        for role, text in turns:
            ids, lab, starts = self.turn_ids(role, text)
            image_starts += [len(input_ids) + s for s in starts]
            input_ids += ids
            labels += lab
        return truncated(input_ids, labels, image_starts, max_len, self.num_query_token)

    # -- generation ----------------------------------------------------------
    def generation_ids(self, query, history=(), system=None, max_window_size=None):
        """Prompt ids for answering `query` after `history` [(query, response), ...].

        Ends with `<|im_start|>assistant\\n`, exactly where training put the reply.  When the
        prompt would exceed `max_window_size` tokens, the oldest turns are dropped, except
        turns that hold images, which are kept. Returns (ids, number of images).

        A query (current or past) is either a string, whose `<ImageHere>` are image slots, or
        a list of parts: strings, encoded as plain text only (a typed `<ImageHere>` or
        `<|im_end|>` stays text), and `IMAGE_SLOT`, an image's slots.
        """

        def user_turn(q):
            if isinstance(q, str):
                ids, _, starts = self.turn_ids("user", q)
                return ids, len(starts)
            content, n = [], 0
            for part in q:
                if part is IMAGE_SLOT:
                    content += [self.image_pad_id] * self.num_query_token
                    n += 1
                elif isinstance(part, str):
                    content += self._encode_cached(part)
                else:
                    raise ConversationError(f"query parts must be str or IMAGE_SLOT, got {type(part).__name__}")
            return self._headers["user"] + content + [self.im_end] + self.nl, n

        head = self.system_ids(system)
        tail, tail_images = user_turn(query)
        tail += self._headers["assistant"]
        turns = []
        for past_query, response in history:
            q_ids, q_images = user_turn(past_query)
            r_ids, _, _ = self.turn_ids("assistant", response)
            turns.append((q_ids + r_ids, q_images))
        budget = None if max_window_size is None else max_window_size - len(head) - len(tail)
        if budget is not None:
            kept, used, full = [], sum(len(ids) for ids, n in turns if n), False
            for ids, n in reversed(turns):
                full = full or (not n and used + len(ids) > budget)
                if n or not full:
                    kept.append((ids, n))
                    used += 0 if n else len(ids)
            turns = list(reversed(kept))
        ids = list(head)
        for turn, _ in turns:
            ids += turn
        return ids + tail, sum(n for _, n in turns) + tail_images
