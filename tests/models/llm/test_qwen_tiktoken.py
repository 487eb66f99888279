"""Tests for lavis.models.llm.qwen_tiktoken (QwenTokenizer) and lavis.models.llm.bpe_train.

Two vocabularies are used:
* a small one trained here with ``train_bpe`` (always available);
* Qwen's real ``qwen.tiktoken`` (151,643 ranks) shipped in the PyPI wheel
  ``qwen-agent==0.0.34`` (``pip install --no-deps qwen-agent==0.0.34``); those
  tests are skipped when the wheel is not installed.
"""

import base64
import hashlib
import os
import pickle
import random
import unicodedata
from pathlib import Path

import pytest
import regex
import tiktoken
import torch

from lavis.common.errors import UserError
from lavis.models.llm.bpe_train import train_bpe, write_tiktoken_file
from lavis.models.llm.qwen_tiktoken import PAT_STR, SPECIAL_TOKENS, QwenTokenizer

CORPUS = [
    "A red cat sits on the mat. The cat is red.",
    "一只红色的猫坐在垫子上。猫是红色的。",
    "The dog runs in the park, and the dog plays with a ball!",
    "小狗在公园里跑，小狗在玩球！",
    "There are 3 birds and 12 fish in the picture 😀.",
    "图片里有3只鸟和12条鱼😀。",
    "def f(x):\n    return x + 1\n\n",
]

# Strings exercised on both vocabularies.
SAMPLES = [
    "",
    "Hello world",
    "你好，世界！这是一个测试。",
    "emoji 😀👍🏽 👨‍👩‍👧 🇨🇳 ok",
    "a  \n\n  b\t\t",
    "   leading and trailing   ",
    "\r\n\r\n\n \t \u3000 x",
    "numbers 1234567 3.14159 1,000,000 0x1F",
    "I'LL see what you've done, don't they'd",
    "def foo(bar):\n    return {'a': [1, 2]}  # comment\n",
    "混合 mixed 文本 text, with 标点。and ‘quotes’ «»",
    "日本語のテキストと한국어 텍스트",
    "\u00e9t\u00e9 caf\u00e9 na\u00efve",
    "zero\u200bwidth and \ufeffBOM \x00 nul",
]


def _nfc(s):
    return unicodedata.normalize("NFC", s)


# --------------------------------------------------------------------------
# small vocabulary written by the test
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small_vocab")
    ranks = train_bpe(CORPUS * 3, num_merges=80)
    write_tiktoken_file(ranks, folder / "qwen.tiktoken")
    return folder


@pytest.fixture(scope="module")
def small(small_dir):
    return QwenTokenizer.from_pretrained(small_dir)


@pytest.fixture
def fresh_small(small_dir):
    """A tokenizer whose settable attributes a test may change."""
    return QwenTokenizer.from_pretrained(small_dir)


def test_special_ids_numbered_right_after_ranks(small, small_dir):
    n = sum(1 for line in (small_dir / "qwen.tiktoken").read_text().splitlines() if line)
    assert n == 256 + 80
    assert small.eod_id == n
    assert small.im_start_id == n + 1
    assert small.im_end_id == n + 2
    assert small.special_token_ids["<|extra_0|>"] == n + 3
    assert small.special_token_ids["<|extra_204|>"] == n + 207
    assert list(small.special_token_ids) == list(SPECIAL_TOKENS)
    assert len(SPECIAL_TOKENS) == 208
    assert len(small) == small.vocab_size == n + 208
    assert small.pad_token_id == small.eod_id
    assert small.padding_side == "right" and small.errors == "replace"
    assert small.model_max_length == 8192
    assert small.vocab_file == str(small_dir / "qwen.tiktoken")


@pytest.mark.parametrize("text", SAMPLES + ["e\u0301 \u1e9b\u0323 \u03d2\u0301"])
def test_small_round_trip(small, text):
    ids = small.encode(text)
    assert all(0 <= i < small.eod_id for i in ids)
    assert small.decode(ids) == _nfc(text)
    assert small.decode(small.encode_text(text)) == _nfc(text)


def test_nfc_before_encoding(small):
    nfd = "\u03d2\u0301\u03d2\u0308\u017f\u0307 cafe\u0301"
    assert small.encode(nfd) == small.encode(_nfc(nfd))
    assert small.decode(small.encode(nfd)) == "\u03d3\u03d4\u1e9b caf\u00e9"


