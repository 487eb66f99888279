import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lavis.common.registry import registry
from lavis.processors import (
    BaseInstructionProcessor,
    Blip2ImageTrainProcessor,
    BlipCaptionProcessor,
    BlipImageEvalProcessor,
    load_processor,
)

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def _random_image(width, height, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
    return img if mode == "RGB" else img.convert(mode)


def _normalise_numpy(pil_rgb, mean=CLIP_MEAN, std=CLIP_STD):
    """HWC uint8 -> CHW float32, /255, (x - mean) / std, all in float32 numpy."""
    arr = np.asarray(pil_rgb, dtype=np.uint8).astype(np.float32) / np.float32(255)
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return arr.transpose(2, 0, 1)


def _reference_box(width, height, scale, ratio=(3.0 / 4.0, 4.0 / 3.0)):
    """torchvision RandomResizedCrop.get_params restated (same torch RNG calls, same order)."""
    area = width * height
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            return i, j, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _expected_train(img, seed, size, scale=(0.5, 1.0), mean=CLIP_MEAN, std=CLIP_STD):
    """What torchvision's RandomResizedCrop -> RandomHorizontalFlip -> ToTensor -> Normalize gives."""
    torch.manual_seed(seed)
    i, j, h, w = _reference_box(img.width, img.height, scale)
    flip = bool(torch.rand(1) < 0.5)
    out = img.crop((j, i, j + w, i + h)).resize((size, size), Image.BICUBIC)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _normalise_numpy(out, mean, std), flip


# ---------------------------------------------------------------------------
# eval
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("size,width,height", [(8, 4, 4), (16, 37, 23), (24, 24, 24), (5, 50, 30)])
def test_eval_processor_values(size, width, height):
    img = _random_image(width, height, seed=size)
    out = BlipImageEvalProcessor(image_size=size)(img)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (3, size, size)
    assert out.dtype == torch.float32
    expected = _normalise_numpy(img.resize((size, size), Image.BICUBIC))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=0)


def test_eval_processor_tiny_image_hand_value():
    # a uniform 4x4 image stays uniform under any resize: (128/255 - mean) / std everywhere
    img = Image.new("RGB", (4, 4), (128, 128, 128))
    out = BlipImageEvalProcessor(image_size=6)(img)
    hand = [(128 / 255 - m) / s for m, s in zip(CLIP_MEAN.tolist(), CLIP_STD.tolist())]
    for c in range(3):
        assert out[c].min().item() == pytest.approx(hand[c], abs=1e-5)
        assert out[c].max().item() == pytest.approx(hand[c], abs=1e-5)


def test_eval_processor_converts_modes_and_rejects_non_pil():
    proc = BlipImageEvalProcessor(image_size=8)
    rgb = _random_image(10, 12, seed=3)
    for mode in ("L", "RGBA", "P", "CMYK"):
        other = rgb.convert(mode)
        expected = proc(other.convert("RGB"))
        got = proc(other)
        assert got.shape == (3, 8, 8)
        assert torch.equal(got, expected), mode
    with pytest.raises(TypeError, match="ndarray"):
        proc(np.asarray(rgb))
    with pytest.raises(TypeError, match="str"):
        proc("image.jpg")


def test_eval_registered_under_both_names():
    assert registry.get_processor_class("blip2_image_eval") is BlipImageEvalProcessor
    assert registry.get_processor_class("blip_image_eval") is BlipImageEvalProcessor
    assert BlipImageEvalProcessor().image_size == 384


def test_custom_mean_std_from_config():
    cfg = OmegaConf.create(
        {"name": "blip2_image_eval", "image_size": 8, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.25, 0.5]}
    )
    proc = load_processor("blip2_image_eval", cfg)
    img = _random_image(9, 9, seed=4)
    expected = _normalise_numpy(img.resize((8, 8), Image.BICUBIC), [0.5, 0.5, 0.5], [0.5, 0.25, 0.5])
    np.testing.assert_allclose(proc(img).numpy(), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="3 values"):
        BlipImageEvalProcessor(mean=[0.5, 0.5])


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("width,height", [(40, 30), (30, 40), (64, 64), (200, 6)])
def test_train_processor_matches_torchvision_pipeline(width, height):
    img = _random_image(width, height, seed=width)
    proc = Blip2ImageTrainProcessor(image_size=16)
    for seed in range(12):
        expected, _ = _expected_train(img, seed, 16)
        torch.manual_seed(seed)
        out = proc(img)
        assert out.shape == (3, 16, 16) and out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=0, err_msg=f"seed {seed}")


def test_train_processor_custom_scale():
    img = _random_image(50, 40, seed=9)
    proc = Blip2ImageTrainProcessor(image_size=12, min_scale=0.1, max_scale=0.3)
    for seed in range(10):
        expected, _ = _expected_train(img, seed, 12, scale=(0.1, 0.3))
        torch.manual_seed(seed)
        np.testing.assert_allclose(proc(img).numpy(), expected, rtol=0, atol=0)


