"""Will a training config fit on N GPUs?  `python -m lavis.tools.memory_plan --cfg-path CFG --gpus N --gpu-mem-gb G`.

    python -m lavis.tools.memory_plan --cfg-path lavis/projects/sft/qwen7b_chat_llava665k.yaml \\
        --gpus 8 --gpu-mem-gb 80 [--images-per-sample 1] [--options run.fsdp_cpu_offload=True ...]

A tool at the top of the flow: it reads the run config as `train.py` does (`lavis.common.config`),
builds the config's model on torch's meta device (shapes and dtypes, no memory, no weight file
read) and prints, per rank, what training it with `run.strategy` over N processes holds, and
whether that fits in G GiB (what a GPU sold as "G GB" has).  The ViT and Q-former are built
from their shapes (`vit_arch` / `vit_model`, `qformer_arch`, or the BERT `config.json` when it
is on disk, else BERT-base as LAVIS uses); the LLM from `llm_arch` (its tokenizer gives the
vocabulary), else from `<llm_model>/config.json`; without that file, for `qwen7b_chat`, from
Qwen-7B-Chat's published config.json (QWEN7B_CHAT_CONFIG, converted as `qwen_weights.py`
converts it: 7.72 B parameters in bf16).  Freezing and LoRA are the model's own
(`MiniGPT4Qwen._apply_freeze_flags`, `_with_lora`), the FSDP units the strategy's.

Per rank (N = --gpus; B = run.batch_size_train; T = model.max_txt_len, the longest sequence,
image slots included; V = LLM vocabulary; h, i, L = its hidden size, MLP width, layers; a =
bytes of the compute dtype: 2 under run.amp on CUDA, else the LLM's own dtype):

* parameters: every tensor in its own dtype; `fsdp`: each is split on dim 0, a rank holds
  ceil(d0 / N) rows (FSDP2's padding).  `ddp` and one process: all of it.
* gradients: trainable tensors in their dtype, sharded like them under fsdp; DDP adds its
  gradient buckets, a second copy (strategies.py builds DDP with gradient_as_bucket_view off).
* optimizer states: AdamW's exp_avg and exp_avg_sq, `zeros_like` each trainable parameter (so
  in its dtype: bf16 for Qwen-7B-Chat's weights, fp32 for llm_proj and LoRA), sharded under
  fsdp; with run.fsdp_cpu_offload the parameter and gradient shards and these live in host
  memory, not on the GPU.
* fsdp, gathered: the root unit (embeddings, LM head, norm, projection, frozen image side) is
  all-gathered from its forward to the end of backward; two layer units at a time (the one
  running and the one prefetched), in the compute dtype.  Unsharded gradients: the root's
  trainable ones for the whole backward, one unit's, and the reduce-scatter buffer (reduce
  dtype: fp32 under run.amp).  With run.accum_grad_iters > 1 every micro-batch reduce-scatters
  into the sharded gradients (lavis/runners/strategies.py): accumulating keeps only those 1/N
  gradients alive through the next micro-batch's forward, as DDP keeps its full ones.
* activations of the LLM, per token and decoder layer (what autograd saves, Qwen2 / Llama
  block, fused attention without the T x T matrix): each RMSNorm its fp32 input (4h bytes)
  and, if its weight trains, its normalised output (a*h); attention q, k, v and its output,
  which is o_proj's input (a*(2h + 2kv)); the MLP's SiLU input and the product's two factors
  (3a*i); the shared input of q/k/v, of gate/up (a*h each) and down's (a*i) when a weight there
  trains; a LoRA adapter computing in another dtype (peft keeps them fp32) or behind dropout
  keeps its own copy of its input (+ the dropout mask), and its rank-r output.  Fully trained
  this is 8h + a*(6h + 2kv + 4i); tests/tools/test_memory_plan.py checks the formula against
  the tensors autograd really saves for one layer (full, LoRA, frozen; fp32 and bf16).  Times L
  and B*T tokens; with model.use_grad_checkpoint each layer keeps only its input (a*h), and one
  layer's full set is recomputed in backward.  Outside the layers: the final norm, the LM head's
  input at the labelled positions, the attention mask (B*T*T bytes).
* activations of the image side: nothing kept when it is frozen (it runs under no_grad; one
  layer's working set while it runs); when it trains, (8h + 2i) per ViT token and layer,
  ~(12h + 2i) per query and Q-former layer plus each cross-attention's keys and values.
* logits: every position labelled (the worst case), B*(T-1) x V, at the loss 3 fp32 tensors
  (log-probabilities kept for backward, their gradient, the logits' gradient): 12 bytes each.
* backward scratch: the gradients of one layer's intermediate tensors, a*(2i + 2h) per token.
* optimizer step temporaries: 2 x the largest parameter (single-tensor AdamW: FSDP's DTensor
  parameters, CPU), or one moment-sized copy (foreach AdamW: DDP on CUDA).
* peak = what stays (parameters, optimizer states, DDP buckets, accumulated gradients) + the
  larger of two moments: the start of backward (gathered units, every activation, and the
  logits or, right after them, the LM head's and the last layer's gradients + scratch), and the
  end of backward / the step (every gradient, gathered units, the root's or a unit's unsharded
  gradients, the first layer's activations + scratch; or gradients + step temporaries).
* fits: 1.1 x max(peak, start) + 1.5 GiB <= G, the 1.5 GiB for the CUDA context and the NCCL
  and cuBLAS workspaces, the 10% for the caching allocator's fragmentation; start: the whole
  model in its dtypes, which the runner puts on the device before FSDP shards it.

Parameter, gradient, optimizer and FSDP buffer sizes are exact counts of the built shapes; the
activation, logit, scratch and temporary terms are estimates (they follow the code's operations,
not a trace), the two moments a model of when things coexist, and the margin a rule of thumb.
tests/tools/test_memory_plan.py compares the estimate with peaks measured on CPU (2 gloo ranks,
`benchmarks/memory_plan_check.py`): it came out 5-10% below them there, the rest being memory
the plan does not model (allocator slack, the interpreter's own growth).  A user error prints
one `error: ...` line.
"""

