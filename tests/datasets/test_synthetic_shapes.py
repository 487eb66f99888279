"""Synthetic bilingual shapes dataset: formats, pixels, determinism, caching, balance."""

import hashlib
import json
import os
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from lavis.common.utils import DiskFullError
from lavis.datasets.synthetic import shapes as S
from lavis.datasets.synthetic.shapes import (
    ANSWERS,
    COLOURS,
    IMAGE_PREFIX,
    QUESTIONS,
    SHAPES,
    draw_shape,
    ensure_shapes_dataset,
)

SMALL = dict(num_train=40, num_val=12, image_size=64, seed=0)
JSON_FILES = ("train.json", "train_instruction.json", "val.json")
ALL_QUESTIONS = {q: (t, lang) for t, by_lang in QUESTIONS.items() for lang, qs in by_lang.items() for q in qs}
ANSWER_KEY = {  # answer string -> (qtype, lang, key)
    a: (t, lang, k) for t, by_lang in ANSWERS.items() for lang, m in by_lang.items() for k, a in m.items()
}


def load(root, name):
    with open(root / name, encoding="utf-8") as f:
        return json.load(f)


def colour_mask(img, colour, tol=30):
    arr = np.asarray(img, dtype=np.int16)
    return np.abs(arr - np.array(COLOURS[colour], dtype=np.int16)).max(axis=-1) <= tol


