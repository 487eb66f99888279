"""The base class of every error that is the user's to fix, and how an entry point shows one
(the bottom of the flow: no imports from the package).

Config keys, files, data, checkpoints, command-line arguments: each layer raises its own
subclass of :class:`UserError` where it finds the problem, and the entry points (`train.py`,
`evaluate.py`, `python -m lavis.tools.*`, the chat front ends) catch this one class and hand it
to :func:`report`, which prints it as a single `error: ...` line (exit status
:data:`EXIT_STATUS`) instead of a traceback.  Anything else that escapes is a bug.
"""

import sys

#: The exit status of every entry point that stops on a :class:`UserError`.
EXIT_STATUS = 2
#: What torch's DataLoader puts in the message of an exception it re-raises from a worker
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


class UserError(Exception):
    """A problem with what the user gave (config, files, data, arguments), worded for them."""


class MissingFilesError(UserError, FileNotFoundError):
    """Files a config names (weights, annotations, images) that are not on disk, all listed at once."""

    def __init__(self, missing):
        self.missing = missing
        lines = "\n".join(f"  - {key}: {path}  ({what})" for key, path, what in missing)
        super().__init__(
            f"{len(missing)} file(s) this config needs are missing:\n{lines}\n"
            "Put the original files there (see README, 'Training the real model'), or point the config keys elsewhere."
        )

    def __str__(self):
        return self.args[0]


def report(err, prefix="", fold=False):
    """Print `err` on stderr as `error: <prefix><message>` and return :data:`EXIT_STATUS`.

    With `fold` the message is put on one line (newlines folded into spaces), for front ends that
    show it among other output; otherwise a :class:`MissingFilesError` keeps its one file a line.
    """
    message = str(err) or type(err).__name__
    if _WORKER_TRACEBACK in message:
        # raised in a DataLoader worker: torch re-raises it as the same class with the worker's
        # traceback in the message; its last line is the original "module.Class: message"
        message = message.rstrip().splitlines()[-1].partition(": ")[2] or message
    if fold:
        message = " ".join(message.split())
    print(f"error: {prefix}{message}", file=sys.stderr, flush=True)
    return EXIT_STATUS
