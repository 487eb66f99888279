"""Merge a LoRA training run into plain weights: `python -m lavis.tools.merge_lora`.

    python -m lavis.tools.merge_lora --ckpt-path output/.../checkpoint_7.pth --output-dir merged \
        [--cfg-path CFG] [--format both|checkpoint|llm] [--options model.key=value ...]

A run with `model.get_lora: True` saves only its trainable set (llm_proj, LoRA A/B, and whatever
else trained) in `checkpoint_<epoch>.pth`.  This command rebuilds that model from the config
the checkpoint was trained with (`--cfg-path`: the run YAML or the job folder's `config.json`;
without it, the checkpoint's own "config" entry), loads the checkpoint, folds every adapter into
its base weight (peft `merge_and_unload`: W + B A * alpha / r) and writes into `--output-dir`:

* `checkpoint_merged.pth` (`checkpoint`): {"model", "config", "epoch"} for a model with
  `get_lora: False`.  "model" holds the checkpoint's non-LoRA keys (llm_proj, ...), plus the
  merged `llm_model.<...>.weight` of every layer LoRA touched (e.g. `...self_attn.q_proj.weight`),
  plus, when the LLM is built from `model.llm_arch` (random init, in no file), the whole LLM.
* `llm/` (`llm`): the merged LLM as a transformers folder (`save_pretrained`, safetensors) with
  its tokenizer file(s) and the source's `generation_config.json`: usable as `model.llm_model`.
* `config.yaml` (`both`, the default): the run config with `get_lora: False`, `freeze_llm: True`, `llm_model: <llm/>`
  and `finetuned: <checkpoint_merged.pth>` -- `train.py --cfg-path` or the chat demos load it.

Problems (no LoRA weights, missing files, a config that does not fit) stop with one line.
"""

import os
import re
import shutil
import sys

from omegaconf import OmegaConf

import lavis  # noqa: F401  (registers every component)
from lavis.common.checkpoint import save_file
from lavis.common.errors import UserError
from lavis.common.utils import resolve_path
from lavis.run_builder import (
    build_trained_model,
    checkpoint_tool_main,
    checkpoint_tool_parser,
    read_trained_checkpoint,
    trained_config,
)

LORA_KEY = re.compile(r"\.lora_(A|B|embedding_A|embedding_B|magnitude_vector)\.")
PEFT_PREFIX = "llm_model.base_model.model."
TOKENIZER_FILES = (
    "qwen.tiktoken",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)


class MergeError(UserError, ValueError):
    """A problem with the inputs of the merge, worded for the user."""


def plain_name(key):
    """The key of a peft-wrapped LLM tensor in the unwrapped model (`llm_model.model.layers...`)."""
    if key.startswith(PEFT_PREFIX):
        key = "llm_model." + key[len(PEFT_PREFIX) :]
    return key.replace(".base_layer.", ".")


def lora_targets(state):
    """Plain names of the base weights the checkpoint's LoRA adapters change."""
    return sorted({plain_name(LORA_KEY.split(k)[0] + ".weight") for k in state if LORA_KEY.search(k)})


def read_checkpoint(path):
    """The checkpoint's (model state, whole dict); refuses one without LoRA weights."""
    state, checkpoint = read_trained_checkpoint(path)
    if not any(LORA_KEY.search(k) for k in state):
        raise MergeError(f"{path} holds no LoRA weights (no '.lora_A.'/'.lora_B.' keys): nothing to merge")
    return state, checkpoint


def read_config(cfg_path, checkpoint, options, ckpt_path):
    """The checked run config (see `trained_config`); refuses one without LoRA."""
    cfg = trained_config(cfg_path, checkpoint, options, ckpt_path)
    if not cfg.model_cfg.get_lora:
        raise MergeError(
            f"the config has model.get_lora: False but {ckpt_path} holds LoRA weights: pass the config it was "
            "trained with"
        )
    return cfg


