import math

import numpy as np
import pytest
import torch
from PIL import Image

from lavis.processors import transforms as T


def _image(arr):
    return Image.fromarray(np.asarray(arr, dtype=np.uint8))


# A 4x4 RGB image whose pixels are multiples of 51 (so /255 gives 0.0, 0.2, ... 1.0).
PIXELS = np.array(
    [
        [[0, 51, 102], [153, 204, 255], [255, 0, 0], [0, 255, 0]],
        [[0, 0, 255], [51, 51, 51], [102, 102, 102], [153, 153, 153]],
        [[204, 204, 204], [255, 255, 255], [0, 0, 0], [51, 102, 153]],
        [[255, 204, 153], [102, 51, 0], [0, 102, 204], [204, 102, 0]],
    ],
    dtype=np.uint8,
)


# ---------------------------------------------------------------------------
# to_tensor / normalize
# ---------------------------------------------------------------------------
def test_to_tensor_hand_values():
    t = T.to_tensor(_image(PIXELS))
    assert t.shape == (3, 4, 4)
    assert t.dtype == torch.float32
    # pixel (row 0, col 0) = (0, 51, 102) -> (0.0, 0.2, 0.4)
    assert t[:, 0, 0].tolist() == pytest.approx([0.0, 0.2, 0.4], abs=1e-7)
    # pixel (row 0, col 1) = (153, 204, 255) -> (0.6, 0.8, 1.0)
    assert t[:, 0, 1].tolist() == pytest.approx([0.6, 0.8, 1.0], abs=1e-7)
    # pixel (row 3, col 0) = (255, 204, 153) -> (1.0, 0.8, 0.6): row index is the 2nd axis
    assert t[:, 3, 0].tolist() == pytest.approx([1.0, 0.8, 0.6], abs=1e-7)
    # pixel (row 0, col 3) = (0, 255, 0); (row 3, col 3) = (204, 102, 0)
    assert t[:, 0, 3].tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-7)
    assert t[:, 3, 3].tolist() == pytest.approx([0.8, 0.4, 0.0], abs=1e-7)
    # red channel of row 1: 0, 51, 102, 153
    assert t[0, 1].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6], abs=1e-7)


def test_to_tensor_non_square_layout_and_exact_division():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)  # H=3, W=5
    t = T.to_tensor(_image(arr))
    assert t.shape == (3, 3, 5)
    expected = arr.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(t.numpy(), expected)


def test_to_tensor_other_modes():
    gray = Image.fromarray(np.array([[0, 51], [255, 102]], dtype=np.uint8))
    assert gray.mode == "L"
    t = T.to_tensor(gray)
    assert t.shape == (1, 2, 2)
    assert t[0].flatten().tolist() == pytest.approx([0.0, 0.2, 1.0, 0.4], abs=1e-7)

    bw = gray.convert("1", dither=Image.Dither.NONE)  # threshold at 128: only 255 is on
    t = T.to_tensor(bw)
    assert t.shape == (1, 2, 2)
    assert t[0].tolist() == [[0.0, 0.0], [1.0, 0.0]]

    with pytest.raises(ValueError, match="8-bit"):
        T.to_tensor(Image.new("I", (2, 2)))
    with pytest.raises(TypeError, match="ndarray"):
        T.to_tensor(np.zeros((2, 2, 3), dtype=np.uint8))


def test_normalize_hand_values():
    t = T.to_tensor(_image(PIXELS))
    n = T.normalize(t, (0.5, 0.5, 0.5), (0.5, 0.25, 0.5))
    # (x - 0.5) / 0.5 on R and B, (x - 0.5) / 0.25 on G
    # pixel (0,0) = (0.0, 0.2, 0.4) -> (-1.0, -1.2, -0.2)
    assert n[:, 0, 0].tolist() == pytest.approx([-1.0, -1.2, -0.2], abs=1e-6)
    # pixel (0,1) = (0.6, 0.8, 1.0) -> (0.2, 1.2, 1.0)
    assert n[:, 0, 1].tolist() == pytest.approx([0.2, 1.2, 1.0], abs=1e-6)
    # input left untouched
    assert t[:, 0, 0].tolist() == pytest.approx([0.0, 0.2, 0.4], abs=1e-7)


