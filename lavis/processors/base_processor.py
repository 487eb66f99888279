"""Base class of every registered processor (image or text), built from its YAML section.

A processor section is `{name: <registered name>, <constructor argument>: value, ...}`;
an argument the constructor does not take is an error that lists the ones it does.
"""

import inspect

from omegaconf import OmegaConf


class BaseProcessor:
    def __call__(self, item):
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg=None):
        options = {} if cfg is None else OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
        options.pop("name", None)
        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"processor {cls.__name__}: unknown option(s) {unknown}; valid options: {valid}")
        return cls(**options)
