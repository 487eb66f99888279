"""The keys a run config may hold, with their types, defaults and valid values (OmegaConf
structured configs).

`lavis/common/config.py` merges YAML files and command-line options on top of these
schemas, so a misspelt key or a value of the wrong type is reported with the valid keys
instead of being silently ignored.  Each schema's `VALID` table states, once, the range or the
choices of its keys (:class:`Number`, :class:`OneOf`, ...); the config layer refuses a value
outside them, naming the key, the value and what is allowed, before anything is built.  Key
names follow the original MiniGPT4Qwen configs.
"""

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

from omegaconf import MISSING

from lavis.common.generation import MAX_BEAMS, MAX_NEW_TOKENS


@dataclass(frozen=True)
class Number:
    """A finite number (an integer with `integer`) from `low` to `high` (either end open with
    `low_open` / `high_open`; None: unbounded); None itself is valid with `optional`."""

    low: Optional[float] = None
    high: Optional[float] = None
    integer: bool = False
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def describe(self):
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            if self.integer and not (self.low_open or self.high_open):
                text = f"{kind} in {self.low}..{self.high}"
            else:
                opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
                text = f"{kind} in {opening}{self.low}, {self.high}{closing}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {self.high}"
        else:
            text = f"a finite {kind.split()[1]}"
        return text + (" (or null)" if self.optional else "")

    def problem(self, value):
        """None when `value` is valid, else what it must be."""
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be {self.describe()}"
        if self.integer and not isinstance(value, int):
            return f"must be {self.describe()}"
        if not math.isfinite(value):
            return f"must be {self.describe()}"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self.describe()}" if too_low or too_high else None


@dataclass(frozen=True)
class OneOf:
    """One of `values`."""

    values: tuple

    def problem(self, value):
        return None if value in self.values else f"must be one of {', '.join(repr(v) for v in self.values)}"


@dataclass(frozen=True)
class Matches:
    """A string matching `pattern` in full; `what` says so in words."""

    pattern: str
    what: str

    def problem(self, value):
        return None if isinstance(value, str) and re.fullmatch(self.pattern, value) else f"must be {self.what}"


@dataclass(frozen=True)
class ListOf:
    """A list of exactly `length` items (any length: None), each valid for `item`."""

    item: Any
    length: Optional[int] = None

    def problem(self, value):
        count = self.length if self.length is not None else "any number of"
        what = f"a list of {count} items, each {self.item.describe()}"
        if not isinstance(value, (list, tuple)) or (self.length is not None and len(value) != self.length):
            return f"must be {what}"
        return None if all(self.item.problem(v) is None for v in value) else f"must be {what}"


@dataclass(frozen=True)
class MapOf:
    """A mapping whose every value is valid for `item`."""

    item: Any

    def problem(self, value):
        bad = [k for k, v in value.items() if self.item.problem(v) is not None]
        return f"must map names to {self.item.describe()} (not at {', '.join(map(str, bad[:5]))})" if bad else None


AT_LEAST_1 = Number(1, integer=True)
AT_LEAST_0 = Number(0, integer=True)
POSITIVE = Number(0, low_open=True)
NON_NEGATIVE = Number(0)
PROBABILITY = Number(0, 1, high_open=True)  # dropout and the like: 0 <= p < 1
SEED = Number(0, 2**32 - 1, integer=True)  # what numpy (seeded with the others) accepts
DTYPE_NAMES = ("fp32", "bf16", "fp16")  # lavis/common/dtypes.py's short names
AUTOCAST = OneOf(("bf16", "fp16"))
VIT_PRECISIONS = ("fp16", "fp32")  # the values of model.vit_precision
LABEL_RULES = ("assistant", "original")  # the values of model.label_rule ("": the prompt format's own)


@dataclass
class VitArch:
    """Shape of an EVA-style ViT; defaults are EVA-ViT-G as BLIP-2 uses it (39 of 40 blocks)."""

    patch_size: int = 14
    embed_dim: int = 1408
    depth: int = 39
    num_heads: int = 16
    mlp_ratio: float = 4.3637
    # How a ViT built from scratch starts its position embeddings: "normal" (transformers' std
    # 0.02) or "sincos" (2D sine-cosine, as MAE starts them).  Loaded weights replace either.
    pos_embed_init: str = "normal"

    VALID: ClassVar[dict] = {
        "patch_size": AT_LEAST_1,
        "embed_dim": AT_LEAST_1,
        "depth": AT_LEAST_1,
        "num_heads": AT_LEAST_1,
        "mlp_ratio": POSITIVE,
        "pos_embed_init": OneOf(("normal", "sincos")),
    }


