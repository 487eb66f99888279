"""Synthetic bilingual "coloured shapes" instruction dataset (the newcomer's first run).

Place in the flow
-----------------
``python train.py`` with no arguments runs
``lavis/projects/instruction_tuning/train_tiny.yaml``: a tiny model of the real
architecture (image -> ViT -> Q-former -> linear -> Qwen-style LLM) trained on
CPU in a few minutes.  Its data come from here: :func:`ensure_shapes_dataset`
writes, once, into ``cache/dataset/shapes_instruction/`` (:data:`DEFAULT_ROOT`)::

    image/00000.png ...           train images (one shape on a plain light background)
    image/val_00000.png ...       held-out images (separate random draws, same distribution)
    train.json                    multi-turn "conversations" format (1-2 Q/A turns; with
                                  `styled_share`, that share of the one-turn rows asks in a
                                  benchmark's style instead, see below)
    train_instruction.json        the same images, single-turn "instruction"/"output" format
    train_captions.json           the same images as LAVIS caption rows ("a red circle" / "红色的圆形"),
                                  for the two-stage demo's caption stage
    val.json                      single-turn "conversations" + "qtype" / "lang" keys
    metadata.json                 per image: split, shape, colour, position, bbox, background
    corpus.txt                    every plain question/answer string + generic chat lines
                                  (the tiny tokenizer's BPE vocabulary is trained on it)
    manifest.json                 parameters + format version, written LAST

The ``minigpt4_instruction``-style dataset builder reads the JSON files with the
images under ``image/``; the evaluation reports exact-match accuracy per
question type (colour / shape) and language (en / zh) from ``val.json``.

Every sample's image is referenced in its first user turn with the placeholder
``<Img><ImageHere></Img> `` followed by the question, as the original
MiniGPT4Qwen data do.  A question's language decides its answer's language.
Each question string is answered, across the dataset, with every colour (or
every shape), so the answer cannot be guessed from the text: a model whose image
path is broken scores chance (1/6 on colour, 1/4 on shape).

Benchmark styles (issue #12).  So that a tiny run also answers the field's
evaluation prompts (``lavis/processors/benchmark_prompts.py``) as the synthetic
benchmarks (``shapes_benchmarks.py``) ask them, ``styled_share`` of the one-turn train
rows (0.75: 37 % of the rows; 0 in the default run, which stays as fast and as accurate
as before) ask one benchmark-style question instead of their plain one, the
user turn built by ``benchmark_prompt`` itself, so the text is exactly what the
evaluation sends, image first: yes/no questions as MME asks them ("Is the shape in
the image red? Please answer yes or no." -> "Yes" / "No"), POPE's "Is there a red
circle in the image?" with the short-answer instruction, A-D multiple choice with
the multiple-choice instruction (English and Chinese, a hint in a third of them;
answered with the right option's text, see :data:`STYLES`), the caption
instruction (-> "a red circle") and short answers with the short-answer suffix
(English and Chinese); see :data:`STYLES`.  The styles are drawn from a
separate random stream, so the images, the two-turn rows and ``val.json`` are
exactly those of format 3.  The instructions are not in ``corpus.txt``, so the
shipped tiny vocabularies stay as they are: with 400 merges there is no room for
them (added, they cost the system prompt and the plain questions more tokens than
they save).

Everything is deterministic from ``seed`` (Python's ``random.Random`` seeded
with a string, stable across Python versions and platforms).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from lavis.datasets.synthetic.generation import balanced, ensure_generated, write_json, write_text
from lavis.processors.benchmark_prompts import IMAGE_PREFIX as _BENCHMARK_IMAGE_PREFIX
from lavis.processors.benchmark_prompts import INSTRUCTIONS, benchmark_prompt

__all__ = [
    "ANSWERS",
    "COLOURS",
    "DEFAULT_ROOT",
    "FORMAT_VERSION",
    "HINTS",
    "IMAGE_PREFIX",
    "LANGS",
    "LETTERS",
    "MME_QUESTIONS",
    "NO",
    "POPE_QUESTION",
    "QTYPES",
    "QUESTIONS",
    "SHAPES",
    "STYLES",
    "SYSTEM_PROMPT",
    "YES",
    "answer_for",
    "caption_references",
    "choice_keys",
    "corpus_lines",
    "draw_shape",
    "drawing_key",
    "drawing_keys",
    "ensure_shapes_dataset",
    "object_phrase",
    "other_object",
    "other_value",
    "pope_question",
    "prompt_style",
    "styled_turn",
    "yes_no_question",
]

#: Bump whenever the generator's output changes, so caches are regenerated.
FORMAT_VERSION = 5  # 3: train_captions.json; 4: benchmark-style questions in `styled_share` of the one-turn rows;
# 5: the A-D rows answered with the right option's text

#: Where the tiny default run keeps this dataset (relative to the cache root).
DEFAULT_ROOT = "cache/dataset/shapes_instruction"

#: Prefix of the first user turn: the image placeholder, as in the original data.
IMAGE_PREFIX = "<Img><ImageHere></Img> "

SYSTEM_PROMPT = "You are a helpful assistant."

#: Well-separated, saturated RGB values (all far from the light background).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 180),
    "orange": (245, 130, 20),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

QTYPES: tuple[str, ...] = ("colour", "shape")
LANGS: tuple[str, ...] = ("en", "zh")

#: Canonical answers: ANSWERS[qtype][lang][key] -> answer string.
ANSWERS: dict[str, dict[str, dict[str, str]]] = {
    "colour": {
        "en": {c: c for c in COLOURS},
        "zh": {
            "red": "红色",
            "green": "绿色",
            "blue": "蓝色",
            "yellow": "黄色",
            "purple": "紫色",
            "orange": "橙色",
        },
    },
    "shape": {
        "en": {s: s for s in SHAPES},
        "zh": {"circle": "圆形", "square": "正方形", "triangle": "三角形", "cross": "十字形"},
    },
}

#: Paraphrases: QUESTIONS[qtype][lang] -> tuple of question strings.
QUESTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "colour": {
        "en": (
            "What colour is the shape?",
            "What is the colour of the shape in the image?",
            "Which colour does the shape have?",
            "What color is the object in the picture?",
        ),
        "zh": (
            "图中形状是什么颜色？",
            "这个形状是什么颜色的？",
            "图片里的图形是什么颜色？",
            "请告诉我形状的颜色。",
        ),
    },
    "shape": {
        "en": (
            "What shape is in the image?",
            "Which shape is shown in the picture?",
            "What kind of shape do you see?",
            "Name the shape in the image.",
        ),
        "zh": (
            "图中是什么形状？",
            "图片里画的是什么图形？",
            "这是什么形状？",
            "请说出图中的形状。",
        ),
    },
}

# --------------------------------------------------------------------------
# benchmark styles (the texts the synthetic benchmarks ask; prompts: benchmark_prompts)
# --------------------------------------------------------------------------
if IMAGE_PREFIX != _BENCHMARK_IMAGE_PREFIX:  # the benchmark prompts put the image as these data do
    raise ImportError(f"IMAGE_PREFIX {IMAGE_PREFIX!r} differs from benchmark_prompts' {_BENCHMARK_IMAGE_PREFIX!r}")

#: MME's answers (its .txt files write them so; the readers lowercase them)
YES, NO = "Yes", "No"
#: MME-style yes/no questions: MME_QUESTIONS[qtype].format(colour or shape phrase)
MME_QUESTIONS = {
    "colour": "Is the shape in the image {}? Please answer yes or no.",
    "shape": "Is there {} in the image? Please answer yes or no.",
}
#: POPE's question about one object ("a red circle")
POPE_QUESTION = "Is there {} in the image?"
#: Hints of the multiple-choice rows that have one (MMBench's "hint" column)
HINTS: dict[str, tuple[str, ...]] = {
    "en": ("There is one shape in the image.", "The picture is small."),
    "zh": ("图中有一个形状。", "这张图片很小。"),
}
LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
#: COCO-style reference captions: five per image, filled by :func:`caption_references`
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{obj}",
    "{obj} on a grey background",
    "{colour} {shape}",
    "a picture of {obj}",
    "{obj} in the image",
)
#: The benchmark-style train rows: (style, prompt kind of benchmark_prompts, what is asked,
#: language, weight).  mme: MME's yes/no; pope: POPE's object question with the
#: short-answer instruction; choice: MMBench / MMBench-CN / SEED-Bench's A-D choice (a hint in a
#: third of them), answered with the right option's text ("red" / "红色"), which MMBench's answer
#: extraction maps to that option's letter: the tiny 2-layer LLM trained from scratch does not
#: learn to name the letter (the lookup from the option's text to the letter before it; README,
#: "Synthetic benchmarks"), a pretrained LLM answers the letter itself; caption: COCO's caption
#: instruction; short: VQAv2 / GQA's short answer.
STYLES: tuple[tuple[str, str, str, str, int], ...] = (
    ("mme", "yes_no", "colour", "en", 1),
    ("mme", "yes_no", "shape", "en", 1),
    ("pope", "short_answer", "object", "en", 2),
    ("choice", "multiple_choice", "colour", "en", 2),
    ("choice", "multiple_choice", "shape", "en", 2),
    ("choice", "multiple_choice", "colour", "zh", 2),
    ("choice", "multiple_choice", "shape", "zh", 2),
    ("caption", "caption", "object", "en", 1),
    ("short", "short_answer", "colour", "en", 1),
    ("short", "short_answer", "shape", "en", 1),
    ("short", "short_answer", "colour", "zh", 1),
    ("short", "short_answer", "shape", "zh", 1),
)
#: Share of the one-turn train rows that ask a benchmark-style question instead
_HINT_SHARE = 1 / 3

_POSITIONS_ZH = {"left": "左边", "centre": "中间", "right": "右边"}
_BACKGROUND = (235, 235, 230)
_BACKGROUND_JITTER = 8  # per-image, per-channel tint in [-8, 8]
_SIZE_RANGE = (0.47, 0.50)  # shape side as a fraction of the image side: near-constant, so
# the four shapes also differ in painted area (1, pi/4, 1/2, ~0.36), which a small model learns fast
_CROSS_BAR = 0.2  # cross bar thickness as a fraction of its side

_FILES = ("train.json", "train_instruction.json", "val.json", "metadata.json", "corpus.txt")


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------
def _randint(rng, lo: int, hi: int) -> int:
    """Inclusive random integer from a ``random.Random`` or a numpy generator."""
    integers = getattr(rng, "integers", None)  # numpy.random.Generator
    if integers is not None:
        return int(integers(lo, hi + 1))
    if type(rng).__name__ == "RandomState":  # numpy legacy: exclusive high
        return int(rng.randint(lo, hi + 1))
    return int(rng.randint(lo, hi))


def background_tint(rng) -> tuple[int, int, int]:
    """The light grey background with a slight random tint."""
    j = _BACKGROUND_JITTER
    return tuple(min(255, max(0, c + _randint(rng, -j, j))) for c in _BACKGROUND)


def draw_shape(
    shape: str, colour: str, image_size: int = 64, rng=None, size=None, origin=None, background=None
) -> tuple[Image.Image, dict]:
    """Draw one filled ``shape`` of ``colour`` at a random size and position (or the given
    ``size``, top-left ``origin`` (x0, y0) and ``background`` RGB: frames of one moving shape).

    ``rng`` may be a ``random.Random``, a ``numpy.random.Generator`` /
    ``RandomState``, an int seed or None.  The shape's side is 47%-50% of
    ``image_size`` and it lies fully inside the image; the background is a
    light grey with a slight random tint.  Returns ``(RGB image, meta)`` with
    meta keys ``shape, colour, rgb, size, bbox (x0, y0, x1, y1 inclusive),
    centre (cx, cy), position ('left'|'centre'|'right' by cx), background``.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; choose from {tuple(COLOURS)}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    if rng is None or isinstance(rng, int):
        rng = random.Random(rng)

    n = int(image_size)
    lo = max(4, round(_SIZE_RANGE[0] * n))
    hi = max(lo, round(_SIZE_RANGE[1] * n))
    s = _randint(rng, lo, hi) if size is None else int(size)
    x0, y0 = (_randint(rng, 0, n - s), _randint(rng, 0, n - s)) if origin is None else map(int, origin)
    x1, y1 = x0 + s - 1, y0 + s - 1
    bg = background_tint(rng) if background is None else tuple(background)

    img = Image.new("RGB", (n, n), bg)
    draw = ImageDraw.Draw(img)
    rgb = COLOURS[colour]
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=rgb)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=rgb)
    elif shape == "triangle":  # apex up, base along the bottom of the box
        draw.polygon([(x0 + (s - 1) / 2, y0), (x0, y1), (x1, y1)], fill=rgb)
    else:  # cross (plus sign): two bars a fifth of the side thick
        t = max(2, round(s * _CROSS_BAR))
        off = (s - t) // 2
        draw.rectangle((x0, y0 + off, x1, y0 + off + t - 1), fill=rgb)
        draw.rectangle((x0 + off, y0, x0 + off + t - 1, y1), fill=rgb)

    cx, cy = x0 + (s - 1) / 2, y0 + (s - 1) / 2
    position = "left" if cx < n / 3 else ("right" if cx >= 2 * n / 3 else "centre")
    meta = {
        "shape": shape,
        "colour": colour,
        "rgb": list(rgb),
        "size": s,
        "bbox": [x0, y0, x1, y1],
        "centre": [cx, cy],
        "position": position,
        "background": list(bg),
    }
    return img, meta


