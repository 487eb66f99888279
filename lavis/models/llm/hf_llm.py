"""Any transformers chat LLM as the model's language side: built from `llm_arch`, or loaded from a folder.

`load_llm(folder, tokenizer)` reads the folder's `config.json`: Qwen-7B-Chat (`model_type: qwen`)
goes through the exact conversion of `qwen_weights.py`; every other decoder-only family that
transformers ships (Qwen2/2.5/3, Llama 3.x, Gemma 2/3 text, Mistral, Phi-3/4, GLM-4, ...) loads with
`AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)`, never with remote code.
When the tokenizer had no token to spare for the image slots and one was added, an embedding
without a free row grows by one (tied output embeddings with it).  `build_llm(arch, ...)` builds
a randomly initialised decoder of `arch.family` (the tiny presets).
"""

import os

from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from lavis.common.dtypes import dtype_named, is_dtype_name
from lavis.common.schema import LlmArch
from lavis.common.utils import resolve_path
from lavis.models.llm.qwen_llm import build_qwen_llm, decoder_kwargs
from lavis.models.llm.qwen_weights import DTYPE_NAMES, load_qwen1_llm, read_generation_config, read_json
from lavis.models.weight_files import WeightFileError


def build_llm(arch, num_tokens, eod_id):
    """A randomly initialised decoder of `arch.family` with `num_tokens` real tokens (rows padded)."""
    arch = LlmArch(**arch) if isinstance(arch, dict) else arch
    if arch.family == "qwen2":
        return build_qwen_llm(arch, num_tokens, eod_id)
    if arch.family not in CONFIG_MAPPING:
        raise ValueError(f"model.llm_arch.family {arch.family!r} is not a transformers model type")
    config = AutoConfig.for_model(arch.family, **decoder_kwargs(arch, num_tokens, eod_id))
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def llm_model_type(folder):
    return read_json(os.path.join(folder, "config.json"), "LLM config").get("model_type")


def load_hf_llm(folder, dtype=None):
    """A transformers-format folder through `AutoModelForCausalLM` (local files only, no remote code)."""
    if dtype and not is_dtype_name(dtype):
        raise ValueError(f"model.llm_dtype must be one of {DTYPE_NAMES} or empty, got {dtype!r}")
    kwargs = dict(dtype=dtype_named(dtype) if dtype else "auto", local_files_only=True, trust_remote_code=False)
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", **kwargs)
        except ValueError as err:  # a family without SDPA attention (Gemma 2): transformers' default
            if "attention implementation" not in str(err):
                raise
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise WeightFileError(f"cannot load the model in {folder}: {err}") from None
    model.qwen_generation_config = read_generation_config(folder)
    eos = model.qwen_generation_config.get("eos_token_id", model.config.eos_token_id)
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id, eos_token_id=eos, pad_token_id=model.config.pad_token_id
    )
    model.eval()
    return model


def load_llm(folder, tokenizer=None, dtype=None):
    """The LLM in folder `folder` (Qwen-7B-Chat or any transformers family), checked against `tokenizer`."""
    folder = os.fspath(folder)
    model_type = llm_model_type(folder)
    if model_type == "qwen":
        return load_qwen1_llm(
            folder,
            dtype,
            special_id=None if tokenizer is None else tokenizer.eod_id,
            min_vocab=None if tokenizer is None else len(tokenizer),
        )
    if model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"{folder}/config.json: model_type {model_type!r} is not one transformers knows (remote code is not "
            "run: use a folder in transformers' own format)"
        )
    model = load_hf_llm(folder, dtype)
    rows = model.get_input_embeddings().weight.shape[0]
    if tokenizer is not None and rows < len(tokenizer):
        if rows == len(tokenizer) - 1 and getattr(tokenizer, "added_image_slot", False):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # a row for the added slot token
        else:
            raise ValueError(
                f"{folder}: vocab_size {model.config.vocab_size} is smaller than the tokenizer's "
                f"{len(tokenizer)} tokens"
            )
    return model


def build_language_model(cfg, tokenizer):
    """The model's LLM: built from `cfg.llm_arch` when set, else loaded from the `cfg.llm_model` folder."""
    if cfg.llm_arch is not None:
        return build_llm(cfg.llm_arch, len(tokenizer), tokenizer.eod_id)
    return load_llm(resolve_path(cfg.llm_model), tokenizer, getattr(cfg, "llm_dtype", "") or None)