def fold_adapters(model):
    """Fold every LoRA adapter into its base weight (peft `merge_and_unload`), in place."""
    model.llm_model = model.llm_model.merge_and_unload()
    return model


def merge(model, state):
    """Fold the adapters into the LLM in place; returns the merged checkpoint's state dict."""
    merged = fold_adapters(model).state_dict()
    keys = {plain_name(k) for k in state if not LORA_KEY.search(k)} | set(lora_targets(state))
    if model.cfg.llm_arch is not None:  # the base LLM is random init, in no file: keep all of it
        keys |= {k for k in merged if k.startswith("llm_model.")}
    absent = sorted(k for k in keys if k not in merged)
    if absent:
        raise MergeError(f"after merging, the model lacks {absent[:5]}: the checkpoint does not match this model")
    return {k: merged[k].detach().clone() for k in sorted(keys)}


def tokenizer_files(model_cfg):
    """The tokenizer file(s) the config reads (a qwen.tiktoken file, or a folder's tokenizer files)."""
    path = resolve_path(model_cfg.llm_tokenizer or model_cfg.llm_model)
    if os.path.isfile(path):
        return [path]
    return [os.path.join(path, f) for f in TOKENIZER_FILES if os.path.isfile(os.path.join(path, f))]


def save_llm(model, model_cfg, folder):
    """The merged LLM as a transformers folder (safetensors) + tokenizer + generation config."""
    os.makedirs(folder, exist_ok=True)
    model.llm_model.save_pretrained(folder, safe_serialization=True)
    for path in tokenizer_files(model_cfg):
        shutil.copy(path, os.path.join(folder, os.path.basename(path)))
    if model_cfg.llm_arch is None:  # the source's chat settings (chat_format, max_window_size, ...)
        source = os.path.join(resolve_path(model_cfg.llm_model), "generation_config.json")
        if os.path.isfile(source):
            shutil.copy(source, os.path.join(folder, "generation_config.json"))
    return folder


def merged_config(cfg, llm_dir=None, ckpt=None):
    """The run config for the merged model: no LoRA; the merged LLM folder and checkpoint if written."""
    config = cfg.to_dict()
    model = config["model"]
    model["get_lora"] = False
    model["freeze_llm"] = True  # as in the LoRA run, whose base LLM stayed frozen
    if llm_dir:
        model.update(llm_model=os.path.abspath(llm_dir), llm_arch=None, llm_tokenizer="")
    if ckpt:
        model.update(load_finetuned=True, finetuned=os.path.abspath(ckpt), ckpt="")
    return config


def run(args):
    """Merge as `args` asks; returns the paths written."""
    state, checkpoint = read_checkpoint(args.ckpt_path)
    cfg = read_config(args.cfg_path, checkpoint, args.options, args.ckpt_path)
    model = build_trained_model(cfg, state, args.ckpt_path)
    merged_state = merge(model, state)
    os.makedirs(args.output_dir, exist_ok=True)
    written = {}
    if args.format in ("llm", "both"):
        written["llm"] = save_llm(model, cfg.model_cfg, os.path.join(args.output_dir, "llm"))
    if args.format in ("checkpoint", "both"):
        path = os.path.join(args.output_dir, "checkpoint_merged.pth")
        config = merged_config(cfg)
        written["checkpoint"] = save_file(
            {"model": merged_state, "config": config, "epoch": checkpoint.get("epoch")}, path
        )
    if args.format == "both":
        path = os.path.join(args.output_dir, "config.yaml")
        OmegaConf.save(OmegaConf.create(merged_config(cfg, written["llm"], written["checkpoint"])), path)
        written["config"] = path
    return written


def parse_args(argv=None):
    parser = checkpoint_tool_parser(
        __doc__.splitlines()[0],
        "checkpoint_<epoch>.pth of a get_lora: True run",
        "folder for checkpoint_merged.pth, llm/, config.yaml",
    )
    parser.add_argument(
        "--format",
        choices=["both", "checkpoint", "llm"],
        default="both",
        help="what to write (default: both + config.yaml)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    return checkpoint_tool_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
