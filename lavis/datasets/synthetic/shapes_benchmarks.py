"""Held-out synthetic benchmarks in the released formats of MME, MMBench(-CN), POPE, COCO caption
(Karpathy test), VQAv2, GQA and SEED-Bench, drawn like the shapes set's images (issue #12).

Place in the flow: `ensure_shapes_benchmarks(root)` writes the sets once -> the real readers
(`lavis/datasets/eval_data/`, unchanged: `LAYOUT` names each reader's files) -> the benchmark
builders and tasks, which prompt them as the field does (`lavis/processors/benchmark_prompts.py`).
A model trained by `python train.py` learned those prompts (`shapes.STYLES`), so it scores well
above chance here, and a model blind to the images does not.

Written once (`generation.ensure_generated`: manifest last), under `cache/dataset/shapes_benchmarks/`:

    mme/color/<stem>.png + <stem>.txt                  MME layout (b): "Is the shape in the image red?
                                                       Please answer yes or no.<TAB>Yes", a "No" line too
    mme/existence/images/<stem>.png + questions_answers_YN/<stem>.txt
                                                       layout (a): "Is there a circle in the image? ..."
    mmbench/mmbench_dev_shapes.tsv                     MMBench dev TSV (base64 PNGs, A-D, hint or
    mmbench/mmbench_dev_cn_shapes.tsv                  "nan" / empty); -CN: the same rows in Chinese
    pope/coco_pope_{random,popular,adversarial}.json   POPE JSON lines + pope/images/COCO_val2014_<12 digits>.jpg
    coco/coco_karpathy_test.json, coco_karpathy_test_gt.json   LAVIS's two files + coco/images/val2014/*.jpg
    vqav2/v2_OpenEnded_mscoco_val2014_questions.json, v2_mscoco_val2014_annotations.json + vqav2/val2014/*.jpg
    vqav2_zh/ (the same two files: Chinese questions and answers, vqav2's images)
    gqa/testdev_balanced_questions.json + gqa/images/<imageId>.jpg;  gqa_zh/ (Chinese, gqa's images)
    seed/SEED-Bench.json + seed/SEED-Bench-image/<data_id>
    metadata.json                                      per image: benchmark, file, shape, colour, bbox, ...
    manifest.json                                      parameters + format version, written last

MME's subtask folders carry the release's names (`color`, `existence`), which `read_mme(root)`
looks for.  MME is English, MMBench-CN Chinese; `vqav2_zh` and `gqa_zh` are our own Chinese
short-answer sets: their readers' items say no language, so `PROMPT_LANG` says which sets
the evaluation should prompt in Chinese (`read_shapes_benchmark` sets the items' meta "lang").
Images are named as the releases name theirs (JPEG where the name says .jpg: the VQAv2 and GQA
readers take `.jpg`), `image_size` px, `num_images` per set (per subtask for MME), each set drawn
from its own seed string and never repeating a drawing of the shapes dataset's train or val
images (`shapes.drawing_keys` of the `avoid` parameters: the default run's).  Everything else
is balanced: yes/no half and half, answer letters over A-D, shapes and colours.
"""

import base64
import csv
import io
import json
import os
import random
import shutil
from collections import Counter

from lavis.datasets.eval_data import coco_caption, mmbench, mme, pope, seed_bench, vqa
from lavis.datasets.synthetic.generation import balanced, ensure_generated, write_json, write_text
from lavis.datasets.synthetic.shapes import (
    ANSWERS,
    COLOURS,
    HINTS,
    LETTERS,
    NO,
    QTYPES,
    QUESTIONS,
    SHAPES,
    YES,
    caption_references,
    choice_keys,
    draw_shape,
    drawing_key,
    drawing_keys,
    other_object,
    other_value,
    pope_question,
    yes_no_question,
)

__all__ = [
    "DEFAULT_ROOT",
    "FORMAT_VERSION",
    "LAYOUT",
    "PROMPT_LANG",
    "READERS",
    "ensure_shapes_benchmarks",
    "read_shapes_benchmark",
]

FORMAT_VERSION = 1
DEFAULT_ROOT = "cache/dataset/shapes_benchmarks"