import argparse
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass, field

import torch
from omegaconf import OmegaConf
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.initialization import no_init_weights

import lavis  # noqa: F401  (registers every component)
from lavis.common.config import Config
from lavis.common.dtypes import autocast_dtype_named, dtype_named
from lavis.common.errors import UserError, report
from lavis.common.schema import QformerArch
from lavis.common.utils import resolve_path
from lavis.models.llm.hf_llm import build_llm
from lavis.models.llm.llm_tokenizer import load_llm_tokenizer
from lavis.models.llm.qwen_weights import build_meta_qwen2, qwen1_to_qwen2_config, read_json, resolve_dtype
from lavis.models.minigpt4qwen.model import MiniGPT4Qwen
from lavis.models.qformer.blip2_weights import build_qformer_for
from lavis.models.vision.eva_vit_weights import build_vision_encoder
from lavis.runners.strategies import Sharded

GIB = 1024**3
CONTEXT_GIB, FRAGMENTATION = 1.5, 0.10  # the margin `fits` adds to the estimate

#: Qwen-7B-Chat's config.json as published (the numbers `qwen1_to_qwen2_config` reads): the
#: LLM's shape when the `qwen7b_chat` folder is not on disk
QWEN7B_CHAT_CONFIG = {
    "model_type": "qwen",
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "kv_channels": 128,
    "num_hidden_layers": 32,
    "intermediate_size": 22016,  # both MLP projections together: 11008 each
    "vocab_size": 151936,
    "seq_length": 8192,
    "rotary_emb_base": 10000,
    "rotary_pct": 1.0,
    "layer_norm_epsilon": 1e-6,
    "no_bias": True,
    "tie_word_embeddings": False,
    "bf16": False,
    "fp16": False,
    "fp32": False,
    "torch_dtype": "bfloat16",
}


class PlanError(UserError, ValueError):
    """A command-line value or config the plan cannot use, worded for the user."""


