"""EVA-ViT-G weights as LAVIS stores them (`eva_vit_g.pth`) -> our `Blip2VisionModel` tower.

What LAVIS does with the file, and we do the same:

* it builds the BLIP-2 ViT with `depth` blocks (39 for EVA-ViT-G; the file has 40) and no
  final norm, and loads the plain state dict with ``strict=False``: the file's extra blocks
  and any head/norm keys are ignored (we list them at INFO);
* ``pos_embed`` is resized bicubically (align_corners=False, cls position untouched) when
  ``image_size`` gives another patch grid than the file's (LAVIS ``interpolate_pos_embed``);
* with ``vit_precision: fp16`` the weights and biases of Linear and Conv layers are cast to
  fp16 after loading; LayerNorms, class token and position embeddings stay fp32.

Key mapping (LAVIS -> ours): ``cls_token`` -> ``embeddings.class_embedding``, ``pos_embed`` ->
``embeddings.position_embedding``, ``patch_embed.proj`` -> ``embeddings.patch_embedding``,
``blocks.N.norm1/norm2`` -> ``encoder.layers.N.layer_norm1/layer_norm2``, ``blocks.N.attn.qkv.weight``
-> ``...self_attn.qkv.weight``, ``blocks.N.attn.q_bias`` + ``v_bias`` -> ``...self_attn.qkv.bias``
= cat(q_bias, zeros, v_bias) (EVA has no k bias), ``blocks.N.attn.proj`` -> ``...self_attn.projection``,
``blocks.N.mlp.fc1/fc2`` -> ``...mlp.fc1/fc2``.

A missing key or a tensor of another shape than the model's (e.g. a `vit_arch` that does not
match the file) stops with a message naming the file and the keys.
"""

import logging
import re

import torch
import torch.nn.functional as F
from torch import nn
from transformers.initialization import no_init_weights

from lavis.common.schema import VIT_MODELS, VIT_PRECISIONS, VitArch
from lavis.common.utils import resolve_path
from lavis.models.vision.eva_vit import build_eva_vit, keep_k_bias_zero
from lavis.models.weight_files import WeightFileError, describe_keys, load_state_file, unwrap_model_state

log = logging.getLogger(__name__)

_BLOCK_MAP = {
    "norm1.weight": "layer_norm1.weight",
    "norm1.bias": "layer_norm1.bias",
    "attn.qkv.weight": "self_attn.qkv.weight",
    "attn.proj.weight": "self_attn.projection.weight",
    "attn.proj.bias": "self_attn.projection.bias",
    "norm2.weight": "layer_norm2.weight",
    "norm2.bias": "layer_norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_TOP_MAP = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
}
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def lavis_vit_keys(depth):
    """The keys LAVIS's BLIP-2 EVA ViT with `depth` blocks loads from the file."""
    keys = list(_TOP_MAP)
    for i in range(depth):
        keys += [f"blocks.{i}.{k}" for k in _BLOCK_MAP] + [f"blocks.{i}.attn.q_bias", f"blocks.{i}.attn.v_bias"]
    return keys


def lavis_name(key):
    """Our ViT key -> the LAVIS key(s) it comes from (for messages)."""
    for theirs, ours in _TOP_MAP.items():
        if key == ours:
            return theirs
    m = re.match(r"^encoder\.layers\.(\d+)\.(.+)$", key)
    if m:
        if m.group(2) == "self_attn.qkv.bias":
            return f"blocks.{m.group(1)}.attn.q_bias/v_bias"
        for theirs, ours in _BLOCK_MAP.items():
            if m.group(2) == ours:
                return f"blocks.{m.group(1)}.{theirs}"
    return key


