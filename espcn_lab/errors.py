"""Errors the command line turns into one line on stderr and an exit code (``cli.main``).

``UserError`` / ``ConfigError``: bad input, exit 2. ``RunFailed``: a run that stopped for a reason outside
its input (another rank of a multi-process run was lost), exit 1. ``Interrupted``: a run stopped by a
signal after saving its state, exit 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""


class UserError(Exception):
    """Bad input (missing file, wrong argument, unreadable data); ``str(err)`` is the whole message."""


class ConfigError(ValueError):
    """A config file, override or architecture that does not fit the schema; the message names the key."""


class RunFailed(Exception):
    """A run that could not go on although its input was fine; ``str(err)`` is the whole message."""


class Interrupted(Exception):
    """A run stopped by ``signum`` (SIGINT, SIGTERM) once its state was saved; ``str(err)`` says where."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