# -- the model's shapes -------------------------------------------------------------------
def _meta_llm(model_cfg):
    """(LLM on the meta device in its dtype, where its shape came from)."""
    if model_cfg.llm_arch is not None:
        path = resolve_path(model_cfg.llm_tokenizer or model_cfg.llm_model)
        try:
            tokenizer = load_llm_tokenizer(path, model_cfg.max_txt_len)
        except (OSError, ValueError) as err:
            raise PlanError(f"model.llm_arch needs its tokenizer for the vocabulary size: {err}") from None
        with torch.device("meta"), no_init_weights():
            llm = build_llm(model_cfg.llm_arch, len(tokenizer), tokenizer.eod_id)
        return llm, "model.llm_arch (fp32, as built from scratch)"
    folder = resolve_path(model_cfg.llm_model)
    config_path = os.path.join(folder, "config.json")
    requested = model_cfg.llm_dtype or None
    if os.path.isfile(config_path):
        qcfg, source = read_json(config_path, "LLM config"), config_path
    elif model_cfg.model_type == "qwen7b_chat":
        qcfg, source = QWEN7B_CHAT_CONFIG, f"Qwen-7B-Chat's published config.json ({config_path} is not on disk)"
    else:
        raise PlanError(
            f"model.llm_model: {config_path} is not on disk; the plan reads only that file of the LLM "
            "(its shape is built in only for model_type qwen7b_chat)"
        )
    if qcfg.get("model_type") == "qwen":
        dtype = resolve_dtype(qcfg, requested, None, source)
        llm = build_meta_qwen2(qwen1_to_qwen2_config(qcfg, source), dtype)
    else:
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        named = requested or getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        dtype = named if isinstance(named, torch.dtype) else dtype_named(str(named)) if named else torch.float32
        with torch.device("meta"), no_init_weights():
            llm = AutoModelForCausalLM.from_config(config)
    return llm.to(dtype), source


def _qformer_cfg(model_cfg):
    """The model config with a `qformer_arch`: its own, the BERT config's when on disk, else BERT-base."""
    if model_cfg.qformer_arch is not None:
        return model_cfg, "model.qformer_arch"
    path = resolve_path(model_cfg.qformer_config)
    if os.path.exists(os.path.join(path, "config.json") if os.path.isdir(path) else path):
        return model_cfg, path
    cfg = OmegaConf.merge(model_cfg, {"qformer_arch": OmegaConf.structured(QformerArch())})
    return cfg, f"BERT-base, as LAVIS's bert-base-uncased ({path} is not on disk)"


def meta_model(model_cfg):
    """(the config's MiniGPT4Qwen on the meta device, {part: where its shape came from}).

    The parts are built as the model builds them, from shapes only (`vit_ckpt` unset: the ViT
    in `vit_precision`, nothing read), and set on an instance under the model's own attribute
    names, so that its freezing and LoRA rules and the FSDP units apply unchanged."""
    vit_cfg = OmegaConf.merge(model_cfg, {"vit_ckpt": ""})
    qformer_cfg, qformer_source = _qformer_cfg(model_cfg)
    with torch.device("meta"), no_init_weights():
        vit = build_vision_encoder(vit_cfg)
        ln_vision = nn.LayerNorm(vit.num_features)
        qformer, query_tokens = build_qformer_for(qformer_cfg, vit.num_features)
    llm, llm_source = _meta_llm(model_cfg)
    model = MiniGPT4Qwen.__new__(MiniGPT4Qwen)
    nn.Module.__init__(model)
    model.cfg = model_cfg
    model.visual_encoder, model.ln_vision = vit, ln_vision
    model.Qformer, model.query_tokens = qformer, query_tokens
    model.llm_model = llm
    with torch.device("meta"):
        model.llm_proj = nn.Linear(qformer.config.hidden_size, llm.config.hidden_size)
    model._apply_freeze_flags(model_cfg)
    if model_cfg.get_lora:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft asks transformers a deprecated question
            model.llm_model = MiniGPT4Qwen._with_lora(model.llm_model, model_cfg)
    vit_source = "model.vit_arch" if model_cfg.vit_arch is not None else f"model.vit_model {model_cfg.vit_model}"
    return model, {"ViT": vit_source, "Q-former": qformer_source, "LLM": llm_source}


# -- the plan -------------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    device: float = 0.0  # bytes per rank on the GPU (a CPU run: in the process)
    host: float = 0.0  # bytes per rank in host memory (run.fsdp_cpu_offload)
    note: tuple = None  # ("text with {}", bytes): a figure next to the row, in the table's unit


@dataclass
class Plan:
    title: str
    model_lines: list
    rows: list
    phases: dict  # device bytes at {"loss", "step", "start"}
    host: float  # host bytes per rank during training (run.fsdp_cpu_offload), else 0
    gpu_gib: float
    on_cuda: bool
    notes: list = field(default_factory=list)

    @property
    def peak(self):
        """The estimated device peak per rank during training (bytes)."""
        return max(self.phases["loss"], self.phases["step"])

    @property
    def needed(self):
        """The larger of the training peak and the start, with the margin for CUDA context and fragmentation."""
        return max(self.peak, self.phases["start"]) * (1 + FRAGMENTATION) + CONTEXT_GIB * GIB

    @property
    def fits(self):
        return self.needed <= self.gpu_gib * GIB