def test_train_processor_flips_about_half_the_time():
    # left half dark, right half bright: a flip moves the bright side to the left
    arr = np.zeros((20, 20, 3), dtype=np.uint8)
    arr[:, 10:] = 255
    img = Image.fromarray(arr)
    proc = Blip2ImageTrainProcessor(image_size=8)
    flips = 0
    for seed in range(200):
        expected, expected_flip = _expected_train(img, seed, 8)
        torch.manual_seed(seed)
        out = proc(img)
        np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=0)
        left, right = out[:, :, :4].mean().item(), out[:, :, 4:].mean().item()
        assert (left > right) == expected_flip
        flips += expected_flip
    assert 70 <= flips <= 130


def test_train_processor_is_random_without_reseed():
    img = _random_image(64, 48, seed=1)
    proc = Blip2ImageTrainProcessor(image_size=16)
    torch.manual_seed(0)
    outs = [proc(img) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_train_processor_defaults_and_bad_options():
    proc = Blip2ImageTrainProcessor()
    assert proc.image_size == 364
    with pytest.raises(ValueError, match="min <= max"):
        Blip2ImageTrainProcessor(min_scale=0.9, max_scale=0.5)
    with pytest.raises(ValueError, match="image_size"):
        Blip2ImageTrainProcessor(image_size=0)
    with pytest.raises(TypeError, match="PIL"):
        proc(torch.zeros(3, 8, 8))


# ---------------------------------------------------------------------------
# registry / load_processor
# ---------------------------------------------------------------------------
def test_load_processor_train():
    proc = load_processor("blip2_image_train", {"image_size": 32})
    assert isinstance(proc, Blip2ImageTrainProcessor)
    torch.manual_seed(0)
    assert proc(_random_image(40, 40)).shape == (3, 32, 32)
    # the section's own `name` key is tolerated
    proc = load_processor("blip2_image_train", {"name": "blip2_image_train", "image_size": 8, "min_scale": 0.2})
    assert proc.image_size == 8
    # no cfg -> defaults
    assert load_processor("blip2_image_train").image_size == 364


def test_load_processor_unknown_option_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        load_processor("blip2_image_train", {"image_size": 32, "img_size": 32})
    msg = str(err.value)
    assert "img_size" in msg
    for option in ("image_size", "mean", "std", "min_scale", "max_scale"):
        assert option in msg


def test_load_processor_unknown_name():
    with pytest.raises(KeyError, match="blip2_image_eval"):
        load_processor("no_such_processor")


def test_all_names_registered():
    for name in ("blip2_image_train", "blip_image_eval", "blip2_image_eval", "blip_caption", "base_instruction"):
        assert name in registry.list_processors()


# ---------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [
        ("A man, riding a horse!!  On the beach.", "a man, riding a horse on the beach"),
        ('He said "Hi" (twice)*#:;~ ok', "he said hi twice ok"),
        ("  Leading and trailing   ", "leading and trailing"),
        ("Line one.\n\nLine two", "line one line two"),
        ("caption with newline\n", "caption with newline"),
        ("keep-hyphens, commas? and 'quotes'", "keep-hyphens, commas? and 'quotes'"),
        ("tab\tstays", "tab\tstays"),
        ("...", ""),
    ],
)
def test_blip_caption_cleaning(text, expected):
    assert BlipCaptionProcessor()(text) == expected


def test_blip_caption_max_words_and_prompt():
    proc = BlipCaptionProcessor(max_words=3)
    assert proc("One two three four five") == "one two three"
    assert proc("One two.  Three") == "one two three"
    assert BlipCaptionProcessor(max_words=0)("a b") == ""
    assert BlipCaptionProcessor(prompt="a photo of ")("A Dog.") == "a photo of a dog"
    long = " ".join(f"w{i}" for i in range(60))
    assert BlipCaptionProcessor()(long).split(" ") == [f"w{i}" for i in range(50)]
    proc = load_processor("blip_caption", {"prompt": "Q: ", "max_words": 2})
    assert proc("Hello big world") == "Q: hello big"
    with pytest.raises(TypeError, match="str"):
        BlipCaptionProcessor()(None)


def test_base_instruction_is_identity():
    proc = load_processor("base_instruction", {"max_words": 3})
    assert isinstance(proc, BaseInstructionProcessor)
    for text in ["请描述这张图片。", "Describe   THIS image!!\n", "", " ".join(["word"] * 100)]:
        assert proc(text) == text
    assert BaseInstructionProcessor()("你好，世界") == "你好，世界"
    with pytest.raises(ValueError, match="max_words"):
        load_processor("base_instruction", {"max_len": 3})
