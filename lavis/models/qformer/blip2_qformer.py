"""BLIP-2 Q-former (patch features -> `num_query_token` query embeddings), MiniGPT4Qwen's second stage.

transformers' `Blip2QFormerModel` is exactly the query side of LAVIS's BERT Q-former that
MiniGPT-4 keeps (the text-side embeddings and feed-forward layers are removed there, and
absent here): LayerNorm on the learned queries, BERT layers with cross-attention to the
image every `cross_attention_freq` layers, and query-only feed-forward blocks.
"""

import torch
from torch import nn
from transformers import Blip2QFormerConfig
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel

from lavis.common.schema import QformerArch


def qformer_config(arch, vision_width):
    arch = QformerArch(**arch) if isinstance(arch, dict) else arch
    return Blip2QFormerConfig(
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        intermediate_size=arch.intermediate_size,
        cross_attention_frequency=arch.cross_attention_freq,
        encoder_hidden_size=vision_width,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        hidden_dropout_prob=arch.dropout,
        attention_probs_dropout_prob=arch.dropout,
        max_position_embeddings=512,
    )


def build_qformer(arch, vision_width, num_query_token):
    """Returns (Q-former, query_tokens parameter of shape (1, num_query_token, hidden))."""
    config = qformer_config(arch, vision_width)
    qformer = Blip2QFormerModel(config)
    query_tokens = nn.Parameter(torch.zeros(1, num_query_token, config.hidden_size))
    query_tokens.data.normal_(mean=0.0, std=config.initializer_range)
    return qformer, query_tokens


def query_features(qformer, query_tokens, image_embeds):
    """Q-former outputs for every image: (B, num_query_token, hidden)."""
    queries = query_tokens.expand(image_embeds.shape[0], -1, -1)
    image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    out = qformer(query_embeds=queries, encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
    return out.last_hidden_state[:, : queries.shape[1], :]
