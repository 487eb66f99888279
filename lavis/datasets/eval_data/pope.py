"""POPE (RUCAIBox/POPE, the COCO sets) read as released -> evaluation items.

Place in the flow: `coco_pope_{random,popular,adversarial}.json` and the COCO val2014 images on
disk -> `read_pope` -> items (one per question) that the evaluation dataset turns into prompts
and the task scores (accuracy, precision, recall, F1 and yes-ratio per category).

The layout: in `root`, one file per category, `coco_pope_<category>.json`, which despite its name
is JSON lines: `{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a
snowboard in the image?", "label": "yes"}` (some copies add "image_id"); the images are the file
names in `image_root` (COCO's val2014 folder).  question_id restarts at 1 in each file, so
items' question_id is "<category>/<question_id>"; answers [label], meta {"category",
"question_index": the file's question_id, "image_id": the image's file name}.
"""

import os

from lavis.datasets.eval_data import (
    ImageCheck,
    UniqueIds,
    check_files,
    fail,
    field,
    make_item,
    read_json_lines,
)

CATEGORIES = ("random", "popular", "adversarial")


def _file(root, category):
    return os.path.join(root, f"coco_pope_{category}.json")


def required_files(root, image_root, categories=CATEGORIES):
    entries = [("root", _file(root, c), f"POPE {c} questions (RUCAIBox/POPE output/coco/)") for c in categories]
    return entries + [("image_root", image_root, "COCO val2014 image folder")]


def read_pope(root, image_root, categories=CATEGORIES):
    """Items of each category's file, categories in the order given, questions in file order."""
    if isinstance(categories, str):
        categories = (categories,)
    check_files(required_files(root, image_root, categories))
    items = []
    check_image, unique = ImageCheck(), UniqueIds()
    for category in categories:
        path = _file(root, category)
        rows = read_json_lines(path)
        if not rows:
            raise fail(path, "", "holds no questions")
        for line, row in rows:
            where = f"line {line}"
            number = field(row, "question_id", (int, str), path, where)
            image = field(row, "image", str, path, where)
            question = field(row, "text", str, path, where)
            label = field(row, "label", str, path, where).strip().lower()
            if label not in ("yes", "no"):
                raise fail(path, where, f"'label' must be yes or no, not {label!r}")
            question_id = unique(f"{category}/{number}", path, where)
            image_path = check_image(os.path.join(image_root, image), path, where)
            meta = {"category": category, "question_index": number, "image_id": image}
            items.append(make_item(question_id, image_path, question, [label], meta))
    return items
