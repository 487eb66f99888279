"""Image transforms on PIL images and torch tensors, with no torchvision.

The BLIP-2 processors of LAVIS are built from five torchvision transforms:
``RandomResizedCrop``, ``RandomHorizontalFlip``, ``Resize``, ``ToTensor`` and
``Normalize``.  This module re-implements them for PIL inputs so that, for the
same ``torch.manual_seed``, they make the same random draws in the same order
and return the same numbers as torchvision does:

* crop box parameters come from the global torch RNG (or a given
  ``torch.Generator``) exactly as ``RandomResizedCrop.get_params`` draws them;
* the horizontal flip decision is one ``torch.rand(1) < p`` draw;
* cropping and resizing are ``PIL.Image.crop`` and ``PIL.Image.resize`` with
  the resampling filter only (no ``box``, no ``reducing_gap``), as torchvision
  calls them for PIL images;
* ``to_tensor`` turns an 8-bit image into float CHW divided by 255, and
  ``normalize`` subtracts the mean and divides by the std in the tensor's dtype.

Functions are plain; the small classes at the end wrap them into callables that
can be chained with :class:`Compose`.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

BICUBIC = Image.Resampling.BICUBIC

Size = Union[int, Sequence[int]]


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _require_pil(img, what="image"):
    if not isinstance(img, Image.Image):
        raise TypeError(f"{what} should be a PIL.Image.Image, got {type(img).__module__}.{type(img).__qualname__}")


def _require_nonempty(img):
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ValueError(f"image is empty: width={width}, height={height}")


def to_rgb(img):
    """Return ``img`` in mode RGB (the same object when it already is).

    Any PIL mode is accepted; anything else is a TypeError naming what was given.
    """
    _require_pil(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def _pair(size: Size, name="size") -> Tuple[int, int]:
    """``size`` as (height, width); an int means a square."""
    if isinstance(size, bool):
        raise TypeError(f"{name} should be an int or a (height, width) pair, got {size!r}")
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    elif isinstance(size, Sequence) and len(size) == 1:
        size = (size[0], size[0])
    if not (isinstance(size, Sequence) and len(size) == 2):
        raise TypeError(f"{name} should be an int or a (height, width) pair, got {size!r}")
    h, w = size
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
            raise ValueError(f"{name} should hold positive integers, got {tuple(size)!r}")
    return int(h), int(w)


def _check_range(values, name, low_exclusive):
    if not (isinstance(values, Sequence) and len(values) == 2):
        raise TypeError(f"{name} should be a (min, max) pair, got {values!r}")
    lo, hi = float(values[0]), float(values[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} should be finite, got {values!r}")
    if lo > hi:
        raise ValueError(f"{name} should be (min, max) with min <= max, got {values!r}")
    if (lo <= 0) if low_exclusive else (lo < 0):
        bound = "> 0" if low_exclusive else ">= 0"
        raise ValueError(f"{name} values should be {bound}, got {values!r}")
    return lo, hi


# ---------------------------------------------------------------------------
# geometry (PIL)
# ---------------------------------------------------------------------------
def crop(img, top: int, left: int, height: int, width: int):
    """The region of ``img`` whose top-left corner is (top, left)."""
    _require_pil(img)
    return img.crop((left, top, left + width, top + height))


def resize(img, size: Size, interpolation=BICUBIC):
    """Resize ``img`` to exactly ``size`` = (height, width); an int means (size, size).

    Note: unlike torchvision's ``Resize(int)``, an int here is NOT "match the
    shorter edge"; it is the square ``Resize((int, int))`` the BLIP processors use.
    """
    _require_pil(img)
    h, w = _pair(size)
    return img.resize((w, h), interpolation)


def resized_crop(img, top: int, left: int, height: int, width: int, size: Size, interpolation=BICUBIC):
    """Crop, then resize the crop to ``size`` = (height, width)."""
    return resize(crop(img, top, left, height, width), size, interpolation)


def hflip(img):
    """Mirror ``img`` left to right."""
    _require_pil(img)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def random_resized_crop_params(
    img_or_size,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    generator: Optional[torch.Generator] = None,
) -> Tuple[int, int, int, int]:
    """Draw a random crop box (top, left, height, width), as torchvision does.

    ``img_or_size`` is a PIL image or its ``(width, height)`` (PIL's order).
    Up to ten attempts each draw an area fraction uniform in ``scale`` and a
    log aspect ratio uniform in ``log(ratio)``; the first box that fits is
    placed with two ``torch.randint`` draws (top, then left).  If none fits,
    the central crop of the whole image, with its aspect ratio clamped to
    ``ratio``, is returned without further draws.
    """
    if isinstance(img_or_size, Image.Image):
        width, height = img_or_size.size
    else:
        width, height = (int(v) for v in img_or_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image is empty: width={width}, height={height}")
    _check_range(scale, "scale", low_exclusive=False)
    _check_range(ratio, "ratio", low_exclusive=True)

    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = torch.exp(
            torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item(), generator=generator)
        ).item()

        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))

        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
            left = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
            return top, left, h, w

    # fallback: central crop with the aspect ratio clamped into `ratio`
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w = width
        h = height
    top = (height - h) // 2
    left = (width - w) // 2
    return top, left, h, w


# ---------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------
def to_tensor(img) -> torch.Tensor:
    """8-bit PIL image (H, W, C) -> float tensor (C, H, W) in [0, 1] (value / 255).

    The float dtype is torch's default dtype (float32 unless changed).  Modes with
    more than 8 bits per band ("I", "I;16", "F", ...) are rejected: convert first.
    """
    _require_pil(img)
    if img.mode == "1":
        arr = np.array(img, dtype=np.uint8) * np.uint8(255)
    else:
        arr = np.array(img)
        if arr.dtype != np.uint8:
            raise ValueError(
                f"to_tensor handles 8-bit images only; mode {img.mode!r} gives {arr.dtype} pixels "
                "(convert the image, e.g. to 'RGB', first)"
            )
    width, height = img.size
    arr = arr.reshape(height, width, len(img.getbands()))
    tensor = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    return tensor.to(dtype=torch.get_default_dtype()).div(255)


def normalize(tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(tensor - mean) / std per channel of a float (..., C, H, W) tensor; returns a new tensor."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"normalize expects a torch.Tensor, got {type(tensor).__qualname__}")
    if not tensor.is_floating_point():
        raise TypeError(f"normalize expects a floating point tensor, got {tensor.dtype}")
    if tensor.ndim < 3:
        raise ValueError(f"normalize expects a (..., C, H, W) tensor, got shape {tuple(tensor.shape)}")
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
    if (std_t == 0).any():
        raise ValueError(f"std evaluated to zero in {tensor.dtype}: {std!r}")
    if mean_t.ndim == 1:
        mean_t = mean_t.view(-1, 1, 1)
    if std_t.ndim == 1:
        std_t = std_t.view(-1, 1, 1)
    return tensor.clone().sub_(mean_t).div_(std_t)


def check_mean_std(mean, std, channels=3):
    """Validate and return ``(mean, std)`` as tuples of ``channels`` floats (std > 0)."""
    out = []
    for name, values in (("mean", mean), ("std", std)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"{name} should be a sequence of {channels} numbers, got {values!r}")
        if len(values) != channels:
            raise ValueError(f"{name} should have {channels} values (one per channel), got {len(values)}: {values!r}")
        try:
            values = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise TypeError(f"{name} should hold numbers, got {values!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name} should hold finite numbers, got {values!r}")
        out.append(values)
    if any(v <= 0 for v in out[1]):
        raise ValueError(f"std values should be > 0, got {out[1]!r}")
    return out[0], out[1]


# ---------------------------------------------------------------------------
# callables
# ---------------------------------------------------------------------------
class Compose:
    """Apply callables in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"{type(self).__name__}([{inner}\n])"


class ConvertRGB:
    """PIL image of any mode -> RGB; non-PIL input is a TypeError."""

    def __call__(self, img):
        return to_rgb(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


class RandomResizedCrop:
    """Crop a random box (see :func:`random_resized_crop_params`) and resize it to ``size``."""

    def __init__(self, size: Size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation=BICUBIC):
        self.size = _pair(size)
        self.scale = _check_range(scale, "scale", low_exclusive=False)
        self.ratio = _check_range(ratio, "ratio", low_exclusive=True)
        self.interpolation = interpolation

    def get_params(self, img, generator=None):
        return random_resized_crop_params(img, self.scale, self.ratio, generator=generator)

    def __call__(self, img):
        _require_pil(img)
        _require_nonempty(img)
        top, left, h, w = self.get_params(img)
        return resized_crop(img, top, left, h, w, self.size, self.interpolation)

    def __repr__(self):
        return (
            f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"interpolation={self.interpolation!r})"
        )


class RandomHorizontalFlip:
    """Mirror the image when one ``torch.rand(1)`` draw is below ``p``."""

    def __init__(self, p: float = 0.5):
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p should be a probability in [0, 1], got {p}")
        self.p = p

    def __call__(self, img):
        _require_pil(img)
        if torch.rand(1) < self.p:
            return hflip(img)
        return img

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class Resize:
    """Resize to exactly ``size`` = (height, width); an int means a square."""

    def __init__(self, size: Size, interpolation=BICUBIC):
        self.size = _pair(size)
        self.interpolation = interpolation

    def __call__(self, img):
        _require_pil(img)
        _require_nonempty(img)
        return resize(img, self.size, self.interpolation)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation!r})"


class ToTensor:
    def __call__(self, img):
        return to_tensor(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Normalize:
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = check_mean_std(mean, std)

    def __call__(self, tensor):
        return normalize(tensor, self.mean, self.std)

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"