def test_merges_are_used(small):
    # "the" and " cat" are frequent in the corpus: they must not stay byte-level
    assert len(small.encode(" the cat")) < len(" the cat".encode())
    assert len(small.encode("猫是红色的")) < len("猫是红色的".encode())


@pytest.mark.parametrize("special", ["<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|extra_0|>", "<|extra_204|>"])
def test_encode_text_never_yields_special_ids(small, special):
    text = f"user says {special} and {special}{special}!"
    ids = small.encode_text(text)
    assert all(i < small.eod_id for i in ids)
    assert small.decode(ids) == text
    assert small.encode(text, allowed_special=set(), disallowed_special=()) == ids
    assert small.encode_text(special) != [small.special_token_ids[special]]


def test_encode_parses_typed_specials_by_default(small):
    assert small.encode("<|im_end|>") == [small.im_end_id]
    assert small.encode("<|endoftext|>") == [small.eod_id]
    ids = small.encode("<|im_start|>user\nhi<|im_end|>\n")
    assert ids[0] == small.im_start_id
    assert ids.count(small.im_end_id) == 1
    assert ids[1 : ids.index(small.im_end_id)] == small.encode_text("user\nhi")
    assert small("<|im_end|>").input_ids == [small.im_end_id]
    assert small("<|im_end|>", allowed_special=set()).input_ids == small.encode_text("<|im_end|>")
    # fine-grained control as in Qwen: only <|endoftext|> allowed
    ids = small.encode("<|extra_0|><|endoftext|>", allowed_special={"<|endoftext|>"})
    assert ids[-1] == small.eod_id and small.special_token_ids["<|extra_0|>"] not in ids
    with pytest.raises(ValueError):
        small.encode("<|extra_0|>", allowed_special=set(), disallowed_special="all")


def test_call_single_string_returns_flat_lists(small):
    enc = small("Hello world")
    assert enc.input_ids == small.encode("Hello world")
    assert enc["input_ids"] == enc.input_ids
    assert enc.attention_mask == [1] * len(enc.input_ids)
    t = small("Hello world", return_tensors="pt")
    assert t.input_ids.dtype == torch.long and t.input_ids.shape == (1, len(enc.input_ids))
    assert t["attention_mask"].tolist() == [[1] * len(enc.input_ids)]


@pytest.mark.parametrize("padding", [True, "longest"])
def test_call_padding_right_and_left(fresh_small, padding):
    tok = fresh_small
    texts = ["a cat", "一只红色的猫坐在垫子上", ""]
    rows = [tok.encode(t) for t in texts]
    longest = max(len(r) for r in rows)
    assert len({len(r) for r in rows}) == 3

    enc = tok(texts, padding=padding)
    for row, ids, mask in zip(rows, enc.input_ids, enc.attention_mask):
        pad = longest - len(row)
        assert ids == row + [tok.eod_id] * pad
        assert mask == [1] * len(row) + [0] * pad

    tok.padding_side = "left"
    tok.pad_token_id = tok.special_token_ids["<|extra_1|>"]
    enc = tok(texts, padding=padding, return_tensors="pt")
    assert enc.input_ids.dtype == torch.long and enc.input_ids.shape == (3, longest)
    assert enc["attention_mask"].dtype == torch.long
    for row, ids, mask in zip(rows, enc.input_ids.tolist(), enc.attention_mask.tolist()):
        pad = longest - len(row)
        assert ids == [tok.pad_token_id] * pad + row
        assert mask == [0] * pad + [1] * len(row)


def test_call_without_padding(small):
    texts = ["a cat", "一只红色的猫坐在垫子上"]
    enc = small(texts)
    assert enc.input_ids == [small.encode(t) for t in texts]
    assert [len(m) for m in enc.attention_mask] == [len(r) for r in enc.input_ids]
    with pytest.raises(ValueError, match="padding"):
        small(texts, return_tensors="pt")
    same = small(["cat", "cat"], return_tensors="pt")
    assert same.input_ids.shape == (2, len(small.encode("cat")))


def test_bad_arguments(fresh_small):
    with pytest.raises(ValueError):
        fresh_small.padding_side = "middle"
    with pytest.raises(ValueError):
        fresh_small(["a"], padding="max_length")
    with pytest.raises(ValueError):
        fresh_small(["a"], return_tensors="tf")


