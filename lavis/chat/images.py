"""Step 2 of the flow: the images a person adds, opened defensively.

:func:`load_image` opens an image file (:func:`load_image_bytes` an image's encoded bytes, as
the server receives them) as RGB or raises a one-line :class:`~lavis.chat.errors.ImageError`
(size, pixel count, decompression bombs, truncated or non-image files); :func:`example_image_path`
makes a cached example image.
"""

import io
import os
import warnings

from PIL import Image, UnidentifiedImageError

from lavis.chat.errors import ImageError, one_line
from lavis.common.utils import atomic_open, get_cache_path
from lavis.datasets.synthetic.shapes import FORMAT_VERSION, draw_shape

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


def load_image(path, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_IMAGE_PIXELS):
    """Open an image file as RGB, or raise :class:`ImageError` saying why not (one line).

    The pixel count is checked from the header before anything is decoded, so a
    decompression bomb is refused without being expanded.
    """
    path = os.path.expanduser(os.fspath(path))
    name = os.path.basename(path) or path
    if not os.path.exists(path):
        raise ImageError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise ImageError(f"not a file: {path}")
    _check_bytes(name, os.path.getsize(path), max_bytes)
    try:
        return _decode(path, name, max_pixels)
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied") from None


def load_image_bytes(data, name="the image", max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_IMAGE_PIXELS):
    """An image's encoded bytes (e.g. a request's base64 data) as RGB, checked as :func:`load_image`
    checks a file; `name` is what the messages call it."""
    _check_bytes(name, len(data), max_bytes)
    return _decode(io.BytesIO(data), name, max_pixels)


def _check_bytes(name, size, max_bytes):
    if size > max_bytes:
        raise ImageError(f"{name} is too large: {size / 2**20:.1f} MiB (limit {max_bytes / 2**20:.0f} MiB)")


def _decode(source, name, max_pixels):
    """A path or file object -> RGB image; the pixel count checked from the header first."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(f"{name} is too large: {width}x{height} pixels (limit {max_pixels:,} pixels)")
                image.load()
                return image.convert("RGB")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image (or not a format Pillow reads)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{name} refused as a possible decompression bomb: {one_line(err)}") from None
    except PermissionError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"cannot read {name} as an image (truncated or corrupt?): {one_line(err)}") from None


def example_image_path(shape="circle", colour="red", image_size=224):
    """A generated example image (one coloured shape, as in the tiny default's data), cached."""
    # the generator's format version is in the name: a cached image never outlives a change of drawing
    name = f"{colour}_{shape}_{image_size}_v{FORMAT_VERSION}.png"
    path = get_cache_path(os.path.join("examples", name))
    if not os.path.isfile(path):
        image, _ = draw_shape(shape, colour, image_size, rng=7)
        with atomic_open(path) as handle:
            image.save(handle, format="PNG")
    return path
