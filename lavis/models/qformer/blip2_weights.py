"""The BLIP-2 side of the original files: the Q-former's BERT config and `blip2_pretrained_*.pth`.

Q-former shape (LAVIS `Blip2Base.init_Qformer`): a BERT from `qformer_config`'s `config.json`
with ``encoder_width`` = the ViT width, ``add_cross_attention``, ``cross_attention_freq`` = 2
(cross-attention in layers 0, 2, 4...) and ``query_length`` = `num_query_token`. Only the
config is read: LAVIS also loads BERT's weights there, but the BLIP-2 checkpoint overwrites
every Q-former weight that MiniGPT4Qwen keeps.

BLIP-2 checkpoint (`{"model": {...}}`): key mapping from LAVIS's `Qformer.bert.*` onto
transformers' `Blip2QFormerModel`:

=================================================  ==============================================
LAVIS                                              ours
=================================================  ==============================================
``Qformer.bert.embeddings.LayerNorm.*``            ``Qformer.layernorm.*``
``...layer.N.attention.self.{query,key,value}.*``  ``...layer.N.attention.attention.{query,key,value}.*``
``...layer.N.attention.output.{dense,LayerNorm}``  same
``...layer.N.crossattention.self.*``               ``...layer.N.crossattention.attention.*``
``...layer.N.crossattention.output.*``             same
``...layer.N.intermediate_query.dense.*``          same
``...layer.N.output_query.{dense,LayerNorm}.*``    same
``query_tokens``, ``ln_vision.*``                  same
=================================================  ==============================================

Keys MiniGPT4Qwen drops or never had (the Q-former's text side: ``embeddings.word_embeddings``,
``position_embeddings``, ``position_ids``, ``layer.N.intermediate.*``, ``layer.N.output.*``,
``Qformer.cls.*``; and BLIP-2's ``t5_proj``, ``vision_proj``, ``text_proj``, ``itm_head``,
``temp``...) are ignored as the original's ``strict=False`` load ignores them, and listed at INFO.
Every Q-former weight, ``query_tokens`` and ``ln_vision`` must be in the file: a missing one
stops with the file and keys named (the original would silently keep BERT's or random values).
As in the original (`Blip2Base.load_state_dict`), a file whose ``query_tokens`` count differs
from `num_query_token` keeps the model's own (randomly initialised) queries, with a warning.
Those rules apply to the whole BLIP-2 file, which loads into the composed model
(`lavis.models.minigpt4qwen.checkpoint_keys.load_blip2_pretrained`); this module holds the
Q-former's part: its shape from BERT's config and its key names.
"""

import json
import os
import re

import torch
from torch import nn
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel

from lavis.common.schema import QformerArch
from lavis.common.utils import resolve_path
from lavis.models.qformer.blip2_qformer import build_qformer, qformer_config

#: LAVIS's fixed cross-attention frequency for BLIP-2's Q-former.
CROSS_ATTENTION_FREQ = 2


# -- Q-former from the BERT config -------------------------------------------------------------
def read_bert_config(path):
    """`config.json` of the BERT folder (or the file itself) as a dict, with the keys checked."""
    file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"BERT config for the Q-former not found: {file} (model.qformer_config)")
    try:
        with open(file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read BERT config {file}: {err}") from None
    need = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    absent = [k for k in need if k not in config]
    if absent:
        raise ValueError(f"BERT config {file} lacks {absent}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError(f"BERT config {file}: hidden_size is not a multiple of num_attention_heads")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"BERT config {file}: position_embedding_type {config['position_embedding_type']!r} is not supported"
        )
    return config


def qformer_config_from_bert(bert, vision_width):
    """transformers' Q-former config for LAVIS's BERT + cross-attention settings."""
    arch = QformerArch(
        hidden_size=bert["hidden_size"],
        num_layers=bert["num_hidden_layers"],
        num_heads=bert["num_attention_heads"],
        intermediate_size=bert["intermediate_size"],
        cross_attention_freq=CROSS_ATTENTION_FREQ,
    )
    config = qformer_config(arch, vision_width)
    config.layer_norm_eps = bert.get("layer_norm_eps", 1e-12)
    config.hidden_act = bert.get("hidden_act", "gelu")
    config.hidden_dropout_prob = bert.get("hidden_dropout_prob", 0.1)
    config.attention_probs_dropout_prob = bert.get("attention_probs_dropout_prob", 0.1)
    config.initializer_range = bert.get("initializer_range", 0.02)
    config.max_position_embeddings = bert.get("max_position_embeddings", 512)
    return config


def build_qformer_for(cfg, vision_width):
    """(Q-former, query_tokens): from `cfg.qformer_arch` when set, else from the BERT config folder."""
    if cfg.qformer_arch is not None:
        return build_qformer(cfg.qformer_arch, vision_width, cfg.num_query_token)
    config = qformer_config_from_bert(read_bert_config(resolve_path(cfg.qformer_config)), vision_width)
    qformer = Blip2QFormerModel(config)
    query_tokens = nn.Parameter(torch.zeros(1, cfg.num_query_token, config.hidden_size))
    query_tokens.data.normal_(mean=0.0, std=config.initializer_range)
    return qformer, query_tokens


# -- key names of the original checkpoints -----------------------------------------------------
_QFORMER_TEXT_SIDE = re.compile(
    r"^Qformer\.(cls\..*|bert\.embeddings\.(word_embeddings|position_embeddings)\..*|bert\.embeddings\.position_ids"
    r"|bert\.encoder\.layer\.\d+\.(intermediate|output)\..*|bert\.pooler\..*)$"
)
_QFORMER_LAYER = re.compile(r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.self\.(.+)$")


def convert_qformer_key(key):
    """A LAVIS `Qformer.bert.*` key -> ours; None for text-side keys MiniGPT4Qwen drops; the key unchanged otherwise."""
    if _QFORMER_TEXT_SIDE.match(key):
        return None
    if key.startswith("Qformer.bert.embeddings.LayerNorm."):
        return "Qformer.layernorm." + key.rsplit(".", 1)[1]
    m = _QFORMER_LAYER.match(key)
    if m:
        return f"Qformer.encoder.layer.{m.group(1)}.{m.group(2)}.attention.{m.group(3)}"
    if key.startswith("Qformer.bert.encoder."):
        return "Qformer." + key[len("Qformer.bert.") :]
    return key


def lavis_qformer_names(keys):
    """Our Q-former names -> the LAVIS names a user finds in the file (for messages)."""
    names = []
    for key in keys:
        if key.startswith("Qformer.layernorm."):
            names.append("Qformer.bert.embeddings.LayerNorm." + key.rsplit(".", 1)[1])
        elif key.startswith("Qformer.encoder."):
            names.append(("Qformer.bert." + key[len("Qformer.") :]).replace("attention.attention.", "attention.self."))
        else:
            names.append(key)
    return names
