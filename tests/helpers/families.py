"""Tiny LLM folders of each chat family, as transformers saves them, for the any-LLM tests.

Each folder holds a random tiny decoder built from the family's transformers config class
(`save_pretrained`, safetensors), a small tokenizer of the family's kind trained here (byte-level
BPE, or SentencePiece-style BPE with byte fallback) with the family's special tokens, and a chat
template in the family's format, written for the tests (the real ones add dates, tools, thinking).
"""

import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM

from lavis.datasets.synthetic.tiny_vocab import LLAMA3_PATTERN
from lavis.models.llm.bpe_train import train_byte_level_tokenizer

CORPUS = [
    "You are a helpful assistant.",
    "What colour is the shape? It is red. The shape is a circle.",
    "Describe this image in detail. A red cat sits on the mat.",
    "图中是什么形状？ 圆形。 颜色是红色。 这是一只猫。",
    "Tell me a story about a blue square and a green triangle. 😀 🎉",
    "system user assistant model",
]
CHATML = (
    "{%- if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3 = (
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else "
    "message['role'] %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported') }}{% endif %}{% endfor %}"
)
PHI3 = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)
GLM4 = (
    "[gMASK]<sop>{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# family -> (transformers model type, tokenizer kind, special tokens, bos, eos, pad, template, slot token)
FAMILIES = {
    "qwen2": ("qwen2", "bytelevel", ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"],
              None, "<|im_end|>", "<|endoftext|>", CHATML, "<|image_pad|>"),
    "qwen3": ("qwen3", "bytelevel", ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"],
              None, "<|im_end|>", "<|endoftext|>", CHATML, "<|image_pad|>"),
    "llama3": ("llama", "bytelevel", ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
               "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>"],
               "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", LLAMA3, "<|reserved_special_token_0|>"),
    "gemma2": ("gemma2", "sentencepiece", ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
               "<bos>", "<eos>", "<pad>", GEMMA, "<|image_pad|>"),
    "gemma3": ("gemma3_text", "sentencepiece", ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
               "<end_of_turn>", "<image_soft_token>"], "<bos>", "<eos>", "<pad>", GEMMA, "<image_soft_token>"),
    "mistral": ("mistral", "sentencepiece", ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[control_8]"],
                "<s>", "</s>", "</s>", MISTRAL, "[control_8]"),
    "phi3": ("phi3", "sentencepiece", ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>",
             "<|system|>", "<|end|>", "<|placeholder1|>"], "<s>", "<|endoftext|>", "<|endoftext|>", PHI3,
             "<|placeholder1|>"),
    "phi4": ("phi3", "bytelevel", ["<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>", "<|dummy_0|>"],
             None, "<|im_end|>", "<|endoftext|>", CHATML, "<|dummy_0|>"),
    "glm4": ("glm", "bytelevel", ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
             "<|observation|>"], None, "<|endoftext|>", "<|endoftext|>", GLM4, "<|image_pad|>"),
}  # fmt: skip
#: the end-of-turn token each template puts after a reply
END_OF_TURN = {
    "qwen2": "<|im_end|>", "qwen3": "<|im_end|>", "llama3": "<|eot_id|>", "gemma2": "<end_of_turn>",
    "gemma3": "<end_of_turn>", "mistral": "</s>", "phi3": "<|end|>", "phi4": "<|im_end|>", "glm4": "<|user|>",
}  # fmt: skip


def _sentencepiece(specials, unk):
    """BPE on '▁'-joined text with byte fallback, as Llama-2/Mistral/Gemma/Phi-3 tokenizers are."""
    base = Tokenizer(models.BPE())
    base.normalizer = normalizers.Replace(" ", "▁")
    base.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    model = json.loads(base.to_str())["model"]
    vocab = {}
    for token in [unk] + [f"<0x{b:02X}>" for b in range(256)] + list(model["vocab"]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([s for s in specials if s != unk])
    return tok


def write_family_folder(folder, family, seed=0, hidden=64, spare_rows=8):
    """A tiny `family` chat LLM folder (its embedding `spare_rows` longer than the vocabulary); returns its path."""
    model_type, kind, specials, bos, eos, pad, template, _ = FAMILIES[family]
    unk = "<unk>" if "<unk>" in specials else None
    if kind == "bytelevel":
        tok = train_byte_level_tokenizer(CORPUS * 20, LLAMA3_PATTERN, 420, specials)
    else:
        tok = _sentencepiece(specials, unk or "<unk>")
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": bos,
                "eos_token": eos,
                "pad_token": pad,
                "unk_token": unk,
                "chat_template": template,
                "model_max_length": 4096,
                "clean_up_tokenization_spaces": False,
            },
            f,
        )
    vocab = tok.get_vocab()
    config = AutoConfig.for_model(
        model_type,
        vocab_size=tok.get_vocab_size() + spare_rows,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=1024,
        bos_token_id=vocab.get(bos) if bos else None,
        eos_token_id=vocab[eos],
        pad_token_id=vocab[pad],
        tie_word_embeddings=family.startswith("gemma"),
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def family_options(folder):
    """cfg_options of the tiny model type with its LLM taken from `folder`."""
    return {"llm_model": folder, "llm_arch": None, "llm_tokenizer": ""}
