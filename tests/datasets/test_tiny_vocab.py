"""The shipped tiny vocabulary is exactly what its generator makes from the synthetic corpus."""

from lavis.datasets.synthetic.tiny_vocab import (
    TINY_LLAMA_TOKENIZER,
    TINY_VOCAB_PATH,
    build_tiny_llama_tokenizer,
    build_tiny_vocab,
)
from lavis.models.llm.qwen_tiktoken import QwenTokenizer


def test_shipped_vocabulary_regenerates_byte_for_byte(tmp_path):
    fresh = build_tiny_vocab(tmp_path / "qwen.tiktoken")
    assert open(fresh, "rb").read() == open(TINY_VOCAB_PATH, "rb").read()


def test_tiny_vocabulary_has_qwens_special_tokens_after_its_ranks():
    tok = QwenTokenizer.from_pretrained(TINY_VOCAB_PATH)
    ranks = len(tok.mergeable_ranks)
    assert (tok.eod_id, tok.im_start_id, tok.im_end_id) == (ranks, ranks + 1, ranks + 2)
    assert tok.convert_tokens_to_ids("<|extra_0|>") == ranks + 3
    assert len(tok) == ranks + 208
    # the synthetic answers are short sequences, which keeps the default run fast
    assert len(tok.encode_text("三角形")) == 1 and len(tok.encode_text(" colour")) == 1


def test_shipped_llama_style_tokenizer_regenerates_byte_for_byte(tmp_path):
    fresh = build_tiny_llama_tokenizer(tmp_path / "tiny_llama")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert open(fresh / name, "rb").read() == open(f"{TINY_LLAMA_TOKENIZER}/{name}", "rb").read()
