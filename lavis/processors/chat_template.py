"""Prompts and training labels from the LLM's own chat template (the tokenizer's `chat_template`).

For any chat LLM other than Qwen-7B-Chat's ChatML (`chat_format.py`), a conversation is rendered
by the model's Jinja template exactly as its makers trained it, and tokenised as one string, so
the ids equal `tokenizer.apply_chat_template(..., tokenize=True)` for ordinary text.  Text is
text all the same: the template is rendered with a placeholder for each message's content, and
the contents are put in afterwards; when a content holds a special-token string (`<|eot_id|>`,
`<end_of_turn>`, the image token...), that conversation is tokenised piece by piece instead,
the template's own pieces with special tokens and every content as plain text, so typed markers
can neither end a turn, forge a role nor make an image slot.  `<ImageHere>` in a user turn
becomes `num_query_token` image slot tokens (the tokenizer's `image_pad_id`).

Labels (`model.label_rule`):

* ``assistant`` (the default here): each assistant reply and the end-of-turn token that closes it
  (the first special token the template puts after the reply; where it puts none, as GLM-4 after
  the last reply, the tokenizer's eos token is appended);
* ``original``: MiniGPT4Qwen's rule carried over: every turn also keeps its first token and the
  template's tokens after its content (for ChatML: `<|im_start|>` and `<|im_end|>\\n`).

Rendered structures are cached per role sequence, so the template runs once per conversation shape.
"""

import functools

from lavis.common.errors import UserError
from lavis.common.schema import LABEL_RULES
from lavis.processors.chat_format import (
    IGNORE_INDEX,
    IMAGE_SLOT,
    IMAGE_TOKEN,
    ChatMLPromptBuilder,
    ConversationError,
    normalise_message,
    show_encoded,
    truncated,
)


class LabelMismatchError(UserError, ConversationError):
    """A sample whose supervised tokens are not its assistant replies (named by file and row)."""


_OPEN, _CLOSE = "\ue000", "\ue001"  # placeholder contents: private-use characters no template touches


def _placeholder(index):
    return f"{_OPEN}{index}{_CLOSE}"


def supervised_runs(encoded):
    """The supervised stretches of `encoded` (an EncodedConversation), each as its token ids."""
    runs, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels):
        if label == IGNORE_INDEX:
            runs, current = (runs + [current] if current else runs), []
        else:
            current.append(token)
    return runs + ([current] if current else [])