def convert_lavis_vit_state(state, depth=None, require_all=True):
    """LAVIS EVA-ViT keys -> ours. Returns (converted, ignored keys, missing LAVIS keys).

    Blocks at index >= `depth` are ignored, as are keys LAVIS's ViT does not have (final
    norm, head, relative position tables...). A block's `q_bias` and `v_bias` become one qkv
    bias, so one without the other is missing; with `require_all`, so is every key a ViT of
    `depth` blocks loads that `state` lacks.
    """
    out, ignored, missing = {}, [], []
    biases = {}
    for key, value in state.items():
        if key in _TOP_MAP:
            out[_TOP_MAP[key]] = value
            continue
        m = _BLOCK_RE.match(key)
        if m and (depth is None or int(m.group(1)) < depth):
            i, rest = int(m.group(1)), m.group(2)
            if rest in _BLOCK_MAP:
                out[f"encoder.layers.{i}.{_BLOCK_MAP[rest]}"] = value
                continue
            if rest in ("attn.q_bias", "attn.v_bias"):
                biases.setdefault(i, {})[rest[5]] = value
                continue
        ignored.append(key)
    for i, qv in sorted(biases.items()):
        if set(qv) != {"q", "v"}:
            missing.append(f"blocks.{i}.attn.{'v' if 'q' in qv else 'q'}_bias")
            continue
        q, v = qv["q"], qv["v"]
        out[f"encoder.layers.{i}.self_attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    if require_all and depth is not None:
        missing += [k for k in lavis_vit_keys(depth) if k not in state]
    return out, ignored, sorted(set(missing))


def interpolate_pos_embed(pos_embed, num_patches, num_extra_tokens=1):
    """LAVIS `interpolate_pos_embed`: (1, extra + g*g, D) -> (1, extra + n, D), bicubic on the grid.

    Returned in fp32 when resized (LAVIS computes in fp32); unchanged when the grid matches.
    """
    old_grid = int((pos_embed.shape[-2] - num_extra_tokens) ** 0.5)
    new_grid = int(num_patches**0.5)
    if old_grid == new_grid:
        return pos_embed
    log.info("position embeddings interpolated from %dx%d to %dx%d", old_grid, old_grid, new_grid, new_grid)
    pos = pos_embed.float()
    dim = pos.shape[-1]
    extra, grid = pos[:, :num_extra_tokens], pos[:, num_extra_tokens:]
    grid = grid.reshape(-1, old_grid, old_grid, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat([extra, grid], dim=1)


def _target_dtype(vit, key, precision):
    module = vit.get_submodule(key.rsplit(".", 1)[0])
    if precision == "fp16" and isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        return torch.float16
    return torch.float32


def apply_vit_precision(vit, precision):
    """LAVIS `convert_weights_to_fp16` for `fp16` (Linear/Conv weights and biases); `fp32`: nothing."""
    if precision not in VIT_PRECISIONS:
        raise ValueError(f"model.vit_precision must be one of {VIT_PRECISIONS}, got {precision!r}")
    if precision == "fp16":
        for module in vit.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                module.weight.data = module.weight.data.half()
                if module.bias is not None:
                    module.bias.data = module.bias.data.half()
    return vit


def assign_tensor(root, key, tensor):
    """Replace parameter/buffer `key` of `root` by `tensor` (keeping requires_grad)."""
    path, _, name = key.rpartition(".")
    module = root.get_submodule(path) if path else root
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(tensor, requires_grad=old.requires_grad))
    else:
        module._buffers[name] = tensor


def load_eva_vit(path, arch=None, image_size=224, precision="fp16", drop_path_rate=0.0, use_grad_checkpoint=False):
    """Build the ViT on the meta device and fill it from LAVIS's `eva_vit_g.pth` at `path`."""
    if precision not in VIT_PRECISIONS:
        raise ValueError(f"model.vit_precision must be one of {VIT_PRECISIONS}, got {precision!r}")
    arch = VitArch(**arch) if isinstance(arch, dict) else (arch or VitArch())
    with torch.device("meta"), no_init_weights():
        vit = build_eva_vit(arch, image_size, drop_path_rate, use_grad_checkpoint)
    state = unwrap_model_state(load_state_file(path), path)
    converted, ignored, missing = convert_lavis_vit_state(state, arch.depth)
    if missing:
        raise WeightFileError(
            f"{path} does not fit an EVA ViT of depth {arch.depth}: missing keys {describe_keys(missing)}"
            " (is it LAVIS's eva_vit_g.pth? is model.vit_arch right?)"
        )
    if ignored:
        log.info("%s: %d keys ignored, as LAVIS ignores them: %s", path, len(ignored), describe_keys(ignored, 20))
    pos_key = "embeddings.position_embedding"
    converted[pos_key] = interpolate_pos_embed(converted[pos_key], vit.embeddings.num_patches)
    own = dict(vit.named_parameters())
    mismatched = [
        f"{lavis_name(k)}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if tuple(v.shape) != tuple(own[k].shape)
    ]
    if mismatched:
        raise WeightFileError(
            f"{path} does not fit model.vit_arch {arch} / image_size {image_size}: shape mismatches "
            f"{describe_keys(mismatched, 20)}"
        )
    for key, value in converted.items():
        assign_tensor(vit, key, value.to(_target_dtype(vit, key, precision)))
    del state, converted
    left = [n for n, p in [*vit.named_parameters(), *vit.named_buffers()] if p.is_meta]
    if left:
        raise WeightFileError(f"{path}: nothing loaded for {describe_keys(left)}")
    keep_k_bias_zero(vit)  # the gradient mask belongs to the new qkv bias parameters
    return vit


def build_vision_encoder(cfg):
    """The model's ViT: from `cfg.vit_ckpt` (LAVIS format) when set, else randomly initialised."""
    if cfg.vit_arch is None and cfg.vit_model not in VIT_MODELS:
        valid = sorted(VIT_MODELS)
        raise ValueError(f"model.vit_model {cfg.vit_model!r} is not one of {valid} (or give model.vit_arch)")
    arch = cfg.vit_arch or VIT_MODELS[cfg.vit_model]
    if cfg.vit_ckpt:
        return load_eva_vit(
            resolve_path(cfg.vit_ckpt),
            arch,
            cfg.image_size,
            cfg.vit_precision,
            cfg.drop_path_rate,
            cfg.use_grad_checkpoint,
        )
    vit = build_eva_vit(arch, cfg.image_size, cfg.drop_path_rate, cfg.use_grad_checkpoint)
    return apply_vit_precision(vit, cfg.vit_precision)
