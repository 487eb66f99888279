"""Readers of the evaluation benchmarks' released files (issue #12).

The place in the flow: a benchmark's files as its authors release them, on disk -> one of the
readers here -> a list of evaluation items -> `lavis/datasets/datasets/eval_dataset.py` (images
through the vis processor) -> the evaluation task (prompt, generation, score).  One module per
benchmark, each naming the exact layout it reads: `mme`, `mmbench`, `pope`, `coco_caption`
(COCO Karpathy test, NoCaps val), `vqa` (VQAv2, OK-VQA, GQA), `seed_bench`.

Every reader returns items of one shape:

    {"question_id": str,                # unique within the benchmark, stable across runs and ranks
     "image": str | bytes | None,       # a file path, or the image's encoded bytes (PIL-openable)
     "question": str,                   # as released, no prompt template applied ("" for captions)
     "choices": {"A": str, ...} | None, # multiple-choice options in order, only those present
     "hint": str | None,
     "answers": list[str],              # ground truth ([] where the split releases none)
     "meta": dict}                      # subtask, category, image_id, ... (JSON-serialisable)

and each module has `required_files(...)` with the reader's own arguments: [(argument name, path,
what it is)] of every file and folder the reader needs, for :class:`MissingFilesError` (the
reader checks them first too).  A file that cannot be read, or a row that cannot be used (not
JSON, invalid UTF-8, a missing field, an image it names that is not on disk), stops the read with
one :class:`EvalDataError` line naming the file, the row or line, and the reason: an evaluation
that silently skipped rows would report a score on a different benchmark.
"""

import os

from lavis.common import json_files
from lavis.common.errors import MissingFilesError, UserError


class EvalDataError(UserError, ValueError):
    """A benchmark file, or a row of one, that cannot be read as its released format."""


def fail(path, where, reason):
    """EvalDataError '<path> <where>: <reason>' on one line (`where` may be empty)."""
    return json_files.fail(EvalDataError, path, where, reason)


def check_files(entries):
    """Raise MissingFilesError for the (key, path, what) entries whose path is not on disk."""
    missing = [entry for entry in entries if not os.path.exists(entry[1])]
    if missing:
        raise MissingFilesError(missing)


def read_text(path):
    """The file's text (UTF-8, a leading BOM dropped); EvalDataError when it cannot be read."""
    return json_files.read_text(path, EvalDataError)


def read_json(path):
    """The file's JSON value; EvalDataError naming the line and column where it is not JSON."""
    return json_files.read_json(path, EvalDataError)


def read_json_lines(path):
    """[(line number, value)] of a JSON-lines file (blank lines skipped)."""
    rows = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if line.strip():
            rows.append((number, json_files.parse_json(line, path, f"line {number}", EvalDataError)))
    return rows


def expect(value, types, path, where, what):
    """`value` if it is one of `types`, else EvalDataError naming `what`."""
    if not isinstance(value, types) or isinstance(value, bool):
        kinds = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise fail(path, where, f"{what} must be a {kinds}, not {type(value).__name__}")
    return value


def field(row, key, types, path, where):
    """row[key], which must be present and one of `types`."""
    if not isinstance(row, dict):
        raise fail(path, where, f"must be an object, not {type(row).__name__}")
    if key not in row:
        raise fail(path, where, f"missing '{key}'")
    return expect(row[key], types, path, where, f"'{key}'")


class ImageCheck:
    """Checks that the image files rows name are on disk (each path looked up once)."""

    def __init__(self):
        self._seen = {}

    def __call__(self, image_path, path, where):
        if image_path not in self._seen:
            self._seen[image_path] = os.path.isfile(image_path)
        if not self._seen[image_path]:
            raise fail(path, where, f"image not found: {image_path}")
        return image_path


class UniqueIds:
    """Refuses a question id seen before (ids must be unique to resume and gather across ranks)."""

    def __init__(self):
        self._first = {}

    def __call__(self, question_id, path, where):
        if question_id in self._first:
            raise fail(path, where, f"question id {question_id!r} repeats ({self._first[question_id]})")
        self._first[question_id] = f"{path} {where}"
        return question_id


def make_item(question_id, image, question, answers, meta, choices=None, hint=None):
    """One evaluation item in the common shape."""
    return {
        "question_id": question_id,
        "image": image,
        "question": question,
        "choices": choices,
        "hint": hint,
        "answers": list(answers),
        "meta": meta,
    }