def answer_for(meta: dict, qtype: str, lang: str) -> str:
    """Canonical answer to a ``qtype`` question in ``lang`` about an image's meta."""
    key = meta["colour"] if qtype == "colour" else meta["shape"]
    return ANSWERS[qtype][lang][key]


def caption_for(meta: dict, lang: str) -> str:
    """A short caption of one image, e.g. "a red circle" or "红色的圆形"."""
    colour, shape = ANSWERS["colour"][lang][meta["colour"]], ANSWERS["shape"][lang][meta["shape"]]
    return f"a {colour} {shape}" if lang == "en" else f"{colour}的{shape}"


def captions(metas) -> list[dict]:
    """LAVIS caption rows for the images in `metas`, alternating English and Chinese captions."""
    return [{"image": m["image"], "caption": caption_for(m, LANGS[i % 2])} for i, m in enumerate(metas)]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(colour: str, shape: str, lang: str = "en") -> str:
    """The phrase for one shape: "a red circle", "an orange cross"; Chinese "红色的圆形"."""
    if lang == "zh":
        return f"{ANSWERS['colour']['zh'][colour]}的{ANSWERS['shape']['zh'][shape]}"
    return f"{_article(colour)} {colour} {shape}"


def yes_no_question(qtype: str, key: str) -> str:
    """MME's question whether the image's colour (or shape) is `key`."""
    return MME_QUESTIONS[qtype].format(key if qtype == "colour" else f"{_article(key)} {key}")


