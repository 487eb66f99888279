"""The language model of MiniGPT4Qwen: a Qwen-style decoder on transformers' `Qwen2ForCausalLM`.

Qwen-7B's block (RMSNorm, rotary attention with q/k/v bias and no output bias, SwiGLU MLP,
untied LM head) is exactly Qwen2's for sequences within its training length, so the
maintained Qwen2 modules serve both the tiny default (built from `llm_arch`) and the real
weights (converted by the loader).
"""

import math

from transformers import Qwen2Config, Qwen2ForCausalLM

from lavis.common.schema import LlmArch


def padded_vocab_size(num_tokens, pad_to):
    return int(math.ceil(num_tokens / pad_to) * pad_to)


def decoder_kwargs(arch, num_tokens, eod_id):
    """The config keys of a decoder of shape `arch` (an LlmArch or its dict), for any family."""
    arch = LlmArch(**arch) if isinstance(arch, dict) else arch
    if arch.hidden_size % arch.num_heads:
        raise ValueError(f"llm_arch.hidden_size {arch.hidden_size} is not divisible by num_heads {arch.num_heads}")
    return dict(
        vocab_size=padded_vocab_size(num_tokens, arch.vocab_pad_to),
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_heads,
        max_position_embeddings=arch.max_position_embeddings,
        rope_theta=arch.rope_theta,
        rms_norm_eps=arch.rms_norm_eps,
        tie_word_embeddings=False,
        bos_token_id=eod_id,
        eos_token_id=eod_id,
        pad_token_id=eod_id,
    )


def llm_config(arch, num_tokens, eod_id):
    return Qwen2Config(
        **decoder_kwargs(arch, num_tokens, eod_id),
        use_sliding_window=False,
        hidden_act="silu",
        attn_implementation="sdpa",
    )


def build_qwen_llm(arch, num_tokens, eod_id):
    """A randomly initialised Qwen-style decoder with `num_tokens` real tokens (rows padded)."""
    return Qwen2ForCausalLM(llm_config(arch, num_tokens, eod_id))
