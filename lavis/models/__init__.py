"""Model zoo entry points: `load_model`, `load_preprocess`, `load_model_and_preprocess`.

A model is named by its registered `arch` and a `model_type` whose default YAML gives its
config and processors (as in LAVIS); `cfg_options` overrides keys of that config.
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
