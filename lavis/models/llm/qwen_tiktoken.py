"""Qwen tokenizer on ``tiktoken``: the text side of MiniGPT4Qwen.

Every piece of text that enters or leaves the language model passes through
:class:`QwenTokenizer`.  The model's prompt builder calls :meth:`encode_text`
for user/data content (so a typed ``"<|im_end|>"`` can never become a control
token) and places the ChatML markers itself with :attr:`im_start_id` and
:attr:`im_end_id`; generated ids come back through :meth:`decode`.

The tokenizer gives the same ids as Qwen-7B-Chat's own tokenizer (the hub's
``tokenization_qwen.py``):

* the vocabulary file ``qwen.tiktoken`` holds one ``<base64 token bytes> <rank>``
  line per byte-level BPE token, ranks ``0 .. N-1``;
* text is NFC-normalised, cut into pieces by Qwen's regex :data:`PAT_STR`, and
  each piece is BPE-merged by rank (done by ``tiktoken``);
* the 208 special tokens ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``,
  ``<|extra_0|>`` .. ``<|extra_204|>`` are numbered from ``N`` on (151643 for
  the real 151,643-rank file);
* by default (:meth:`encode`, ``__call__``) special-token strings typed in the
  text are parsed as special tokens, as Qwen's ``allowed_special="all"``.

The same file format is produced for the project's tiny default model by
:mod:`lavis.models.llm.bpe_train`.
"""

import base64
import binascii
import codecs
import os
import unicodedata

import tiktoken

from lavis.common.errors import UserError
from lavis.common.utils import atomic_open

VOCAB_FILENAME = "qwen.tiktoken"

#: Qwen's pre-tokenisation regex (identical in Qwen-7B's tokenization_qwen.py).
PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"
IMSTART = "<|im_start|>"
IMEND = "<|im_end|>"
EXTRAS = tuple(f"<|extra_{i}|>" for i in range(205))
#: Special tokens in id order; they are numbered right after the last rank.
SPECIAL_TOKENS = (ENDOFTEXT, IMSTART, IMEND) + EXTRAS


class TokenizerFileError(UserError, ValueError):
    """A tokenizer file (or folder) that cannot be read, with the file and the reason named."""


class TokenizerNotFoundError(UserError, FileNotFoundError):
    """No tokenizer file where the config points."""