def _bytes(p, dtype=None):
    return p.numel() * (dtype or p.dtype).itemsize


def _shard(p, n, dtype=None):
    """Bytes of a rank's FSDP2 shard of `p`: ceil(dim 0 / n) rows (FSDP2 pads the last ones)."""
    if p.dim() == 0:
        return _bytes(p, dtype)
    return math.ceil(p.shape[0] / n) * (p.numel() // p.shape[0]) * (dtype or p.dtype).itemsize


SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _dtypes(params):
    """'bf16 7.72 B, fp32 3.15 M' for a list of parameters."""
    counts = {}
    for p in params:
        counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return ", ".join(f"{SHORT.get(d, str(d))} {_count(c)}" for d, c in sorted(counts.items(), key=lambda x: -x[1]))


def _count(n):
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _trains(module):
    return any(p.requires_grad for p in module.parameters())


def _linears(layer):
    """{projection name: (its weight trains, its LoRA adapter's (rank, dtype) or None)} of a decoder layer."""
    found = {}
    for name, module in layer.named_modules():
        short = name.rsplit(".", 1)[-1]
        if hasattr(module, "lora_A") and hasattr(module, "base_layer"):  # peft's LoRA layer
            adapter = next(iter(module.lora_A.values()), None)
            lora = (adapter.weight.shape[0], adapter.weight.dtype) if adapter is not None else None
            found[short] = (module.base_layer.weight.requires_grad, lora)
        elif isinstance(module, nn.Linear) and short not in found and "lora_" not in name:
            found[short] = (module.weight.requires_grad, None)
    return found


def llm_layer_bytes(layer, a, h, kv, i, heads, lora_dropout=0.0, mask_bytes=1):
    """Bytes autograd keeps per token for one decoder layer of a Qwen2 / Llama block (see the
    module docstring): `a` the bytes of the compute dtype, `mask_bytes` those of a dropout mask
    (1 on CUDA: a bool; None on CPU: the input's dtype)."""
    linears = _linears(layer)

    def inputs(names, width):
        """The input the projections `names` share, kept once if a trained weight needs it; a LoRA
        adapter computing in another dtype (peft keeps adapters in fp32) or behind dropout keeps
        its own cast / dropped-out copy (and mask), and its rank-r output."""
        full = any(linears.get(n, (False, None))[0] for n in names)
        adapters = [linears[n][1] for n in names if linears.get(n, (False, None))[1]]
        own = [dtype.itemsize for _, dtype in adapters if lora_dropout or dtype.itemsize != a]
        shared = a * width if full or len(own) < len(adapters) else 0
        kept = sum(b + ((mask_bytes or b) if lora_dropout else 0) for b in own) * width
        return shared + kept + sum(r * dtype.itemsize for r, dtype in adapters)

    norm_trains = any(p.requires_grad for n, p in layer.named_parameters() if "norm" in n)
    total = 2 * (4 * h + 4 + (a * h if norm_trains else 0))  # two RMSNorms: fp32 input, rsqrt (+ output)
    total += a * (2 * h + 2 * kv) + 4 * heads  # q, k, v and the output (o_proj's input), logsumexp
    total += 3 * a * i  # the SiLU input and the product's two factors
    total += inputs(["q_proj", "k_proj", "v_proj"], h) + inputs(["gate_proj", "up_proj"], h)
    return total + inputs(["down_proj"], i)


def _is_head(name):
    """The LM head and the final norm: the first the backward reaches (LLM parameter names)."""
    return "lm_head." in name or (name.endswith("norm.weight") and ".layers." not in name)


def _decoder_layers(llm):
    found = [m for n, m in llm.named_modules() if isinstance(m, nn.ModuleList) and n.endswith("layers")]
    return found[0] if found else []


def image_side_bytes(model, run, images, amp_bytes):
    """Activation bytes of ViT + Q-former for `images` (see the module docstring); 0 with cached features."""
    if run.use_cached_features:
        return 0
    vit, qformer = model.visual_encoder, model.Qformer
    config, q = vit.config, qformer.config
    h, i = config.hidden_size, config.intermediate_size
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    vit_a = amp_bytes or vit.encoder.layers[0].mlp.fc1.weight.dtype.itemsize
    qa, nq = amp_bytes or 4, model.query_tokens.shape[1]
    vit_layer = images * tokens * (8 * h + 2 * i) * vit_a
    q_layer = images * nq * (12 * q.hidden_size + 2 * q.intermediate_size) * qa
    cross = images * (tokens * 2 * q.hidden_size + q.num_attention_heads * nq * tokens) * qa
    n_cross = math.ceil(q.num_hidden_layers / q.cross_attention_frequency)
    vit_trains = _trains(vit)
    qformer_trains = vit_trains or _trains(qformer) or _trains(model.ln_vision) or model.query_tokens.requires_grad
    total = images * tokens * h * 4  # ln_vision's fp32 input
    total += vit_layer * (config.num_hidden_layers if vit_trains else 1)  # frozen: one layer's working set
    total += (q_layer * q.num_hidden_layers + cross * n_cross) if qformer_trains else q_layer + cross
    return total


def plan_memory(cfg, gpus, gpu_gib, images_per_sample=1):
    """The Plan of `cfg` (a lavis Config) trained by `gpus` processes of `gpu_gib` GiB each."""
    model_cfg, run = cfg.model_cfg, cfg.run_cfg
    model, sources = meta_model(model_cfg)
    n, on_cuda = gpus, str(run.device).startswith("cuda")
    strategy = run.strategy if n > 1 else "one process"
    fsdp = strategy == "fsdp"
    offload = fsdp and run.fsdp_cpu_offload and on_cuda
    amp = autocast_dtype_named(run.autocast_dtype) if run.amp and on_cuda else None
    llm = model.llm_model
    config = llm.get_base_model().config if hasattr(llm, "get_base_model") else llm.config
    compute = amp or next(llm.parameters()).dtype  # the embedding's: the LLM's own dtype
    a = compute.itemsize
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    frozen = [p for p in params if not p.requires_grad]
    if not trainable:
        raise PlanError("nothing in this config trains (every part is frozen)")
    at = (lambda b: {"host": b}) if offload else (lambda b: {"device": b})
    size = (lambda p: _shard(p, n)) if fsdp else _bytes
    reduce_bytes = (lambda p: p.numel() * 4) if amp else _bytes  # fp32 reduce-scatter under run.amp
    notes, rows = [], []

    # -- model state
    each = f", 1/{n} each" if fsdp else ""
    params_b = sum(size(p) for p in params)
    grads_b = sum(size(p) for p in trainable)
    rows.append(Row(f"parameters, frozen ({_dtypes(frozen) or 'none'}{each})", **at(sum(size(p) for p in frozen))))
    rows.append(Row(f"parameters, trainable ({_dtypes(trainable)}{each})", **at(grads_b)))
    rows.append(Row("gradients (of the trainable parameters, in their dtype)", **at(grads_b)))
    buckets = grads_b if strategy == "ddp" else 0
    if buckets:
        rows.append(Row("DDP gradient buckets (a second copy of the gradients)", device=buckets))
    optim_b = 2 * grads_b
    rows.append(Row("optimizer states (AdamW: 2 moments in the parameters' dtype)", **at(optim_b)))

    # -- FSDP buffers; the gradients that exist when backward reaches the last layer
    layers = _decoder_layers(llm)
    head = [p for name, p in llm.named_parameters() if p.requires_grad and _is_head(name)]
    gathered = accumulated = root_grads = 0
    if fsdp:
        gather = lambda p: _bytes(p, amp)  # noqa: E731  (MixedPrecisionPolicy's param_dtype under run.amp)
        units = Sharded.units(model)
        in_unit = {id(p) for u in units for p in u.parameters()}
        root = [p for p in params if id(p) not in in_unit]
        unit_full = max((sum(gather(p) for p in u.parameters()) for u in units), default=0)
        gathered = sum(gather(p) for p in root) + 2 * unit_full
        rows.append(Row(f"FSDP gathered: the root unit + 2 of {len(units)} layer units", device=gathered))
        unit_grads = max(
            (sum(gather(p) + reduce_bytes(p) for p in u.parameters() if p.requires_grad) for u in units), default=0
        )
        root_grads = sum(gather(p) + reduce_bytes(p) for p in root if p.requires_grad)
        head_grads = sum(gather(p) for p in head)
        rows.append(
            Row(
                "FSDP unsharded gradients + reduce-scatter input (the root's)",
                device=root_grads,
                note=("a layer unit's: {}", unit_grads),
            )
        )
        if run.accum_grad_iters > 1 and not offload:
            accumulated = grads_b  # the sharded gradients of the earlier micro-batches, while the next one runs
    else:
        unit_grads = sum(_bytes(p) for p in layers[-1].parameters() if p.requires_grad)
        head_grads = sum(_bytes(p) for p in head)
        if run.accum_grad_iters > 1:
            accumulated = grads_b  # the earlier micro-batches' gradients, there while the next one runs

    # -- activations
    batch, length = run.batch_size_train, model_cfg.max_txt_len
    images, tokens, labelled = batch * images_per_sample, batch * length, batch * max(length - 1, 1)
    h, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    heads = config.num_attention_heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * (getattr(config, "head_dim", None) or h // heads)
    llm_trains = _trains(llm)
    dropout = model_cfg.lora_dropout if model_cfg.get_lora else 0.0
    per_layer = llm_layer_bytes(layers[0], a, h, kv, inter, heads, dropout, 1 if on_cuda else None)
    checkpointing = model_cfg.use_grad_checkpoint and llm_trains
    every = tokens * len(layers) * per_layer
    checkpointed = tokens * (len(layers) * a * h + per_layer)
    outside = tokens * (4 * h + a * h + 1) + labelled * a * h + batch * length * length  # final norm, head input, mask
    llm_act = (checkpointed if checkpointing else every) + outside
    alternative = (every if checkpointing else checkpointed) + outside
    rows.append(
        Row(
            f"activations, LLM ({batch} x {length} tokens, "
            + ("checkpointed: layer inputs + 1 layer)" if checkpointing else "every layer)"),
            device=llm_act,
            note=(f"{'without' if checkpointing else 'with'} grad checkpointing: {{}}", alternative)
            if llm_trains
            else None,
        )
    )
    image_act = image_side_bytes(model, run, images, a if amp else None)
    rows.append(Row(f"activations, image side ({images} image{'s' if images > 1 else ''})", device=image_act))
    logits = labelled * vocab * 12
    rows.append(Row(f"logits at the loss ({labelled} positions x {vocab} x 3 fp32)", device=logits))
    scratch = tokens * a * (2 * inter + 2 * h)  # gradients of one layer's intermediate tensors
    rows.append(Row("backward scratch (one layer's intermediate gradients)", device=scratch))
    if fsdp or not on_cuda:
        step_temp = 2 * max(size(p) for p in trainable)  # single-tensor AdamW (DTensor or CPU parameters)
    else:
        step_temp = grads_b  # foreach AdamW on CUDA: one moment-sized temporary
    rows.append(Row("optimizer step temporaries", **at(step_temp)))

    # -- phases (device bytes)
    state = (0 if offload else params_b + optim_b) + buckets + accumulated
    # start of backward: every activation, and the logits or the last layer's gradients
    loss = state + gathered + llm_act + image_act + max(logits, head_grads + unit_grads + scratch)
    # end of backward: every gradient, the first layer's activations (recomputed under checkpointing)
    # (the accumulated gradients are these same tensors, counted once)
    kept = state - accumulated + (0 if offload else grads_b)
    end = kept + gathered + (max(root_grads, unit_grads) if fsdp else 0) + tokens * per_layer + scratch
    step = max(end, kept + (0 if offload else step_temp))
    start = sum(_bytes(p) for p in params)  # the runner's model.to(device), before any wrapping
    host = params_b + grads_b + optim_b + step_temp if offload else 0
    mode = {"one process": "one process (no torchrun)", "ddp": f"ddp over {n} ranks", "fsdp": f"fsdp over {n} ranks"}
    title = (
        f"memory plan: {model_cfg.arch}/{model_cfg.model_type}, {mode[strategy]}"
        + (" with CPU offload" if offload else "")
        + f", batch {batch} x {length} tokens, grad checkpointing {'on' if checkpointing else 'off'}"
        + f", computing in {SHORT.get(compute, compute)}"
        + ("" if on_cuda else f", on {run.device}: one memory")
    )
    if run.fsdp_cpu_offload and not offload:
        notes.append(
            "run.fsdp_cpu_offload changes nothing here ("
            + ("one process: no FSDP" if not fsdp else "a CPU device: the shards are in host memory already")
            + ")"
        )
    if offload:
        notes.append(f"host memory per rank: {host / GIB:.2f} GiB while training, {start / GIB:.2f} GiB as built")
    notes.append("logits: every position labelled (the worst case); a share s of labelled tokens scales that row by s")
    phases = {"loss": loss, "step": step, "start": start}
    return Plan(title, model_summary(model, sources), rows, phases, host, gpu_gib, on_cuda, notes)


def model_summary(model, sources):
    parts = {
        "LLM": [model.llm_model],
        "ViT": [model.visual_encoder],
        "Q-former": [model.Qformer, model.ln_vision],
        "llm_proj": [model.llm_proj],
    }
    total = sum(p.numel() for p in model.parameters())
    lines = [f"model: {_count(total)} parameters ({total:,})"]
    for name, modules in parts.items():
        ps = [p for m in modules for p in m.parameters()] + ([model.query_tokens] if name == "Q-former" else [])
        count, train = sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad)
        state = "trains" if train == count else f"{_count(train)} train" if train else "frozen"
        source = f"; shape from {sources[name]}" if name in sources else ""
        lines.append(f"  {name:9s}{_count(count):>10s}  {_dtypes(ps)}, {state}{source}")
    return lines


def format_plan(plan):
    unit, scale = ("GiB", GIB) if plan.peak >= GIB else ("MiB", 1024**2)
    fmt = lambda b: f"{b / scale:9.2f}" if unit == "GiB" else f"{b / scale:9.0f}"  # noqa: E731
    note = lambda row: f"   ({row.note[0].format(fmt(row.note[1]).strip() + ' ' + unit)})" if row.note else ""  # noqa: E731
    where = "GPU" if plan.on_cuda else "process"
    width = max(len(r.label) for r in plan.rows) + 1
    lines = [plan.title, *plan.model_lines, "", f"{'per rank':{width}s}{unit + ' ' + where:>12s}{unit + ' host':>10s}"]
    for row in plan.rows:
        host = fmt(row.host) if row.host else f"{'-':>9s}"
        lines.append(f"{row.label:{width}s}{fmt(row.device):>12s}{host:>10s}{note(row)}")
    phases = [
        ("peak at the start of backward (activations, logits)", plan.phases["loss"]),
        ("peak at the end of backward / optimizer step (gradients)", plan.phases["step"]),
        ("total: the larger of the two", plan.peak),
        ("at start: the whole model on the device", plan.phases["start"]),
    ]
    lines.append("")
    lines += [f"{label:{width}s}{fmt(value):>12s}" for label, value in phases]
    verdict = "fits" if plan.fits else "does not fit"
    which = "the total" if plan.peak >= plan.phases["start"] else "the start"
    lines.append(
        f"needed: {which} + {CONTEXT_GIB} GiB CUDA context + {FRAGMENTATION:.0%} fragmentation = "
        f"{plan.needed / GIB:.2f} GiB of {plan.gpu_gib:g} GiB per GPU: {verdict}"
    )
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)


