"""Train a small byte-level BPE vocabulary in Qwen's ``qwen.tiktoken`` format.

The project's tiny default model is trained on CPU on a synthetic bilingual
corpus; it needs a vocabulary of a few hundred tokens rather than Qwen's
151,643.  :func:`train_bpe` learns one the way Qwen's vocabulary is built
(NFC, Qwen's pre-tokenisation regex, byte-level BPE) and
:func:`write_tiktoken_file` stores it so that
:class:`lavis.models.llm.qwen_tiktoken.QwenTokenizer` loads it like the real file.

Ranks ``0..255`` are the single bytes in byte order; every later rank is the
concatenation of two lower-rank tokens, so ``tiktoken`` (which merges adjacent
parts by the rank of their concatenation) can reach every token.

:func:`train_byte_level_tokenizer` trains the transformers kind (a `tokenizers` byte-level BPE
with a GPT-style pre-tokenizer regex, as Llama 3 and Qwen2 ship in `tokenizer.json`).
"""

import heapq
import unicodedata
from collections import Counter, defaultdict

import regex
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lavis.models.llm.qwen_tiktoken import PAT_STR, dump_tiktoken_bpe

_PAT = regex.compile(PAT_STR)


def _merge_word(word, a, b, new):
    """Replace non-overlapping (a, b) pairs of ``word`` left to right."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_bpe(texts, num_merges, min_frequency=2):
    """Learn ``{token bytes: rank}`` from ``texts`` with up to ``num_merges`` merges.

    Each text is NFC-normalised and cut with Qwen's :data:`PAT_STR`; merges
    never cross piece boundaries.  Each step merges the most frequent adjacent
    pair (ties: the pair with the lower ids); pairs are counted over unique
    pieces weighted by frequency and updated incrementally.  Training stops
    early when the best pair occurs fewer than ``min_frequency`` times.  The
    result is deterministic for the same input.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not a single str")
    if not isinstance(num_merges, int) or num_merges < 0:
        raise ValueError(f"num_merges must be a non-negative int, got {num_merges!r}")

    pieces = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        pieces.update(_PAT.findall(unicodedata.normalize("NFC", text)))

    vocab = [bytes([i]) for i in range(256)]  # id -> token bytes
    ranks = {tok: i for i, tok in enumerate(vocab)}
    words, freqs = [], []
    for piece, freq in sorted(pieces.items()):
        word = list(piece.encode("utf-8"))
        if len(word) > 1:
            words.append(word)
            freqs.append(freq)

    counts = defaultdict(int)  # pair -> weighted count
    where = defaultdict(set)  # pair -> indices of words that (may) contain it
    for wi, word in enumerate(words):
        for pair in zip(word, word[1:]):
            counts[pair] += freqs[wi]
            where[pair].add(wi)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)

    merges = 0
    while merges < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg:  # stale heap entry
            continue
        if -neg < max(min_frequency, 1):
            break
        a, b = pair
        merged = vocab[a] + vocab[b]
        new = ranks.get(merged)
        if new is None:  # a genuinely new token
            new = len(vocab)
            vocab.append(merged)
            ranks[merged] = new
            merges += 1
        touched = set()
        for wi in sorted(where.pop(pair)):
            word, f = words[wi], freqs[wi]
            if not any(x == a and y == b for x, y in zip(word, word[1:])):
                continue
            for p in zip(word, word[1:]):
                counts[p] -= f
                touched.add(p)
            word = words[wi] = _merge_word(word, a, b, new)
            for p in zip(word, word[1:]):
                counts[p] += f
                where[p].add(wi)
                touched.add(p)
        for p in touched:
            c = counts[p]
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                counts.pop(p, None)
    return ranks


def write_tiktoken_file(ranks, path):
    """Write ``ranks`` as ``<base64> <rank>`` lines sorted by rank, atomically."""
    seen = set()
    for token, rank in ranks.items():
        if not isinstance(token, bytes) or not token:
            raise ValueError(f"tokens must be non-empty bytes, got {token!r}")
        if not isinstance(rank, int) or rank < 0 or rank in seen:
            raise ValueError(f"ranks must be unique non-negative ints, got {rank!r} for {token!r}")
        seen.add(rank)
    return dump_tiktoken_bpe(ranks, path)


def train_byte_level_tokenizer(texts, pattern, vocab_size, special_tokens):
    """A `tokenizers` byte-level BPE (NFC, `pattern` then byte-level pre-tokenisation) trained on
    `texts` to `vocab_size` tokens, with `special_tokens` added after them."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False)
    )
    tok.add_special_tokens(list(special_tokens))
    return tok