def load_tiktoken_bpe(path):
    """Read a ``qwen.tiktoken`` file into ``{token bytes: rank}``.

    Blank lines are skipped.  A malformed line raises ``ValueError`` naming the
    file and the 1-based line number; ranks must be exactly ``0 .. N-1`` and all
    256 single bytes must be present (otherwise some text could not be encoded).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TokenizerNotFoundError(f"Qwen vocabulary file not found: {path!r}")
    ranks = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                if len(fields) != 2:
                    raise ValueError(f"expected 2 fields, got {len(fields)}")
                token = base64.b64decode(fields[0], validate=True)
                rank = int(fields[1])
                if not token:
                    raise ValueError("empty token")
                if rank < 0:
                    raise ValueError(f"negative rank {rank}")
                if token in ranks:
                    raise ValueError(f"duplicate token {token!r}")
            except (ValueError, binascii.Error) as e:
                raise TokenizerFileError(
                    f"{path}: line {lineno}: malformed vocabulary line {line[:80]!r} ({e})"
                ) from None
            ranks[token] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerFileError(f"{path}: ranks must be unique and exactly 0..{len(ranks) - 1}")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerFileError(f"{path}: {len(missing)} single-byte tokens missing (e.g. byte {missing[0]})")
    return ranks


def dump_tiktoken_bpe(ranks, path):
    """Write ``{token bytes: rank}`` as ``<base64> <rank>`` lines sorted by rank, atomically."""
    with atomic_open(path) as f:
        f.writelines(
            base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
            for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])
        )
    return os.fspath(path)


def batch_encode(tokenizer, text, return_tensors=None, padding=False, allowed_special="all"):
    """The HF-style tokenizer call shared by the project's tokenizers.

    Returns a ``BatchEncoding`` with ``input_ids`` and ``attention_mask``. ``padding`` in
    (False, "do_not_pad", True, "longest") pads to the longest row with the tokenizer's
    ``pad_token_id`` on its ``padding_side``; ``return_tensors`` in (None, "pt").
    """
    from transformers import BatchEncoding

    if padding in (True, "longest"):
        pad = True
    elif padding in (False, None, "do_not_pad"):
        pad = False
    else:
        raise ValueError(f"padding must be False, True or 'longest', got {padding!r}")
    if return_tensors not in (None, "pt"):
        raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
    single = isinstance(text, str)
    texts = [text] if single else list(text)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("text must be a str or a list of str")

    ids = [tokenizer.encode(t, allowed_special=allowed_special) for t in texts]
    masks = [[1] * len(row) for row in ids]
    longest = max((len(row) for row in ids), default=0)
    if pad:
        for k, row in enumerate(ids):
            n = longest - len(row)
            if tokenizer.padding_side == "right":
                ids[k], masks[k] = row + [tokenizer.pad_token_id] * n, masks[k] + [0] * n
            else:
                ids[k], masks[k] = [tokenizer.pad_token_id] * n + row, [0] * n + masks[k]
    if return_tensors == "pt":
        import torch

        if len({len(row) for row in ids}) > 1:
            raise ValueError("sequences have different lengths; use padding=True to return tensors")
        data = {
            "input_ids": torch.tensor(ids, dtype=torch.long).reshape(len(ids), -1),
            "attention_mask": torch.tensor(masks, dtype=torch.long).reshape(len(ids), -1),
        }
    elif single:
        data = {"input_ids": ids[0], "attention_mask": masks[0]}
    else:
        data = {"input_ids": ids, "attention_mask": masks}
    return BatchEncoding(data)


class QwenTokenizer:
    """Qwen-7B-Chat compatible tokenizer (see module docstring)."""

    def __init__(self, vocab_file, errors="replace", padding_side="right", model_max_length=8192):
        self.vocab_file = os.fspath(vocab_file)
        self.errors = errors
        self.padding_side = padding_side
        self.model_max_length = model_max_length
        self.mergeable_ranks = load_tiktoken_bpe(self.vocab_file)
        start = len(self.mergeable_ranks)
        self.special_token_ids = {tok: start + i for i, tok in enumerate(SPECIAL_TOKENS)}
        self._enc = tiktoken.Encoding(
            "Qwen",
            pat_str=PAT_STR,
            mergeable_ranks=self.mergeable_ranks,
            special_tokens=self.special_token_ids,
        )
        self.eod_id = self.special_token_ids[ENDOFTEXT]
        self.im_start_id = self.special_token_ids[IMSTART]
        self.im_end_id = self.special_token_ids[IMEND]
        self.pad_token_id = self.eod_id
        self._id_to_special = {i: t for t, i in self.special_token_ids.items()}
        self._id_to_bytes = {i: t for t, i in self.mergeable_ranks.items()}

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Load from a folder holding ``qwen.tiktoken`` or from the file itself."""
        path = os.fspath(path)
        vocab_file = os.path.join(path, VOCAB_FILENAME) if os.path.isdir(path) else path
        if not os.path.isfile(vocab_file):
            raise TokenizerNotFoundError(f"Qwen vocabulary file not found: {vocab_file!r}")
        return cls(vocab_file, **kwargs)

    def save_pretrained(self, folder):
        """Write ``qwen.tiktoken`` into ``folder``; returns the file path."""
        return dump_tiktoken_bpe(self.mergeable_ranks, os.path.join(os.fspath(folder), VOCAB_FILENAME))

    @property
    def padding_side(self):
        return self._padding_side

    @padding_side.setter
    def padding_side(self, side):
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        self._padding_side = side

    def __len__(self):
        return len(self.mergeable_ranks) + len(self.special_token_ids)

    @property
    def vocab_size(self):
        return len(self)

    def __repr__(self):
        return f"QwenTokenizer(vocab_file={self.vocab_file!r}, vocab_size={len(self)})"

    # -- encoding ---------------------------------------------------------
    def encode(self, text, allowed_special="all", disallowed_special=()):
        """NFC-normalise ``text`` and return its ids.

        Like Qwen, special-token strings in the text become special ids by
        default; pass ``allowed_special=set()`` to encode them as plain text.
        """
        text = unicodedata.normalize("NFC", text)
        return self._enc.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)

    def encode_text(self, text):
        """Ids for user/data text: never produces a special (control) id."""
        return self.encode(text, allowed_special=set(), disallowed_special=())

    def __call__(self, text, return_tensors=None, padding=False, allowed_special="all"):
        """HF-style call: see :func:`batch_encode`."""
        return batch_encode(self, text, return_tensors, padding, allowed_special)

    # -- decoding ---------------------------------------------------------
    def decode(self, ids, skip_special_tokens=False, errors=None):
        """Ids (list, int or 1-D tensor) to text; bytes that are not valid
        UTF-8 are handled with ``errors`` (default: the tokenizer's, "replace").
        ``skip_special_tokens`` drops every special id (ids >= ``eod_id``)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i < self.eod_id]
        return self._enc.decode(ids, errors=errors or self.errors)

    def batch_decode(self, batch, skip_special_tokens=False, errors=None):
        return [self.decode(ids, skip_special_tokens=skip_special_tokens, errors=errors) for ids in batch]

    def stream_decoder(self):
        """An incremental decoder: `feed(id)` -> the text those ids add (special ids skipped)."""
        return _ByteStreamDecoder(self)

    def convert_tokens_to_ids(self, tokens):
        """Special-token strings or regular token bytes to ids (a str that is
        not a special token is looked up by its UTF-8 bytes).  Unknown tokens
        raise ``KeyError``."""
        if isinstance(tokens, (str, bytes)):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token):
        if isinstance(token, str):
            if token in self.special_token_ids:
                return self.special_token_ids[token]
            token = token.encode("utf-8")
        try:
            return self.mergeable_ranks[token]
        except KeyError:
            raise KeyError(f"unknown token {token!r}") from None

    def convert_ids_to_tokens(self, ids):
        """Ids to tokens: ``bytes`` for regular tokens, ``str`` for special ones."""
        if isinstance(ids, int):
            return self._id_to_special.get(ids) or self._id_to_bytes[ids]
        return [self.convert_ids_to_tokens(int(i)) for i in ids]


class _ByteStreamDecoder:
    """Token bytes through an incremental UTF-8 decoder: a character split over several tokens is
    emitted once complete (invalid bytes become U+FFFD, as `decode` makes them)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token):
        if token >= self.tokenizer.eod_id:  # special ids: not text
            return ""
        return self._decoder.decode(self.tokenizer.convert_ids_to_tokens(token))

    def flush(self):
        return self._decoder.decode(b"", final=True)
