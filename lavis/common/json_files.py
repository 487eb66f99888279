"""Reading a JSON file a user gave (annotations, benchmark files) so that every way it can be
unreadable is one message naming the file and the reason.

Used by the annotation reader (`lavis/datasets/datasets/instruction_dataset.py`) and the
benchmark readers (`lavis/datasets/eval_data/`), each raising its own UserError kind: not found,
a directory or another file that is not a regular one, permission denied or another OS error,
not UTF-8 (with the line and byte), empty, not JSON (line and column), nested too deeply for the
parser.  The standard library's `json` raises a RecursionError for the last and
UnicodeDecodeError / IsADirectoryError for others, which are not the message a user should see.
"""

import json
import os
import stat

from lavis.common.errors import UserError


class UnreadableFileError(UserError, ValueError):
    """A file that cannot be read as what it should hold (the default kind of the readers here)."""


def fail(error, path, where, reason):
    """`error('<path> <where>: <reason>')` on one line (`where` may be empty)."""
    place = f"{path} {where}" if where else str(path)
    return error(" ".join(f"{place}: {reason}".split("\n")))


def read_text(path, error=UnreadableFileError):
    """The file's text (UTF-8, a leading BOM dropped); `error` naming the file and why otherwise."""
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # a FIFO or /dev/zero would never end
                raise fail(error, path, "", "is not a regular file")
            data = handle.read()
    except IsADirectoryError:
        raise fail(error, path, "", "is a directory, not a file") from None
    except FileNotFoundError:
        raise fail(error, path, "", "file not found") from None
    except PermissionError:
        raise fail(error, path, "", "permission denied") from None
    except OSError as err:
        raise fail(error, path, "", f"cannot be read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise fail(error, path, f"line {line}", f"not valid UTF-8 (byte 0x{data[err.start]:02x})") from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_json(text, path, where="", error=UnreadableFileError):
    """`text` (of `path`, at `where`) as a JSON value; `error` naming the place otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        place = f"{where} column {err.colno}" if where else f"line {err.lineno} column {err.colno}"
        raise fail(error, path, place, f"not valid JSON ({err.msg})") from None
    except RecursionError:
        raise fail(error, path, where, "JSON nested too deeply to read") from None


def read_json(path, error=UnreadableFileError):
    """The file's JSON value; `error` naming the file and the reason when it cannot be read."""
    text = read_text(path, error)
    if not text.strip():
        raise fail(error, path, "", "is empty (not valid JSON)")
    return parse_json(text, path, error=error)