def _positive(name, text, kind):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value <= 0 or (kind is float and not math.isfinite(value)):
        what = "a whole number of at least 1" if kind is int else "a positive number"
        raise PlanError(f"{name} must be {what}, got {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg-path", required=True, help="run config YAML (the one you would train with)")
    parser.add_argument("--gpus", required=True, help="processes (GPUs) the run uses")
    parser.add_argument("--gpu-mem-gb", required=True, help="memory of one GPU in GiB (a '80 GB' GPU: 80)")
    parser.add_argument("--images-per-sample", default="1", help="images (or video frames) per sample (default 1)")
    parser.add_argument(
        "--options", nargs="+", default=[], help="overrides of config keys, e.g. run.batch_size_train=4"
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        gpus = _positive("--gpus", args.gpus, int)
        gpu_gib = _positive("--gpu-mem-gb", args.gpu_mem_gb, float)
        images = _positive("--images-per-sample", args.images_per_sample, int)
        cfg = Config(args)
        try:
            plan = plan_memory(cfg, gpus, gpu_gib, images)
        except (OSError, ValueError) as err:  # what the model's builders say of a config they cannot build
            if isinstance(err, UserError):
                raise
            raise PlanError(f"cannot build the model's shapes from this config: {err}") from None
    except UserError as err:
        return report(err, fold=True)
    print(format_plan(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
