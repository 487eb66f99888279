"""The LLM tokenizer: Qwen-1's `qwen.tiktoken`, or a Qwen1.5/Qwen2/Qwen2.5 tokenizer behind the same interface.

`load_llm_tokenizer(path)` returns :class:`~lavis.models.llm.qwen_tiktoken.QwenTokenizer` for a
`qwen.tiktoken` file (or a folder holding one), and :class:`HFQwenTokenizer` for a folder with a
transformers tokenizer (`tokenizer.json`, or `vocab.json` + `merges.txt`), loaded offline.

Image placeholder. MiniGPT4Qwen marks image slots with a token whose embedding is replaced by
the image's query embeddings (Qwen-1: ``<|extra_0|>``). :class:`HFQwenTokenizer` picks, in order:

1. ``<|image_pad|>`` if the tokenizer has it (Qwen2-VL / Qwen2.5 tokenizers);
2. ``<|extra_0|>`` if it has that (Qwen-1 style vocabularies);
3. otherwise (Qwen1.5 / Qwen2 tokenizers have no spare special token) it adds ``<|image_pad|>``
   as a new special token, numbered ``len(tokenizer)``: one of the embedding's padding rows
   (Qwen2 embeddings have more rows than the tokenizer has tokens), whose values never matter
   because the slot's embedding is always replaced.

The chosen string is :attr:`HFQwenTokenizer.image_pad_token`; ``convert_tokens_to_ids("<|extra_0|>")``
also answers its id (so code written for Qwen-1's placeholder name works unchanged).
User text encoded with :meth:`encode_text` never yields it or any other special token.
"""

import os

from lavis.models.llm.qwen_tiktoken import VOCAB_FILENAME, QwenTokenizer, batch_encode

QWEN1_IMAGE_PAD = "<|extra_0|>"
IMAGE_PAD_CANDIDATES = ("<|image_pad|>", QWEN1_IMAGE_PAD)
ENDOFTEXT, IMSTART, IMEND = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


class HFQwenTokenizer:
    """A transformers Qwen2 tokenizer with the interface of :class:`QwenTokenizer` the model uses."""

    def __init__(self, tokenizer, model_max_length=None, padding_side="right"):
        self.hf = tokenizer
        if model_max_length is not None:
            tokenizer.model_max_length = model_max_length
        self.model_max_length = tokenizer.model_max_length
        self.padding_side = padding_side
        vocab = tokenizer.get_vocab()
        absent = [t for t in (ENDOFTEXT, IMSTART, IMEND) if t not in vocab]
        if absent:
            raise ValueError(f"{type(tokenizer).__name__} has no {absent}: not a Qwen chat tokenizer")
        self.eod_id = vocab[ENDOFTEXT]
        self.im_start_id = vocab[IMSTART]
        self.im_end_id = vocab[IMEND]
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eod_id
        for candidate in IMAGE_PAD_CANDIDATES:
            if candidate in vocab:
                self.image_pad_token = candidate
                break
        else:
            self.image_pad_token = IMAGE_PAD_CANDIDATES[0]
            from tokenizers import AddedToken

            tokenizer.add_tokens(
                [AddedToken(self.image_pad_token, special=True, normalized=False)], special_tokens=True
            )
        self._vocab = tokenizer.get_vocab()
        self.image_pad_id = self._vocab[self.image_pad_token]
        self.vocab_file = getattr(tokenizer, "name_or_path", None)

    @classmethod
    def from_pretrained(cls, folder, model_max_length=None, **kwargs):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(os.fspath(folder), local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot load the tokenizer in {folder}: {err}") from None
        return cls(tokenizer, model_max_length, **kwargs)

    def __len__(self):
        return len(self.hf)

    @property
    def vocab_size(self):
        return len(self)

    def __repr__(self):
        return f"HFQwenTokenizer({type(self.hf).__name__}, vocab_size={len(self)}, image_pad={self.image_pad_token!r})"

    # -- encoding ---------------------------------------------------------
    def encode(self, text, allowed_special="all", disallowed_special=()):
        """Ids of `text`; special-token strings in it become special ids unless `allowed_special` is empty."""
        if allowed_special == "all":
            return self.hf.encode(text, add_special_tokens=False)
        if allowed_special:
            raise ValueError("allowed_special must be 'all' or empty for HFQwenTokenizer")
        return self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def encode_text(self, text):
        """Ids for user/data text: never produces a special (control) id."""
        return self.encode(text, allowed_special=set())

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


def load_llm_tokenizer(path, model_max_length=None):
    """QwenTokenizer for `qwen.tiktoken` (file or folder), else the folder's transformers tokenizer."""
    path = os.fspath(path)
    if os.path.isfile(path) or os.path.isfile(os.path.join(path, VOCAB_FILENAME)):
        kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
        return QwenTokenizer.from_pretrained(path, **kwargs)
    if os.path.isdir(path) and any(os.path.isfile(os.path.join(path, f)) for f in HF_TOKENIZER_FILES):
        return HFQwenTokenizer.from_pretrained(path, model_max_length)
    raise FileNotFoundError(
        f"no LLM tokenizer at {path!r}: expected {VOCAB_FILENAME} (Qwen-7B-Chat) or tokenizer.json / vocab.json "
        "+ merges.txt (Qwen2)"
    )