def test_decode_skip_special_tokens_and_tensors(small):
    body = small.encode_text("猫 cat")
    ids = [small.im_start_id] + body + [small.im_end_id, small.eod_id, small.special_token_ids["<|extra_204|>"]]
    assert small.decode(ids) == "<|im_start|>猫 cat<|im_end|><|endoftext|><|extra_204|>"
    assert small.decode(ids, skip_special_tokens=True) == "猫 cat"
    assert small.decode(torch.tensor(ids), skip_special_tokens=True) == "猫 cat"
    assert small.decode(torch.tensor(ids)) == small.decode(ids)
    assert small.batch_decode([ids, body], skip_special_tokens=True) == ["猫 cat", "猫 cat"]


def test_decode_errors_mode(small):
    ids = small.encode("猫")
    partial = [small.convert_tokens_to_ids(bytes([b])) for b in "猫".encode()[:2]]
    assert small.decode(partial) == "\ufffd"
    assert small.decode(partial, errors="ignore") == ""
    assert small.decode(partial + small.encode(" ok")) == "\ufffd ok"
    with pytest.raises(UnicodeDecodeError):
        small.decode(partial, errors="strict")
    assert small.decode(ids, errors="strict") == "猫"


def test_convert_tokens_to_ids(small):
    assert small.convert_tokens_to_ids("<|im_end|>") == small.im_end_id
    assert small.convert_tokens_to_ids(["<|im_start|>", "<|endoftext|>"]) == [small.im_start_id, small.eod_id]
    assert small.convert_tokens_to_ids(b"a") == small.encode("a")[0]
    assert small.convert_tokens_to_ids([b"a", "<|extra_3|>"]) == [
        small.encode("a")[0],
        small.special_token_ids["<|extra_3|>"],
    ]
    for tok_id in small.encode(" the cat"):
        token = small.convert_ids_to_tokens(tok_id)
        assert isinstance(token, bytes) and small.convert_tokens_to_ids(token) == tok_id
    with pytest.raises(KeyError):
        small.convert_tokens_to_ids(b"\x00not-a-token\x00")


def test_save_pretrained_round_trip(small, small_dir, tmp_path):
    path = small.save_pretrained(tmp_path / "out")
    assert Path(path) == tmp_path / "out" / "qwen.tiktoken"
    assert Path(path).read_bytes() == (small_dir / "qwen.tiktoken").read_bytes()
    again = QwenTokenizer.from_pretrained(Path(path))
    for text in SAMPLES:
        assert again.encode(text) == small.encode(text)
    assert os.listdir(tmp_path / "out") == ["qwen.tiktoken"]  # no temporary file left


def test_pickle_for_dataloader_workers(small):
    clone = pickle.loads(pickle.dumps(small))
    assert clone.encode("一只猫 a cat <|im_end|>") == small.encode("一只猫 a cat <|im_end|>")


def _write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _good_lines(n=256):
    return [base64.b64encode(bytes([i])) + b" " + str(i).encode() for i in range(n)]


@pytest.mark.parametrize(
    "bad_line",
    [b"YWI=", b"YWI= 256 7", b"YWI= x", b"!!notbase64 256", b"YWI= -4", b"AA== 256"],
    ids=["one-field", "three-fields", "rank-not-int", "bad-base64", "negative-rank", "duplicate-token"],
)
def test_malformed_file_names_file_and_line(tmp_path, bad_line):
    lines = _good_lines()
    lines.insert(2, bad_line)
    path = _write_lines(tmp_path / "qwen.tiktoken", lines)
    with pytest.raises(ValueError) as info:
        QwenTokenizer.from_pretrained(tmp_path)
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)
    assert isinstance(info.value, UserError)  # the entry points print it as one error: line