class TemplatePromptBuilder:
    """Conversations -> ids/labels for training and prompts for generation, by the chat template."""

    def __init__(self, tokenizer, num_query_token, label_rule="assistant", system=None):
        if label_rule not in LABEL_RULES:
            raise ValueError(f"model.label_rule must be one of {list(LABEL_RULES)}, got {label_rule!r}")
        if not tokenizer.chat_template:
            raise ValueError(f"{tokenizer!r} has no chat_template: give the LLM folder's tokenizer_config.json one")
        self.tok = tokenizer
        self.num_query_token = num_query_token
        self.label_rule = label_rule
        self.system = system
        self.image_pad_id = tokenizer.image_pad_id
        self._slot_text = tokenizer.image_pad_token * num_query_token
        self._specials = sorted({tokenizer.decode([i]) for i in tokenizer.special_ids} - {""}, key=len, reverse=True)
        self._structures = functools.lru_cache(maxsize=256)(self._structure)
        # does the template strip contents (Llama 3, Gemma: `| trim`)? then contents are stripped too
        spaced = f" {_placeholder(0)} "
        self.trims = spaced not in self._render([{"role": "user", "content": spaced}], False)
        end_of_turn = self._end_of_turn_ids()
        self.stop_ids = sorted(end_of_turn | ({tokenizer.eod_id} if tokenizer.eod_id is not None else set()))

    # -- the template's structure for a sequence of roles --------------------------------------
    def _render(self, messages, add_generation_prompt):
        return self.tok.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _structure(self, roles, with_system, add_generation_prompt):
        """The rendered text with placeholders, and where each turn starts in it."""
        messages = [{"role": role, "content": _placeholder(i)} for i, role in enumerate(roles)]
        merged_system = False
        if with_system:
            try:
                self._render([{"role": "system", "content": "x"}, *messages[:1]], False)
                messages = [{"role": "system", "content": _placeholder(-1)}, *messages]
            except Exception:  # templates without a system role (Gemma) raise: it joins the first user turn
                merged_system = True
        text = self._render(messages, add_generation_prompt)
        starts, previous = [], ""
        for k in range(1, len(messages) + 1):  # each turn's text is what its render adds to the one before
            prefix = self._render(messages[:k], False)
            starts.append(len(previous) if prefix.startswith(previous) else None)
            previous = prefix
        return {"text": text, "starts": starts, "merged_system": merged_system}

    def _end_of_turn_ids(self):
        """The special tokens the template puts right after an assistant reply."""
        encoded = self._encode([("user", ["hi"]), ("assistant", ["ok"]), ("user", ["hi"])], None, False)
        ids, spans, owner = encoded["ids"], encoded["spans"], encoded["owner"]
        found = set()
        for i in range(len(spans)):
            if owner[i] is None and i and owner[i - 1] == 1 and ids[i] in self.tok.special_ids:
                found.add(ids[i])
        return found

    # -- encoding ---------------------------------------------------------------------------------
    def _encode(self, turns, system, add_generation_prompt):
        """turns: [(role, parts)] -> ids, their character spans, and per token the index of the turn
        whose content it belongs to (None: the template's own text); plus the turns' spans."""
        roles = tuple(role for role, _ in turns)
        structure = self._structures(roles, system is not None, add_generation_prompt)
        if system is not None and structure["merged_system"]:
            turns = list(turns)
            turns[0] = (turns[0][0], [f"{system}\n\n", *turns[0][1]])
            system = None
        contents = {i: parts for i, (_, parts) in enumerate(turns)}
        if system is not None:
            contents[-1] = [system]
        text = structure["text"]
        pieces, cursor = [], 0  # ("template", its text) or (turn index, None), in order
        while (start := text.find(_OPEN, cursor)) >= 0:
            end = text.index(_CLOSE, start)
            pieces += [("template", text[cursor:start]), (int(text[start + 1 : end]), None)]
            cursor = end + 1
        pieces.append(("template", text[cursor:]))
        parts_of = {k: self._trimmed(v) if self.trims else v for k, v in contents.items()}
        # a special-token string typed in a content: tokenise piece by piece so it stays text
        clean = not any(
            isinstance(p, str) and any(s in p for s in self._specials) for v in parts_of.values() for p in v
        )
        full, ids, spans, owner, content_spans = "", [], [], [], {}
        for kind, piece in pieces:
            begin = len(full)
            if kind == "template":
                full += piece
                if not clean:
                    self._append(ids, spans, owner, self.tok.encode_with_offsets(piece), begin, None)
                continue
            for part in parts_of[kind]:
                part_begin = len(full)
                if part is IMAGE_SLOT:
                    full += self._slot_text
                    if not clean:
                        ids += [self.image_pad_id] * self.num_query_token
                        spans += [(part_begin, len(full))] * self.num_query_token
                        owner += [kind] * self.num_query_token
                else:
                    full += part
                    if not clean:
                        self._append(ids, spans, owner, self._text_with_offsets(part), part_begin, kind)
            content_spans[kind] = (begin, len(full))
        if clean:  # one string, as the template's makers tokenise it
            ids, spans = self.tok.encode_with_offsets(full)
            spans = [tuple(span) for span in spans]
            owner = [self._owner(span, content_spans) for span in spans]
        turn_starts = self._turn_starts(structure, pieces, content_spans)
        return {"ids": list(ids), "spans": spans, "owner": owner, "contents": content_spans, "turn_starts": turn_starts}

    @staticmethod
    def _append(ids, spans, owner, encoded, offset, who):
        piece_ids, piece_spans = encoded
        ids += piece_ids
        spans += [(a + offset, b + offset) for a, b in piece_spans]
        owner += [who] * len(piece_ids)

    def _text_with_offsets(self, text):
        out = self.tok.hf(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
        return out["input_ids"], out["offset_mapping"]

    @staticmethod
    def _owner(span, content_spans):
        start, end = span
        for turn, (a, b) in content_spans.items():
            if start < b and end > a or (start == end and a <= start < b):
                return turn
        return None

    @staticmethod
    def _trimmed(parts):
        parts = list(parts)
        if parts and isinstance(parts[0], str):
            parts[0] = parts[0].lstrip()
        if parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1].rstrip()
        return [p for p in parts if not (isinstance(p, str) and not p)]

    @staticmethod
    def _turn_starts(structure, pieces, content_spans):
        """Each turn's start in the final text (None where the template's renders are no prefixes)."""
        starts, placeholder_pos, final_pos = [], 0, 0
        offsets = []  # (position in the placeholder text, position in the final text) at each piece start
        for kind, piece in pieces:
            offsets.append((placeholder_pos, final_pos))
            if kind == "template":
                placeholder_pos += len(piece)
                final_pos += len(piece)
            else:
                placeholder_pos += len(_placeholder(kind))
                final_pos = content_spans[kind][1]
        for start in structure["starts"]:
            if start is None:
                starts.append(None)
                continue
            base = max((o for o in offsets if o[0] <= start), default=(0, 0))
            starts.append(base[1] + start - base[0])
        return starts

    def show(self, encoded):
        """`encoded` as text, supervised spans marked (see :func:`show_encoded`)."""
        return show_encoded(self.tok, encoded, self.image_pad_id, self.num_query_token)

    def check_labels(self, conversation, encoded, max_len=None, where="sample"):
        """Refuse a sample whose supervised tokens are not exactly its assistant replies, each with
        at most the end-of-turn token after it (a template that tokenises a reply with its
        neighbours, or moves it, would otherwise train on the wrong tokens without a word)."""
        replies = [parts[0] for role, parts in self._turns(conversation) if role == "assistant"]
        replies = [r.strip() if self.trims else r for r in replies]
        runs = supervised_runs(encoded)
        if max_len is not None and len(encoded.input_ids) >= max_len:  # truncated: check the whole runs
            runs = runs[:-1]
            replies = replies[: len(runs)]
        for k, reply in enumerate(replies):
            run = runs[k] if k < len(runs) else []
            body = run[:-1] if run and run[-1] in self.stop_ids else run
            if self.tok.decode(body) != reply or len(runs) != len(replies):
                raise LabelMismatchError(
                    f"{where}: its supervised tokens {self.tok.decode(run)!r} are not the assistant reply "
                    f"{reply!r} (+ end of turn): the chat template moves or merges the reply; "
                    "see `python -m lavis.tools.show_sample`"
                )

    # -- training ----------------------------------------------------------------------------------
    def _turns(self, conversation):
        turns = []
        for index, message in enumerate(conversation):
            role, text = normalise_message(index, message)
            if not isinstance(text, str):
                raise ConversationError(f"message value must be a string, got {type(text).__name__}")
            turns.append((role, _parts(text) if role == "user" else [text]))
        if turns and turns[0][0] != "user":  # as in the original, a leading assistant message is dropped
            turns = turns[1:]
        return turns

    def encode_conversation(self, conversation, max_len=None, system=None):
        """A list of {"from": role, "value": text} -> EncodedConversation, truncated to `max_len`
        (never through an image's slots: an image that would not fit is dropped with what follows)."""
        turns = self._turns(conversation)
        encoded = self._encode(turns, self.system if system is None else system, False)
        ids, labels = encoded["ids"], self._labels(encoded, turns)
        if labels and labels[-1] == "append-eos":  # the template closes the last reply with nothing
            labels.pop()
            ids, labels = ids + [self.tok.eod_id], labels + [self.tok.eod_id]
        image_starts = self._image_starts(ids, encoded["owner"], turns)
        return truncated(ids, labels, image_starts, max_len, self.num_query_token)

    def _labels(self, encoded, turns):
        ids, owner, spans = encoded["ids"], encoded["owner"], encoded["spans"]
        assistant = {i for i, (role, _) in enumerate(turns) if role == "assistant"}
        labels = [ids[k] if owner[k] in assistant else IGNORE_INDEX for k in range(len(ids))]
        if self.label_rule == "assistant":
            for turn in assistant:
                after = [k for k in range(len(ids)) if owner[k] is None and spans[k][0] >= encoded["contents"][turn][1]]
                if after and ids[after[0]] in self.tok.special_ids:
                    labels[after[0]] = ids[after[0]]
                elif not after and turn == len(turns) - 1:
                    labels.append("append-eos")  # the template closes the last reply with nothing
            return labels
        starts = encoded["turn_starts"]
        if None in starts:
            raise ConversationError(
                "model.label_rule 'original' needs a template whose render of a conversation's first turns "
                "is a prefix of the whole render; this one is not: use label_rule 'assistant'"
            )
        bounds = [*starts, spans[-1][1] if spans else 0]
        turn_of = {}
        for k, key in enumerate(sorted(encoded["contents"], key=lambda t: encoded["contents"][t][0])):
            turn_of[k] = key
        for k in range(len(starts)):
            begin, end = bounds[k], bounds[k + 1]
            inside = [i for i in range(len(ids)) if begin <= spans[i][0] < end]
            if not inside:
                continue
            labels[inside[0]] = ids[inside[0]]
            content_end = encoded["contents"][turn_of[k]][1] if k in turn_of else begin
            for i in inside:
                if owner[i] is None and spans[i][0] >= content_end:
                    labels[i] = ids[i]
        return labels

    def _image_starts(self, ids, owner, turns):
        starts, k = [], 0
        users = {i for i, (role, _) in enumerate(turns) if role == "user"}
        while k < len(ids):
            if ids[k] == self.image_pad_id and owner[k] in users:
                starts.append(k)
                k += self.num_query_token
            else:
                k += 1
        return starts

    # -- generation --------------------------------------------------------------------------------
    def generation_ids(self, query, history=(), system=None, max_window_size=None):
        """Prompt ids for answering `query` after `history` [(query, response), ...], ending with the
        template's generation prompt.  A query is a string (its `<ImageHere>` are image slots) or a
        list of parts (plain-text strings and IMAGE_SLOT).  When the prompt would exceed
        `max_window_size`, the oldest turns without images are dropped.  -> (ids, number of images)"""
        system = self.system if system is None else system
        past = [(_query_parts(q), r) for q, r in history]
        current = _query_parts(query)
        while True:
            turns = [t for q, r in past for t in (("user", q), ("assistant", [r]))] + [("user", current)]
            ids = self._encode(turns, system, True)["ids"]
            droppable = [i for i, (q, _) in enumerate(past) if IMAGE_SLOT not in q]
            if max_window_size is None or len(ids) <= max_window_size or not droppable:
                break
            del past[droppable[0]]
        images = sum(1 for _, parts in turns for p in parts if p is IMAGE_SLOT)
        return ids, images


def _parts(text):
    """User text whose `<ImageHere>` are image slots -> parts."""
    parts = []
    for i, piece in enumerate(text.split(IMAGE_TOKEN)):
        if i:
            parts.append(IMAGE_SLOT)
        if piece:
            parts.append(piece)
    return parts


def _query_parts(query):
    if isinstance(query, str):
        return _parts(query)
    for part in query:
        if part is not IMAGE_SLOT and not isinstance(part, str):
            raise ConversationError(f"query parts must be str or IMAGE_SLOT, got {type(part).__name__}")
    return [p for p in query if p is IMAGE_SLOT or p]


def build_prompt_builder(tokenizer, num_query_token, label_rule=""):
    """The original's ChatML builder for tokenizers without a chat template (Qwen-7B-Chat's
    `qwen.tiktoken`, Qwen tokenizers without one), else the template builder.  `label_rule` ""
    keeps each builder's default (ChatML: the original's, template: `assistant`)."""
    if getattr(tokenizer, "chat_template", None):
        return TemplatePromptBuilder(tokenizer, num_query_token, label_rule or "assistant")
    return ChatMLPromptBuilder(tokenizer, num_query_token, label_rule=label_rule or "original")