#: Each set's files, relative to the root, as its reader's keyword arguments (in their order)
LAYOUT = {
    "mme": {"root": "mme"},
    "mmbench": {"path": "mmbench/mmbench_dev_shapes.tsv"},
    "mmbench_cn": {"path": "mmbench/mmbench_dev_cn_shapes.tsv"},
    "pope": {"root": "pope", "image_root": "pope/images"},
    "coco_caption": {
        "annotation_path": "coco/coco_karpathy_test.json",
        "gt_path": "coco/coco_karpathy_test_gt.json",
        "image_root": "coco/images",
    },
    "vqav2": {
        "questions_path": "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
        "annotations_path": "vqav2/v2_mscoco_val2014_annotations.json",
        "image_root": "vqav2/val2014",
    },
    "vqav2_zh": {
        "questions_path": "vqav2_zh/v2_OpenEnded_mscoco_val2014_questions.json",
        "annotations_path": "vqav2_zh/v2_mscoco_val2014_annotations.json",
        "image_root": "vqav2/val2014",
    },
    "gqa": {"questions_path": "gqa/testdev_balanced_questions.json", "image_root": "gqa/images"},
    "gqa_zh": {"questions_path": "gqa_zh/testdev_balanced_questions.json", "image_root": "gqa/images"},
    "seed_bench": {"path": "seed/SEED-Bench.json", "image_root": "seed/SEED-Bench-image"},
}
#: The reader of each set (`lavis/datasets/eval_data/`)
READERS = {
    "mme": mme.read_mme,
    "mmbench": mmbench.read_mmbench,
    "mmbench_cn": mmbench.read_mmbench,
    "pope": pope.read_pope,
    "coco_caption": coco_caption.read_coco_caption,
    "vqav2": vqa.read_vqa,
    "vqav2_zh": vqa.read_vqa,
    "gqa": vqa.read_gqa,
    "gqa_zh": vqa.read_gqa,
    "seed_bench": seed_bench.read_seed_bench,
}
#: Sets to prompt in Chinese whose reader does not say so (MMBench-CN's does: its file name)
PROMPT_LANG = {"vqav2_zh": "zh", "gqa_zh": "zh"}

#: The default run's shapes dataset (`shapes.ensure_shapes_dataset`), whose drawings no set repeats
DEFAULT_AVOID = {"num_train": 4000, "num_val": 400, "seed": 0}

_MME_SUBTASKS = (("color", "colour", False), ("existence", "shape", True))  # (name, asked, layout (a))
_MMBENCH_HEADER = [
    "index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
    "comment", "split",
]  # fmt: skip
# SEED-Bench v1's evaluation dimensions (its question_type), ids as released
_SEED_DIMENSIONS = {
    "Scene Understanding": 1,
    "Instance Identity": 2,
    "Instance Attributes": 3,
    "Instance Location": 4,
    "Instances Counting": 5,
    "Spatial Relation": 6,
    "Instance Interaction": 7,
    "Visual Reasoning": 8,
    "Text Understanding": 9,
    "Action Recognition": 10,
    "Action Prediction": 11,
    "Procedure Understanding": 12,
}
_SEED_DIMENSION_OF = {"colour": "Instance Attributes", "shape": "Instance Identity"}
# Other human answers of VQAv2-style questions (the canonical answer stays the majority)
_VARIANTS = {
    "en": {
        "red": ("crimson", "dark red"),
        "green": ("dark green", "lime"),
        "blue": ("navy", "dark blue"),
        "yellow": ("gold", "light yellow"),
        "purple": ("violet", "magenta"),
        "orange": ("amber", "dark orange"),
        "circle": ("round", "oval"),
        "square": ("rectangle", "box"),
        "triangle": ("triangular", "pyramid"),
        "cross": ("plus", "plus sign"),
    },
    "zh": {
        "red": ("红", "深红色"),
        "green": ("绿", "深绿色"),
        "blue": ("蓝", "深蓝色"),
        "yellow": ("黄", "金色"),
        "purple": ("紫", "紫罗兰色"),
        "orange": ("橙", "橘色"),
        "circle": ("圆", "圆圈"),
        "square": ("方形", "方块"),
        "triangle": ("三角", "三角型"),
        "cross": ("十字", "加号"),
    },
}
_FULL_ANSWERS = {
    "en": {"colour": "The shape is {}.", "shape": "The shape is {}."},
    "zh": {"colour": "形状是{}的。", "shape": "这个形状是{}。"},
}
_VQA_INFO = {"description": "synthetic coloured shapes in VQAv2's format", "version": "1.0"}
_VQA_LICENSE = {"name": "generated data", "url": ""}