def test_bad_rank_sets_are_rejected(tmp_path):
    path = _write_lines(tmp_path / "gap.tiktoken", _good_lines() + [base64.b64encode(b"ab") + b" 300"])
    with pytest.raises(ValueError, match="gap.tiktoken"):
        QwenTokenizer(path)
    path = _write_lines(tmp_path / "nobytes.tiktoken", _good_lines(200))
    with pytest.raises(ValueError, match="single-byte"):
        QwenTokenizer(path)
    # blank lines are tolerated (Qwen's loader skips them)
    path = _write_lines(tmp_path / "blank.tiktoken", _good_lines()[:10] + [b""] + _good_lines()[10:])
    assert len(QwenTokenizer(path)) == 256 + 208


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        QwenTokenizer.from_pretrained(missing)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty_dir / "qwen.tiktoken").replace("\\", "\\\\")):
        QwenTokenizer.from_pretrained(empty_dir)
    with pytest.raises(FileNotFoundError, match="x.tiktoken") as info:
        QwenTokenizer(tmp_path / "x.tiktoken")
    assert isinstance(info.value, UserError)


# --------------------------------------------------------------------------
# bpe_train
# --------------------------------------------------------------------------
def test_train_bpe_hand_computed_merges():
    # pieces: "abab", " abab", " ab" -> (a,b) x5 first; then ( ,ab) and (ab,ab)
    # tie at 2 -> lower ids win: (32, 256) before (256, 256)
    assert train_bpe(["abab abab ab"], 5) == {
        **{bytes([i]): i for i in range(256)},
        b"ab": 256,
        b" ab": 257,
    }
    ranks = train_bpe(["abab abab ab"], 5, min_frequency=1)
    assert [t for t, r in sorted(ranks.items(), key=lambda kv: kv[1])][256:] == [b"ab", b" ab", b"abab", b" abab"]


def test_train_bpe_structure_and_determinism():
    ranks = train_bpe(CORPUS * 2, 120)
    assert len(ranks) == 256 + 120
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    assert [r for _, r in by_rank] == list(range(len(ranks)))
    assert [t for t, _ in by_rank[:256]] == [bytes([i]) for i in range(256)]
    pieces = [p.encode() for text in CORPUS for p in regex.findall(PAT_STR, _nfc(text))]
    for token, rank in by_rank[256:]:
        # made of two lower-rank tokens, so tiktoken can reach it
        assert any(
            token[:k] in ranks and token[k:] in ranks and max(ranks[token[:k]], ranks[token[k:]]) < rank
            for k in range(1, len(token))
        ), token
        # never crosses a pre-token boundary
        assert any(token in piece for piece in pieces), token
    assert list(train_bpe(list(CORPUS) * 2, 120).items()) == list(ranks.items())
    # stops early once no pair occurs min_frequency times
    assert len(train_bpe(CORPUS, 120)) < 256 + 120


def test_train_bpe_round_trips_through_tiktoken():
    ranks = train_bpe(CORPUS, 100)
    enc = tiktoken.Encoding("small", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens={})
    for text in SAMPLES + CORPUS:
        ids = enc.encode_ordinary(_nfc(text))
        assert enc.decode(ids) == _nfc(text)
    # training text is compressed
    assert len(enc.encode_ordinary(CORPUS[0])) < len(CORPUS[0].encode()) / 1.5


def test_train_bpe_arguments():
    with pytest.raises(TypeError):
        train_bpe("not a list", 10)
    with pytest.raises(ValueError):
        train_bpe(CORPUS, -1)
    assert len(train_bpe(CORPUS, 0)) == 256
    assert len(train_bpe([], 10)) == 256


