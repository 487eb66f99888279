"""Synthetic benchmarks in the released formats: read back by the real readers, balanced, answers
true of the drawn images, deterministic and cached; and the default training data ask every
benchmark's prompt style with the exact instruction texts."""

import hashlib
import io
import json
import os
import random
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from lavis.datasets.eval_data import coco_caption, mmbench, mme, pope, seed_bench, vqa
from lavis.datasets.synthetic import shapes as S
from lavis.datasets.synthetic import shapes_benchmarks as B
from lavis.datasets.synthetic.shapes import ANSWERS, COLOURS, LETTERS, SHAPES, draw_shape, ensure_shapes_dataset
from lavis.datasets.synthetic.shapes_benchmarks import LAYOUT, ensure_shapes_benchmarks, read_shapes_benchmark
from lavis.processors.benchmark_prompts import IMAGE_PREFIX, INSTRUCTIONS, benchmark_prompt
from lavis.tasks.scoring import extract_choice, vqa_accuracy

N = 8
CJK = re.compile(r"[\u4e00-\u9fff]")
# the prompt kind each set is asked in (lavis/tasks/benchmark_task.py)
KIND = {
    "mme": "yes_no",
    "mmbench": "multiple_choice",
    "mmbench_cn": "multiple_choice",
    "pope": "short_answer",
    "coco_caption": "caption",
    "vqav2": "short_answer",
    "vqav2_zh": "short_answer",
    "gqa": "short_answer",
    "gqa_zh": "short_answer",
    "seed_bench": "multiple_choice",
}
KEY_OF = {a: k for t in ANSWERS.values() for by_lang in t.values() for k, a in by_lang.items()}  # answer -> key


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return ensure_shapes_benchmarks(tmp_path_factory.mktemp("benchmarks") / "sb", num_images=N)


@pytest.fixture(scope="module")
def metadata(root):
    return {m["image"]: m for m in json.loads((root / "metadata.json").read_text(encoding="utf-8"))}


def path(root, name, key):
    return str(root / LAYOUT[name][key])


def meta_of(metadata, root, image_path):
    return metadata[os.path.relpath(image_path, root).replace(os.sep, "/")]


def named(text, names):
    """The names (colour or shape keys) that occur as words in `text`."""
    return [n for n in names if re.search(rf"\b{n}\b", text)]


# ---------------------------------------------------------------- layout
def test_every_file_is_there_and_the_manifest_says_so(root):
    for name, entries in LAYOUT.items():
        assert name in B.READERS and name in KIND
        for rel in entries.values():
            assert (root / rel).exists(), (name, rel)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == B.FORMAT_VERSION
    assert manifest["params"] == {"num_images": N, "image_size": 64, "seed": 0, "avoid": B.DEFAULT_AVOID}
    assert not list(root.rglob("*.tmp*"))


# ---------------------------------------------------------------- MME
def test_mme_two_subtasks_both_layouts_two_questions_per_image(root, metadata):
    items = mme.read_mme(path(root, "mme", "root"))  # the builder's call: the release's subtask names
    assert Counter(i["meta"]["subtask"] for i in items) == {"color": 2 * N, "existence": 2 * N}
    assert (root / "mme/existence/images").is_dir() and (root / "mme/existence/questions_answers_YN").is_dir()
    assert not (root / "mme/color/images").exists()  # layout (b): images and .txt side by side
    per_image = defaultdict(list)
    for item in items:
        assert item["question"].endswith(" Please answer yes or no.") and not CJK.search(item["question"])
        per_image[item["image"]].append(item)
        m = meta_of(metadata, root, item["image"])
        if item["meta"]["subtask"] == "color":
            assert item["question"].startswith("Is the shape in the image ")
            (asked,) = named(item["question"], COLOURS)
            assert item["answers"] == ["yes" if asked == m["colour"] else "no"]
        else:
            (asked,) = named(item["question"], SHAPES)
            assert item["answers"] == ["yes" if asked == m["shape"] else "no"]
    assert len(per_image) == 2 * N
    for questions in per_image.values():  # accuracy+ needs both: one right Yes, one No
        assert sorted(q["answers"][0] for q in questions) == ["no", "yes"]
    first = Counter(qs[0]["answers"][0] for qs in per_image.values())
    assert first == {"yes": N, "no": N}  # which comes first is balanced too
    assert "\tYes\n" in (root / "mme/color/shapes_00000.txt").read_text(encoding="utf-8")


