"""Tiny files in the exact on-disk formats of the original MiniGPT4Qwen inputs.

* `eva_vit_g.pth`: LAVIS EVA-ViT plain state dict (`cls_token`, `pos_embed`, `patch_embed.proj.*`,
  `blocks.N.{norm1,attn.qkv,attn.q_bias,attn.v_bias,attn.proj,norm2,mlp.fc1,mlp.fc2}`), one more
  block than BLIP-2 uses, fp16 like the released file.
* `bert-base-uncased/config.json`: a BERT config with bert-base's keys.
* `blip2_pretrained_flant5xxl.pth`: `{"model": {...}}` with LAVIS Q-former names, its text side,
  `query_tokens`, `ln_vision`, `t5_proj` and BLIP-2's other heads, and no `visual_encoder.*`.
* Qwen-7B-Chat folder: `config.json` (`model_type: qwen`), `generation_config.json`,
  `qwen.tiktoken`, `model-0000N-of-0000M.safetensors` + `model.safetensors.index.json`
  (or `pytorch_model-*.bin` + `pytorch_model.bin.index.json`).
"""

import json
import os
import shutil

import torch
from safetensors.torch import save_file

import lavis
from lavis.models.llm.bpe_train import train_byte_level_tokenizer

TINY_TIKTOKEN = os.path.join(
    os.path.dirname(lavis.__file__), "configs", "models", "minigpt4qwen", "tiny", "qwen.tiktoken"
)
TINY_VOCAB = 656 + 208  # ranks in the tiny qwen.tiktoken + Qwen's 208 special tokens

VIT = dict(patch=8, embed=32, heads=4, depth=2, mlp_ratio=2.0, image=32)
BERT = dict(hidden=48, layers=3, heads=4, intermediate=64)
QWEN = dict(
    hidden_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
    intermediate_size=192,
    kv_channels=16,
    layer_norm_epsilon=1e-5,
    rotary_emb_base=20000,
    seq_length=256,
)


def _g(gen, *shape, std=1.0, mean=0.0):
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean


# -- EVA ViT ------------------------------------------------------------------------------------------
def eva_state(seed=0, file_depth=None, dtype=torch.float16, image=None, **over):
    v = {**VIT, **over}
    gen = torch.Generator().manual_seed(seed)
    d, hidden = v["embed"], int(v["embed"] * v["mlp_ratio"])
    grid = (image or v["image"]) // v["patch"]
    s = {
        "cls_token": _g(gen, 1, 1, d, std=0.5),
        "pos_embed": _g(gen, 1, 1 + grid * grid, d, std=0.5),
        "patch_embed.proj.weight": _g(gen, d, 3, v["patch"], v["patch"], std=0.1),
        "patch_embed.proj.bias": _g(gen, d, std=0.1),
    }
    for i in range(file_depth if file_depth is not None else v["depth"] + 1):
        p = f"blocks.{i}."
        s.update(
            {
                p + "norm1.weight": _g(gen, d, std=0.1, mean=1.0),
                p + "norm1.bias": _g(gen, d, std=0.1),
                p + "attn.q_bias": _g(gen, d, std=0.2),
                p + "attn.v_bias": _g(gen, d, std=0.2),
                p + "attn.qkv.weight": _g(gen, 3 * d, d, std=0.2),
                p + "attn.proj.weight": _g(gen, d, d, std=0.1),
                p + "attn.proj.bias": _g(gen, d, std=0.1),
                p + "norm2.weight": _g(gen, d, std=0.1, mean=1.0),
                p + "norm2.bias": _g(gen, d, std=0.1),
                p + "mlp.fc1.weight": _g(gen, hidden, d, std=0.2),
                p + "mlp.fc1.bias": _g(gen, hidden, std=0.1),
                p + "mlp.fc2.weight": _g(gen, d, hidden, std=0.1),
                p + "mlp.fc2.bias": _g(gen, d, std=0.1),
            }
        )
    return {k: t.to(dtype) for k, t in s.items()}


