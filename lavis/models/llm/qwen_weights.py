"""Qwen hub folders -> transformers' `Qwen2ForCausalLM`, built on the meta device and filled shard by shard.

**Qwen-7B-Chat (`config.json` with `model_type: qwen`).** The hub's own code (`modeling_qwen.py`,
`QWenLMHeadModel`) is never run. Its block is Qwen2's (RMSNorm, rotary attention with q/k/v
bias and no output bias, gated SiLU MLP, untied LM head), so the weights are renamed:

=========================================  ===============================================
Qwen-1 (`transformer.*`)                   `Qwen2ForCausalLM`
=========================================  ===============================================
``transformer.wte.weight``                 ``model.embed_tokens.weight``
``transformer.h.N.ln_1.weight``            ``model.layers.N.input_layernorm.weight``
``transformer.h.N.attn.c_attn.{w,b}``      ``...self_attn.{q,k,v}_proj.{w,b}`` (rows split in 3: q, k, v)
``transformer.h.N.attn.c_proj.weight``     ``...self_attn.o_proj.weight``
``transformer.h.N.ln_2.weight``            ``...post_attention_layernorm.weight``
``transformer.h.N.mlp.w2.weight``          ``...mlp.gate_proj.weight`` (Qwen: ``c_proj(w1(x) * silu(w2(x)))``)
``transformer.h.N.mlp.w1.weight``          ``...mlp.up_proj.weight``
``transformer.h.N.mlp.c_proj.weight``      ``...mlp.down_proj.weight``
``transformer.ln_f.weight``                ``model.norm.weight``
``lm_head.weight``                         ``lm_head.weight``
=========================================  ===============================================

Config: ``intermediate_size // 2`` per MLP projection, ``rms_norm_eps = layer_norm_epsilon``,
``rope_theta = rotary_emb_base``, ``max_position_embeddings = seq_length``; ``rotary_pct`` must be 1,
``no_bias`` true, ``kv_channels * num_attention_heads == hidden_size``, embeddings untied.

**Sequence length.** Within ``seq_length`` tokens Qwen-1's dynamic-NTK rotary scaling and logn
attention scaling are exactly 1, and the numbers are Qwen-1's. Past it they would change the
outputs, and this conversion does not implement them: a forward pass (training or generation
step) whose sequence, cached tokens included, is longer than ``seq_length`` is refused with
:class:`SequenceTooLongError` (a cheap length check in a forward pre-hook on the decoder).

**Memory.** The model is created on the meta device (no weight initialisation, no memory), then
each shard's tensors are read, renamed, cast to the chosen dtype and assigned in place of the
meta parameters; nothing holds a second copy. dtype: the ``llm_dtype`` argument if given
(`fp32`/`bf16`/`fp16`), else Qwen's ``bf16``/``fp16``/``fp32`` flags in ``config.json``, else its
``torch_dtype``, else the dtype the weights are stored in.

Every other folder (Qwen1.5/2/2.5/3, Llama, Gemma, Mistral, Phi, GLM...) is transformers' own format
and loads through `hf_llm.py`.

`generation_config.json` is read into ``model.qwen_generation_config`` (a dict: ``chat_format``,
``max_window_size``, sampling settings); it does not become the model's generation defaults,
which stay greedy as the original's demos call it (they pass their own generation config).
"""

import json
import logging
import os
import re

import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
from transformers.initialization import no_init_weights
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from lavis.common.checkpoint import load_file
from lavis.common.dtypes import DTYPES, LONG_NAMES, dtype_named, is_dtype_name
from lavis.models.weight_files import SafetensorsReader, WeightFileError, describe_keys

log = logging.getLogger(__name__)

DTYPE_NAMES = sorted([*DTYPES, *LONG_NAMES])  # what model.llm_dtype accepts (besides "")
WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)


class SequenceTooLongError(ValueError):
    """An input longer than the converted Qwen-1 model reproduces (its `seq_length`)."""


