"""The base class of every error that is the user's to fix (the bottom of the flow: no imports).

Config keys, files, data, checkpoints, command-line arguments: each layer raises its own
subclass of :class:`UserError` where it finds the problem, and the entry points (`train.py`,
`python -m lavis.tools.*`, the chat front ends) catch this one class and print it as a single
`error: ...` line instead of a traceback.  Anything else that escapes is a bug.
"""


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
