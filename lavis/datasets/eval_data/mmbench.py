"""MMBench (and MMBench-CN) read from the released TSV -> evaluation items.

Place in the flow: `mmbench_dev_20230712.tsv` / `mmbench_dev_cn_20231003.tsv` on disk ->
`read_mmbench` -> items (one per row) that the evaluation dataset turns into prompts and the task
scores (accuracy per category and l2-category; the test TSVs, which release no answers, give
`answers == []` and are for the submission file).

The layout: one UTF-8 file, tab-separated, a header row, CSV quoting (`"` quotes, doubled inside),
columns `index, question, hint, A, B, C, D, answer, category, image, source, l2-category, comment,
split` (only index, question and image are required; any single capital letter is an option).
`image` is the base64 of the encoded image, or (the convention of OpenCompass's later TSVs) the
`index` of another row whose image it shares.  An empty option or hint, or one of pandas'
default NA strings ("nan", "NaN", "None", "NA", "N/A", "null", ...), is absent, as every loader
that reports MMBench (LLaVA's, VLMEvalKit's: both read it with pandas) sees it.
Items: question_id = str(index), image = the decoded bytes, answers [letter],
meta {"index", "category", "l2-category", "split", "source", "lang"}.
"""

import base64
import binascii
import csv
import io
import os
import string

from PIL import Image

from lavis.datasets.eval_data import UniqueIds, check_files, fail, make_item, read_text

#: Strings pandas.read_csv reads as NaN by default (pandas 2.x), i.e. an absent value
NA_STRINGS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"]
    + ["<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)
REQUIRED_COLUMNS = ("index", "question", "image")
#: An `image` this short is another row's index, not an image
_REFERENCE_MAX = 64


def required_files(path, lang=None):
    return [("path", path, "MMBench TSV, e.g. mmbench_dev_20230712.tsv or mmbench_dev_cn_20231003.tsv")]


def _value(text):
    return None if text in NA_STRINGS else text


def read_mmbench(path, lang=None):
    """Items of the TSV's rows, in file order.  `lang` ("en"/"cn") goes into meta; None: "cn"
    when the file name says `_cn_`, else "en"."""
    check_files(required_files(path))
    if lang is None:
        lang = "cn" if "_cn_" in os.path.basename(path).lower() else "en"
    text = read_text(path)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 2**31 - 1))  # a row's base64 image is far over csv's 128 KiB default
    try:
        rows = _rows(text, path)
    finally:
        csv.field_size_limit(limit)
    header, rows = rows[0], rows[1:]
    for column in REQUIRED_COLUMNS:
        if column not in header:
            raise fail(path, "line 1", f"the header has no '{column}' column (it has: {', '.join(header)})")
    letters = [c for c in string.ascii_uppercase if c in header]
    images = {}
    records = []
    unique = UniqueIds()
    at = header.index("index")
    for line, fields in rows:
        index = fields[at].strip() if at < len(fields) else ""
        where = f"line {line} (index {index})" if index else f"line {line}"
        if len(fields) != len(header):
            raise fail(path, where, f"the row has {len(fields)} fields, the header {len(header)}")
        if not index:
            raise fail(path, where, "'index' is empty")
        row = dict(zip(header, fields))
        unique(index, path, where)
        images[index] = row["image"]
        records.append((where, index, row))
    items = []
    for where, index, row in records:
        question = _value(row["question"])
        if question is None:
            raise fail(path, where, "'question' is empty")
        choices = {c: row[c] for c in letters if _value(row[c]) is not None}
        answers = []
        if "answer" in row and _value(row["answer"]) is not None:
            answer = row["answer"].strip()
            if answer not in choices:
                raise fail(path, where, f"the answer {answer!r} is not one of the options {', '.join(choices)}")
            answers = [answer]
        meta = {
            "index": index,
            "category": _value(row.get("category", "")),
            "l2-category": _value(row.get("l2-category", "")),
            "split": _value(row.get("split", "")),
            "source": _value(row.get("source", "")),
            "lang": lang,
        }
        image = _image(row["image"], images, path, where)
        items.append(make_item(index, image, question, answers, meta, choices or None, _value(row.get("hint", ""))))
    return items


def _rows(text, path):
    """[(line where the record starts, fields)] of the TSV, blank lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    rows, line = [], 1
    try:
        for fields in reader:
            if fields:
                rows.append((line, fields))
            line = reader.line_num + 1
    except csv.Error as err:
        raise fail(path, f"line {line}", f"not a readable TSV row ({err})") from None
    if not rows:
        raise fail(path, "", "is empty (expected a header row and one row per question)")
    return [rows[0][1]] + rows[1:]


def _image(value, images, path, where):
    """The row's image bytes: its base64 decoded, or those of the row its short value names."""
    value = value.strip()
    if len(value) <= _REFERENCE_MAX:
        target = images.get(value)
        if target is None or len(target.strip()) <= _REFERENCE_MAX:
            reason = f"'image' is neither base64 image data nor the index of a row with an image: {value!r}"
            raise fail(path, where, reason)
        value = target.strip()
    try:
        data = base64.b64decode(value)  # as the loaders decode it (characters outside base64 dropped)
    except (binascii.Error, ValueError) as err:
        raise fail(path, where, f"'image' is not valid base64 ({err})") from None
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except (OSError, Image.DecompressionBombError) as err:
        raise fail(path, where, f"'image' does not decode to an image ({err})") from None
    return data
