"""Bad input stops a read with one line naming the file, the row or line, and the reason."""

import json
import os

import pytest

from lavis.common.errors import UserError
from lavis.datasets.eval_data import EvalDataError, coco_caption, mmbench, mme, pope, seed_bench, vqa
from tests.helpers.benchmark_files import MMBENCH_HEADER, mmbench_rows, write_tsv


def error(read, *parts):
    """The EvalDataError `read()` raises: a one-line UserError holding every one of `parts`."""
    with pytest.raises(EvalDataError) as caught:
        read()
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in message and "Traceback" not in message, message
    for part in parts:
        assert str(part) in message, f"{part!r} not in {message!r}"
    return message


# --- invalid UTF-8 ----------------------------------------------------------------------------------


def test_invalid_utf8(mme_root, pope_files, mmbench_tsv):
    txt = mme_root / "count" / "000000006040.txt"
    txt.write_bytes(b"Are there two dogs?\tYes\nAre there thr\xffee dogs?\tNo\n")
    error(lambda: mme.read_mme(str(mme_root)), txt, "line 2", "not valid UTF-8", "0xff")
    root, images = pope_files
    (root / "coco_pope_popular.json").write_bytes(b'{"question_id": 1}\n{"text": "caf\xe9"}\n')
    error(lambda: pope.read_pope(str(root), str(images)), root / "coco_pope_popular.json", "line 2", "UTF-8")
    mmbench_tsv.write_bytes(mmbench_tsv.read_bytes().replace(b"STOP", b"ST\xc3OP"))
    error(lambda: mmbench.read_mmbench(str(mmbench_tsv)), mmbench_tsv, "line 2", "UTF-8")


# --- truncated JSON ---------------------------------------------------------------------------------


