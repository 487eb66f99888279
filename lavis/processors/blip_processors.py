"""The registered image and text processors of the BLIP-2 / MiniGPT4Qwen recipe.

Image processors (PIL image of any mode in, float32 tensor (3, S, S) out):

* ``blip2_image_train`` -- random resized crop (area fraction in
  [min_scale, max_scale], aspect ratio in [3/4, 4/3], bicubic), horizontal flip
  with probability 0.5, to tensor, CLIP normalisation.  Randomness comes from
  the global torch RNG, drawn in torchvision's order, so under the same
  ``torch.manual_seed`` the output matches torchvision's pipeline.
* ``blip_image_eval`` / ``blip2_image_eval`` -- bicubic resize to (S, S), to
  tensor, CLIP normalisation.

Text processors (str in, str out):

* ``blip_caption`` -- LAVIS caption cleaning: lowercase, some punctuation to
  spaces, runs of whitespace collapsed, ends stripped, first ``max_words``
  words kept, ``prompt`` prepended.
* ``base_instruction`` -- identity.

Options come from the processor's YAML section (see ``BaseProcessor.from_config``);
``mean`` and ``std`` default to CLIP's.
"""

import re

from lavis.common.registry import registry
from lavis.processors import transforms as T
from lavis.processors.base_processor import BaseProcessor


def _check_image_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size should be a positive int, got {image_size!r}")
    return image_size


class BlipImageBaseProcessor(BaseProcessor):
    """Holds the normalisation shared by the image processors."""

    def __init__(self, mean=None, std=None):
        mean = T.CLIP_MEAN if mean is None else mean
        std = T.CLIP_STD if std is None else std
        self.normalize = T.Normalize(mean, std)
        self.mean, self.std = self.normalize.mean, self.normalize.std

    def __call__(self, item):
        return self.transform(item)

    def __repr__(self):
        return f"{type(self).__name__}({self.transform!r})"


@registry.register_processor("blip2_image_train")
class Blip2ImageTrainProcessor(BlipImageBaseProcessor):
    def __init__(self, image_size=364, mean=None, std=None, min_scale=0.5, max_scale=1.0):
        super().__init__(mean=mean, std=std)
        self.image_size = _check_image_size(image_size)
        self.transform = T.Compose(
            [
                T.ConvertRGB(),
                T.RandomResizedCrop(self.image_size, scale=(min_scale, max_scale), interpolation=T.BICUBIC),
                T.RandomHorizontalFlip(0.5),
                T.ToTensor(),
                self.normalize,
            ]
        )


@registry.register_processor("blip2_image_eval")
@registry.register_processor("blip_image_eval")
class BlipImageEvalProcessor(BlipImageBaseProcessor):
    def __init__(self, image_size=384, mean=None, std=None):
        super().__init__(mean=mean, std=std)
        self.image_size = _check_image_size(image_size)
        self.transform = T.Compose(
            [
                T.ConvertRGB(),
                T.Resize((self.image_size, self.image_size), interpolation=T.BICUBIC),
                T.ToTensor(),
                self.normalize,
            ]
        )


def _require_str(text, who):
    if not isinstance(text, str):
        raise TypeError(f"{who} expects a str, got {type(text).__qualname__}")


def _check_max_words(max_words):
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 0:
        raise ValueError(f"max_words should be a non-negative int, got {max_words!r}")
    return max_words


_CAPTION_PUNCT = re.compile(r"([.!\"()*#:;~])")
_MULTI_SPACE = re.compile(r"\s{2,}")


@registry.register_processor("blip_caption")
class BlipCaptionProcessor(BaseProcessor):
    """LAVIS ``pre_caption`` followed by prepending ``prompt``."""

    def __init__(self, prompt="", max_words=50):
        _require_str(prompt, "blip_caption prompt")
        self.prompt = prompt
        self.max_words = _check_max_words(max_words)

    def __call__(self, caption):
        return self.prompt + self.pre_caption(caption)

    def pre_caption(self, caption):
        _require_str(caption, "blip_caption")
        caption = _CAPTION_PUNCT.sub(" ", caption.lower())
        caption = _MULTI_SPACE.sub(" ", caption)
        caption = caption.rstrip("\n").strip(" ")
        words = caption.split(" ")
        if len(words) > self.max_words:
            caption = " ".join(words[: self.max_words])
        return caption

    def __repr__(self):
        return f"{type(self).__name__}(prompt={self.prompt!r}, max_words={self.max_words})"


@registry.register_processor("base_instruction")
class BaseInstructionProcessor(BaseProcessor):
    """Returns the instruction text unchanged.

    ``max_words`` is accepted so that configs written for the original keep
    loading, but -- as in the original MiniGPT4Qwen processor -- it is NOT
    applied: no truncation, no lowercasing, no cleaning.
    """

    def __init__(self, max_words=50):
        self.max_words = max_words

    def __call__(self, text):
        return text

    def __repr__(self):
        return f"{type(self).__name__}(max_words={self.max_words})"