def pope_question(colour: str, shape: str) -> str:
    return POPE_QUESTION.format(object_phrase(colour, shape))


def other_value(rng, qtype: str, key: str) -> str:
    """A colour (or shape) other than `key`, uniformly."""
    return rng.choice([k for k in (COLOURS if qtype == "colour" else SHAPES) if k != key])


def other_object(rng, colour: str, shape: str, adversarial: bool) -> tuple[str, str]:
    """A (colour, shape) not in the image: any other one, or (`adversarial`, POPE's hardest
    negatives) one that shares the colour or the shape with it."""
    if adversarial:
        return (
            (other_value(rng, "colour", colour), shape)
            if rng.random() < 0.5
            else (colour, other_value(rng, "shape", shape))
        )
    return rng.choice([(c, s) for c in COLOURS for s in SHAPES if (c, s) != (colour, shape)])


def choice_keys(rng, qtype: str, key: str, letter: str) -> dict[str, str]:
    """Four options {A-D: colour or shape key}: `key` at `letter`, three others in random order."""
    others = [k for k in (COLOURS if qtype == "colour" else SHAPES) if k != key]
    picked = rng.sample(others, len(LETTERS) - 1)
    picked.insert(LETTERS.index(letter), key)
    return dict(zip(LETTERS, picked))