#: `model.vit_model` names -> their shape (LAVIS's name for EVA-ViT-G as BLIP-2 uses it)
VIT_MODELS = {"eva_clip_g": VitArch()}


@dataclass
class QformerArch:
    """Shape of a BLIP-2 Q-former built from scratch (instead of from `qformer_config`)."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_freq: int = 2
    dropout: float = 0.1  # BERT's hidden and attention dropout

    VALID: ClassVar[dict] = {
        "hidden_size": AT_LEAST_1,
        "num_layers": AT_LEAST_1,
        "num_heads": AT_LEAST_1,
        "intermediate_size": AT_LEAST_1,
        "cross_attention_freq": AT_LEAST_1,
        "dropout": PROBABILITY,
    }


@dataclass
class LlmArch:
    """Shape of a decoder built from scratch (instead of loading `llm_model`)."""

    family: str = "qwen2"  # a transformers model type: qwen2 (Qwen-style, the tiny default), llama, ...
    hidden_size: int = 4096
    num_layers: int = 32
    num_heads: int = 32
    intermediate_size: int = 11008
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 8192
    vocab_pad_to: int = 128  # embedding rows are padded to a multiple of this, as Qwen pads 151,851 -> 151,936

    VALID: ClassVar[dict] = {
        "hidden_size": AT_LEAST_1,
        "num_layers": AT_LEAST_1,
        "num_heads": AT_LEAST_1,
        "intermediate_size": AT_LEAST_1,
        "rope_theta": POSITIVE,
        "rms_norm_eps": POSITIVE,
        "max_position_embeddings": AT_LEAST_1,
        "vocab_pad_to": AT_LEAST_1,
    }


@dataclass
class ModelConfig:
    arch: str = MISSING
    model_type: str = MISSING
    load_finetuned: bool = False
    load_pretrained: bool = True
    pretrained: str = "ckpt/blip2/blip2_pretrained_flant5xxl.pth"
    finetuned: str = ""
    ckpt: str = ""  # alias of `finetuned`, as the original's chat scripts call it
    # vision encoder
    vit_model: str = "eva_clip_g"  # the ViT's shape by name (VIT_MODELS); vit_arch overrides it
    vit_ckpt: str = "ckpt/eva/eva_vit_g.pth"
    vit_arch: Optional[VitArch] = None
    image_size: int = 224
    drop_path_rate: float = 0.0
    use_grad_checkpoint: bool = False
    vit_precision: str = "fp16"
    freeze_vit: bool = True
    unfreeze_pos_embed: bool = False
    # Q-former
    num_query_token: int = 32
    qformer_text_input: bool = False
    qformer_config: str = "ckpt/bert-base-uncased"
    qformer_arch: Optional[QformerArch] = None
    freeze_qformer: bool = True
    freeze_queries: bool = True
    # projection
    freeze_proj: bool = False
    # language model
    llm_model: str = "ckpt/Qwen7B-chat"
    llm_arch: Optional[LlmArch] = None
    llm_tokenizer: str = ""  # qwen.tiktoken (or its folder); default: inside llm_model
    llm_dtype: str = (
        ""  # fp32 / bf16 / fp16; "": Qwen's bf16/fp16/fp32 flags, else torch_dtype, else the weights' dtype
    )
    freeze_llm: bool = True
    get_lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # [] (default): the family's attention projections, q_proj + v_proj (Qwen, Llama, Gemma, Mistral,
    # GLM), or the fused qkv_proj (Phi-3/4)
    lora_target_modules: List[str] = field(default_factory=list)
    max_txt_len: int = 512
    label_rule: str = ""  # original (MiniGPT4Qwen's) or assistant (replies + end-of-turn); "": the prompt format's own
    enable_autocast: bool = True
    autocast_dtype: str = "bf16"

    VALID: ClassVar[dict] = {
        "vit_model": OneOf(tuple(VIT_MODELS)),
        "image_size": AT_LEAST_1,
        "drop_path_rate": PROBABILITY,
        "vit_precision": OneOf(VIT_PRECISIONS),
        "num_query_token": AT_LEAST_1,
        "llm_dtype": OneOf(("", *DTYPE_NAMES)),
        "lora_r": AT_LEAST_1,
        "lora_alpha": POSITIVE,
        "lora_dropout": PROBABILITY,
        "max_txt_len": AT_LEAST_1,
        "label_rule": OneOf(("", *LABEL_RULES)),
        "autocast_dtype": AUTOCAST,
    }


@dataclass
class ProcessorsConfig:
    train: Optional[Dict[str, Any]] = None
    eval: Optional[Dict[str, Any]] = None


@dataclass
class PreprocessConfig:
    vis_processor: ProcessorsConfig = field(default_factory=ProcessorsConfig)
    text_processor: ProcessorsConfig = field(default_factory=ProcessorsConfig)


@dataclass
class StorageConfig:
    storage: Any = MISSING  # a path or a list of paths


@dataclass
class BuildInfoConfig:
    annotations: Dict[str, StorageConfig] = field(default_factory=dict)
    images: Optional[StorageConfig] = None


@dataclass
class DatasetConfig:
    build_info: BuildInfoConfig = field(default_factory=BuildInfoConfig)
    vis_processor: ProcessorsConfig = field(default_factory=ProcessorsConfig)
    text_processor: ProcessorsConfig = field(default_factory=ProcessorsConfig)
    generator: Optional[Dict[str, Any]] = None  # synthetic datasets: arguments of their generator
    image_placeholder: str = "<ImageHere>"  # the data's image mark in user turns (LLaVA's files: "<image>")
    video_placeholder: str = "<video>"  # the data's video mark in user turns (one per path in a row's "video")
    max_frames: int = 8  # frames taken uniformly from each video; each takes one image's slots
    frame_marker: str = ""  # text before each frame's slots, "{i}" = its number from 1 (e.g. "Frame {i}: ")
    caption_instructions: Optional[List[str]] = None  # caption rows: user turns drawn from these (None: built-in)
    sample_ratio: Optional[float] = None  # several datasets: each one's share of an epoch (lavis/datasets/mixture.py)
    max_skipped_share: float = 1.0  # stop when more than this share of the rows is unusable (1.0: never)

    VALID: ClassVar[dict] = {
        "max_frames": AT_LEAST_1,
        "sample_ratio": Number(0, low_open=True, optional=True),
        "max_skipped_share": Number(0, 1),
    }


STRATEGIES = ("ddp", "fsdp")  # the values of run.strategy
SEED_BENCH_SCORINGS = ("likelihood", "generate")  # the values of run.seed_bench_scoring

#: Keys that the original's (LAVIS) configs carry and nothing here reads, as key paths (`*`: any
#: name).  `lavis/common/config.py` drops them when it reads a config, so that those YAML files
#: load unchanged instead of failing on an unknown key.
ORIGINAL_UNUSED_KEYS = (
    "model.llm_device_map",  # the runner places the model on run.device
    "model.apply_lemmatizer",  # LAVIS's VQA answer post-processing
    "datasets.*.data_type",  # every dataset here holds images
    "datasets.*.build_info.annotations.*.url",  # nothing is downloaded
    "datasets.*.build_info.images.url",
    "run.world_size",  # under torchrun, WORLD_SIZE from its environment decides
)


@dataclass
class RunConfig:
    task: str = "image_text_pretrain"
    runner: str = "runner_base"
    lr_sched: str = "linear_warmup_cosine_lr"
    init_lr: float = 1e-4
    min_lr: float = 1e-6
    warmup_lr: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas
    lr_scale: Dict[str, float] = field(default_factory=dict)  # {parameter name prefix: lr factor}
    grad_norm_clip: Optional[float] = None
    max_epoch: int = 1
    batch_size_train: int = 1
    batch_size_eval: int = 1
    num_workers: int = 0
    accum_grad_iters: int = 1
    seed: int = 42
    output_dir: str = "output"
    log_freq: int = 50
    tensorboard: bool = True  # scalars (loss, lr, grad norm, tokens/s, memory) into <output_dir>/<job_id>/tensorboard/
    wandb: bool = False  # the same scalars to Weights & Biases when wandb is installed (mode from WANDB_MODE)
    wandb_project: str = "minigpt4qwen"
    amp: bool = False
    autocast_dtype: str = "bf16"
    loss_scale: bool = False
    resume_ckpt_path: Optional[str] = None  # a checkpoint to resume exactly; "auto": the newest under output_dir
    save_freq_iters: int = 0  # also checkpoint every N optimizer steps within an epoch (0: at epoch ends only)
    group_by_length: bool = False  # batch samples of similar length together (less padding)
    # several samples per row of the LLM's batch, each with its own positions and causal mask
    # (lavis/models/llm/packing.py): the same loss, fewer padded positions
    packing: bool = False
    evaluate: bool = False
    train_splits: List[str] = field(default_factory=lambda: ["train"])
    valid_splits: List[str] = field(default_factory=list)
    test_splits: List[str] = field(default_factory=list)
    max_new_tokens: int = 32  # generation length when evaluating on held-out splits
    num_beams: int = 1  # benchmarks (evaluate.py): greedy with 1, beam search with more; never sampled
    # SEED-Bench: likelihood (its own eval.py: the option text the model finds likeliest) or generate
    # (the options in the prompt and the letter read from the reply, as LLaVA-1.5 reports it)
    seed_bench_scoring: str = "likelihood"
    device: str = "cuda"
    dist_url: str = "env://"  # init method of torch.distributed (env://: torchrun's MASTER_ADDR/PORT)
    distributed: bool = True  # DDP when launched by torchrun (plain `python train.py`: one process); False: never
    keep_last_n: int = 0  # keep only the newest N epoch checkpoints; 0 keeps all
    dist_timeout_s: int = 1800  # limit of every collective: a rank waiting on a dead peer stops
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    # train on Q-former outputs precomputed by `python -m lavis.tools.cache_features` (frozen,
    # deterministic image side only): only llm_proj and the LLM run per step
    use_cached_features: bool = False
    cached_features_dtype: str = "fp32"  # fp32 / fp16 / bf16: how the cache stores the features
    compile: bool = (
        False  # torch.compile (inductor) the LLM's decoder layers; on CPU needs g++ (lavis/runners/compile.py)
    )
    strategy: str = "ddp"  # under torchrun: ddp (full replicas) or fsdp (FSDP2 shards); see lavis/runners/strategies.py
    # strategy fsdp under torchrun: FSDP2 keeps the parameter and gradient shards and the optimizer
    # step on the CPU (host memory for GPU memory; slower); with strategy ddp a config error
    fsdp_cpu_offload: bool = False

    VALID: ClassVar[dict] = {
        "init_lr": NON_NEGATIVE,
        "min_lr": NON_NEGATIVE,
        "warmup_lr": NON_NEGATIVE,
        "warmup_steps": AT_LEAST_0,
        "weight_decay": NON_NEGATIVE,
        "betas": ListOf(Number(0, 1, high_open=True), length=2),
        "lr_scale": MapOf(NON_NEGATIVE),
        "grad_norm_clip": Number(0, low_open=True, optional=True),
        "max_epoch": AT_LEAST_1,
        "batch_size_train": AT_LEAST_1,
        "batch_size_eval": AT_LEAST_1,
        "num_workers": AT_LEAST_0,
        "accum_grad_iters": AT_LEAST_1,
        "seed": SEED,
        "log_freq": AT_LEAST_1,
        "autocast_dtype": AUTOCAST,
        "save_freq_iters": AT_LEAST_0,
        "max_new_tokens": Number(1, MAX_NEW_TOKENS, integer=True),  # what generation accepts
        "num_beams": Number(1, MAX_BEAMS, integer=True),
        "seed_bench_scoring": OneOf(SEED_BENCH_SCORINGS),
        "device": Matches(r"cpu|cuda(:\d+)?|mps", "cpu, cuda, cuda:N (a GPU's index) or mps"),
        "keep_last_n": AT_LEAST_0,
        "dist_timeout_s": AT_LEAST_1,
        "threads": AT_LEAST_0,
        "cached_features_dtype": OneOf(DTYPE_NAMES),
        "strategy": OneOf(STRATEGIES),
    }
