"""Qwen text side of MiniGPT4Qwen: the tiktoken tokenizer and the small-BPE trainer."""

from lavis.models.qwen.bpe_train import train_bpe, write_tiktoken_file
from lavis.models.qwen.tokenizer import PAT_STR, SPECIAL_TOKENS, QwenTokenizer

__all__ = ["QwenTokenizer", "PAT_STR", "SPECIAL_TOKENS", "train_bpe", "write_tiktoken_file"]