def digest_dir(root):
    out = {}
    for name in JSON_FILES + ("corpus.txt", "metadata.json"):
        out[name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    for p in sorted((root / "image").iterdir()):
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return ensure_shapes_dataset(tmp_path_factory.mktemp("shapes") / "ds", **SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    return ensure_shapes_dataset(tmp_path_factory.mktemp("shapes_medium") / "ds", num_train=400, num_val=400)


# ---------------------------------------------------------------- constants
def test_vocabulary_constants():
    assert SHAPES == ("circle", "square", "triangle", "cross")
    assert set(COLOURS) == {"red", "green", "blue", "yellow", "purple", "orange"}
    assert ANSWERS["shape"]["zh"] == {"circle": "圆形", "square": "正方形", "triangle": "三角形", "cross": "十字形"}
    assert list(ANSWERS["colour"]["zh"].values()) == ["红色", "绿色", "蓝色", "黄色", "紫色", "橙色"]
    assert ANSWERS["colour"]["en"] == {c: c for c in COLOURS}
    # colours well separated (max-channel distance), and from the light background
    names = list(COLOURS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert max(abs(x - y) for x, y in zip(COLOURS[a], COLOURS[b])) >= 80, (a, b)
        assert max(abs(x - 235) for x in COLOURS[a]) >= 150
    for by_lang in QUESTIONS.values():
        for qs in by_lang.values():
            assert 3 <= len(qs) == len(set(qs))
    assert len(ALL_QUESTIONS) == sum(len(qs) for by in QUESTIONS.values() for qs in by.values())
    assert len(ANSWER_KEY) == 2 * (len(COLOURS) + len(SHAPES))  # every answer string unambiguous


# ---------------------------------------------------------------- files and formats
def test_files_exist_and_parse(small):
    for name in JSON_FILES + ("manifest.json", "metadata.json", "corpus.txt"):
        assert (small / name).is_file(), name
    assert len(load(small, "train.json")) == 40
    assert len(load(small, "train_instruction.json")) == 40
    assert len(load(small, "val.json")) == 12
    manifest = load(small, "manifest.json")
    assert manifest["params"] == SMALL and manifest["format_version"] == S.FORMAT_VERSION
    assert not list(small.glob("*.tmp*"))


def plain_turns(conv):
    """[(question without the image prefix, answer)] of a conversation's plain turns (the
    benchmark-style ones are checked in test_shapes_benchmarks.py)."""
    pairs = [(conv[i]["value"], conv[i + 1]["value"]) for i in range(0, len(conv), 2)]
    return [(q.removeprefix(IMAGE_PREFIX), a) for q, a in pairs if S.prompt_style(q) is None]


def check_conversation(row, turns_allowed):
    conv = row["conversations"]
    assert len(conv) // 2 in turns_allowed and len(conv) % 2 == 0
    for i, turn in enumerate(conv):
        assert set(turn) == {"from", "value"}
        assert turn["from"] == ("user" if i % 2 == 0 else "assistant")
        assert isinstance(turn["value"], str) and turn["value"]
    assert sum(t["value"].count("<ImageHere>") for t in conv) == 1
    assert conv[0]["value"].startswith(IMAGE_PREFIX)
    assert conv[0]["value"].count("<Img>") == 1 and conv[0]["value"].count("</Img>") == 1
    for q, a in plain_turns(conv):
        qtype, lang = ALL_QUESTIONS[q]
        a_type, a_lang, _ = ANSWER_KEY[a]
        assert (a_type, a_lang) == (qtype, lang)  # question's language decides the answer's
    return conv


def test_train_conversations_format(small):
    train = load(small, "train.json")
    n_turns = Counter()
    for row in train:
        assert set(row) == {"image", "conversations"}
        conv = check_conversation(row, {1, 2})
        n_turns[len(conv) // 2] += 1
        if len(conv) == 4:  # the two turns ask different question types
            types = {ALL_QUESTIONS[conv[i]["value"].removeprefix(IMAGE_PREFIX)][0] for i in (0, 2)}
            assert types == {"colour", "shape"}
    assert n_turns[1] > 0 and n_turns[2] > 0


def test_train_instruction_is_first_turn(small):
    train, instr = load(small, "train.json"), load(small, "train_instruction.json")
    assert len(train) == len(instr)
    for conv_row, row in zip(train, instr):
        assert set(row) == {"image", "instruction", "output"}
        assert row["image"] == conv_row["image"]
        assert row["instruction"] == conv_row["conversations"][0]["value"]
        assert row["output"] == conv_row["conversations"][1]["value"]
        assert row["instruction"].startswith(IMAGE_PREFIX) and row["instruction"].count("<ImageHere>") == 1


def test_val_format(small):
    for row in load(small, "val.json"):
        assert set(row) == {"image", "conversations", "qtype", "lang"}
        conv = check_conversation(row, {1})
        assert (row["qtype"], row["lang"]) == ALL_QUESTIONS[conv[0]["value"].removeprefix(IMAGE_PREFIX)]


def test_images_open_and_answers_match_pixels(small):
    meta = {m["image"]: m for m in load(small, "metadata.json")}
    rows = load(small, "train.json") + load(small, "val.json")
    assert len(meta) == len(rows) == len(list((small / "image").iterdir()))
    for row in rows:
        with Image.open(small / "image" / row["image"]) as img:
            assert img.format == "PNG" and img.mode == "RGB" and img.size == (64, 64)
            img.load()
        m = meta[row["image"]]
        for _, answer in plain_turns(row["conversations"]):
            qtype, _, key = ANSWER_KEY[answer]
            assert key == (m["colour"] if qtype == "colour" else m["shape"])
        frac = colour_mask(img, m["colour"]).mean()
        assert frac > 0.03, (row["image"], frac)  # the stated colour is really drawn
        for other in COLOURS:
            if other != m["colour"]:
                assert colour_mask(img, other).mean() < 0.01


# ---------------------------------------------------------------- drawing
@pytest.mark.parametrize("colour", list(COLOURS))
@pytest.mark.parametrize("shape", SHAPES)
def test_draw_shape_inside_and_coloured(shape, colour):
    rng = random.Random(f"{shape}-{colour}")
    for _ in range(5):
        img, meta = draw_shape(shape, colour, 64, rng)
        assert img.mode == "RGB" and img.size == (64, 64)
        x0, y0, x1, y1 = meta["bbox"]
        assert 0 <= x0 <= x1 < 64 and 0 <= y0 <= y1 < 64
        assert 0.47 * 64 - 1 <= meta["size"] <= 0.5 * 64 + 1
        assert meta["position"] in ("left", "centre", "right")
        mask = colour_mask(img, colour, tol=0)
        ys, xs = np.nonzero(mask)
        assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
        assert mask.mean() > 0.05


def fill_ratio(shape):
    img, meta = draw_shape(shape, "blue", 64, random.Random(0))
    x0, y0, x1, y1 = meta["bbox"]
    box = colour_mask(img, "blue", tol=0)[y0 : y1 + 1, x0 : x1 + 1]
    return box, box.mean()


def test_distinct_shapes_have_distinct_masks():
    masks = {s: fill_ratio(s) for s in SHAPES}
    _, circle = masks["circle"]
    _, square = masks["square"]
    tri_box, triangle = masks["triangle"]
    cross_box, cross = masks["cross"]
    assert square > 0.97
    assert 0.70 < circle < 0.85  # pi / 4
    assert 0.42 < triangle < 0.60
    assert 0.30 < cross < 0.42  # bars a fifth of the side: 2 * 0.2 - 0.04
    # painted areas are ordered and apart, so area alone tells the shapes apart
    assert square > circle + 0.1 > triangle + 0.2 > cross + 0.3
    # triangle: apex up (top row narrow, bottom row full)
    assert tri_box[0].sum() <= 3 and tri_box[-1].mean() > 0.9
    # cross: centre filled, corners empty, middle row and column full
    h, w = cross_box.shape
    assert cross_box[h // 2, w // 2]
    assert not cross_box[0, 0] and not cross_box[0, -1] and not cross_box[-1, 0] and not cross_box[-1, -1]
    assert cross_box[h // 2].all() and cross_box[:, w // 2].all()
    # circle: corners empty, middle row full
    circle_box, _ = masks["circle"]
    ch, cw = circle_box.shape
    assert not circle_box[0, 0] and not circle_box[-1, -1] and circle_box[ch // 2].mean() > 0.9


def test_draw_shape_rng_kinds_and_errors():
    a, ma = draw_shape("circle", "red", 64, 123)
    b, mb = draw_shape("circle", "red", 64, random.Random(123))
    assert a.tobytes() == b.tobytes() and ma == mb
    c, _ = draw_shape("cross", "green", 48, np.random.default_rng(0))
    assert c.size == (48, 48)
    d, _ = draw_shape("square", "orange", 64, np.random.RandomState(0))
    assert colour_mask(d, "orange").mean() > 0.05
    with pytest.raises(ValueError):
        draw_shape("hexagon", "red", 64, 0)
    with pytest.raises(ValueError):
        draw_shape("circle", "pink", 64, 0)


# ---------------------------------------------------------------- determinism and caching
def test_deterministic_and_seed_dependent(tmp_path, small):
    again = ensure_shapes_dataset(tmp_path / "again", **SMALL)
    assert digest_dir(again) == digest_dir(small)
    other = ensure_shapes_dataset(tmp_path / "other", **{**SMALL, "seed": 1})
    d0, d1 = digest_dir(small), digest_dir(other)
    assert d0["train.json"] != d1["train.json"] and d0["val.json"] != d1["val.json"]
    assert d0["corpus.txt"] == d1["corpus.txt"]  # the tokenizer corpus does not depend on the seed
    assert sum(d0[k] != d1[k] for k in d0 if k.endswith(".png")) > 0.9 * (SMALL["num_train"] + SMALL["num_val"])


def mtimes(root):
    names = JSON_FILES + ("manifest.json", "corpus.txt", "image/00000.png")
    return {n: os.stat(root / n).st_mtime_ns for n in names}


def test_cache_reused(tmp_path):
    root = ensure_shapes_dataset(tmp_path / "ds", **SMALL)
    before = mtimes(root)
    assert ensure_shapes_dataset(str(tmp_path / "ds"), **SMALL) == root
    assert mtimes(root) == before


def test_changed_parameter_regenerates(tmp_path):
    root = ensure_shapes_dataset(tmp_path / "ds", **SMALL)
    ensure_shapes_dataset(root, **{**SMALL, "num_train": 30})
    assert len(load(root, "train.json")) == 30
    assert load(root, "manifest.json")["params"]["num_train"] == 30
    assert len(list((root / "image").iterdir())) == 30 + SMALL["num_val"]  # no stale images
    ensure_shapes_dataset(root, **{**SMALL, "num_train": 30, "image_size": 32})
    with Image.open(root / "image" / "00000.png") as img:
        assert img.size == (32, 32)


def test_deleted_manifest_regenerates(tmp_path):
    root = ensure_shapes_dataset(tmp_path / "ds", **SMALL)
    good = (root / "train.json").read_bytes()
    (root / "train.json").write_text("garbage", encoding="utf-8")
    ensure_shapes_dataset(root, **SMALL)  # manifest present: trusted, not rewritten
    assert (root / "train.json").read_text(encoding="utf-8") == "garbage"
    (root / "manifest.json").unlink()
    ensure_shapes_dataset(root, **SMALL)
    assert (root / "train.json").read_bytes() == good


def test_interrupted_generation_is_redone(tmp_path, monkeypatch):
    root = ensure_shapes_dataset(tmp_path / "ds", **SMALL)
    good = digest_dir(root)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        ensure_shapes_dataset(root, **{**SMALL, "seed": 5})
    assert not (root / "manifest.json").exists()  # the half-written copy is not trusted
    monkeypatch.undo()
    ensure_shapes_dataset(root, **SMALL)
    assert digest_dir(root) == good


# ---------------------------------------------------------------- statistics
def test_val_balanced(medium):
    val = load(medium, "val.json")
    meta = {m["image"]: m for m in load(medium, "metadata.json")}
    assert len(val) == 400
    assert Counter(r["qtype"] for r in val) == {"colour": 200, "shape": 200}
    assert Counter(r["lang"] for r in val) == {"en": 200, "zh": 200}
    cells = Counter((r["qtype"], r["lang"]) for r in val)
    assert all(v == 100 for v in cells.values()) and len(cells) == 4
    colours = Counter(meta[r["image"]]["colour"] for r in val)
    shapes = Counter(meta[r["image"]]["shape"] for r in val)
    assert set(colours) == set(COLOURS) and max(colours.values()) - min(colours.values()) <= 2
    assert set(shapes) == set(SHAPES) and max(shapes.values()) - min(shapes.values()) <= 2
    # every answer of every (qtype, lang) occurs in val
    answers = Counter(r["conversations"][1]["value"] for r in val)
    for qtype in ANSWERS:
        for lang in ("en", "zh"):
            for a in ANSWERS[qtype][lang].values():
                assert answers[a] >= 8, (a, answers[a])


def test_train_roughly_balanced(medium):
    train = load(medium, "train.json")
    langs, types = Counter(), Counter()
    for row in train:
        for q, _ in plain_turns(row["conversations"]):
            qtype, lang = ALL_QUESTIONS[q]
            langs[lang] += 1
            types[qtype] += 1
    total = sum(langs.values())
    assert all(0.4 < v / total < 0.6 for v in langs.values())
    assert all(0.4 < v / total < 0.6 for v in types.values())
    meta = [m for m in load(medium, "metadata.json") if m["split"] == "train"]
    shapes = Counter(m["shape"] for m in meta)
    assert max(shapes.values()) - min(shapes.values()) <= 2


def test_answers_not_predictable_from_question(medium):
    by_question = defaultdict(list)
    for name in ("train.json", "val.json"):
        for row in load(medium, name):
            for q, a in plain_turns(row["conversations"]):
                by_question[q].append(a)
    assert set(by_question) == set(ALL_QUESTIONS)  # every paraphrase is used
    hits = total = 0
    for q, answers in by_question.items():
        assert len(set(answers)) >= 3, (q, Counter(answers))
        hits += Counter(answers).most_common(1)[0][1]
        total += len(answers)
    assert hits / total < 0.4  # best text-only guess stays near chance (1/6 colour, 1/4 shape)


def test_val_disjoint_from_train(medium):
    meta = load(medium, "metadata.json")
    train = [m for m in meta if m["split"] == "train"]
    val = [m for m in meta if m["split"] == "val"]
    assert not {m["image"] for m in train} & {m["image"] for m in val}
    key = lambda m: (m["shape"], m["colour"], tuple(m["bbox"]), tuple(m["background"]))  # noqa: E731
    assert not {key(m) for m in train} & {key(m) for m in val}
    img_hash = lambda m: hashlib.sha256((medium / "image" / m["image"]).read_bytes()).hexdigest()  # noqa: E731
    assert not {img_hash(m) for m in train} & {img_hash(m) for m in val}


def test_corpus_covers_everything(small):
    lines = (small / "corpus.txt").read_text(encoding="utf-8").splitlines()
    assert lines == S.corpus_lines()
    present = set(lines)
    for word in ("You are a helpful assistant.", "system", "user", "assistant"):
        assert word in present
    for q in ALL_QUESTIONS:
        assert q in present
    for a in ANSWER_KEY:
        assert a in present
    assert 200 <= len(lines) and len(lines) == len(present)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(lines))


def test_caption_rows_name_each_train_images_colour_and_shape(small):
    rows, meta = load(small, "train_captions.json"), load(small, "metadata.json")
    train = [m for m in meta if m["split"] == "train"]
    assert [r["image"] for r in rows] == [m["image"] for m in train]
    zh = {v: k for k, v in ANSWERS["colour"]["zh"].items()} | {v: k for k, v in ANSWERS["shape"]["zh"].items()}
    for i, (row, m) in enumerate(zip(rows, train)):
        if i % 2 == 0:
            assert row["caption"] == f"a {m['colour']} {m['shape']}"
        else:
            colour, shape = row["caption"].split("的")
            assert (zh[colour], zh[shape]) == (m["colour"], m["shape"])


def test_a_disk_that_fills_up_while_generating_is_one_error_and_redone_next_time(small_tmpfs):
    root = small_tmpfs("256k") / "shapes"
    with pytest.raises(DiskFullError, match=rf"^no space left to generate the synthetic set in {root} \("):
        ensure_shapes_dataset(root, num_train=2000, num_val=8)
    assert not (root / "manifest.json").exists()  # incomplete: the next call generates it again
    assert not list(root.glob(".tmp-*"))
