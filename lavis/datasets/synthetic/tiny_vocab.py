"""The tiny presets' vocabularies, trained on the synthetic shapes corpus (`shapes.corpus_lines()`)
so that the default run's sequences stay short:

* `tiny` (Qwen-style): a byte-level BPE in qwen.tiktoken format, at TINY_VOCAB_PATH;
* `tiny_llama` (Llama-3-style): a transformers tokenizer folder at TINY_LLAMA_TOKENIZER (byte-level
  BPE with Llama 3's pre-tokenizer regex and special tokens, and a Llama-3-format chat template).

Both are shipped, and a test checks that `python -m lavis.datasets.synthetic.tiny_vocab`
regenerates them byte for byte.
"""

import json
import os

from lavis.datasets.synthetic.shapes import corpus_lines
from lavis.models.llm.bpe_train import train_bpe, train_byte_level_tokenizer, write_tiktoken_file

NUM_MERGES = 400
_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")
TINY_VOCAB_PATH = os.path.join(_CONFIGS, "models", "minigpt4qwen", "tiny", "qwen.tiktoken")
TINY_LLAMA_TOKENIZER = os.path.join(_CONFIGS, "models", "minigpt4qwen", "tiny_llama")

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|reserved_special_token_0|>",  # the image slot token (reserved, never in text)
]
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def build_tiny_vocab(path=TINY_VOCAB_PATH):
    write_tiktoken_file(train_bpe(corpus_lines(), NUM_MERGES), path)
    return path


def build_tiny_llama_tokenizer(folder=TINY_LLAMA_TOKENIZER):
    """tokenizer.json + tokenizer_config.json of the tiny Llama-style preset; returns the folder."""
    tok = train_byte_level_tokenizer(corpus_lines(), LLAMA3_PATTERN, 256 + NUM_MERGES, LLAMA3_SPECIALS)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "pad_token": "<|end_of_text|>",
        "chat_template": LLAMA3_TEMPLATE,
        "model_max_length": 512,
        "clean_up_tokenization_spaces": False,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return folder


if __name__ == "__main__":
    print(build_tiny_vocab())
    print(build_tiny_llama_tokenizer())