# ---------------------------------------------------------------- MMBench / -CN
def check_choice_item(item, m, lang):
    category = item["meta"].get("category") or ("colour" if "Attributes" in item["meta"]["dimension"] else "shape")
    assert list(item["choices"]) == list(LETTERS) and len(set(item["choices"].values())) == 4
    (answer,) = item["answers"]
    assert item["choices"][answer] == ANSWERS[category][lang][m[category]]
    return category, answer


def test_mmbench_en_and_cn_same_rows_balanced_and_right(root, metadata):
    en = mmbench.read_mmbench(path(root, "mmbench", "path"))
    cn = mmbench.read_mmbench(path(root, "mmbench_cn", "path"))
    assert len(en) == len(cn) == N
    assert {i["meta"]["lang"] for i in en} == {"en"} and {i["meta"]["lang"] for i in cn} == {"cn"}
    letters, categories, hints = Counter(), Counter(), Counter()
    for e, c in zip(en, cn):
        m = metadata[f"mmbench#{e['question_id']}"]
        assert e["image"] == c["image"] and e["answers"] == c["answers"] and e["question_id"] == c["question_id"]
        category, answer = check_choice_item(e, m, "en")
        assert check_choice_item(c, m, "zh") == (category, answer)
        letters[answer] += 1
        categories[category] += 1
        hints[e["hint"] is None] += 1
        assert (e["hint"] is None) == (c["hint"] is None)
        assert not CJK.search(e["question"] + "".join(e["choices"].values()) + (e["hint"] or ""))
        assert CJK.search(c["question"]) and all(CJK.search(v) for v in c["choices"].values())
        assert c["hint"] is None or CJK.search(c["hint"])
        with Image.open(io.BytesIO(e["image"])) as img:  # the base64 PNG is the drawing itself
            assert img.format == "PNG" and np.array_equal(np.asarray(img.convert("RGB")), redraw(m))
    assert letters == {letter: N // 4 for letter in LETTERS}
    assert categories == {"colour": N // 2, "shape": N // 2}
    assert hints[True] > 0 and hints[False] > 0
    raw = (root / LAYOUT["mmbench"]["path"]).read_text(encoding="utf-8").splitlines()
    assert raw[0].split("\t")[:3] == ["index", "question", "hint"]
    assert {line.split("\t")[2] for line in raw[1:]} >= {"nan", ""}  # both ways of "no hint"


# ---------------------------------------------------------------- POPE
def test_pope_three_categories_half_yes_and_true_of_the_images(root, metadata):
    items = pope.read_pope(path(root, "pope", "root"), path(root, "pope", "image_root"))
    assert len(items) == 3 * 2 * N
    by_category = defaultdict(list)
    for item in items:
        by_category[item["meta"]["category"]].append(item)
        assert re.fullmatch(r"COCO_val2014_\d{12}\.jpg", item["meta"]["image_id"])
        m = meta_of(metadata, root, item["image"])
        assert re.fullmatch(r"Is there an? \w+ \w+ in the image\?", item["question"])
        (colour,), (shape,) = named(item["question"], COLOURS), named(item["question"], SHAPES)
        own = (colour, shape) == (m["colour"], m["shape"])
        assert item["answers"] == ["yes" if own else "no"]
        if item["meta"]["category"] == "adversarial" and not own:  # shares the colour or the shape
            assert (colour == m["colour"]) != (shape == m["shape"])
    assert set(by_category) == set(pope.CATEGORIES)
    for rows in by_category.values():
        assert Counter(r["answers"][0] for r in rows) == {"yes": N, "no": N}
        per_image = Counter((r["image"], r["answers"][0]) for r in rows)
        assert set(per_image.values()) == {1}  # each image: one yes and one no question


# ---------------------------------------------------------------- COCO caption
def test_coco_karpathy_five_references_naming_the_shape(root, metadata):
    items = coco_caption.read_coco_caption(
        *(path(root, "coco_caption", k) for k in ("annotation_path", "gt_path", "image_root"))
    )
    assert len(items) == N and len({i["meta"]["image_id"] for i in items}) == N
    for item in items:
        m = meta_of(metadata, root, item["image"])
        assert coco_caption.image_id_of(item["image"]) == item["meta"]["image_id"]
        assert len(item["answers"]) == 5 and len(set(item["answers"])) == 5
        phrase = f"{m['colour']} {m['shape']}"
        assert all(phrase in caption and not CJK.search(caption) for caption in item["answers"])
        assert S.object_phrase(m["colour"], m["shape"]) in item["answers"]  # what training answers


# ---------------------------------------------------------------- VQAv2 / GQA (and the Chinese copies)
@pytest.mark.parametrize("name,lang", [("vqav2", "en"), ("vqav2_zh", "zh")])
def test_vqa_ten_answers_whose_majority_is_the_drawn_one(root, metadata, name, lang):
    items = vqa.read_vqa(*(path(root, name, k) for k in ("questions_path", "annotations_path", "image_root")))
    assert len(items) == 2 * N
    asked = Counter()
    for item in items:
        m = meta_of(metadata, root, item["image"])
        qtype = item["meta"]["question_type"]
        asked[qtype] += 1
        canonical = ANSWERS[qtype][lang][m[qtype]]
        assert len(item["answers"]) == 10 and item["meta"]["answer_type"] == "other"
        lowered = [a.lower() for a in item["answers"]]
        assert lowered.count(canonical) >= 7 and Counter(lowered).most_common(1)[0][0] == canonical, lowered
        assert vqa_accuracy(canonical, item["answers"]) == 1.0
        assert item["question"] in S.QUESTIONS[qtype][lang]
        assert bool(CJK.search(item["question"] + canonical)) == (lang == "zh")
    assert asked == {"colour": N, "shape": N}
    items_en = read_shapes_benchmark("vqav2", root)
    assert [i["image"] for i in items_en] == [i["image"] for i in items]  # the same images


@pytest.mark.parametrize("name,lang", [("gqa", "en"), ("gqa_zh", "zh")])
def test_gqa_answers_are_the_drawn_ones(root, metadata, name, lang):
    items = vqa.read_gqa(path(root, name, "questions_path"), path(root, name, "image_root"))
    assert len(items) == 2 * N
    for item in items:
        m = meta_of(metadata, root, item["image"])
        qtype = next(t for t in S.QTYPES if item["question"] in S.QUESTIONS[t][lang])
        assert item["answers"] == [ANSWERS[qtype][lang][m[qtype]]]
        assert item["answers"][0] in item["meta"]["full_answer"]
        assert item["image"].endswith(f"{item['meta']['image_id']}.jpg")
        assert bool(CJK.search(item["question"])) == (lang == "zh")


# ---------------------------------------------------------------- SEED-Bench
def test_seed_bench_dimensions_letters_and_answers(root, metadata):
    items = seed_bench.read_seed_bench(path(root, "seed_bench", "path"), path(root, "seed_bench", "image_root"))
    assert len(items) == N
    letters = Counter()
    for item in items:
        category, answer = check_choice_item(item, meta_of(metadata, root, item["image"]), "en")
        assert item["meta"]["dimension"] == {"colour": "Instance Attributes", "shape": "Instance Identity"}[category]
        letters[answer] += 1
    assert letters == {letter: N // 4 for letter in LETTERS}
    assert Counter(i["meta"]["dimension"] for i in items) == {
        "Instance Attributes": N // 2,
        "Instance Identity": N // 2,
    }


# ---------------------------------------------------------------- images
def redraw(m, size=64):
    img, _ = draw_shape(m["shape"], m["colour"], size, size=m["size"], origin=m["bbox"][:2], background=m["background"])
    return np.asarray(img)


def test_images_are_the_recorded_drawings_and_none_is_a_training_image(root, metadata):
    avoid = S.drawing_keys(**B.DEFAULT_AVOID, image_size=64)
    files = [m for m in metadata if "#" not in m]
    assert len(files) == len(list(p for p in root.rglob("*") if p.suffix in (".png", ".jpg")))
    for name in files:
        m = metadata[name]
        with Image.open(root / name) as img:
            assert img.format == ("JPEG" if name.endswith(".jpg") else "PNG") and img.size == (64, 64)
            pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
        error = np.abs(pixels - redraw(m))
        if name.endswith(".png"):
            assert error.max() == 0, name
        else:  # JPEG, quality 95 without chroma subsampling
            assert error.mean() < 2.0, name
        assert S.drawing_key(m) not in avoid
    counts = Counter(m["benchmark"] for m in metadata.values())
    assert counts == {"mme": 2 * N, "mmbench": N, "pope": N, "coco_caption": N, "vqav2": N, "gqa": N, "seed_bench": N}


def test_a_drawing_of_the_training_set_is_drawn_again():
    first = B._Images(None, {"image_size": 64}, frozenset(), []).draw(random.Random(3), 1)[0][1]
    again = B._Images(None, {"image_size": 64}, frozenset({S.drawing_key(first)}), []).draw(random.Random(3), 1)[0][1]
    assert (again["shape"], again["colour"]) == (first["shape"], first["colour"])
    assert S.drawing_key(again) != S.drawing_key(first)


# ---------------------------------------------------------------- determinism and caching
def digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", ".lock")
    }


def test_deterministic_cached_and_regenerated_on_a_change(root, tmp_path):
    again = ensure_shapes_benchmarks(tmp_path / "again", num_images=N)
    assert digest(again) == digest(root)
    stamps = {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    assert ensure_shapes_benchmarks(str(again), num_images=N) == again  # complete: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()} == stamps
    other = ensure_shapes_benchmarks(tmp_path / "other", num_images=N, seed=1)
    assert digest(other)["metadata.json"] != digest(root)["metadata.json"]
    ensure_shapes_benchmarks(again, num_images=4)  # smaller: regenerated, no stale files
    assert len(read_shapes_benchmark("mme", again)) == 2 * 2 * 4
    assert len(list((again / "pope/images").iterdir())) == 4
    assert len(list((again / "mme/color").glob("*.txt"))) == 4


def test_chinese_short_answer_sets_are_prompted_in_chinese(root):
    for name in ("vqav2_zh", "gqa_zh"):
        for item in read_shapes_benchmark(name, root):
            assert item["meta"]["lang"] == "zh"
            assert benchmark_prompt("short_answer", item).endswith("\n" + INSTRUCTIONS["short_answer"]["zh"])
    for item in read_shapes_benchmark("mmbench_cn", root):
        assert benchmark_prompt("multiple_choice", item).endswith("\n" + INSTRUCTIONS["multiple_choice"]["zh"])
    assert all("lang" not in i["meta"] for i in read_shapes_benchmark("vqav2", root))


# ---------------------------------------------------------------- training covers every benchmark's style
@pytest.fixture(scope="module")
def train_rows(tmp_path_factory):
    root = ensure_shapes_dataset(tmp_path_factory.mktemp("shapes") / "ds", num_train=400, num_val=8, styled_share=0.75)
    rows = json.loads((root / "train.json").read_text(encoding="utf-8"))
    meta = {m["image"]: m for m in json.loads((root / "metadata.json").read_text(encoding="utf-8"))}
    return rows, meta


def template(text):
    """A prompt line with its colour, shape and letter words replaced: the style, not the item."""
    for key in sorted(KEY_OF, key=len, reverse=True):
        text = text.replace(key, "<%s>" % ("COLOUR" if KEY_OF[key] in COLOURS else "SHAPE"))
    return re.sub(r"\ban <", "a <", re.sub(r"^[A-D]\. ", "<L>. ", text))


def check_styled_answer(prompt, answer, m):
    """(prompt kind, language, the right option's letter for a choice, else the answer)."""
    kind = S.prompt_style(prompt)
    lang = "zh" if CJK.search(prompt) else "en"
    if kind == "caption":
        assert prompt == IMAGE_PREFIX + INSTRUCTIONS["caption"][lang]
        assert answer == S.object_phrase(m["colour"], m["shape"], lang)
    elif kind == "multiple_choice":
        assert prompt.endswith("\n" + INSTRUCTIONS["multiple_choice"][lang])
        options = {x[0]: x[3:] for x in prompt.split("\n") if x[:3] in ("A. ", "B. ", "C. ", "D. ")}
        assert list(options) == list(LETTERS) and len(set(options.values())) == 4
        # answered with the right option's text, which MMBench's extraction maps to its letter
        (letter,) = [x for x, text in options.items() if KEY_OF[text] in (m["colour"], m["shape"])]
        assert answer == options[letter] and extract_choice(answer, options) == letter
        return kind, lang, letter
    elif kind == "yes_no" or prompt.startswith(IMAGE_PREFIX + "Is there "):
        assert answer in ("Yes", "No") and lang == "en"
        named_ = named(prompt, COLOURS) + named(prompt, SHAPES)
        assert (answer == "Yes") == all(n in (m["colour"], m["shape"]) for n in named_)
        if kind == "short_answer":  # POPE's object question, then the short-answer instruction
            assert prompt.endswith("?\n" + INSTRUCTIONS["short_answer"]["en"])
    elif kind == "short_answer":
        assert prompt.endswith("\n" + INSTRUCTIONS["short_answer"][lang])
        question = prompt.removeprefix(IMAGE_PREFIX).split("\n")[0]
        qtype = next(t for t in S.QTYPES if question in S.QUESTIONS[t][lang])
        assert answer == ANSWERS[qtype][lang][m[qtype]]
    else:
        raise AssertionError(f"not a benchmark style: {prompt!r}")
    return kind, lang, answer


def test_training_rows_ask_every_style_with_the_exact_instructions(train_rows):
    rows, meta = train_rows
    styles, answers = Counter(), defaultdict(Counter)
    for row in rows:
        conv = row["conversations"]
        prompt, answer = conv[0]["value"], conv[1]["value"]
        assert prompt.startswith(IMAGE_PREFIX)
        if S.prompt_style(prompt) is None:
            continue
        assert len(conv) == 2  # a styled row is one turn, as an evaluation asks it
        kind, lang, label = check_styled_answer(prompt, answer, meta[row["image"]])
        pope_style = prompt.startswith(IMAGE_PREFIX + "Is there ") and kind == "short_answer"
        cell = ("pope" if pope_style else kind, lang)
        styles[cell] += 1
        answers[cell][label if label in LETTERS + ("Yes", "No") else "text"] += 1
    expected = {("yes_no", "en"), ("pope", "en"), ("multiple_choice", "en"), ("multiple_choice", "zh")}
    expected |= {("caption", "en"), ("short_answer", "en"), ("short_answer", "zh")}
    assert set(styles) == expected, styles
    assert all(n >= 8 for n in styles.values()), styles
    share = sum(styles.values()) / len(rows)
    assert 0.3 < share < 0.45, share
    for cell in (("yes_no", "en"), ("pope", "en")):
        assert abs(answers[cell]["Yes"] - answers[cell]["No"]) <= 0.25 * styles[cell], answers[cell]
    for cell in (("multiple_choice", "en"), ("multiple_choice", "zh")):
        assert set(answers[cell]) == set(LETTERS), answers[cell]


def test_every_line_a_benchmark_prompt_holds_is_a_line_training_asks(root, train_rows):
    """Each benchmark's prompts, item by item, are made of lines (colour, shape and letter words
    aside) that the training rows' user turns hold: the texts and instructions are the same."""
    rows, _ = train_rows
    turns = [turn["value"] for row in rows for turn in row["conversations"][0::2]]
    trained = {template(line) for turn in turns for line in turn.split("\n")}
    for name, kind in KIND.items():
        for item in read_shapes_benchmark(name, root):
            for line in benchmark_prompt(kind, item).split("\n"):
                assert template(line) in trained, (name, line)