def test_write_tiktoken_file_format(tmp_path):
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"\xe7\x8c\xab"] = 256
    ranks = dict(reversed(list(ranks.items())))  # insertion order must not matter
    path = tmp_path / "sub" / "qwen.tiktoken"
    write_tiktoken_file(ranks, path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 258
    assert lines[0] == b"AA== 0" and lines[256] == base64.b64encode("猫".encode()) + b" 256"
    assert os.listdir(path.parent) == ["qwen.tiktoken"]
    with pytest.raises(ValueError):
        write_tiktoken_file({b"a": 0, b"b": 0}, tmp_path / "dup.tiktoken")
    assert not (tmp_path / "dup.tiktoken").exists()


def _bilingual_corpus(n, seed=0):
    rng = random.Random(seed)
    en = (
        "the a cat dog sits on mat red blue image shows picture of man woman running "
        "playing with ball in park near river small big white black two three"
    ).split()
    zh = list("一只猫坐在垫子上红色蓝色的图片显示了男人女人正在公园里河边玩球跑步这是两三大小白黑")
    texts = []
    for _ in range(n):
        words = [
            rng.choice(en) if rng.random() < 0.5 else "".join(rng.choices(zh, k=rng.randint(1, 3))) for _ in range(20)
        ]
        texts.append(" ".join(words) + rng.choice([".", "。", "!", "？"]))
    return texts


def test_train_bpe_on_a_bilingual_corpus_makes_every_merge():
    ranks = train_bpe(_bilingual_corpus(5000), 300)
    assert len(ranks) == 556  # 256 bytes + 300 merges
    assert sorted(ranks.values()) == list(range(556))


# --------------------------------------------------------------------------
# Qwen's real vocabulary
# --------------------------------------------------------------------------
REAL_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"


@pytest.fixture(scope="module")
def real_path(real_qwen_vocab):
    return real_qwen_vocab


@pytest.fixture(scope="module")
def real(real_path):
    return QwenTokenizer.from_pretrained(real_path)


@pytest.fixture(scope="module")
def real_ranks(real_path):
    ranks = {}
    for line in real_path.read_bytes().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def test_real_file_checksum(real_path):
    assert hashlib.sha256(real_path.read_bytes()).hexdigest() == REAL_SHA256


def test_real_sizes_and_special_ids(real):
    assert len(real) == real.vocab_size == 151643 + 208
    assert real.eod_id == 151643
    assert real.im_start_id == 151644
    assert real.im_end_id == 151645
    assert real.special_token_ids["<|extra_0|>"] == 151646
    assert real.special_token_ids["<|extra_204|>"] == 151850


# Golden ids published by Qwen / others for Qwen's tokenizer (Qwen-7B, Qwen-1.8B and
# Qwen2 share the first 151,643 ids, the pre-tokenisation regex and the ChatML ids).
GOLDEN = [
    # QwenLM/Qwen tokenization_note.md (commit 7a56c44b), "Injection attack prevention":
    ('print("<|endoftext|>")', {"allowed_special": set()}, [1350, 9639, 91, 8691, 723, 427, 91, 82598]),
    (
        'print("<|extra_0|>")<|endoftext|>',
        {"allowed_special": {"<|endoftext|>"}},
        [1350, 9639, 91, 15460, 62, 15, 91, 82598, 151643],
    ),
    ('print("<|endoftext|>")', {}, [1350, 445, 151643, 899]),
    # huggingface/transformers tests/models/qwen2_vl/test_modeling_qwen2_vl.py (commit 567c20d2),
    # Qwen2VLIntegrationTest.test_small_model_integration_test, first 14 expected_input_ids:
    (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
        {},
        [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198],
    ),
    # Homqyy/study-llm "7天入门LLM学习/day-4/py-tokenizer.py" (commit 78e46273), Qwen-1_8B-Chat output:
    ("杭州是个好地方", {}, [104130, 104104, 52801, 100371]),
    # huggingface/transformers tests/models/qwen2/test_tokenization_qwen2.py (commit 04bee35c),
    # test_tokenizer_integration with Qwen/Qwen-tokenizer (trailing <|endoftext|> padding removed):
    (
        "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides "
        "general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural "
        "Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained "
        "models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.",
        {},
        [
            8963,
            388,
            320,
            69514,
            3881,
            438,
            4510,
            27414,
            32852,
            388,
            323,
            4510,
            27414,
            21334,
            35722,
            1455,
            529,
            8,
            5707,
            4586,
            58238,
            77235,
            320,
            61437,
            11,
            479,
            2828,
            12,
            17,
            11,
            11830,
            61437,
            64,
            11,
            1599,
            10994,
            11,
            27604,
            321,
            33,
            529,
            11,
            29881,
            6954,
            32574,
            369,
            18448,
            11434,
            45451,
            320,
            45,
            23236,
            8,
            323,
            18448,
            11434,
            23470,
            320,
            30042,
            38,
            8,
            448,
            916,
            220,
            18,
            17,
            10,
            80669,
            4119,
            304,
            220,
            16,
            15,
            15,
            10,
            15459,
            323,
            5538,
            94130,
            2897,
            1948,
            619,
            706,
            11,
            5355,
            51,
            21584,
            323,
            94986,
            13,
        ],
    ),
    (
        "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API "
        "和工具。使用预训练模型可以减少计算消耗和碳排放，"
        "并且节省从头训练所需要的时间和资源。",
        {},
        [
            144834,
            80532,
            93685,
            83744,
            34187,
            73670,
            104261,
            29490,
            62189,
            103937,
            104034,
            102830,
            98841,
            104034,
            104949,
            9370,
            5333,
            58143,
            102011,
            1773,
            37029,
            98841,
            104034,
            104949,
            73670,
            101940,
            100768,
            104997,
            33108,
            100912,
            105054,
            90395,
            100136,
            106831,
            45181,
            64355,
            104034,
            113521,
            101975,
            33108,
            85329,
            1773,
        ],
    ),
    (
        '```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\ntokenizer("世界，你好！")```',
        {},
        [
            73594,
            12669,
            198,
            85593,
            284,
            8979,
            37434,
            6387,
            10442,
            35722,
            445,
            48,
            16948,
            45274,
            16948,
            34841,
            3135,
            1138,
            85593,
            445,
            99489,
            3837,
            108386,
            6313,
            899,
            73594,
        ],
    ),
]


@pytest.mark.parametrize("text,kwargs,expected", GOLDEN, ids=[f"golden{i}" for i in range(len(GOLDEN))])
def test_real_golden_ids(real, text, kwargs, expected):
    assert real.encode(text, **kwargs) == expected
    assert real(text, **kwargs).input_ids == expected
    assert real.decode(expected) == text


def test_real_golden_encode_text_and_decode(real):
    # encode_text == allowed_special=set() (QwenLM/Qwen tokenization_note.md)
    assert real.encode_text('print("<|endoftext|>")') == [1350, 9639, 91, 8691, 723, 427, 91, 82598]
    # QwenLM/Qwen tokenization_note.md, "Regular tokens": a partial UTF-8 token decodes with "replace"
    assert real.decode([51461]) == " \ufffd"
    assert real.decode([51461, 117]) == " 根"
    assert real.convert_ids_to_tokens([51461, 117]) == [b" \xe6\xa0", b"\xb9"]
    with pytest.raises(ValueError):
        real.encode(
            'print("<|extra_0|>")<|endoftext|>', allowed_special={"<|endoftext|>"}, disallowed_special=("<|extra_0|>",)
        )


def _ref_bpe(ranks, piece):
    """Plain-Python byte-level BPE: repeatedly merge the adjacent pair whose
    concatenation has the lowest rank (leftmost on ties), like tiktoken."""
    if piece in ranks:  # tiktoken's shortcut for a piece that is a whole token
        return [ranks[piece]]
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return [ranks[p] for p in parts]


def _ref_encode(ranks, specials, text, allow_specials):
    text = _nfc(text)
    segments = [text]
    if allow_specials:
        alternation = "|".join(regex.escape(s) for s in specials)
        segments = regex.split(f"({alternation})", text)
    ids = []
    for seg in segments:
        if allow_specials and seg in specials:
            ids.append(specials[seg])
            continue
        for piece in regex.findall(PAT_STR, seg):
            ids.extend(_ref_bpe(ranks, piece.encode("utf-8")))
    return ids


REFERENCE_TEXTS = SAMPLES + [
    "Hello",
    "你好",
    "Hello, world!",
    "  multiple   spaces\n\n\n\tand tabs\t\t\t",
    "1234567890 12.5% -42 +3e10 ٣٤٥ ①②",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }\n\treturn sum;\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n看图说话<|im_end|>\n",
    "typed <|im_end|> and <|extra_7|> and <|endoftext|> and <|not_special|>",
    "😀😀😀 🧑🏾‍💻 🏳️‍🌈 ❤️",
    "e\u0301 and \u1100\u1161\u11a8 (NFD input)",
    "URL https://example.com/a?b=c&d=e#f email a.b@c.de",
]


@pytest.mark.parametrize("allow", [True, False], ids=["specials", "plain"])
def test_real_matches_reference_bpe(real, real_ranks, allow):
    rng = random.Random(1234)
    pool = "aZ 09你好世界猫。，！?\n\t\r😀é'’-_<|>" + "ق" + "ж"
    randoms = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(150)]
    for text in REFERENCE_TEXTS + randoms:
        expected = _ref_encode(real_ranks, real.special_token_ids, text, allow)
        got = real.encode(text) if allow else real.encode_text(text)
        assert got == expected, text
        assert real.decode(got) == _nfc(text)


def test_real_save_pretrained_is_byte_identical(real, tmp_path):
    path = real.save_pretrained(tmp_path)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == REAL_SHA256
