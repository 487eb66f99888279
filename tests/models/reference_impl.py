"""Small independent reference implementations (plain torch, float64) of the original parts.

Written from the published architectures and the original key names (the files' own names),
sharing no code with `lavis`: EVA-ViT as LAVIS runs it for BLIP-2, BLIP-2's BERT Q-former
(query side), Qwen-1's decoder, bicubic resizing as `F.interpolate(mode="bicubic",
align_corners=False)` defines it, and greedy decoding.
"""

import math

import torch

D = torch.float64


def f64(t):
    return t.detach().to(D)


def linear(x, w, b=None):
    y = x @ f64(w).T
    return y if b is None else y + f64(b)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * f64(w) + f64(b)


def rms_norm(x, w, eps):
    return x / torch.sqrt((x**2).mean(-1, keepdim=True) + eps) * f64(w)


def gelu(x):  # exact (erf) GELU
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + torch.exp(-x))


def softmax(x):
    e = torch.exp(x - x.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def heads(x, n):
    """(B, L, n*d) -> (B, n, L, d)"""
    b, length, width = x.shape
    return x.reshape(b, length, n, width // n).permute(0, 2, 1, 3)


def merge(x):
    b, n, length, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, length, n * d)


# -- bicubic ------------------------------------------------------------------------------------------
def _cubic_weights(t, a=-0.75):
    """Keys' cubic convolution weights for the 4 taps at offsets -1, 0, 1, 2 from floor(src)."""

    def k(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    return [k(1 + t), k(t), k(1 - t), k(2 - t)]


def _resize_matrix(n_in, n_out):
    """(n_out, n_in) matrix of 1-D bicubic resampling, align_corners=False, borders clamped."""
    m = torch.zeros(n_out, n_in, dtype=D)
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        i0 = math.floor(src)
        for tap, w in zip(range(i0 - 1, i0 + 3), _cubic_weights(src - i0)):
            m[o, min(max(tap, 0), n_in - 1)] += w
    return m


def bicubic_grid(grid, new):
    """(g, g, C) -> (new, new, C)"""
    m = _resize_matrix(grid.shape[0], new)
    return torch.einsum("ai,bj,ijc->abc", m, m, f64(grid))


def resize_pos_embed(pos, new_grid):
    """(1, 1 + g*g, C) -> (1, 1 + new*new, C), the class position unchanged."""
    pos = f64(pos)
    g = int(round((pos.shape[1] - 1) ** 0.5))
    grid = bicubic_grid(pos[0, 1:].reshape(g, g, -1), new_grid)
    return torch.cat([pos[:, :1], grid.reshape(1, new_grid * new_grid, -1)], dim=1)


# -- EVA ViT (LAVIS names) ----------------------------------------------------------------------------
def eva_vit(state, images, depth, num_heads, patch, pos_embed=None, eps=1e-6):
    """Patch features (B, 1 + N, D) of LAVIS's EVA ViT (BLIP-2: `depth` blocks, no final norm)."""
    x = f64(images)
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    patches = x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c * patch * patch)
    weight = state["patch_embed.proj.weight"]
    x = linear(patches, weight.reshape(weight.shape[0], -1), state["patch_embed.proj.bias"])
    cls = f64(state["cls_token"]).expand(b, -1, -1)
    x = torch.cat([cls, x], dim=1) + (f64(state["pos_embed"]) if pos_embed is None else f64(pos_embed))
    for i in range(depth):
        p = f"blocks.{i}."
        hdn = layer_norm(x, state[p + "norm1.weight"], state[p + "norm1.bias"], eps)
        q_bias, v_bias = f64(state[p + "attn.q_bias"]), f64(state[p + "attn.v_bias"])
        qkv = linear(hdn, state[p + "attn.qkv.weight"], torch.cat([q_bias, torch.zeros_like(q_bias), v_bias]))
        q, k, v = (heads(t, num_heads) for t in qkv.chunk(3, dim=-1))
        scale = q.shape[-1] ** -0.5
        attn = softmax((q * scale) @ k.transpose(-1, -2))
        x = x + linear(merge(attn @ v), state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        hdn = layer_norm(x, state[p + "norm2.weight"], state[p + "norm2.bias"], eps)
        hdn = linear(
            gelu(linear(hdn, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
            state[p + "mlp.fc2.weight"],
            state[p + "mlp.fc2.bias"],
        )
        x = x + hdn
    return x


# -- BLIP-2 Q-former (LAVIS names, query side) ---------------------------------------------------
def _bert_attention(state, p, x, kv, num_heads, eps):
    q = heads(linear(x, state[p + "self.query.weight"], state[p + "self.query.bias"]), num_heads)
    k = heads(linear(kv, state[p + "self.key.weight"], state[p + "self.key.bias"]), num_heads)
    v = heads(linear(kv, state[p + "self.value.weight"], state[p + "self.value.bias"]), num_heads)
    attn = softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))
    out = linear(merge(attn @ v), state[p + "output.dense.weight"], state[p + "output.dense.bias"])
    return layer_norm(out + x, state[p + "output.LayerNorm.weight"], state[p + "output.LayerNorm.bias"], eps)


def qformer(state, image_feats, num_layers, num_heads, eps=1e-12, cross_attention_freq=2):
    """Query outputs (B, Q, H) of BLIP-2's Q-former for image features (B, N, Dv)."""
    feats = f64(image_feats)
    queries = f64(state["query_tokens"]).expand(feats.shape[0], -1, -1)
    e = "Qformer.bert.embeddings.LayerNorm."
    x = layer_norm(queries, state[e + "weight"], state[e + "bias"], eps)
    for i in range(num_layers):
        p = f"Qformer.bert.encoder.layer.{i}."
        x = _bert_attention(state, p + "attention.", x, x, num_heads, eps)
        if i % cross_attention_freq == 0:
            x = _bert_attention(state, p + "crossattention.", x, feats, num_heads, eps)
        hdn = gelu(linear(x, state[p + "intermediate_query.dense.weight"], state[p + "intermediate_query.dense.bias"]))
        out = linear(hdn, state[p + "output_query.dense.weight"], state[p + "output_query.dense.bias"])
        x = layer_norm(
            out + x, state[p + "output_query.LayerNorm.weight"], state[p + "output_query.LayerNorm.bias"], eps
        )
    return x


# -- Qwen-1 decoder (hub names) ------------------------------------------------------------------------
def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def qwen1_hidden(state, embeds, config):
    """Final hidden states (after ln_f) of Qwen-1 for input embeddings (B, L, H), causal, no padding."""
    hidden, n_heads = config["hidden_size"], config["num_attention_heads"]
    eps, base = config["layer_norm_epsilon"], config["rotary_emb_base"]
    x = f64(embeds)
    length = x.shape[1]
    hd = hidden // n_heads
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=D) / hd))
    freqs = torch.outer(torch.arange(length, dtype=D), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    for i in range(config["num_hidden_layers"]):
        p = f"transformer.h.{i}."
        h = rms_norm(x, state[p + "ln_1.weight"], eps)
        qkv = linear(h, state[p + "attn.c_attn.weight"], state[p + "attn.c_attn.bias"])
        q, k, v = (heads(t, n_heads) for t in qkv.split(hidden, dim=-1))
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~causal, float("-inf"))
        x = x + linear(merge(softmax(scores) @ v), state[p + "attn.c_proj.weight"])
        h = rms_norm(x, state[p + "ln_2.weight"], eps)
        a1 = linear(h, state[p + "mlp.w1.weight"])
        a2 = linear(h, state[p + "mlp.w2.weight"])
        x = x + linear(a1 * silu(a2), state[p + "mlp.c_proj.weight"])
    return rms_norm(x, state["transformer.ln_f.weight"], eps)


def qwen1_logits(state, config, ids=None, embeds=None):
    if embeds is None:
        embeds = f64(state["transformer.wte.weight"])[torch.as_tensor(ids)].unsqueeze(0)
    return linear(qwen1_hidden(state, embeds, config), state["lm_head.weight"])


def greedy(state, config, embeds, max_new_tokens, stop_ids):
    """Greedy decoding by full recomputation: (new ids, smallest top-1 margin seen)."""
    embeds = f64(embeds)
    wte = f64(state["transformer.wte.weight"])
    out, margin = [], float("inf")
    for _ in range(max_new_tokens):
        logits = qwen1_logits(state, config, embeds=embeds)[0, -1]
        top = torch.topk(logits, 2).values
        margin = min(margin, float(top[0] - top[1]))
        token = int(logits.argmax())
        if token in stop_ids:
            break
        out.append(token)
        embeds = torch.cat([embeds, wte[token].reshape(1, 1, -1)], dim=1)
    return out, margin