# -- key names -----------------------------------------------------------------------------
_TOP = {
    "transformer.wte.weight": "model.embed_tokens.weight",
    "transformer.ln_f.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
_LAYER_MAP = {
    "ln_1.weight": "input_layernorm.weight",
    "attn.c_proj.weight": "self_attn.o_proj.weight",
    "ln_2.weight": "post_attention_layernorm.weight",
    "mlp.w1.weight": "mlp.up_proj.weight",
    "mlp.w2.weight": "mlp.gate_proj.weight",
    "mlp.c_proj.weight": "mlp.down_proj.weight",
}
_SPLIT = {"attn.c_attn.weight": "weight", "attn.c_attn.bias": "bias"}
_LAYER_RE = re.compile(r"^transformer\.h\.(\d+)\.(.+)$")
# Buffers of the hub code (none of them persistent in its latest revision): never weights.
_IGNORABLE_RE = re.compile(r"(^|\.)(rotary_emb\.inv_freq|attn\.masked_bias|attn\.bias|attn\.logn_tensor)$")


def qwen1_ignorable(key):
    return bool(_IGNORABLE_RE.search(key))


def qwen1_target_names(key):
    """Our names for a Qwen-1 key (three for `c_attn`), or None if it is not a Qwen-1 weight."""
    if key in _TOP:
        return [_TOP[key]]
    m = _LAYER_RE.match(key)
    if not m:
        return None
    i, rest = m.groups()
    if rest in _LAYER_MAP:
        return [f"model.layers.{i}.{_LAYER_MAP[rest]}"]
    if rest in _SPLIT:
        return [f"model.layers.{i}.self_attn.{p}_proj.{_SPLIT[rest]}" for p in "qkv"]
    return None


def convert_qwen1_key(key, tensor):
    """[(our name, tensor)] for one Qwen-1 tensor (c_attn split into q, k, v), or None if unknown."""
    names = qwen1_target_names(key)
    if names is None:
        return None
    if len(names) == 1:
        return [(names[0], tensor)]
    if tensor.shape[0] % 3:
        raise WeightFileError(f"{key}: {tuple(tensor.shape)} cannot be split into q, k, v")
    return list(zip(names, tensor.chunk(3, dim=0)))


def qwen1_keys(num_layers):
    keys = list(_TOP)
    for i in range(num_layers):
        keys += [f"transformer.h.{i}.{k}" for k in (*_LAYER_MAP, *_SPLIT)]
    return keys


# -- config -----------------------------------------------------------------------------------
def read_json(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {what} {path}: {err}") from None


def qwen1_to_qwen2_config(qcfg, source="config.json", special_id=None):
    """A Qwen2Config computing exactly what Qwen-1 computes within `seq_length` tokens."""

    def need(key, *alts):
        for k in (key, *alts):
            if k in qcfg:
                return qcfg[k]
        raise ValueError(f"{source}: Qwen config lacks {key!r}")

    hidden, heads = need("hidden_size"), need("num_attention_heads")
    problems = []
    if float(qcfg.get("rotary_pct", 1.0)) != 1.0:
        problems.append(f"rotary_pct {qcfg['rotary_pct']} (partial rotary) is not supported")
    if not qcfg.get("no_bias", True):
        problems.append("no_bias: false (biases on c_proj/MLP) is not supported")
    if hidden % heads or qcfg.get("kv_channels", hidden // heads) * heads != hidden:
        problems.append(f"kv_channels {qcfg.get('kv_channels')} x {heads} heads != hidden_size {hidden}")
    if qcfg.get("tie_word_embeddings", False):
        problems.append("tie_word_embeddings: true is not supported")
    if qcfg.get("pos_emb", "rotary") != "rotary":
        problems.append(f"pos_emb {qcfg['pos_emb']!r} is not supported")
    intermediate = need("intermediate_size", "ffn_hidden_size")
    if intermediate % 2:
        problems.append(f"intermediate_size {intermediate} is odd (Qwen uses intermediate_size // 2 per projection)")
    if problems:
        raise ValueError(f"{source}: cannot convert this Qwen model: " + "; ".join(problems))
    seq_length = int(qcfg.get("seq_length", qcfg.get("max_position_embeddings", 8192)))
    return Qwen2Config(
        vocab_size=need("vocab_size", "padded_vocab_size"),
        hidden_size=hidden,
        intermediate_size=intermediate // 2,
        num_hidden_layers=need("num_hidden_layers", "n_layer"),
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=seq_length,
        rope_theta=float(qcfg.get("rotary_emb_base", 10000)),
        rms_norm_eps=float(qcfg.get("layer_norm_epsilon", 1e-6)),
        attention_dropout=float(qcfg.get("attn_dropout_prob", qcfg.get("attn_pdrop", 0.0))),
        initializer_range=float(qcfg.get("initializer_range", 0.02)),
        tie_word_embeddings=False,
        use_sliding_window=False,
        hidden_act="silu",
        bos_token_id=special_id,
        eos_token_id=special_id,
        pad_token_id=None,  # Qwen-1's embedding has no padding_idx (its <|endoftext|> row trains like any other)
        attn_implementation="sdpa",
    )


def resolve_dtype(qcfg, requested, weights_dtype, source="config.json"):
    """llm_dtype if given; else Qwen's bf16/fp16/fp32 flags; else torch_dtype; else the weights' dtype."""
    if requested:
        if not is_dtype_name(requested):
            raise ValueError(f"model.llm_dtype must be one of {DTYPE_NAMES} or empty, got {requested!r}")
        return dtype_named(requested)
    flags = [name for name in ("bf16", "fp16", "fp32") if qcfg.get(name) is True]
    if len(flags) > 1:
        raise ValueError(f"{source}: only one of bf16/fp16/fp32 may be true, got {flags}")
    if flags:
        return dtype_named(flags[0])
    named = qcfg.get("torch_dtype") or qcfg.get("dtype")
    if is_dtype_name(named):
        return dtype_named(named)
    return weights_dtype if weights_dtype is not None and weights_dtype.is_floating_point else torch.float32


# -- weight files -------------------------------------------------------------------------------
def find_weight_shards(folder):
    """(index file or None, [(shard path, keys the index puts there or None)])."""
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if not name.endswith(".index.json"):
            return None, [(path, None)]
        index = read_json(path, "weight index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise WeightFileError(f"{path}: no 'weight_map' in the index")
        shards = {}
        for key, shard in weight_map.items():
            shards.setdefault(shard, []).append(key)
        absent = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
        if absent:
            raise WeightFileError(f"{path} names shard file(s) not in {folder}: {describe_keys(absent)}")
        return path, [(os.path.join(folder, s), keys) for s, keys in shards.items()]
    raise WeightFileError(f"no weights in {folder}: expected one of {', '.join(WEIGHT_FILES)}")


def _expected_file_shapes(model, keys):
    own = {n: tuple(p.shape) for n, p in model.named_parameters()}
    shapes = {}
    for key in keys:
        targets = [own[n] for n in qwen1_target_names(key)]
        shapes[key] = targets[0] if len(targets) == 1 else (sum(t[0] for t in targets), *targets[0][1:])
    return shapes


class _Shard:
    """Uniform access to one shard: its keys, their shapes/dtypes, and one tensor at a time."""

    def __init__(self, path):
        self.path = path
        if path.endswith(".safetensors"):
            self.reader = SafetensorsReader(path)
            self.state = None
        else:
            self.reader = None
            state = load_file(path, mmap=True)
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise WeightFileError(f"{path} is not a flat state dict of tensors")
            self.state = state

    def keys(self):
        return self.reader.keys() if self.reader else list(self.state)

    def shape(self, key):
        return tuple(self.reader.shape(key) if self.reader else self.state[key].shape)

    def dtype(self, key):
        return self.reader.dtype(key) if self.reader else self.state[key].dtype

    def read(self, key):
        return self.reader.read(key) if self.reader else self.state.pop(key)

    def __enter__(self):
        if self.reader:
            self.reader.__enter__()
        return self

    def __exit__(self, *exc):
        if self.reader:
            self.reader.close()
        self.state = None


def _assign(model, name, tensor):
    path, _, attr = name.rpartition(".")
    module = model.get_submodule(path)
    old = getattr(module, attr)
    setattr(module, attr, torch.nn.Parameter(tensor, requires_grad=old.requires_grad))


def build_meta_qwen2(config, dtype):
    """Qwen2ForCausalLM with every parameter on the meta device and no weight initialisation."""
    config.dtype = dtype
    with torch.device("meta"), no_init_weights():
        return Qwen2ForCausalLM(config)


def load_qwen1_llm(folder, dtype=None, special_id=None, min_vocab=None):
    """Load a Qwen-1 (`model_type: qwen`) hub folder into a `Qwen2ForCausalLM` (see module docstring).

    `dtype`: "", None or one of fp32/bf16/fp16; `special_id`: the `<|endoftext|>` id (bos/eos/pad);
    `min_vocab`: the tokenizer's size, which the embedding must cover.
    """
    folder = os.fspath(folder)
    config_path = os.path.join(folder, "config.json")
    qcfg = read_json(config_path, "Qwen config")
    if qcfg.get("model_type") != "qwen":
        raise ValueError(f"{config_path}: model_type {qcfg.get('model_type')!r}, expected 'qwen'")
    config = qwen1_to_qwen2_config(qcfg, config_path, special_id)
    if min_vocab is not None and config.vocab_size < min_vocab:
        raise ValueError(
            f"{config_path}: vocab_size {config.vocab_size} is smaller than the tokenizer's {min_vocab} tokens"
        )
    index, shards = find_weight_shards(folder)
    expected = qwen1_keys(config.num_hidden_layers)
    if index is not None:
        listed = {k for _, keys in shards for k in keys}
        missing = [k for k in expected if k not in listed]
        if missing:
            raise WeightFileError(
                f"{index} lacks {len(missing)} weight(s) of this {config.num_hidden_layers}-layer model: "
                f"{describe_keys(missing)}"
            )

    model = None
    loaded, ignored, unexpected = set(), [], []
    for path, listed_keys in shards:
        with _Shard(path) as shard:
            keys = shard.keys()
            if listed_keys is not None:
                absent = sorted(set(listed_keys) - set(keys))
                if absent:
                    raise WeightFileError(
                        f"{path} lacks tensors its index {index} puts there (truncated or mismatched?): "
                        f"{describe_keys(absent)}"
                    )
            if model is None:
                probe = "transformer.wte.weight" if "transformer.wte.weight" in keys else (keys[0] if keys else None)
                dtype = resolve_dtype(qcfg, dtype, shard.dtype(probe) if probe else None, config_path)
                model = build_meta_qwen2(config, dtype)
                shapes = _expected_file_shapes(model, expected)
            wanted = []
            for key in keys:
                if key in shapes:
                    wanted.append(key)
                elif qwen1_ignorable(key):
                    ignored.append(key)
                else:
                    unexpected.append(key)
            mismatched = [
                f"{k}: file {shard.shape(k)} vs config {shapes[k]}" for k in wanted if shard.shape(k) != shapes[k]
            ]
            if mismatched:
                raise WeightFileError(
                    f"{path} does not fit {config_path}: shape mismatches {describe_keys(mismatched, 8)}"
                )
            for key in wanted:
                tensor = shard.read(key)
                for name, part in convert_qwen1_key(key, tensor):
                    part = part.to(dtype) if part.is_floating_point() and part.dtype != dtype else part
                    if (
                        part.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr()
                        and len(qwen1_target_names(key)) > 1
                    ):
                        part = part.clone()  # q/k/v get storages of their own
                    _assign(model, name, part)
                loaded.add(key)
                del tensor
    missing = [k for k in expected if k not in loaded]
    if missing:
        raise WeightFileError(f"{folder}: the weight files lack {len(missing)} tensor(s): {describe_keys(missing)}")
    if unexpected:
        log.warning(
            "%s: %d tensors that are not Qwen weights were ignored: %s",
            folder,
            len(unexpected),
            describe_keys(unexpected),
        )
    if ignored:
        log.info("%s: buffers ignored (not weights): %s", folder, describe_keys(ignored))
    model.model.rotary_emb = Qwen2RotaryEmbedding(config=model.config)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise WeightFileError(f"{folder}: nothing loaded for {describe_keys(left)}")
    model.qwen_config = qcfg
    model.qwen_generation_config = read_generation_config(folder)
    model.generation_config = GenerationConfig(
        bos_token_id=special_id, eos_token_id=special_id, pad_token_id=special_id
    )
    install_length_guard(model, config.max_position_embeddings, f"Qwen model {folder}")
    model.eval()
    return model


def read_generation_config(folder):
    path = os.path.join(folder, "generation_config.json")
    if not os.path.isfile(path):
        return {}
    gen = read_json(path, "generation config")
    if gen.get("chat_format", "chatml") != "chatml":
        log.warning(
            "%s: chat_format is %r, not 'chatml': this looks like a base model, not a chat model",
            path,
            gen["chat_format"],
        )
    return gen


# -- sequence length guard ------------------------------------------------------------------
class _LengthGuard:
    def __init__(self, limit, what):
        self.limit = limit
        self.what = what

    def __call__(self, module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        if x is None:
            return None
        total = x.shape[1]
        for value in kwargs.values():  # the KV cache (`cache` / `past_key_values`, by transformers version)
            if hasattr(value, "get_seq_length"):
                total += int(value.get_seq_length())
                break
        if total > self.limit:
            raise SequenceTooLongError(
                f"{self.what}: a sequence of {total} tokens is longer than its seq_length {self.limit}. "
                "Past seq_length, Qwen-7B's dynamic NTK and logn attention scaling change its outputs, which "
                "this implementation does not reproduce: shorten the prompt (or max_new_tokens / max_txt_len)."
            )
        return None


def install_length_guard(model, limit, what):
    """Refuse forward passes of the decoder body longer than `limit` tokens (cache included)."""
    model.model.register_forward_pre_hook(_LengthGuard(limit, what), with_kwargs=True)
    model.max_sequence_length = limit
