"""SEED-Bench (v1, AILab-CVC) image questions read as released -> evaluation items.

Place in the flow: `SEED-Bench.json` and the `SEED-Bench-image` folder on disk -> `read_seed_bench`
-> items (one per image question) that the evaluation dataset turns into prompts and the task
scores (accuracy per evaluation dimension).

The layout: `SEED-Bench.json` = `{"question_type": {"Scene Understanding": 1, ...}, "questions":
[{"answer": "A", "choice_a", "choice_b", "choice_c", "choice_d", "data_id", "data_type": "image" or
"video", "question", "question_id", "question_type_id"}, ...]}`; an image question's file is
`<image_root>/<data_id>` (the official eval.py joins them so).  Video questions (dimensions
10-12) are skipped.  Items: question_id = str(question_id), choices A-D, answers [answer],
meta {"dimension": the question type's name, "question_type_id", "data_id"}.
"""

import os

from lavis.datasets.eval_data import (
    ImageCheck,
    UniqueIds,
    check_files,
    expect,
    fail,
    field,
    make_item,
    read_json,
)

CHOICE_KEYS = {"A": "choice_a", "B": "choice_b", "C": "choice_c", "D": "choice_d"}


def required_files(path, image_root):
    return [
        ("path", path, "SEED-Bench v1 questions, SEED-Bench.json"),
        ("image_root", image_root, "SEED-Bench-image folder (SEED-Bench-image.zip unpacked)"),
    ]


def read_seed_bench(path, image_root):
    """Items of the file's image questions, in its order."""
    check_files(required_files(path, image_root))
    data = read_json(path)
    names = field(data, "question_type", dict, path, "")
    questions = field(data, "questions", list, path, "")
    dimensions = {}
    for name, number in names.items():
        dimensions[expect(number, int, path, f"question_type[{name!r}]", "the dimension's id")] = name
    items = []
    check_image, unique = ImageCheck(), UniqueIds()
    for i, row in enumerate(questions):
        where = f"questions[{i}]"
        if field(row, "data_type", str, path, where) != "image":
            continue
        question_id = str(field(row, "question_id", (int, str), path, where))
        where = f"questions[{i}] (question_id {question_id})"
        question = field(row, "question", str, path, where)
        data_id = field(row, "data_id", str, path, where)
        type_id = field(row, "question_type_id", int, path, where)
        if type_id not in dimensions:
            raise fail(path, where, f"question_type_id {type_id} is not in 'question_type'")
        choices = {}
        for letter, key in CHOICE_KEYS.items():
            if row.get(key) is not None:
                choices[letter] = expect(row[key], str, path, where, f"'{key}'")
        answer = field(row, "answer", str, path, where).strip()
        if answer not in choices:
            raise fail(path, where, f"the answer {answer!r} is not one of the choices {', '.join(choices)}")
        unique(question_id, path, where)
        image_path = check_image(os.path.join(image_root, data_id), path, where)
        meta = {"dimension": dimensions[type_id], "question_type_id": type_id, "data_id": data_id}
        items.append(make_item(question_id, image_path, question, [answer], meta, choices))
    if not items:
        raise fail(path, "", "holds no image questions (data_type 'image')")
    return items
