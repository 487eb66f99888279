"""Base class of registered models: default configs by model type, checkpoint loading, trainable state."""

import logging
import os

import torch
from torch import nn

from lavis.common.checkpoint import check_state_fits, load_file, model_state
from lavis.common.utils import get_abs_path


class BaseModel(nn.Module):
    PRETRAINED_MODEL_CONFIG_DICT = {}

    @classmethod
    def default_model_type(cls):
        return next(iter(cls.PRETRAINED_MODEL_CONFIG_DICT))

    @classmethod
    def default_config_path(cls, model_type):
        if model_type not in cls.PRETRAINED_MODEL_CONFIG_DICT:
            raise ValueError(
                f"unknown model_type '{model_type}' for {cls.__name__}; "
                f"valid: {sorted(cls.PRETRAINED_MODEL_CONFIG_DICT)}"
            )
        return get_abs_path(cls.PRETRAINED_MODEL_CONFIG_DICT[model_type])

    @classmethod
    def default_config(cls, model_type, load_yaml):
        """The default YAML of `model_type` (read by the config layer's `load_yaml`)."""
        return load_yaml(cls.default_config_path(model_type))

    @classmethod
    def missing_files(cls, cfg):
        """[(config key, path, what it is)] for each file `cfg` needs that is not on disk."""
        return []

    @property
    def device(self):
        return next(self.parameters()).device

    def trainable_state_dict(self):
        """What a checkpoint stores: trainable parameters, plus buffers of trainable modules."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach() for k, v in self.state_dict().items() if k in trainable}

    def checked_state(self, path_or_state, source=None):
        """The model state of a checkpoint file or of its loaded content, in this model's key names,
        every value a tensor of the key's shape (CheckpointError naming `source`, default the path,
        and the offending keys otherwise)."""
        is_path = isinstance(path_or_state, (str, os.PathLike))
        source = source or _source_of(path_or_state)
        state = model_state(load_file(path_or_state, mmap=True) if is_path else path_or_state, source)
        state = self.convert_checkpoint_keys(state)
        check_state_fits(state, self.state_dict(), source)
        return state

    def load_checkpoint(self, path_or_state, source=None):
        """Load a checkpoint written by the runner (`{"model": {...}}`) or a bare state dict.

        Only the keys it holds are loaded (checkpoints hold the trainable part); a `model` entry
        that is not a mapping of tensors, a key this model does not have or a tensor of another
        shape is an error naming the file (`source` for loaded content) and the keys.
        """
        source = source or _source_of(path_or_state)
        state = self.checked_state(path_or_state, source)
        own = self.state_dict()
        with torch.no_grad():
            for key, value in state.items():
                own[key].copy_(value.to(own[key].dtype))
        logging.info("loaded %d tensors from %s", len(state), source)
        return sorted(state)

    def convert_checkpoint_keys(self, state):
        """Hook for models whose released checkpoints use other key names."""
        return state


def _source_of(path_or_state):
    """How messages name a checkpoint: its path, or `<state dict>` for loaded content."""
    return os.fspath(path_or_state) if isinstance(path_or_state, (str, os.PathLike)) else "<state dict>"