def caption_references(meta: dict) -> list[str]:
    """The five reference captions of an image ("a red circle", "a red circle on a grey background", ...)."""
    obj = object_phrase(meta["colour"], meta["shape"])
    return [t.format(obj=obj, colour=meta["colour"], shape=meta["shape"]) for t in CAPTION_TEMPLATES]


def styled_turn(rng, meta: dict, style: str, kind: str, asked: str, lang: str, target=None) -> tuple[str, str]:
    """(user turn, answer) of one benchmark-style question about the image of `meta`; the user
    turn is `benchmark_prompt(kind, item)`, exactly what the evaluation sends.  `target`: the
    answer to produce (True/False for yes/no; for a choice, the letter whose option is right,
    answered with that option's text; None otherwise)."""
    colour, shape = meta["colour"], meta["shape"]
    item = {"question": "", "choices": None, "hint": None, "meta": {"lang": lang}}
    if style == "mme":
        key = meta[asked] if target else other_value(rng, asked, meta[asked])
        item["question"], answer = yes_no_question(asked, key), YES if target else NO
    elif style == "pope":
        obj = (colour, shape) if target else other_object(rng, colour, shape, rng.random() < 0.5)
        item["question"], answer = pope_question(*obj), YES if target else NO
    elif style == "choice":
        keys = choice_keys(rng, asked, meta[asked], target)
        item["question"] = rng.choice(QUESTIONS[asked][lang])
        item["choices"] = {letter: ANSWERS[asked][lang][k] for letter, k in keys.items()}
        item["hint"] = rng.choice(HINTS[lang]) if rng.random() < _HINT_SHARE else None
        answer = item["choices"][target]  # the option's text, not its letter: see STYLES
    elif style == "caption":
        answer = object_phrase(colour, shape, lang)
    elif style == "short":
        item["question"], answer = rng.choice(QUESTIONS[asked][lang]), answer_for(meta, asked, lang)
    else:
        raise ValueError(f"unknown style {style!r}; choose from {sorted({s[0] for s in STYLES})}")
    return benchmark_prompt(kind, item), answer


