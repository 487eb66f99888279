"""Synthetic bilingual multi-image set: two shapes, "which image is red?" (the multi-image proof).

`ensure_shape_pairs(root)` writes, once (`generation.ensure_generated`), under
`cache/dataset/shape_pairs/`:

    image/00000_a.png, 00000_b.png ...      train pairs (drawn like the shapes set's images)
    image/val_00000_a.png ...               held-out pairs (separate draws)
    train.json / val.json                   {"image": [a, b], "conversations": [...]}, val with "qtype", "lang"
    manifest.json                           parameters + format version, written last

Exactly one image of a pair is red; the other has another colour, and the shapes are drawn
independently, so only the colours seen in each image, in order, answer the question.  Each
question is answered "first" and "second" equally often: the text alone gives chance, 50 %.
"""

import random
import shutil
from collections import Counter

from lavis.datasets.synthetic.generation import balanced, ensure_generated, write_json
from lavis.datasets.synthetic.shapes import COLOURS, SHAPES, draw_shape

FORMAT_VERSION = 1
DEFAULT_ROOT = "cache/dataset/shape_pairs"
ANSWERS = {"en": ("the first", "the second"), "zh": ("第一张", "第二张")}
QUESTIONS = {
    "en": ("Which image is red?", "Which of the two images shows a red shape?"),
    "zh": ("哪张图是红色的？", "哪一张图片里的图形是红色的？"),
}
PROMPT = "Image 1: <Img><ImageHere></Img>\nImage 2: <Img><ImageHere></Img>\n"
_FILES = ("train.json", "val.json")


def _generate(root, params):
    folder = root / "image"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    others = [c for c in COLOURS if c != "red"]
    stats = {}
    for split, count in (("train", params["num_train"]), ("val", params["num_val"])):
        rng = random.Random(f"shape-pairs:{params['seed']}:{split}")
        rows = []
        for i, (red_at, lang) in enumerate(balanced(rng, [(k, lang) for k in (0, 1) for lang in ANSWERS], count)):
            colours = [rng.choice(others), rng.choice(others)]
            colours[red_at] = "red"
            names = []
            for side, colour in zip("ab", colours):
                image, _ = draw_shape(rng.choice(SHAPES), colour, params["image_size"], rng)
                names.append(f"{'' if split == 'train' else 'val_'}{i:05d}_{side}.png")
                image.save(folder / names[-1], format="PNG", compress_level=1)
            question = rng.choice(QUESTIONS[lang])
            row = {
                "image": names,
                "conversations": [
                    {"from": "user", "value": PROMPT + question},
                    {"from": "assistant", "value": ANSWERS[lang][red_at]},
                ],
            }
            rows.append(row if split == "train" else {**row, "qtype": "which_red", "lang": lang})
        write_json(root / f"{split}.json", rows)
        stats[split] = dict(Counter(r["conversations"][1]["value"] for r in rows))
    return stats


def ensure_shape_pairs(root=DEFAULT_ROOT, num_train=3000, num_val=200, image_size=64, seed=0):
    """Generate the set under `root` unless a complete copy with these parameters is there."""
    if num_train < 1 or num_val < 0:
        raise ValueError(f"need num_train >= 1 and num_val >= 0, got {num_train}, {num_val}")
    params = {"num_train": num_train, "num_val": num_val, "image_size": image_size, "seed": seed}
    return ensure_generated(root, params, FORMAT_VERSION, _FILES, "image", _generate)