def test_normalize_clip_values():
    t = T.to_tensor(_image(PIXELS))
    n = T.normalize(t, T.CLIP_MEAN, T.CLIP_STD)
    # white pixel (row 2, col 1): (1 - mean) / std, worked out by hand to 6 places
    assert n[:, 2, 1].tolist() == pytest.approx([1.930336, 2.074884, 2.145897], abs=1e-5)
    # black pixel (row 2, col 2): -mean / std
    assert n[:, 2, 2].tolist() == pytest.approx([-1.792263, -1.752097, -1.480220], abs=1e-5)
    # every value, the float32 way
    mean = np.array(T.CLIP_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(T.CLIP_STD, dtype=np.float32)[:, None, None]
    expected = (PIXELS.transpose(2, 0, 1).astype(np.float32) / np.float32(255) - mean) / std
    np.testing.assert_array_equal(n.numpy(), expected)


def test_normalize_rejects_bad_input():
    with pytest.raises(TypeError, match="floating"):
        T.normalize(torch.zeros(3, 2, 2, dtype=torch.uint8), (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="zero"):
        T.normalize(torch.zeros(3, 2, 2), (0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="C, H, W"):
        T.normalize(torch.zeros(2, 2), (0,), (1,))
    with pytest.raises(ValueError, match="3 values"):
        T.Normalize((0.5, 0.5), (1, 1, 1))
    with pytest.raises(ValueError, match="> 0"):
        T.Normalize((0.5, 0.5, 0.5), (1, -1, 1))


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------
def test_crop_resize_flip_match_pil():
    rng = np.random.default_rng(1)
    img = _image(rng.integers(0, 256, size=(20, 30, 3)))
    np.testing.assert_array_equal(np.asarray(T.crop(img, 2, 5, 10, 7)), np.asarray(img)[2:12, 5:12])
    np.testing.assert_array_equal(np.asarray(T.resize(img, (11, 13))), np.asarray(img.resize((13, 11), Image.BICUBIC)))
    assert T.resize(img, 9).size == (9, 9)
    np.testing.assert_array_equal(
        np.asarray(T.resized_crop(img, 2, 5, 10, 7, (8, 6))),
        np.asarray(img.crop((5, 2, 12, 12)).resize((6, 8), Image.BICUBIC)),
    )
    np.testing.assert_array_equal(np.asarray(T.hflip(img)), np.asarray(img)[:, ::-1])
    with pytest.raises(TypeError, match="PIL"):
        T.hflip(np.asarray(img))


def test_to_rgb():
    img = Image.new("RGBA", (3, 2), (10, 20, 30, 40))
    out = T.to_rgb(img)
    assert out.mode == "RGB" and out.size == (3, 2)
    assert out.getpixel((0, 0)) == (10, 20, 30)
    rgb = Image.new("RGB", (3, 2))
    assert T.to_rgb(rgb) is rgb
    with pytest.raises(TypeError, match="Tensor"):
        T.to_rgb(torch.zeros(3, 2, 2))


# ---------------------------------------------------------------------------
# RandomResizedCrop parameters versus a re-statement of torchvision's algorithm
# ---------------------------------------------------------------------------
def reference_get_params(width, height, scale, ratio):
    """torchvision RandomResizedCrop.get_params, restated; also says which branch it took."""
    area = height * width
    log_lo = torch.log(torch.tensor(ratio))[0]
    log_hi = torch.log(torch.tensor(ratio))[1]
    for _attempt in range(10):
        frac = torch.empty(1).uniform_(scale[0], scale[1]).item()
        target_area = area * frac
        ar = torch.exp(torch.empty(1).uniform_(log_lo, log_hi)).item()
        w = int(round(math.sqrt(target_area * ar)))
        h = int(round(math.sqrt(target_area / ar)))
        if w > 0 and h > 0 and w <= width and h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            return (i, j, h, w), "random"
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return ((height - h) // 2, (width - w) // 2, h, w), "fallback"


RATIO = (3.0 / 4.0, 4.0 / 3.0)
SHAPES = [
    (640, 480),
    (480, 640),
    (100, 100),
    (37, 23),
    (1000, 10),
    (10, 1000),
    (1000, 11),
    (11, 1000),
    (1, 1),
    (3, 1),
    (1, 7),
]
SCALES = [(0.5, 1.0), (0.08, 1.0), (1.0, 1.0)]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("width,height", SHAPES)
def test_crop_params_match_reference(width, height, scale):
    img = Image.new("RGB", (width, height))
    for seed in range(25):
        torch.manual_seed(seed)
        expected, _ = reference_get_params(width, height, scale, RATIO)
        after_expected = torch.rand(1).item()  # RNG state after the reference

        torch.manual_seed(seed)
        got = T.random_resized_crop_params(img, scale, RATIO)
        after_got = torch.rand(1).item()
        assert got == expected, (seed, width, height, scale)
        assert after_got == after_expected, "different number of RNG draws"
        # the (width, height) form gives the same box
        torch.manual_seed(seed)
        assert T.random_resized_crop_params((width, height), scale, RATIO) == expected


def test_degenerate_images_hit_fallback():
    # a 1000x10 strip can never fit a crop of >= half its area with aspect ratio <= 4/3
    for seed in range(10):
        torch.manual_seed(seed)
        expected, branch = reference_get_params(1000, 10, (0.5, 1.0), RATIO)
        assert branch == "fallback"
        assert expected == (0, (1000 - 13) // 2, 10, 13)  # h = 10, w = round(10 * 4/3) = 13
        torch.manual_seed(seed)
        assert T.random_resized_crop_params((1000, 10), (0.5, 1.0), RATIO) == expected
        # tall strip: w = 10, h = round(10 / (3/4)) = 13, centred vertically
        torch.manual_seed(seed)
        assert T.random_resized_crop_params((10, 1000), (0.5, 1.0), RATIO) == ((1000 - 13) // 2, 0, 13, 10)
        # rounding, not truncation: 11 * 4/3 = 14.67 -> 15 and 11 / (3/4) = 14.67 -> 15
        torch.manual_seed(seed)
        assert T.random_resized_crop_params((1000, 11), (0.5, 1.0), RATIO) == (0, (1000 - 15) // 2, 11, 15)
        torch.manual_seed(seed)
        assert T.random_resized_crop_params((11, 1000), (0.5, 1.0), RATIO) == ((1000 - 15) // 2, 0, 15, 11)
    # a fallback consumes exactly 10 pairs of uniform draws and no randint
    torch.manual_seed(3)
    T.random_resized_crop_params((1000, 10), (0.5, 1.0), RATIO)
    after = torch.rand(1).item()
    torch.manual_seed(3)
    for _ in range(20):
        torch.empty(1).uniform_(0, 1)
    assert after == torch.rand(1).item()


def test_reference_takes_both_branches_over_the_shapes():
    branches = set()
    for width, height in SHAPES:
        for seed in range(25):
            torch.manual_seed(seed)
            branches.add(reference_get_params(width, height, (0.5, 1.0), RATIO)[1])
    assert branches == {"random", "fallback"}


@pytest.mark.parametrize("scale", [(0.5, 1.0), (0.08, 0.2)])
def test_crop_params_respect_bounds(scale):
    width, height = 640, 480
    area = width * height
    for seed in range(200):
        torch.manual_seed(seed)
        i, j, h, w = T.random_resized_crop_params((width, height), scale, RATIO)
        assert 0 <= i and 0 <= j and 0 < h and 0 < w
        assert i + h <= height and j + w <= width
        # rounding h and w to ints moves the area by well under 2% here
        assert scale[0] * 0.98 <= h * w / area <= scale[1] * 1.02
        assert RATIO[0] * 0.98 <= w / h <= RATIO[1] * 1.02


def test_crop_params_generator_equals_global_seed():
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    a = [T.random_resized_crop_params((300, 200), (0.5, 1.0)) for _ in range(5)]
    b = [T.random_resized_crop_params((300, 200), (0.5, 1.0), generator=gen) for _ in range(5)]
    assert a == b


def test_crop_params_validation():
    with pytest.raises(ValueError, match="min <= max"):
        T.random_resized_crop_params((10, 10), (1.0, 0.5))
    with pytest.raises(ValueError, match="> 0"):
        T.random_resized_crop_params((10, 10), (0.5, 1.0), (0.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        T.random_resized_crop_params((0, 10), (0.5, 1.0))
    with pytest.raises(ValueError, match="min <= max"):
        T.RandomResizedCrop(8, scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="positive"):
        T.RandomResizedCrop(0)


def test_random_resized_crop_callable():
    rng = np.random.default_rng(2)
    img = _image(rng.integers(0, 256, size=(40, 50, 3)))
    rrc = T.RandomResizedCrop(16, scale=(0.5, 1.0))
    torch.manual_seed(5)
    out = rrc(img)
    torch.manual_seed(5)
    i, j, h, w = reference_get_params(50, 40, (0.5, 1.0), RATIO)[0]
    assert out.size == (16, 16)
    np.testing.assert_array_equal(
        np.asarray(out), np.asarray(img.crop((j, i, j + w, i + h)).resize((16, 16), Image.BICUBIC))
    )


def test_random_horizontal_flip_uses_one_rand_draw():
    img = _image(np.arange(2 * 3 * 3).reshape(2, 3, 3))
    flip = T.RandomHorizontalFlip(0.5)
    for seed in range(20):
        torch.manual_seed(seed)
        should = bool(torch.rand(1) < 0.5)
        after_expected = torch.rand(1).item()
        torch.manual_seed(seed)
        out = flip(img)
        assert torch.rand(1).item() == after_expected
        expected = np.asarray(img)[:, ::-1] if should else np.asarray(img)
        np.testing.assert_array_equal(np.asarray(out), expected)
    torch.manual_seed(0)
    assert T.RandomHorizontalFlip(0.0)(img) is img
    with pytest.raises(ValueError):
        T.RandomHorizontalFlip(1.5)


def test_compose_order():
    c = T.Compose([lambda x: x + 1, lambda x: x * 10])
    assert c(1) == 20
