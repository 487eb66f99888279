"""The LLM tokenizer: Qwen-1's `qwen.tiktoken`, or any transformers tokenizer behind the same interface.

`load_llm_tokenizer(path)` returns :class:`~lavis.models.llm.qwen_tiktoken.QwenTokenizer` for a
`qwen.tiktoken` file (or a folder holding one); for a folder with a transformers tokenizer
(`tokenizer.json`, or `vocab.json` + `merges.txt`, loaded offline, no remote code) it returns
:class:`HFQwenTokenizer` when the tokenizer has Qwen's ChatML tokens and no chat template (the
original's prompts), else :class:`HFTokenizer` (prompts from the tokenizer's `chat_template`).

Image slot token. Image slots are marked by a token whose embedding is always replaced by the
image's query embeddings, so its values never matter; it must never occur in text. The first of
:data:`IMAGE_SLOT_CANDIDATES` the tokenizer has is taken: a token its makers reserve and a model
never emits (Qwen2.5/3 ``<|image_pad|>``, Qwen-1 ``<|extra_0|>``, Gemma 3 ``<image_soft_token>``,
Llama 3 ``<|reserved_special_token_0|>``, Phi-3 ``<|placeholder1|>``, Phi-4 ``<|dummy_0|>``, Mistral
``[control_8]``); otherwise ``<|image_pad|>`` is added as a new special token (numbered
``len(tokenizer)``; the model grows its embedding when it has no spare row for it).  The chosen
string is ``image_pad_token``; ``convert_tokens_to_ids("<|extra_0|>")`` also answers its id (code
written for Qwen-1's name works unchanged).  Text encoded with ``encode_text`` never yields it or
any other special token.
"""

import os
import re

from tokenizers import AddedToken

from lavis.models.llm.qwen_tiktoken import (
    VOCAB_FILENAME,
    QwenTokenizer,
    TokenizerFileError,
    TokenizerNotFoundError,
    batch_encode,
)

QWEN1_IMAGE_PAD = "<|extra_0|>"
IMAGE_SLOT_CANDIDATES = (
    "<|image_pad|>",
    QWEN1_IMAGE_PAD,
    "<image_soft_token>",
    "<|reserved_special_token_0|>",
    "<|placeholder1|>",
    "<|dummy_0|>",
    "[control_8]",
)
ENDOFTEXT, IMSTART, IMEND = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")  # SentencePiece's byte-fallback tokens


class HFTokenizer:
    """A transformers tokenizer with the interface the model, its prompt builder and chat use."""

    def __init__(self, tokenizer, model_max_length=None, padding_side="right"):
        self.hf = tokenizer
        if model_max_length is not None:
            tokenizer.model_max_length = model_max_length
        self.model_max_length = tokenizer.model_max_length
        self.padding_side = padding_side
        vocab = tokenizer.get_vocab()
        self.image_pad_token = next((t for t in IMAGE_SLOT_CANDIDATES if t in vocab), None)
        self.added_image_slot = self.image_pad_token is None  # the LLM may need a new embedding row for it
        if self.added_image_slot:
            self.image_pad_token = IMAGE_SLOT_CANDIDATES[0]
            tokenizer.add_tokens(
                [AddedToken(self.image_pad_token, special=True, normalized=False)], special_tokens=True
            )
        self._vocab = tokenizer.get_vocab()
        self.image_pad_id = self._vocab[self.image_pad_token]
        self.eod_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eod_id
        self.chat_template = getattr(tokenizer, "chat_template", None)
        added = tokenizer.added_tokens_decoder
        self.special_ids = set(tokenizer.all_special_ids) | {i for i, token in added.items() if token.special}
        self.vocab_file = getattr(tokenizer, "name_or_path", None)

    @classmethod
    def from_pretrained(cls, folder, model_max_length=None, **kwargs):
        return cls(auto_tokenizer(folder), model_max_length, **kwargs)

    def __len__(self):
        return len(self.hf)

    @property
    def vocab_size(self):
        return len(self)

    def __repr__(self):
        name, hf = type(self).__name__, type(self.hf).__name__
        return f"{name}({hf}, vocab_size={len(self)}, image_pad={self.image_pad_token!r})"

    # -- encoding ---------------------------------------------------------
    def encode(self, text, allowed_special="all", disallowed_special=()):
        """Ids of `text`; special-token strings in it become special ids unless `allowed_special` is empty."""
        if allowed_special == "all":
            return self.hf.encode(text, add_special_tokens=False)
        if allowed_special:
            raise ValueError(f"allowed_special must be 'all' or empty for {type(self).__name__}")
        return self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def encode_text(self, text):
        """Ids for user/data text: never produces a special (control) id."""
        return self.encode(text, allowed_special=set())

    def encode_with_offsets(self, text):
        """(ids, [(start, end)] character spans) of `text`, special-token strings parsed."""
        out = self.hf(text, add_special_tokens=False, return_offsets_mapping=True)
        return out["input_ids"], out["offset_mapping"]

    def __call__(self, text, return_tensors=None, padding=False, allowed_special="all"):
        """As :meth:`QwenTokenizer.__call__`: `input_ids` + `attention_mask`, padded on `padding_side`."""
        return batch_encode(self, text, return_tensors, padding, allowed_special)

    # -- decoding ---------------------------------------------------------
    def decode(self, ids, skip_special_tokens=False, errors=None):
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, batch, skip_special_tokens=False, errors=None):
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in batch]

    def stream_decoder(self):
        """An incremental decoder: `feed(id)` -> the text those ids add (special ids skipped)."""
        return _IncrementalDecoder(self)

    def convert_tokens_to_ids(self, tokens):
        """Token strings to ids; unknown tokens raise KeyError. `<|extra_0|>` names the image placeholder."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token):
        if token in self._vocab:
            return self._vocab[token]
        if token == QWEN1_IMAGE_PAD:
            return self.image_pad_id
        raise KeyError(f"unknown token {token!r}")

    def convert_ids_to_tokens(self, ids):
        return self.hf.convert_ids_to_tokens(ids)


def auto_tokenizer(folder):
    """The folder's transformers tokenizer, offline and without remote code."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(os.fspath(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise TokenizerFileError(f"cannot load the tokenizer in {folder}: {err}") from None


