"""Tiny copies of each benchmark's released files, written in exactly the released layouts."""

import base64
import csv
import io
import json
import random
import shutil

from PIL import Image

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def png_bytes(colour, size=(8, 6)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(path, colour=RED):
    """A small image at `path` (parents made), PNG or JPEG by its extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), colour).save(path)
    return path


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


# --- MME: one subtask in each of the release's two layouts ------------------------------------------

ARTWORK_10002 = (
    "Does this artwork exist in the form of painting? Please answer yes or no.\tYes\n"
    "Does this artwork exist in the form of glassware? Please answer yes or no.\tNo\n"
)
ARTWORK_10003 = (
    "Is this artwork created by Rembrandt? Please answer yes or no.\tNo\n"
    "Is this artwork created by Vermeer? Please answer yes or no.\tYes\n"
)
COUNT_6040 = "Are there two dogs in the image? Please answer yes or no.\tYes\nAre there three dogs in the image? Please answer yes or no.\tNo\n"  # noqa: E501


def mme_root(tmp_path):
    root = tmp_path / "MME_Benchmark_release_version"
    write_image(root / "artwork" / "images" / "10002.jpg", RED)
    write_image(root / "artwork" / "images" / "10003.png", GREEN)
    (root / "artwork" / "questions_answers_YN").mkdir(parents=True)
    (root / "artwork" / "questions_answers_YN" / "10002.txt").write_text(ARTWORK_10002, encoding="utf-8")
    # the release has CRLF files and a trailing blank line in places
    (root / "artwork" / "questions_answers_YN" / "10003.txt").write_bytes(
        ARTWORK_10003.replace("\n", "\r\n").encode() + b"\r\n"
    )
    write_image(root / "count" / "000000006040.jpg", BLUE)
    (root / "count" / "000000006040.txt").write_text(COUNT_6040, encoding="utf-8")
    return root


# --- MMBench: the dev TSV's columns, base64 images ---------------------------------------------------

MMBENCH_HEADER = [
    "index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
    "comment", "split",
]  # fmt: skip


def mmbench_rows():
    red = base64.b64encode(png_bytes(RED)).decode()
    blue = base64.b64encode(png_bytes(BLUE)).decode()
    return [
        ["241", 'Which "word" is on the sign?', "nan", "STOP", "GO", "EXIT", "", "A", "ocr", red,
         "textvqa", "fine-grained_perception (instance-level)", "nan", "dev"],
        ["1001", "Which colour dominates?\nPick one.", "The image is a flat colour.", "red", "green", "blue",
         "yellow", "C", "attribute_recognition", blue, "custom", "attribute_reasoning", "nan", "dev"],
    ]  # fmt: skip


def write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:  # pandas.to_csv(sep="\t")'s quoting
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)
    return path


def mmbench_tsv(tmp_path):
    return write_tsv(tmp_path / "mmbench_dev_20230712.tsv", [MMBENCH_HEADER] + mmbench_rows())


# --- POPE: JSON lines per category, COCO val2014 images ---------------------------------------------

POPE_IMAGES = {"COCO_val2014_000000310196.jpg": RED, "COCO_val2014_000000210789.jpg": GREEN}


def pope_lines(category):
    objects = {"random": "snowboard", "popular": "person", "adversarial": "skis"}[category]
    return [
        {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": f"Is there a {objects} in the image?",
         "label": "yes"},
        {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?",
         "label": "no"},
        {"question_id": 3, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a car in the image?",
         "label": "yes"},
    ]  # fmt: skip


def pope_files(tmp_path):
    root, images = tmp_path / "pope", tmp_path / "coco" / "val2014"
    root.mkdir()
    for category in ("random", "popular", "adversarial"):
        lines = "".join(json.dumps(line) + "\n" for line in pope_lines(category))
        (root / f"coco_pope_{category}.json").write_text(lines, encoding="utf-8")
    for name, colour in POPE_IMAGES.items():
        write_image(images / name, colour)
    return root, images


# --- COCO Karpathy test (LAVIS's files) --------------------------------------------------------------

KARPATHY_TEST = [
    {"image": "val2014/COCO_val2014_000000391895.jpg",
     "caption": ["A man with a red helmet on a small moped on a dirt road. ", "Man riding a motor bike on a dirt road.",
                 "A man riding on the back of a motorcycle.", "A young person on a motor bike.",
                 "A man in a red shirt and a red hat is on a motorcycle."]},
    {"image": "val2014/COCO_val2014_000000060623.jpg",
     "caption": ["A young girl inhales with the intent of blowing out a candle.", "A girl blowing out a candle.",
                 "A little girl is getting ready to blow out a candle.", "A child about to blow out candles.",
                 "A girl and a cake with a candle."]},
]  # fmt: skip


def karpathy_gt(rows=KARPATHY_TEST):
    annotations, images, next_id = [], [], 1
    for row in rows:
        image_id = int(row["image"].rsplit("_", 1)[1][: -len(".jpg")])
        images.append({"id": image_id})
        for caption in row["caption"]:
            annotations.append({"image_id": image_id, "caption": caption, "id": next_id})
            next_id += 1
    return {"annotations": annotations, "images": images}


def karpathy_files(tmp_path):
    images = tmp_path / "coco" / "images"
    for row, colour in zip(KARPATHY_TEST, (RED, BLUE)):
        write_image(images / row["image"], colour)
    test = write_json(tmp_path / "coco" / "annotations" / "coco_karpathy_test.json", KARPATHY_TEST)
    gt = write_json(tmp_path / "cache" / "coco_gt" / "coco_karpathy_test_gt.json", karpathy_gt())
    return test, gt, images


# --- VQAv2 val: questions + annotations, COCO val2014 images --------------------------------------------

VQA_QUESTIONS = [
    {"image_id": 262148, "question": "Where is he looking?", "question_id": 262148000},
    {"image_id": 262148, "question": "What are the people in the background doing?", "question_id": 262148001},
    {"image_id": 393225, "question": "Is this a pizza?", "question_id": 393225000},
]
VQA_ANSWERS = {
    262148000: (["down"] * 7 + ["at table", "skateboard", "table"], "other", "none of the above"),
    262148001: (["watching"] * 6 + ["spectating"] * 2 + ["standing", "watching skateboarder"], "other", "what are the"),
    393225000: (["yes"] * 10, "yes/no", "is this a"),
}


def vqa_annotations():
    annotations = []
    for question in VQA_QUESTIONS:
        texts, answer_type, question_type = VQA_ANSWERS[question["question_id"]]
        annotations.append(
            {
                "question_type": question_type,
                "multiple_choice_answer": texts[0],
                "answers": [{"answer": t, "answer_confidence": "yes", "answer_id": k + 1} for k, t in enumerate(texts)],
                "image_id": question["image_id"],
                "answer_type": answer_type,
                "question_id": question["question_id"],
            }
        )
    return {"info": {}, "license": {}, "data_subtype": "val2014", "annotations": annotations, "data_type": "mscoco"}


def vqa_files(tmp_path):
    root = tmp_path / "vqav2"
    questions = write_json(
        root / "v2_OpenEnded_mscoco_val2014_questions.json",
        {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": "val2014",
         "questions": VQA_QUESTIONS},
    )  # fmt: skip
    annotations = write_json(root / "v2_mscoco_val2014_annotations.json", vqa_annotations())
    images = tmp_path / "coco" / "val2014"
    write_image(images / "COCO_val2014_000000262148.jpg", RED)
    write_image(images / "COCO_val2014_000000393225.jpg", GREEN)
    return questions, annotations, images


# --- GQA testdev-balanced ---------------------------------------------------------------------------

GQA_QUESTIONS = {
    "201307251": {
        "semantic": [{"operation": "select", "dependencies": [], "argument": "table (12)"}],
        "entailed": ["201307252"], "equivalent": ["201307251"],
        "question": "Is it an indoors or outdoors scene?", "imageId": "n161313",
        "isBalanced": True, "groups": {"global": "location", "local": "14-table_location"},
        "answer": "indoors", "semanticStr": "select: table (12)->choose location: indoors|outdoors [0]",
        "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
        "types": {"detailed": "locationChoose", "semantic": "global", "structural": "choose"},
        "fullAnswer": "It is indoors.",
    },
    "20515613": {
        "semantic": [], "entailed": [], "equivalent": ["20515613"],
        "question": "Is the man wearing a hat?", "imageId": "n344366",
        "isBalanced": True, "groups": {"global": None, "local": "13-man_hat"},
        "answer": "no", "semanticStr": "select: man->verify rel: hat,wearing,o",
        "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
        "types": {"detailed": "relVerify", "semantic": "rel", "structural": "verify"},
        "fullAnswer": "No, the man is not wearing a hat.",
    },
}  # fmt: skip


def gqa_files(tmp_path):
    questions = write_json(tmp_path / "gqa" / "testdev_balanced_questions.json", GQA_QUESTIONS)
    images = tmp_path / "gqa" / "images"
    write_image(images / "n161313.jpg", RED)
    write_image(images / "n344366.jpg", BLUE)
    return questions, images


# --- SEED-Bench v1 ----------------------------------------------------------------------------------

SEED = {
    "question_type": {"Scene Understanding": 1, "Instance Identity": 2, "Instances Counting": 5,
                      "Action Recognition": 10},
    "questions": [
        {"answer": "A", "choice_a": "One", "choice_b": "Two", "choice_c": "Three", "choice_d": "Four",
         "data_id": "1454426_2591111986", "data_type": "image", "question": "How many towels are in the image?",
         "question_id": "101669", "question_type_id": 5},
        {"answer": "B", "choice_a": "throwing something in the air and letting it fall",
         "choice_b": "throwing something in the air and catching it", "choice_c": "lifting something",
         "choice_d": "poking something", "data_id": "94328.webm", "data_type": "video",
         "question": "What is the action being carried out in the video?", "question_id": "v1738",
         "question_type_id": 10},
        {"answer": "C", "choice_a": "A beach", "choice_b": "A forest", "choice_c": "A kitchen", "choice_d": "A street",
         "data_id": "2036364_1573532432", "data_type": "image", "question": "Where is this scene?",
         "question_id": "1", "question_type_id": 1},
    ],
}  # fmt: skip


def seed_files(tmp_path):
    path = write_json(tmp_path / "seed_bench" / "SEED-Bench.json", SEED)
    images = tmp_path / "seed_bench" / "SEED-Bench-image"
    write_image(images / "1454426_2591111986.png", RED).rename(images / "1454426_2591111986")
    write_image(images / "2036364_1573532432.png", GREEN).rename(images / "2036364_1573532432")
    return path, images


# --- a copy of a benchmark tree with its images shuffled between questions (the blind control) ---


def shuffle_images(src, dst, seed=0):
    """Copy the benchmark files under `src` to `dst` with each folder's images permuted among
    its files (names kept) and each TSV's base64 `image` column permuted among its rows: every
    question now comes with another question's image, in the same released format."""
    rng = random.Random(seed)
    shutil.copytree(src, dst)
    for folder in [dst, *(p for p in dst.rglob("*") if p.is_dir())]:
        images = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
        contents = [p.read_bytes() for p in images]
        rng.shuffle(contents)
        for path, data in zip(images, contents, strict=True):
            path.write_bytes(data)
    for path in dst.rglob("*.tsv"):
        with open(path, encoding="utf-8", newline="") as handle:
            header, *rows = list(csv.reader(handle, delimiter="\t"))
        at = header.index("image")
        column = [row[at] for row in rows]
        rng.shuffle(column)
        shuffled = [row[:at] + [image] + row[at + 1 :] for row, image in zip(rows, column, strict=True)]
        write_tsv(path, [header, *shuffled])
    return dst
