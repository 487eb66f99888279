"""The chat errors every other module raises: the base of the chat flow.

:class:`ChatError` is what a front end shows as one line (via :func:`one_line`) instead of a
traceback; :class:`ImageError` is the image loader's kind of it.  Both are
:class:`~lavis.common.errors.UserError` s, as every error that is the user's to fix.
"""

from lavis.common.errors import UserError


class ChatError(UserError):
    """A problem to show the person chatting as one line (no traceback)."""


class ImageError(ChatError, ValueError):
    """An image file that cannot be used (missing, not an image, too large...)."""


def one_line(err):
    """`err` as a single line: MissingFilesError lists its files; newlines are folded."""
    missing = getattr(err, "missing", None)
    if missing:
        files = "; ".join(f"{key}: {path}" for key, path, _ in missing)
        return f"{len(missing)} weight file(s) missing: {files} (see README, 'Real weights')"
    return " ".join(str(err).split()) or type(err).__name__