def vit_arch(**over):
    v = {**VIT, **over}
    return {
        "patch_size": v["patch"],
        "embed_dim": v["embed"],
        "depth": v["depth"],
        "num_heads": v["heads"],
        "mlp_ratio": v["mlp_ratio"],
    }


# -- BERT config + BLIP-2 checkpoint --------------------------------------------------------------
def write_bert_config(folder, **over):
    b = {**BERT, **over}
    os.makedirs(folder, exist_ok=True)
    config = {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": b["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": b["intermediate"],
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": b["heads"],
        "num_hidden_layers": b["layers"],
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": 30522,
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return folder


def blip2_state(seed=1, vision_width=None, num_query=8, text_side=True, extras=True, **over):
    """The `model` dict of a BLIP-2 (FlanT5) checkpoint, tiny."""
    b = {**BERT, **over}
    width = vision_width or VIT["embed"]
    gen = torch.Generator().manual_seed(seed)
    h, m = b["hidden"], b["intermediate"]
    s = {
        "query_tokens": _g(gen, 1, num_query, h, std=0.5),
        "ln_vision.weight": _g(gen, width, std=0.1, mean=1.0),
        "ln_vision.bias": _g(gen, width, std=0.1),
        "Qformer.bert.embeddings.LayerNorm.weight": _g(gen, h, std=0.1, mean=1.0),
        "Qformer.bert.embeddings.LayerNorm.bias": _g(gen, h, std=0.1),
    }

    def attention(p, kv_width):
        s.update(
            {
                p + "self.query.weight": _g(gen, h, h, std=0.2),
                p + "self.query.bias": _g(gen, h, std=0.1),
                p + "self.key.weight": _g(gen, h, kv_width, std=0.2),
                p + "self.key.bias": _g(gen, h, std=0.1),
                p + "self.value.weight": _g(gen, h, kv_width, std=0.2),
                p + "self.value.bias": _g(gen, h, std=0.1),
                p + "output.dense.weight": _g(gen, h, h, std=0.2),
                p + "output.dense.bias": _g(gen, h, std=0.1),
                p + "output.LayerNorm.weight": _g(gen, h, std=0.1, mean=1.0),
                p + "output.LayerNorm.bias": _g(gen, h, std=0.1),
            }
        )

    for i in range(b["layers"]):
        p = f"Qformer.bert.encoder.layer.{i}."
        attention(p + "attention.", h)
        if i % 2 == 0:
            attention(p + "crossattention.", width)
        s.update(
            {
                p + "intermediate_query.dense.weight": _g(gen, m, h, std=0.2),
                p + "intermediate_query.dense.bias": _g(gen, m, std=0.1),
                p + "output_query.dense.weight": _g(gen, h, m, std=0.2),
                p + "output_query.dense.bias": _g(gen, h, std=0.1),
                p + "output_query.LayerNorm.weight": _g(gen, h, std=0.1, mean=1.0),
                p + "output_query.LayerNorm.bias": _g(gen, h, std=0.1),
            }
        )
        if text_side:
            s.update(
                {
                    p + "intermediate.dense.weight": _g(gen, m, h),
                    p + "intermediate.dense.bias": _g(gen, m),
                    p + "output.dense.weight": _g(gen, h, m),
                    p + "output.dense.bias": _g(gen, h),
                    p + "output.LayerNorm.weight": _g(gen, h),
                    p + "output.LayerNorm.bias": _g(gen, h),
                }
            )
    s = {k: t.float() for k, t in s.items()}
    if text_side:
        s["Qformer.bert.embeddings.word_embeddings.weight"] = torch.randn(40, h)
        s["Qformer.bert.embeddings.position_embeddings.weight"] = torch.randn(16, h)
        s["Qformer.bert.embeddings.position_ids"] = torch.arange(16).unsqueeze(0)
        s["Qformer.cls.predictions.bias"] = torch.randn(40)
        s["Qformer.cls.predictions.transform.dense.weight"] = torch.randn(h, h)
    if extras:
        s["t5_proj.weight"] = torch.randn(24, h)
        s["t5_proj.bias"] = torch.randn(24)
        s["vision_proj.weight"] = torch.randn(16, h)
        s["text_proj.weight"] = torch.randn(16, h)
        s["itm_head.weight"] = torch.randn(2, h)
        s["temp"] = torch.tensor(0.07)
    return s


# -- Qwen-7B-Chat folder ---------------------------------------------------------------------------------
def qwen1_config(vocab_size=896, **over):
    config = {
        "architectures": ["QWenLMHeadModel"],
        "auto_map": {
            "AutoConfig": "configuration_qwen.QWenConfig",
            "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel",
        },
        "attn_dropout_prob": 0.0,
        "bf16": False,
        "emb_dropout_prob": 0.0,
        "fp16": False,
        "fp32": False,
        "initializer_range": 0.02,
        "max_position_embeddings": 8192,
        "model_type": "qwen",
        "no_bias": True,
        "onnx_safe": None,
        "rotary_pct": 1.0,
        "scale_attn_weights": True,
        "tie_word_embeddings": False,
        "tokenizer_class": "QWenTokenizer",
        "transformers_version": "4.32.0",
        "use_cache": True,
        "use_dynamic_ntk": True,
        "use_flash_attn": "auto",
        "use_logn_attn": True,
        "vocab_size": vocab_size,
    }
    config.update(QWEN)
    config.update(over)
    return config


def qwen1_state(config, seed=2, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    h, n, v = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    f = config["intermediate_size"] // 2
    s = {"transformer.wte.weight": _g(gen, v, h, std=1.0)}
    for i in range(n):
        p = f"transformer.h.{i}."
        s.update(
            {
                p + "ln_1.weight": _g(gen, h, std=0.1, mean=1.0),
                p + "attn.c_attn.weight": _g(gen, 3 * h, h, std=0.25),
                p + "attn.c_attn.bias": _g(gen, 3 * h, std=0.2),
                p + "attn.c_proj.weight": _g(gen, h, h, std=0.2),
                p + "ln_2.weight": _g(gen, h, std=0.1, mean=1.0),
                p + "mlp.w1.weight": _g(gen, f, h, std=0.2),
                p + "mlp.w2.weight": _g(gen, f, h, std=0.2),
                p + "mlp.c_proj.weight": _g(gen, h, f, std=0.15),
            }
        )
    s["transformer.ln_f.weight"] = _g(gen, h, std=0.1, mean=1.0)
    s["lm_head.weight"] = _g(gen, v, h, std=0.3)
    return {k: t.to(dtype) for k, t in s.items()}


GENERATION_CONFIG = {
    "chat_format": "chatml",
    "eos_token_id": 151643,
    "pad_token_id": 151643,
    "max_window_size": 6144,
    "max_new_tokens": 512,
    "do_sample": True,
    "top_k": 0,
    "top_p": 0.8,
    "repetition_penalty": 1.1,
    "transformers_version": "4.31.0",
}


def write_qwen1_folder(folder, config, state, fmt="safetensors", shards=2, tokenizer=True):
    """A Qwen-7B-Chat-format folder; `shards` > 1 writes an index, 1 a single file."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        json.dump(GENERATION_CONFIG, f, indent=2)
    if tokenizer:
        shutil.copy(TINY_TIKTOKEN, os.path.join(folder, "qwen.tiktoken"))
    keys = list(state)
    groups = [keys[i::shards] for i in range(shards)] if shards > 1 else [keys]
    weight_map = {}
    for j, group in enumerate(groups):
        part = {k: state[k].contiguous() for k in group}
        if fmt == "safetensors":
            name = "model.safetensors" if shards == 1 else f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
            save_file(part, os.path.join(folder, name), metadata={"format": "pt"})
        else:
            name = "pytorch_model.bin" if shards == 1 else f"pytorch_model-{j + 1:05d}-of-{shards:05d}.bin"
            torch.save(part, os.path.join(folder, name))
        weight_map.update({k: name for k in group})
    if shards > 1:
        index = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
        total = sum(t.numel() * t.element_size() for t in state.values())
        with open(os.path.join(folder, index), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return folder


# -- a Qwen2-format folder (transformers' own) -------------------------------------------------------------
def write_qwen2_tokenizer(folder, with_image_pad=False):
    """A small byte-level BPE tokenizer with Qwen2's special tokens, built offline."""
    pattern = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501
    corpus = [
        "You are a helpful assistant.",
        "Describe this image in detail.",
        "A red cat sits on the mat.",
        "system user assistant",
    ]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + (
        ["<|vision_start|>", "<|image_pad|>"] if with_image_pad else []
    )
    tok = train_byte_level_tokenizer(corpus * 20, pattern, 360, specials)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "Qwen2Tokenizer",
                "bos_token": None,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "unk_token": None,
                "errors": "replace",
                "model_max_length": 32768,
                "split_special_tokens": False,
            },
            f,
        )
    return tok.get_vocab_size()


