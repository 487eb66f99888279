"""Which weight files a MiniGPT4Qwen config needs, checked before anything is built.

A config that names files absent from disk stops with one message listing every missing
file, the config key that names it and where it goes under the cache root
(:class:`~lavis.common.errors.MissingFilesError`).
"""

import json
import os

from lavis.common.errors import MissingFilesError
from lavis.common.utils import resolve_path

LLM_WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)


def missing_weight_files(cfg):
    """[(config key, resolved path, what it is)] for every required file not on disk."""
    missing = []

    def need(key, rel, what, inside=None):
        path = resolve_path(rel)
        target = os.path.join(path, inside) if inside else path
        if not os.path.exists(target):
            missing.append((key, target, what))

    if cfg.vit_ckpt:
        need("vit_ckpt", cfg.vit_ckpt, "EVA-ViT-G weights, eva_vit_g.pth")
    if cfg.qformer_arch is None:
        need("qformer_config", cfg.qformer_config, "BERT config the Q-former is built from", "config.json")
    if cfg.load_pretrained and cfg.pretrained:
        need("pretrained", cfg.pretrained, "BLIP-2 checkpoint with the Q-former, blip2_pretrained_flant5xxl.pth")
    if cfg.llm_arch is None:
        folder = resolve_path(cfg.llm_model)
        need(
            "llm_model", cfg.llm_model, "Qwen-7B-Chat (or any transformers chat LLM) folder: config.json", "config.json"
        )
        model_type = _model_type(folder)
        qwen1 = model_type == "qwen" or (model_type is None and cfg.model_type == "qwen7b_chat")
        if not cfg.llm_tokenizer:
            if not qwen1:  # any transformers-format folder
                has = lambda name: os.path.exists(os.path.join(folder, name))  # noqa: E731
                # qwen.tiktoken: a Qwen-7B-Chat merged by lavis.tools.merge_lora (saved in Qwen2 format)
                if not (has("tokenizer.json") or (has("vocab.json") and has("merges.txt")) or has("qwen.tiktoken")):
                    missing.append(
                        (
                            "llm_model",
                            os.path.join(folder, "tokenizer.json"),
                            "the LLM's tokenizer: tokenizer.json (or vocab.json + merges.txt, or qwen.tiktoken)",
                        )
                    )
            else:
                need("llm_model", cfg.llm_model, "Qwen-7B-Chat folder: qwen.tiktoken", "qwen.tiktoken")
        if not any(os.path.exists(os.path.join(folder, name)) for name in LLM_WEIGHT_FILES):
            missing.append(
                (
                    "llm_model",
                    os.path.join(folder, LLM_WEIGHT_FILES[0]),
                    ("Qwen-7B-Chat" if qwen1 else "the LLM")
                    + "'s weights (.safetensors or .bin shards, with an index)",
                )
            )
    if cfg.llm_tokenizer:
        need("llm_tokenizer", cfg.llm_tokenizer, "qwen.tiktoken vocabulary")
    if cfg.load_finetuned and (cfg.finetuned or cfg.ckpt):
        need("finetuned", cfg.finetuned or cfg.ckpt, "MiniGPT4Qwen checkpoint (llm_proj and other trained weights)")
    return missing


def _model_type(folder):
    """`model_type` in the folder's config.json (None when it cannot be read)."""
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def check_weight_files(cfg):
    missing = missing_weight_files(cfg)
    if missing:
        raise MissingFilesError(missing)
