"""EVA-ViT vision tower (image -> patch features), the first stage of MiniGPT4Qwen.

Built on transformers' BLIP-2 vision modules, which are the EVA-ViT-G architecture that
BLIP-2 uses (pre-norm blocks, exact GELU, qkv projection with a q and v bias but no k bias,
class token + absolute position embeddings).  BLIP-2 applies its own `ln_vision` LayerNorm
(eps 1e-5) after the ViT, whereas transformers folds it into `post_layernorm` with the
blocks' eps (1e-6); we drop `post_layernorm` and keep `ln_vision` in the model, as LAVIS does.
"""

import torch
from torch import nn
from transformers import Blip2VisionConfig
from transformers.models.blip_2.modeling_blip_2 import Blip2VisionModel

from lavis.common.schema import VitArch


def vit_config(arch, image_size):
    arch = VitArch(**arch) if isinstance(arch, dict) else arch
    if image_size % arch.patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of the ViT patch size {arch.patch_size}")
    return Blip2VisionConfig(
        hidden_size=arch.embed_dim,
        intermediate_size=int(arch.embed_dim * arch.mlp_ratio),
        num_hidden_layers=arch.depth,
        num_attention_heads=arch.num_heads,
        image_size=image_size,
        patch_size=arch.patch_size,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        attention_dropout=0.0,
        qkv_bias=True,
        initializer_range=0.02,  # transformers' default (1e-10) would start a trainable ViT dead
        attn_implementation="sdpa",
    )


def keep_k_bias_zero(vit):
    """EVA has no k bias; transformers stores one zero-filled qkv bias. Mask its k part's gradient
    so that a trained ViT keeps it at exactly zero (AdamW then leaves it untouched as well).

    The mask hook goes on whatever tensor the layer's forward uses, at its first forward: FSDP2
    (run.strategy=fsdp) computes with an unsharded copy of the parameter, not the one built here."""
    for layer in vit.encoder.layers:
        bias = layer.self_attn.qkv.bias
        dim = bias.shape[0] // 3
        with torch.no_grad():
            bias[dim : 2 * dim].zero_()
        layer.self_attn.qkv.register_forward_pre_hook(_mask_k_bias_grad)


def _mask_k_bias_grad(qkv, args):
    bias = qkv.bias
    if bias.requires_grad and not getattr(bias, "_k_grad_masked", False):
        dim = bias.shape[0] // 3
        mask = torch.ones(bias.shape, dtype=bias.dtype, device=bias.device)
        mask[dim : 2 * dim] = 0
        bias.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))
        bias._k_grad_masked = True


def sincos_position_embedding(dim, grid):
    """(1, 1 + grid * grid, dim): a zero class-token row, then per patch (row, column) sines and
    cosines of each coordinate at `dim / 4` frequencies (MAE's 2D sin-cos embedding)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def axis(coordinate):
        angles = coordinate.flatten()[:, None].double() * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    patches = torch.cat([axis(rows), axis(cols)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), patches]).float()[None]


def build_eva_vit(arch, image_size, drop_path_rate=0.0, use_grad_checkpoint=False):
    """An EVA-style ViT returning (B, 1 + num_patches, embed_dim) features, no final norm."""
    if drop_path_rate:
        raise ValueError(
            "model.drop_path_rate > 0 is not supported (transformers' BLIP-2 vision blocks have no "
            "stochastic depth); the original recipe uses 0"
        )
    vit = Blip2VisionModel(vit_config(arch, image_size))
    if getattr(arch, "pos_embed_init", "normal") == "sincos":  # config.py checked the value
        # Why: with std-0.02 positions, faint next to the patch features, a tiny ViT trained from
        # scratch never learned where a shape is (the moving-shapes proof stayed at chance).
        with torch.no_grad():
            vit.embeddings.position_embedding.copy_(
                sincos_position_embedding(arch.embed_dim, image_size // arch.patch_size)
            )
    vit.post_layernorm = nn.Identity()
    keep_k_bias_zero(vit)
    if use_grad_checkpoint:
        vit.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    vit.num_features = vit.config.hidden_size
    return vit


def vit_features(vit, images):
    """Patch features of `images` (B, 3, H, W)."""
    return vit(pixel_values=images).last_hidden_state
