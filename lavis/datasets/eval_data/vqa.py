"""VQAv2 and OK-VQA (the VQA API's format) and GQA read as released -> evaluation items.

Place in the flow: the questions and annotations files and the images on disk -> `read_vqa` /
`read_gqa` -> items (one per question) that the evaluation dataset turns into prompts and the
task scores (VQA accuracy over the 10 answers; GQA exact match).

VQAv2 val: `v2_OpenEnded_mscoco_val2014_questions.json` = `{"questions": [{"image_id", "question",
"question_id"}], "info", "task_type", "data_type", "data_subtype", "license"}` and
`v2_mscoco_val2014_annotations.json` = `{"annotations": [{"question_id", "image_id", "answers":
[{"answer", "answer_confidence", "answer_id"}] (10), "multiple_choice_answer", "answer_type",
"question_type"}], ...}`; images `<image_root>/COCO_val2014_<image_id, 12 digits>.jpg`.  OK-VQA:
the same format, files `OpenEnded_mscoco_val2014_questions.json` / `mscoco_val2014_annotations.json`.
Without annotations (test-dev) answers are [].  Items: question_id = str(question_id), answers
the 10 answers, meta {"image_id", "answer_type", "question_type"}.

GQA testdev-balanced: `testdev_balanced_questions.json` = `{"<question id>": {"imageId",
"question", "answer", "fullAnswer", "types": {"structural", "semantic", "detailed"}, "semantic",
"entailed", "equivalent", "groups", "annotations", "isBalanced", ...}}`, images
`<image_root>/<imageId>.jpg`.  Items: question_id = the key, answers [answer], meta {"image_id",
"structural", "semantic", "detailed", "full_answer"}.
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

VQAV2_FILES = ("v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json")
OKVQA_FILES = ("OpenEnded_mscoco_val2014_questions.json", "mscoco_val2014_annotations.json")
COCO_VAL_PATTERN = "COCO_val2014_{image_id:012d}.jpg"


def required_files(questions_path, annotations_path, image_root, image_pattern=COCO_VAL_PATTERN):
    entries = [("questions_path", questions_path, "VQA questions, e.g. v2_OpenEnded_mscoco_val2014_questions.json")]
    if annotations_path is not None:
        entries.append(("annotations_path", annotations_path, "VQA answers, e.g. v2_mscoco_val2014_annotations.json"))
    return entries + [("image_root", image_root, "COCO image folder, e.g. val2014/")]


def gqa_required_files(questions_path, image_root):
    return [
        ("questions_path", questions_path, "GQA questions, testdev_balanced_questions.json"),
        ("image_root", image_root, "GQA image folder (images/<imageId>.jpg)"),
    ]


def _answers_by_question(path):
    data = read_json(path)
    annotations = field(data, "annotations", list, path, "")
    by_id = {}
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        question_id = field(ann, "question_id", (int, str), path, where)
        answers = field(ann, "answers", list, path, where)
        if not answers:
            raise fail(path, where, "'answers' is empty")
        texts = [field(a, "answer", str, path, f"{where}.answers[{k}]") for k, a in enumerate(answers)]
        meta = {
            "image_id": ann.get("image_id"),
            "answer_type": ann.get("answer_type"),
            "question_type": ann.get("question_type"),
        }
        if str(question_id) in by_id:
            raise fail(path, where, f"question id {question_id} has a second annotation")
        by_id[str(question_id)] = (texts, meta)
    return by_id


def read_vqa(questions_path, annotations_path, image_root, image_pattern=COCO_VAL_PATTERN):
    """Items of the questions file, in its order; `annotations_path` None: no ground truth."""
    check_files(required_files(questions_path, annotations_path, image_root, image_pattern))
    data = read_json(questions_path)
    questions = field(data, "questions", list, questions_path, "")
    answers = _answers_by_question(annotations_path) if annotations_path is not None else None
    items = []
    check_image, unique = ImageCheck(), UniqueIds()
    for i, row in enumerate(questions):
        where = f"questions[{i}]"
        question_id = str(field(row, "question_id", (int, str), questions_path, where))
        where = f"questions[{i}] (question_id {question_id})"
        image_id = field(row, "image_id", int, questions_path, where)
        question = field(row, "question", str, questions_path, where)
        unique(question_id, questions_path, where)
        try:
            name = image_pattern.format(image_id=image_id)
        except (KeyError, IndexError, ValueError) as err:
            raise fail(
                questions_path, where, f"image_pattern {image_pattern!r} cannot name the image ({err})"
            ) from None
        image_path = check_image(os.path.join(image_root, name), questions_path, where)
        meta = {"image_id": image_id, "answer_type": None, "question_type": None}
        texts = []
        if answers is not None:
            if question_id not in answers:
                raise fail(questions_path, where, f"no annotation for it in {annotations_path}")
            texts, ann_meta = answers[question_id]
            if ann_meta["image_id"] is not None and ann_meta["image_id"] != image_id:
                reason = f"image_id {image_id}, but {annotations_path} gives it {ann_meta['image_id']}"
                raise fail(questions_path, where, reason)
            meta = {**ann_meta, "image_id": image_id}
        items.append(make_item(question_id, image_path, question, texts, meta))
    if not items:
        raise fail(questions_path, "", "holds no questions")
    return items


def read_gqa(questions_path, image_root):
    """Items of the GQA questions file, in its order."""
    check_files(gqa_required_files(questions_path, image_root))
    data = read_json(questions_path)
    if not isinstance(data, dict):
        raise fail(questions_path, "", f"must hold an object of questions by id, not a {type(data).__name__}")
    items = []
    check_image = ImageCheck()
    for question_id, row in data.items():
        where = f"question {question_id}"
        image_id = field(row, "imageId", str, questions_path, where)
        question = field(row, "question", str, questions_path, where)
        answers = [field(row, "answer", str, questions_path, where)] if "answer" in row else []
        types = expect(row.get("types", {}), dict, questions_path, where, "'types'")
        image_path = check_image(os.path.join(image_root, f"{image_id}.jpg"), questions_path, where)
        meta = {
            "image_id": image_id,
            "structural": types.get("structural"),
            "semantic": types.get("semantic"),
            "detailed": types.get("detailed"),
            "full_answer": row.get("fullAnswer"),
        }
        items.append(make_item(str(question_id), image_path, question, answers, meta))
    if not items:
        raise fail(questions_path, "", "holds no questions")
    return items
