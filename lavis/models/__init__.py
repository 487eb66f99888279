"""Model zoo entry points: `load_model`, `load_preprocess`, `load_model_and_preprocess`.

A model is named by its registered `arch` and a `model_type` whose default YAML gives its
config and processors (as in LAVIS); `cfg_options` overrides keys of that config.

One sub-package per component, each with its build and the loading of its original file,
number for number (each path a model-config key, relative paths under the cache root):

======================  =============================================  =============================================
config key              file                                           loaded by (under ``lavis.models``)
======================  =============================================  =============================================
``vit_ckpt``            ``ckpt/eva/eva_vit_g.pth`` (LAVIS EVA-ViT-G)    ``vision.eva_vit_weights.load_eva_vit``
``qformer_config``      ``ckpt/bert-base-uncased/config.json``         ``qformer.blip2_weights.build_qformer_for``
``pretrained``          ``ckpt/blip2/blip2_pretrained_flant5xxl.pth``  ``minigpt4qwen.checkpoint_keys``
                                                                       ``.load_blip2_pretrained``
``llm_model``           ``ckpt/Qwen7B-chat/`` or any HF chat LLM      ``llm.hf_llm.load_llm``
(tokenizer)             ``qwen.tiktoken`` / ``tokenizer.json``          ``llm.llm_tokenizer.load_llm_tokenizer``
``finetuned``/``ckpt``  original MiniGPT4Qwen checkpoints              ``minigpt4qwen.checkpoint_keys``
                                                                       ``.convert_checkpoint_keys``
======================  =============================================  =============================================

Every `.pth`/`.bin` is read with ``weights_only=True`` (file-backed with ``mmap``); problems stop
with a :class:`weight_files.WeightFileError` naming the file and keys.  `minigpt4qwen/` composes
the parts into the registered model.
"""

import torch
from omegaconf import OmegaConf

from lavis.common.config import build_model_config, load_preprocess_config
from lavis.common.registry import registry
from lavis.models.base_model import BaseModel
from lavis.models.minigpt4qwen import MiniGPT4Qwen
from lavis.processors import load_processor

__all__ = ["BaseModel", "MiniGPT4Qwen", "load_model", "load_preprocess", "load_model_and_preprocess"]


def _model_config(name, model_type, cfg_options=None):
    user = OmegaConf.create({"arch": name, "model_type": model_type})
    return build_model_config(user, OmegaConf.create(dict(cfg_options or {})))


def _finish(model, is_eval, device):
    if is_eval:
        model.eval()
    return model.to(torch.device(device))


def load_model(name, model_type, is_eval=False, device="cpu", checkpoint=None, cfg_options=None):
    """Build a registered model; optionally load a checkpoint of its trainable part."""
    cfg = _model_config(name, model_type, cfg_options)
    model = registry.get_model_class(name).from_config(cfg)
    if checkpoint is not None:
        model.load_checkpoint(checkpoint)
    return _finish(model, is_eval, device)


def load_preprocess(config):
    """Processors from a `preprocess` section: ({"train": ..., "eval": ...}, {"train": ..., "eval": ...})."""

    def build(section):
        return {split: load_processor(cfg.name, cfg) for split, cfg in section.items() if cfg is not None}

    return build(config.vis_processor), build(config.text_processor)


def load_model_and_preprocess(name, model_type, is_eval=False, device="cpu", cfg_options=None):
    """(model, vis_processors, txt_processors), as in LAVIS."""
    cfg = _model_config(name, model_type, cfg_options)
    model = registry.get_model_class(name).from_config(cfg)
    vis_processors, txt_processors = load_preprocess(load_preprocess_config(cfg))
    return _finish(model, is_eval, device), vis_processors, txt_processors