class _IncrementalDecoder:
    """Streaming text of generated ids, equal piece by piece to `decode(all ids)`.

    Written here because transformers' `TextStreamer` waits for whole words and prints; this one
    hands out each piece as soon as it is complete text: the ids since `prefix` are decoded with
    and without the newest ones, and the difference is emitted once it does not end in an
    incomplete character (U+FFFD) or a byte-fallback piece, so byte-level BPE and byte-fallback
    pieces of one character come out together, and decoders that treat the first token specially (SentencePiece's
    leading space) see the same context as in the full decode."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def feed(self, token):
        self.ids.append(int(token))
        if _BYTE_PIECE.match(self.tokenizer.hf.convert_ids_to_tokens(int(token)) or ""):
            return ""  # a byte-fallback piece: how it shows depends on the byte pieces after it
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self):
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :]


class HFQwenTokenizer(HFTokenizer):
    """A transformers Qwen2 tokenizer with Qwen's ChatML ids, for the original's ChatML prompts."""

    def __init__(self, tokenizer, model_max_length=None, padding_side="right"):
        vocab = tokenizer.get_vocab()
        absent = [t for t in (ENDOFTEXT, IMSTART, IMEND) if t not in vocab]
        if absent:
            raise ValueError(f"{type(tokenizer).__name__} has no {absent}: not a Qwen chat tokenizer")
        super().__init__(tokenizer, model_max_length, padding_side)
        self.eod_id = vocab[ENDOFTEXT]
        self.im_start_id = vocab[IMSTART]
        self.im_end_id = vocab[IMEND]
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eod_id


def load_llm_tokenizer(path, model_max_length=None):
    """QwenTokenizer for `qwen.tiktoken` (file or folder), else the folder's transformers tokenizer:
    HFQwenTokenizer (ChatML ids, the original's prompts) for a Qwen tokenizer without a chat
    template, HFTokenizer (prompts from its chat template) for any other."""
    path = os.fspath(path)
    if os.path.isfile(path) or os.path.isfile(os.path.join(path, VOCAB_FILENAME)):
        kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
        return QwenTokenizer.from_pretrained(path, **kwargs)
    if os.path.isdir(path) and any(os.path.isfile(os.path.join(path, f)) for f in HF_TOKENIZER_FILES):
        tokenizer = auto_tokenizer(path)
        chatml = all(t in tokenizer.get_vocab() for t in (ENDOFTEXT, IMSTART, IMEND))
        cls = HFQwenTokenizer if chatml and not getattr(tokenizer, "chat_template", None) else HFTokenizer
        return cls(tokenizer, model_max_length)
    raise TokenizerNotFoundError(
        f"no LLM tokenizer at {path!r}: expected {VOCAB_FILENAME} (Qwen-7B-Chat) or tokenizer.json / vocab.json "
        "+ merges.txt (a transformers tokenizer)"
    )