def prompt_style(text: str) -> str | None:
    """The benchmark prompt kind ('yes_no', 'short_answer', 'multiple_choice', 'caption') of a
    benchmark-style user turn, None for one of the plain QUESTIONS."""
    for lang in LANGS:
        if text == IMAGE_PREFIX + INSTRUCTIONS["caption"][lang]:
            return "caption"
        if text.endswith("\n" + INSTRUCTIONS["multiple_choice"][lang]):
            return "multiple_choice"
        if text.endswith("\n" + INSTRUCTIONS["short_answer"][lang]):
            return "short_answer"
    return "yes_no" if text.endswith(" Please answer yes or no.") else None


def _style_block() -> list[tuple]:
    """One block of (style, kind, asked, lang, target) cells, each style's targets (yes/no;
    letters) equally often and each style as often as its weight says."""
    block = []
    for style, kind, asked, lang, weight in STYLES:
        targets = (True, False) if style in ("mme", "pope") else LETTERS if style == "choice" else (None,)
        for target in targets:
            block += [(style, kind, asked, lang, target)] * (weight * len(LETTERS) // len(targets))
    return block


# --------------------------------------------------------------------------
# corpus for the tiny tokenizer
# --------------------------------------------------------------------------
def corpus_lines() -> list[str]:
    """Every plain question / answer string the generator can produce, plus a few hundred
    generic bilingual chat lines (the benchmark-style turns' instructions are not in it: a
    vocabulary of 400 merges has no room for them, see :data:`STYLES`).  Independent of the seed, so the tiny
    tokenizer's vocabulary is the same for every generated dataset."""
    lines: list[str] = [SYSTEM_PROMPT, "system", "user", "assistant", "你是一个乐于助人的助手。"]
    for qtype in QTYPES:
        for lang in LANGS:
            answers = list(ANSWERS[qtype][lang].values())
            for q in QUESTIONS[qtype][lang]:
                lines.append(q)
                lines.append(IMAGE_PREFIX + q)
                lines.extend(f"{q} {a}" for a in answers)
            lines.extend(answers)

    generic_en = [
        "Hello!",
        "Hi, how are you?",
        "I am fine, thank you.",
        "Good morning.",
        "Good evening.",
        "Thank you!",
        "You are welcome.",
        "Goodbye.",
        "See you later.",
        "Nice to meet you.",
        "How can I help you today?",
        "Please describe the image.",
        "Can you help me?",
        "Of course, I can help.",
        "Sure.",
        "Yes.",
        "No.",
        "I do not know.",
        "Let me look at the picture.",
        "The picture is small.",
        "The background is light grey.",
        "There is one shape in the image.",
        "There is only one object in the picture.",
        "What do you see?",
        "I see a shape.",
        "Is it big or small?",
        "It is big.",
        "It is small.",
        "Where is the shape?",
        "Please answer in English.",
        "Please answer briefly.",
        "Answer with one word.",
        "That is correct.",
        "That is wrong.",
        "Let us try again.",
        "Which one?",
        "Why?",
        "Because it has three corners.",
        "A square has four equal sides.",
        "A circle is round.",
        "A triangle has three sides.",
        "A cross looks like a plus sign.",
    ]
    generic_zh = [
        "你好！",
        "你好，最近怎么样？",
        "我很好，谢谢。",
        "早上好。",
        "晚上好。",
        "谢谢！",
        "不客气。",
        "再见。",
        "回头见。",
        "很高兴认识你。",
        "今天我能帮你什么？",
        "请描述这张图片。",
        "你能帮我吗？",
        "当然，我可以帮忙。",
        "好的。",
        "是的。",
        "不是。",
        "我不知道。",
        "让我看看这张图片。",
        "这张图片很小。",
        "背景是浅灰色的。",
        "图中有一个形状。",
        "图片里只有一个物体。",
        "你看到了什么？",
        "我看到一个形状。",
        "它是大的还是小的？",
        "它很大。",
        "它很小。",
        "形状在哪里？",
        "请用中文回答。",
        "请简短回答。",
        "用一个词回答。",
        "回答正确。",
        "回答错误。",
        "我们再试一次。",
        "哪一个？",
        "为什么？",
        "因为它有三个角。",
        "正方形有四条相等的边。",
        "圆形是圆的。",
        "三角形有三条边。",
        "十字形看起来像一个加号。",
    ]
    lines += generic_en + generic_zh
    for shape in SHAPES:
        shape_zh = ANSWERS["shape"]["zh"][shape]
        for colour in COLOURS:
            colour_zh = ANSWERS["colour"]["zh"][colour]
            article = "an" if colour[0] in "aeiou" else "a"
            lines.append(f"This is {article} {colour} {shape}.")
            lines.append(f"这是一个{colour_zh}的{shape_zh}。")
            for pos, pos_zh in _POSITIONS_ZH.items():
                side = "in the centre" if pos == "centre" else f"on the {pos}"
                lines.append(f"The {colour} {shape} is {side}.")
                lines.append(f"{colour_zh}的{shape_zh}在{pos_zh}。")
    seen: set[str] = set()
    return [x for x in lines if not (x in seen or seen.add(x))]


# --------------------------------------------------------------------------
# dataset generation
# --------------------------------------------------------------------------
def _shape_colour_stream(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """Shapes and colours each balanced to within one, drawn independently."""
    return list(zip(balanced(rng, list(SHAPES), n), balanced(rng, list(COLOURS), n)))


def _question(rng: random.Random, qtype: str, lang: str) -> str:
    return rng.choice(QUESTIONS[qtype][lang])


def _name_width(n: int) -> int:
    return max(5, len(str(max(n - 1, 0))))


def _params(num_train: int, num_val: int, image_size: int, seed: int, styled_share: float = 0.0) -> dict:
    params = {"num_train": int(num_train), "num_val": int(num_val), "image_size": int(image_size), "seed": int(seed)}
    return {**params, "styled_share": float(styled_share)} if styled_share else params


def drawing_key(meta: dict) -> tuple:
    """What makes two drawings the same picture: shape, colour, bbox and background."""
    return (meta["shape"], meta["colour"], tuple(meta["bbox"]), tuple(meta["background"]))


def _train_samples(num_train: int, image_size: int, seed: int, styled_share: float = 0.0):
    """(file name, image, meta, conversation) of each train image, in order."""
    rng = random.Random(f"shapes-instruction:{seed}:train")
    # the benchmark styles draw from their own stream: images and plain questions stay format 3's
    styles = random.Random(f"shapes-instruction:{seed}:train-styles")
    cells = iter(balanced(styles, _style_block(), num_train))
    width = _name_width(num_train)
    for i, (shape, colour) in enumerate(_shape_colour_stream(rng, num_train)):
        img, meta = draw_shape(shape, colour, image_size, rng)
        first = rng.choice(QTYPES)
        qtypes = [first] if rng.random() < 0.5 else [first, QTYPES[1 - QTYPES.index(first)]]
        conv = []
        for t, qtype in enumerate(qtypes):
            lang = rng.choice(LANGS)
            q = _question(rng, qtype, lang)
            conv.append({"from": "user", "value": (IMAGE_PREFIX + q) if t == 0 else q})
            conv.append({"from": "assistant", "value": answer_for(meta, qtype, lang)})
        if len(conv) == 2 and styles.random() < styled_share:
            prompt, answer = styled_turn(styles, meta, *next(cells))
            conv = [{"from": "user", "value": prompt}, {"from": "assistant", "value": answer}]
        yield f"{i:0{width}d}.png", img, meta, conv


def _val_samples(num_val: int, image_size: int, seed: int, train_keys: set):
    """(file name, image, meta, qtype, lang, question) of each held-out image, in order: exactly
    balanced, never a train image's drawing."""
    rng = random.Random(f"shapes-instruction:{seed}:val")
    width = _name_width(num_val)
    qa_cells = [(q, lang) for q in QTYPES for lang in LANGS]
    for i, ((shape, colour), (qtype, lang)) in enumerate(
        zip(_shape_colour_stream(rng, num_val), balanced(rng, qa_cells, num_val))
    ):
        for _ in range(1000):  # never reuse a train image's exact drawing
            img, meta = draw_shape(shape, colour, image_size, rng)
            if drawing_key(meta) not in train_keys:
                break
        yield f"val_{i:0{width}d}.png", img, meta, qtype, lang, _question(rng, qtype, lang)


@functools.lru_cache(maxsize=8)
def drawing_keys(num_train: int = 4000, num_val: int = 400, image_size: int = 64, seed: int = 0) -> frozenset:
    """The :func:`drawing_key` of every train and val image of the dataset these parameters
    generate (computed, not read from disk), for sets that must never repeat one of them."""
    train = frozenset(drawing_key(meta) for _, _, meta, _ in _train_samples(num_train, image_size, seed))
    val = {drawing_key(meta) for _, _, meta, *_ in _val_samples(num_val, image_size, seed, train)}
    return train | val


def _generate(root: Path, params: dict) -> dict:
    num_train, num_val = params["num_train"], params["num_val"]
    image_size, seed = params["image_size"], params["seed"]
    image_dir = root / "image"
    if image_dir.exists():
        shutil.rmtree(image_dir)
    image_dir.mkdir(parents=True)

    metadata: list[dict] = []

    def save(img: Image.Image, name: str, split: str, meta: dict) -> None:
        img.save(image_dir / name, format="PNG", compress_level=1)
        metadata.append({"image": name, "split": split, **meta})

    # ---- train: conversations (1-2 turns) + single-turn instruction view
    train, train_instruction = [], []
    train_keys: set[tuple] = set()
    for name, img, meta, conv in _train_samples(num_train, image_size, seed, params.get("styled_share", 0.0)):
        save(img, name, "train", meta)
        train_keys.add(drawing_key(meta))
        train.append({"image": name, "conversations": conv})
        train_instruction.append({"image": name, "instruction": conv[0]["value"], "output": conv[1]["value"]})

    # ---- val: single-turn conversations, exactly balanced, disjoint draws
    val = []
    for name, img, meta, qtype, lang, q in _val_samples(num_val, image_size, seed, train_keys):
        save(img, name, "val", meta)
        val.append(
            {
                "image": name,
                "conversations": [
                    {"from": "user", "value": IMAGE_PREFIX + q},
                    {"from": "assistant", "value": answer_for(meta, qtype, lang)},
                ],
                "qtype": qtype,
                "lang": lang,
            }
        )

    write_json(root / "train.json", train)
    write_json(root / "train_instruction.json", train_instruction)
    write_json(root / "train_captions.json", captions(m for m in metadata if m["split"] == "train"))
    write_json(root / "val.json", val)
    write_json(root / "metadata.json", metadata)
    write_text(root / "corpus.txt", "\n".join(corpus_lines()) + "\n")

    def counts(split: str) -> dict:
        metas = [m for m in metadata if m["split"] == split]
        return {
            "images": len(metas),
            "shape": dict(Counter(m["shape"] for m in metas)),
            "colour": dict(Counter(m["colour"] for m in metas)),
            "position": dict(Counter(m["position"] for m in metas)),
        }

    return {
        "train": {
            **counts("train"),
            "turns": sum(len(r["conversations"]) // 2 for r in train),
            "two_turn_samples": sum(len(r["conversations"]) == 4 for r in train),
            "styles": dict(Counter(prompt_style(r["conversations"][0]["value"]) or "plain" for r in train)),
        },
        "val": {
            **counts("val"),
            "qtype": dict(Counter(r["qtype"] for r in val)),
            "lang": dict(Counter(r["lang"] for r in val)),
        },
    }


def ensure_shapes_dataset(
    root: str | os.PathLike = DEFAULT_ROOT,
    num_train: int = 4000,
    num_val: int = 400,
    image_size: int = 64,
    seed: int = 0,
    styled_share: float = 0.0,
) -> Path:
    """Generate the dataset under ``root`` unless a complete copy with the same
    parameters is already there; return ``root`` as a Path.

    ``styled_share``: the share of one-turn rows asked in a benchmark's style instead (:data:`STYLES`;
    0 for the default run, whose rows stay format 3's; ``shapes_styles_tiny.yaml`` uses 0.75).

    Completeness is recorded by ``manifest.json`` (parameters + format
    version), written last and atomically; it is removed before regenerating,
    so an interrupted generation is redone rather than half-used.
    """
    if num_train < 1 or num_val < 0 or not 0 <= styled_share <= 1:
        raise ValueError(
            f"need num_train >= 1, num_val >= 0, 0 <= styled_share <= 1; got {num_train}, {num_val}, {styled_share}"
        )
    params = _params(num_train, num_val, image_size, seed, styled_share)
    return ensure_generated(root, params, FORMAT_VERSION, _FILES, "image", _generate)
