"""Processors: turn raw samples (PIL images, strings) into model inputs.

Importing this package registers every processor with the registry, so that a
config's ``name:`` can be looked up.  ``load_processor(name, cfg)`` does the
look-up and builds the processor from its options.
"""

from lavis.common.registry import registry
from lavis.processors.base_processor import BaseProcessor
from lavis.processors.blip_processors import (
    BaseInstructionProcessor,
    Blip2ImageTrainProcessor,
    BlipCaptionProcessor,
    BlipImageBaseProcessor,
    BlipImageEvalProcessor,
)

__all__ = [
    "BaseProcessor",
    "BlipImageBaseProcessor",
    "Blip2ImageTrainProcessor",
    "BlipImageEvalProcessor",
    "BlipCaptionProcessor",
    "BaseInstructionProcessor",
    "load_processor",
]


def load_processor(name, cfg=None):
    """Build the processor registered as ``name`` from ``cfg`` (a mapping of its options, or None).

    An unknown name raises the registry's error listing the registered ones; an
    unknown option raises ValueError listing the valid ones.
    """
    return registry.get_processor_class(name).from_config(cfg)