def test_truncated_json(vqa_files, seed_files, pope_files, gqa_files):
    questions, annotations, images = vqa_files
    text = annotations.read_text()
    annotations.write_text(text[: len(text) // 2])
    error(lambda: vqa.read_vqa(str(questions), str(annotations), str(images)), annotations, "line 1", "not valid JSON")
    path, seed_images = seed_files
    path.write_text(json.dumps(json.loads(path.read_text()), indent=1)[:-40])
    error(lambda: seed_bench.read_seed_bench(str(path), str(seed_images)), path, "column", "not valid JSON")
    root, pope_images = pope_files
    lines = (root / "coco_pope_random.json").read_text().splitlines()
    (root / "coco_pope_random.json").write_text("\n".join([lines[0], lines[1][:30], lines[2]]) + "\n")
    error(lambda: pope.read_pope(str(root), str(pope_images)), root / "coco_pope_random.json", "line 2", "JSON")
    gqa_questions, gqa_images = gqa_files
    gqa_questions.write_text("")
    error(lambda: vqa.read_gqa(str(gqa_questions), str(gqa_images)), gqa_questions, "not valid JSON")


# --- a directory where a file belongs ---------------------------------------------------------------


def test_a_directory_instead_of_a_file(pope_files, tmp_path, karpathy_files):
    root, images = pope_files
    os.remove(root / "coco_pope_popular.json")
    (root / "coco_pope_popular.json").mkdir()
    error(lambda: pope.read_pope(str(root), str(images)), root / "coco_pope_popular.json", "is a directory")
    folder = tmp_path / "mmbench_dev_20230712.tsv"
    folder.mkdir()
    error(lambda: mmbench.read_mmbench(str(folder)), folder, "is a directory")
    test, gt, coco_images = karpathy_files
    os.remove(gt)
    gt.mkdir()
    error(lambda: coco_caption.read_coco_caption(str(test), str(gt), str(coco_images)), gt, "is a directory")


# --- a row missing a column / field ----------------------------------------------------------------


def test_a_row_missing_a_column(tmp_path, pope_files, vqa_files, seed_files, gqa_files, mme_root):
    rows = mmbench_rows()
    rows[1] = rows[1][:9]
    path = write_tsv(tmp_path / "short.tsv", [MMBENCH_HEADER] + rows)
    error(lambda: mmbench.read_mmbench(str(path)), path, "line 3 (index 1001)", "9 fields", "14")
    no_question = write_tsv(tmp_path / "no_question.tsv", [[c for c in MMBENCH_HEADER if c != "question"]])
    error(lambda: mmbench.read_mmbench(str(no_question)), no_question, "line 1", "no 'question' column")

    root, images = pope_files
    lines = (root / "coco_pope_adversarial.json").read_text().splitlines()
    row = json.loads(lines[2])
    del row["label"]
    lines[2] = json.dumps(row)
    (root / "coco_pope_adversarial.json").write_text("\n".join(lines) + "\n")
    error(
        lambda: pope.read_pope(str(root), str(images)), root / "coco_pope_adversarial.json", "line 3", "missing 'label'"
    )

    questions, annotations, vqa_images = vqa_files
    data = json.loads(questions.read_text())
    del data["questions"][1]["question"]
    questions.write_text(json.dumps(data))
    error(
        lambda: vqa.read_vqa(str(questions), str(annotations), str(vqa_images)),
        questions,
        "questions[1] (question_id 262148001)",
        "missing 'question'",
    )

    path, seed_images = seed_files
    data = json.loads(path.read_text())
    del data["questions"][2]["answer"]
    path.write_text(json.dumps(data))
    error(
        lambda: seed_bench.read_seed_bench(str(path), str(seed_images)),
        path,
        "questions[2] (question_id 1)",
        "'answer'",
    )

    gqa_questions, gqa_images = gqa_files
    data = json.loads(gqa_questions.read_text())
    del data["20515613"]["imageId"]
    gqa_questions.write_text(json.dumps(data))
    error(lambda: vqa.read_gqa(str(gqa_questions), str(gqa_images)), gqa_questions, "question 20515613", "'imageId'")

    txt = mme_root / "artwork" / "questions_answers_YN" / "10002.txt"
    txt.write_text("Does this artwork exist in the form of painting? Please answer yes or no.\n", encoding="utf-8")
    error(lambda: mme.read_mme(str(mme_root)), txt, "line 1", "no tab")


def test_bad_values(mmbench_tsv, tmp_path, mme_root):
    rows = mmbench_rows()
    rows[0][7] = "D"  # the answer names the absent option
    path = write_tsv(tmp_path / "bad_answer.tsv", [MMBENCH_HEADER] + rows)
    error(lambda: mmbench.read_mmbench(str(path)), path, "line 2 (index 241)", "answer 'D' is not one of the options")
    rows = mmbench_rows()
    rows[1][9] = "bm90IGFuIGltYWdlIGF0IGFsbCwganVzdCBzb21lIHRleHQgdGhhdCBpcyBsb25nIGVub3VnaA" * 2  # base64 of text
    path = write_tsv(tmp_path / "bad_image.tsv", [MMBENCH_HEADER] + rows)
    error(lambda: mmbench.read_mmbench(str(path)), path, "index 1001", "'image'")
    rows = mmbench_rows()
    rows[1][0] = "241"
    path = write_tsv(tmp_path / "repeat.tsv", [MMBENCH_HEADER] + rows)
    error(lambda: mmbench.read_mmbench(str(path)), path, "line 3", "question id '241' repeats")
    txt = mme_root / "count" / "000000006040.txt"
    txt.write_text("Are there two dogs in the image?\tMaybe\n", encoding="utf-8")
    error(lambda: mme.read_mme(str(mme_root)), txt, "line 1", "Yes or No")


# --- a row naming an image that is not on disk -----------------------------------------------------


def test_a_row_pointing_at_a_missing_image(pope_files, vqa_files, karpathy_files, seed_files, gqa_files, mme_root):
    root, images = pope_files
    os.remove(images / "COCO_val2014_000000210789.jpg")
    missing = os.path.join(str(images), "COCO_val2014_000000210789.jpg")
    error(
        lambda: pope.read_pope(str(root), str(images)),
        root / "coco_pope_random.json",
        "line 3",
        "image not found",
        missing,
    )

    questions, annotations, vqa_images = vqa_files
    os.remove(vqa_images / "COCO_val2014_000000393225.jpg")
    error(
        lambda: vqa.read_vqa(str(questions), str(annotations), str(vqa_images)),
        questions,
        "questions[2]",
        os.path.join(str(vqa_images), "COCO_val2014_000000393225.jpg"),
    )

    test, gt, coco_images = karpathy_files
    os.remove(coco_images / "val2014" / "COCO_val2014_000000060623.jpg")
    error(
        lambda: coco_caption.read_coco_caption(str(test), str(gt), str(coco_images)), test, "row 1", "image not found"
    )

    path, seed_images = seed_files
    os.remove(seed_images / "2036364_1573532432")
    error(lambda: seed_bench.read_seed_bench(str(path), str(seed_images)), path, "questions[2]", "2036364_1573532432")

    gqa_questions, gqa_images = gqa_files
    os.remove(gqa_images / "n344366.jpg")
    error(lambda: vqa.read_gqa(str(gqa_questions), str(gqa_images)), gqa_questions, "question 20515613", "n344366.jpg")

    os.remove(mme_root / "artwork" / "images" / "10003.png")
    txt = mme_root / "artwork" / "questions_answers_YN" / "10003.txt"
    error(
        lambda: mme.read_mme(str(mme_root)),
        txt,
        "image not found",
        os.path.join(str(mme_root), "artwork", "images", "10003"),
    )