def write_qwen2_folder(folder, vocab_size=None, with_image_pad=False, dtype=torch.float32, seed=3, tied=False):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    n_tokens = write_qwen2_tokenizer(folder, with_image_pad)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size or n_tokens + 16,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
        bos_token_id=None,
        eos_token_id=n_tokens - (3 if with_image_pad else 1),
        pad_token_id=n_tokens - (5 if with_image_pad else 3),
    )
    model = Qwen2ForCausalLM(config).to(dtype)
    model.save_pretrained(folder)
    return model, n_tokens


# -- the whole set, as a user has it under the cache root --------------------------------------------
def write_original_files(root, vocab_size=TINY_VOCAB, qwen_over=None, num_query=8, llm_format="safetensors"):
    """eva_vit_g.pth, bert-base-uncased/config.json, blip2 .pth, Qwen7B-chat/ under `root`/ckpt.

    Returns a dict of paths and the states written (original key names)."""
    root = str(root)
    ckpt = os.path.join(root, "ckpt")
    eva = eva_state(seed=0)
    os.makedirs(os.path.join(ckpt, "eva"), exist_ok=True)
    torch.save(eva, os.path.join(ckpt, "eva", "eva_vit_g.pth"))
    write_bert_config(os.path.join(ckpt, "bert-base-uncased"))
    blip2 = blip2_state(num_query=num_query)
    os.makedirs(os.path.join(ckpt, "blip2"), exist_ok=True)
    torch.save({"model": blip2}, os.path.join(ckpt, "blip2", "blip2_pretrained_flant5xxl.pth"))
    config = qwen1_config(vocab_size=vocab_size, **(qwen_over or {}))
    qwen = qwen1_state(config)
    write_qwen1_folder(os.path.join(ckpt, "Qwen7B-chat"), config, qwen, fmt=llm_format, shards=2)
    return {
        "root": root,
        "vit_ckpt": os.path.join(ckpt, "eva", "eva_vit_g.pth"),
        "qformer_config": os.path.join(ckpt, "bert-base-uncased"),
        "pretrained": os.path.join(ckpt, "blip2", "blip2_pretrained_flant5xxl.pth"),
        "llm_model": os.path.join(ckpt, "Qwen7B-chat"),
        "eva": eva,
        "blip2": blip2,
        "qwen": qwen,
        "qwen_config": config,
    }


def cfg_options(files, **over):
    """load_model_and_preprocess overrides pointing at `files`, sized for the tiny files."""
    options = {
        "vit_ckpt": files["vit_ckpt"],
        "qformer_config": files["qformer_config"],
        "pretrained": files["pretrained"],
        "llm_model": files["llm_model"],
        "vit_arch": vit_arch(),
        "image_size": VIT["image"],
        "vit_precision": "fp32",
        "num_query_token": 8,
        "max_txt_len": 200,
    }
    options.update(over)
    return options