def _files():
    """Every file of every set (folders are image roots or MME's root), metadata.json last."""
    files = []
    for name, entries in LAYOUT.items():
        for key, rel in entries.items():
            if key == "root" and name == "pope":
                files += [f"pope/coco_pope_{c}.json" for c in pope.CATEGORIES]
            elif key not in ("root", "image_root") and rel not in files:
                files.append(rel)
    return tuple(files) + ("metadata.json",)


# --------------------------------------------------------------------------
# drawing and saving
# --------------------------------------------------------------------------
class _Images:
    """Balanced shapes and colours drawn from `rng`, never one of `avoid`'s drawings; each image
    saved under the root and recorded for metadata.json."""

    def __init__(self, root, params, avoid, metadata):
        self.root, self.size, self.avoid, self.metadata = root, params["image_size"], avoid, metadata

    def draw(self, rng, n):
        out = []
        for shape, colour in zip(balanced(rng, list(SHAPES), n), balanced(rng, list(COLOURS), n)):
            for _ in range(1000):
                img, meta = draw_shape(shape, colour, self.size, rng)
                if drawing_key(meta) not in self.avoid:
                    break
            out.append((img, meta))
        return out

    def save(self, benchmark, img, meta, rel):
        """Write `img` at root/`rel` (JPEG for .jpg, else PNG); record it; return the path."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".jpg"):
            img.save(path, format="JPEG", quality=95, subsampling=0)
        else:
            img.save(path, format="PNG", compress_level=1)
        self.record(benchmark, rel, meta)
        return path

    def record(self, benchmark, image, meta):
        self.metadata.append({"benchmark": benchmark, "image": image, **meta})


def _png_base64(img):
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _rng(params, name):
    return random.Random(f"shapes-benchmarks:{params['seed']}:{name}")


def _key(meta, asked):
    return meta["colour"] if asked == "colour" else meta["shape"]


# --------------------------------------------------------------------------
# the sets
# --------------------------------------------------------------------------
def _mme(root, params, images):
    stats = {}
    for subtask, asked, nested in _MME_SUBTASKS:
        rng = _rng(params, f"mme:{subtask}")
        folder = root / "mme" / subtask
        text_dir = folder / "questions_answers_YN" if nested else folder
        text_dir.mkdir(parents=True, exist_ok=True)
        n = params["num_images"]
        for i, ((img, meta), yes_first) in enumerate(zip(images.draw(rng, n), balanced(rng, [True, False], n))):
            stem = f"shapes_{i:05d}"
            images.save("mme", img, meta, f"mme/{subtask}/{'images/' if nested else ''}{stem}.png")
            key = _key(meta, asked)
            no = other_value(rng, asked, key)
            lines = [f"{yes_no_question(asked, key)}\t{YES}", f"{yes_no_question(asked, no)}\t{NO}"]
            write_text(text_dir / f"{stem}.txt", "\n".join(lines if yes_first else lines[::-1]) + "\n")
        stats[subtask] = {"images": n, "questions": 2 * n}
    return stats


def _tsv(rows):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerows(rows)  # pandas.to_csv(sep="\t")'s quoting
    return buffer.getvalue()


def _mmbench(root, params, images):
    """MMBench dev and its Chinese translation (MMBench-CN): the same rows, images and answers."""
    rng = _rng(params, "mmbench")
    n = params["num_images"]
    cells = zip(
        images.draw(rng, n),
        balanced(rng, list(QTYPES), n),
        balanced(rng, list(LETTERS), n),
        balanced(rng, ["nan", "", "hint"], n),
    )
    rows = {"en": [_MMBENCH_HEADER], "zh": [_MMBENCH_HEADER]}
    for index, ((img, meta), asked, letter, hint) in enumerate(cells):
        images.record("mmbench", f"mmbench#{index}", meta)
        keys = choice_keys(rng, asked, _key(meta, asked), letter)
        paraphrase, hint_at = rng.randrange(len(QUESTIONS[asked]["en"])), rng.randrange(len(HINTS["en"]))
        image = _png_base64(img)
        for lang, table in rows.items():
            row_hint = HINTS[lang][hint_at] if hint == "hint" else hint
            options = [ANSWERS[asked][lang][keys[c]] for c in LETTERS]
            table.append(
                [str(index), QUESTIONS[asked][lang][paraphrase], row_hint, *options, letter, asked, image,
                 "shapes_benchmarks", "fine-grained_perception (instance-level)", "nan", "dev"]
            )  # fmt: skip
    write_text(root / LAYOUT["mmbench"]["path"], _tsv(rows["en"]))
    write_text(root / LAYOUT["mmbench_cn"]["path"], _tsv(rows["zh"]))
    answers = Counter(r[7] for r in rows["en"][1:])
    return {"rows": n, "answers": dict(sorted(answers.items()))}


def _coco_name(image_id, folder=""):
    return f"{folder}COCO_val2014_{image_id:012d}.jpg"


def _pope(root, params, images):
    """Per image one yes question (its own colour and shape) and one no question per category:
    random (any other object), popular (one of the set's three most frequent others),
    adversarial (the same colour or the same shape)."""
    rng = _rng(params, "pope")
    drawn = images.draw(rng, params["num_images"])
    objects = Counter((m["colour"], m["shape"]) for _, m in drawn)
    ranked = sorted(objects, key=lambda o: (-objects[o], list(COLOURS).index(o[0]), SHAPES.index(o[1])))
    names = []
    for i, (img, meta) in enumerate(drawn):
        names.append(_coco_name(i + 1))
        images.save("pope", img, meta, f"{LAYOUT['pope']['image_root']}/{names[-1]}")
    stats = {}
    for category in pope.CATEGORIES:
        lines, order = [], balanced(rng, [True, False], len(drawn))
        for (_, meta), name, yes_first in zip(drawn, names, order):
            own = (meta["colour"], meta["shape"])
            if category == "random":
                negative = other_object(rng, *own, adversarial=False)
            elif category == "popular":
                negative = rng.choice([o for o in ranked if o != own][:3])
            else:
                negative = other_object(rng, *own, adversarial=True)
            pair = [(pope_question(*own), "yes"), (pope_question(*negative), "no")]
            for text, label in pair if yes_first else pair[::-1]:
                lines.append({"question_id": len(lines) + 1, "image": name, "text": text, "label": label})
        write_text(root / "pope" / f"coco_pope_{category}.json", "".join(_json_line(x) for x in lines))
        stats[category] = dict(Counter(x["label"] for x in lines))
    return stats


def _json_line(value):
    return json.dumps(value, ensure_ascii=False) + "\n"


def _coco(root, params, images):
    rng = _rng(params, "coco")
    rows, annotations, listed = [], [], []
    for i, (img, meta) in enumerate(images.draw(rng, params["num_images"])):
        image_id, rel = i + 1, _coco_name(i + 1, "val2014/")
        images.save("coco_caption", img, meta, f"{LAYOUT['coco_caption']['image_root']}/{rel}")
        references = caption_references(meta)
        rng.shuffle(references)
        rows.append({"image": rel, "caption": references})
        listed.append({"id": image_id})
        for caption in references:
            annotations.append({"image_id": image_id, "caption": caption, "id": len(annotations) + 1})
    write_json(root / LAYOUT["coco_caption"]["annotation_path"], rows)
    write_json(root / LAYOUT["coco_caption"]["gt_path"], {"annotations": annotations, "images": listed})
    return {"images": len(rows), "captions": len(annotations)}


def _human_answers(rng, asked, key, lang):
    """Ten VQAv2-style human answers: the canonical one (some capitalised, in English) and up to
    three variants; at least five are the canonical string itself."""
    canonical = ANSWERS[asked][lang][key]
    variants = rng.choice((0, 1, 1, 2, 3))
    capitalised = rng.choice((0, 1, 2)) if lang == "en" else 0
    answers = [canonical.capitalize()] * capitalised + [rng.choice(_VARIANTS[lang][key]) for _ in range(variants)]
    answers += [canonical] * (10 - len(answers))
    rng.shuffle(answers)
    return canonical, answers


def _vqa(root, params, images):
    """VQAv2 val's two files, two questions per image (colour, shape); vqav2_zh: the same
    questions and images in Chinese."""
    rng = _rng(params, "vqav2")
    files = {"en": LAYOUT["vqav2"], "zh": LAYOUT["vqav2_zh"]}
    questions, annotations = {"en": [], "zh": []}, {"en": [], "zh": []}
    for i, (img, meta) in enumerate(images.draw(rng, params["num_images"])):
        image_id = i + 1
        images.save("vqav2", img, meta, f"{files['en']['image_root']}/{_coco_name(image_id)}")
        asked_order = list(QTYPES)
        rng.shuffle(asked_order)
        for k, asked in enumerate(asked_order):
            question_id, paraphrase = image_id * 1000 + k, rng.randrange(len(QUESTIONS[asked]["en"]))
            for lang in ("en", "zh"):
                text = QUESTIONS[asked][lang][paraphrase]
                canonical, answers = _human_answers(rng, asked, _key(meta, asked), lang)
                questions[lang].append({"image_id": image_id, "question": text, "question_id": question_id})
                annotations[lang].append(
                    {
                        "question_type": asked,
                        "multiple_choice_answer": canonical,
                        "answers": [
                            {"answer": a, "answer_confidence": "yes", "answer_id": j + 1} for j, a in enumerate(answers)
                        ],
                        "image_id": image_id,
                        "answer_type": "other",
                        "question_id": question_id,
                    }
                )
    for lang, layout in files.items():
        write_json(
            root / layout["questions_path"],
            {"info": _VQA_INFO, "task_type": "Open-Ended", "data_type": "mscoco", "license": _VQA_LICENSE,
             "data_subtype": "val2014", "questions": questions[lang]},
        )  # fmt: skip
        write_json(
            root / layout["annotations_path"],
            {"info": _VQA_INFO, "license": _VQA_LICENSE, "data_subtype": "val2014",
             "annotations": annotations[lang], "data_type": "mscoco"},
        )  # fmt: skip
    return {"images": params["num_images"], "questions": len(questions["en"])}


def _gqa(root, params, images):
    """GQA testdev-balanced's questions file, two questions per image; gqa_zh in Chinese."""
    rng = _rng(params, "gqa")
    out = {"en": {}, "zh": {}}
    for i, (img, meta) in enumerate(images.draw(rng, params["num_images"])):
        image_id = f"n{i + 1:06d}"
        images.save("gqa", img, meta, f"{LAYOUT['gqa']['image_root']}/{image_id}.jpg")
        asked_order = list(QTYPES)
        rng.shuffle(asked_order)
        for k, asked in enumerate(asked_order):
            question_id, paraphrase = str(200000000 + 10 * (i + 1) + k), rng.randrange(len(QUESTIONS[asked]["en"]))
            attribute = "color" if asked == "colour" else "shape"
            for lang in ("en", "zh"):
                answer = ANSWERS[asked][lang][_key(meta, asked)]
                shown = (
                    f"{'an' if answer[0] in 'aeiou' else 'a'} {answer}" if (lang, asked) == ("en", "shape") else answer
                )
                out[lang][question_id] = {
                    "semantic": [
                        {"operation": "select", "dependencies": [], "argument": "shape (0)"},
                        {"operation": "query", "dependencies": [0], "argument": attribute},
                    ],
                    "entailed": [],
                    "equivalent": [question_id],
                    "question": QUESTIONS[asked][lang][paraphrase],
                    "imageId": image_id,
                    "isBalanced": True,
                    "groups": {"global": attribute, "local": f"10q-shape_{attribute}"},
                    "answer": answer,
                    "semanticStr": f"select: shape (0)->query: {attribute} [0]",
                    "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
                    "types": {"detailed": "queryAttr", "semantic": "attr", "structural": "query"},
                    "fullAnswer": _FULL_ANSWERS[lang][asked].format(shown),
                }
    write_json(root / LAYOUT["gqa"]["questions_path"], out["en"])
    write_json(root / LAYOUT["gqa_zh"]["questions_path"], out["zh"])
    return {"images": params["num_images"], "questions": len(out["en"])}


def _seed(root, params, images):
    """SEED-Bench v1's file: one image question per image, colour ("Instance Attributes") or
    shape ("Instance Identity"), four choices."""
    rng = _rng(params, "seed")
    n = params["num_images"]
    questions = []
    cells = zip(images.draw(rng, n), balanced(rng, list(QTYPES), n), balanced(rng, list(LETTERS), n))
    for i, ((img, meta), asked, letter) in enumerate(cells):
        data_id = f"shapes_{i + 1:05d}.png"
        images.save("seed_bench", img, meta, f"{LAYOUT['seed_bench']['image_root']}/{data_id}")
        keys = choice_keys(rng, asked, _key(meta, asked), letter)
        row = {"answer": letter}
        row.update({f"choice_{c.lower()}": ANSWERS[asked]["en"][keys[c]] for c in LETTERS})
        dimension = _SEED_DIMENSIONS[_SEED_DIMENSION_OF[asked]]
        row.update(
            data_id=data_id,
            data_type="image",
            question=rng.choice(QUESTIONS[asked]["en"]),
            question_id=str(i + 1),
            question_type_id=dimension,
        )
        questions.append(row)
    write_json(root / LAYOUT["seed_bench"]["path"], {"question_type": _SEED_DIMENSIONS, "questions": questions})
    return {"questions": n, "answers": dict(sorted(Counter(q["answer"] for q in questions).items()))}


_SETS = (("mme", _mme), ("mmbench", _mmbench), ("pope", _pope), ("coco", _coco), ("vqav2", _vqa),
         ("gqa", _gqa), ("seed", _seed))  # fmt: skip
_FOLDERS = ("mme", "mmbench", "pope", "coco", "vqav2", "vqav2_zh", "gqa", "gqa_zh", "seed")


def _generate(root, params):
    for folder in _FOLDERS:  # no stale images or subtasks of another size
        shutil.rmtree(root / folder, ignore_errors=True)
    avoid = drawing_keys(image_size=params["image_size"], **params["avoid"])
    metadata = []
    images = _Images(root, params, avoid, metadata)
    stats = {name: make(root, params, images) for name, make in _SETS}
    write_json(root / "metadata.json", metadata)
    return stats


def ensure_shapes_benchmarks(root=DEFAULT_ROOT, num_images=100, image_size=64, seed=0, avoid=None):
    """Generate the benchmark sets under `root` unless a complete copy with these parameters is
    there; return `root` as a Path.  `avoid`: the `shapes.ensure_shapes_dataset` parameters
    (num_train, num_val, seed) whose train and val drawings no benchmark image repeats (default:
    the default run's, at `image_size`)."""
    if num_images < 1 or image_size < 16:
        raise ValueError(f"need num_images >= 1 and image_size >= 16, got {num_images}, {image_size}")
    avoid = dict(DEFAULT_AVOID if avoid is None else avoid)
    if set(avoid) != set(DEFAULT_AVOID):
        raise ValueError(f"avoid needs exactly the keys {sorted(DEFAULT_AVOID)}, got {sorted(avoid)}")
    params = {
        "num_images": int(num_images),
        "image_size": int(image_size),
        "seed": int(seed),
        "avoid": {k: int(v) for k, v in sorted(avoid.items())},
    }
    return ensure_generated(root, params, FORMAT_VERSION, _files(), "mme", _generate)


def read_shapes_benchmark(name, root=DEFAULT_ROOT):
    """The evaluation items of set `name` (a key of LAYOUT) under `root`, read by its real reader;
    the items of a `PROMPT_LANG` set get that language in their meta "lang"."""
    if name not in LAYOUT:
        raise ValueError(f"unknown set {name!r}; choose from {', '.join(LAYOUT)}")
    items = READERS[name](**{key: os.path.join(root, rel) for key, rel in LAYOUT[name].items()})
    if name in PROMPT_LANG:
        for item in items:
            item["meta"]["lang"] = PROMPT_LANG[name]
    return items
