"""The keys a run config may hold, with their types and defaults (OmegaConf structured configs).

`lavis/common/config.py` merges YAML files and command-line options on top of these
schemas, so a misspelt key or a value of the wrong type is reported with the valid keys
instead of being silently ignored.  Key names follow the original MiniGPT4Qwen configs.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


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


STRATEGIES = ("ddp", "fsdp")  # the values of run.strategy
POS_EMBED_INITS = ("normal", "sincos")  # the values of model.vit_arch.pos_embed_init

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
    evaluate: bool = False
    train_splits: List[str] = field(default_factory=lambda: ["train"])
    valid_splits: List[str] = field(default_factory=list)
    test_splits: List[str] = field(default_factory=list)
    max_new_tokens: int = 32  # generation length when evaluating on held-out splits
    num_beams: int = 1  # benchmarks (evaluate.py): greedy with 1, beam search with more; never sampled
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
