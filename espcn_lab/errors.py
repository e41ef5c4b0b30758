"""Errors the command line turns into one line on stderr and an exit code (``cli.main``).

``UserError`` / ``ConfigError``: bad input, exit 2. ``RunFailed``: a run that stopped for a reason outside
its input (another rank of a multi-process run was lost), exit 1; ``OutOfRoom``, a write that failed
because the disk is full or failing, is both (a UserError where one is caught per file) and exits 1 too.
``Interrupted``: a run stopped by a signal after saving its state, exit 128 + the signal number (130 for
SIGINT, 143 for SIGTERM, 129 for SIGHUP).
"""

import errno
import signal

OUT_OF_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})  # the machine failed, not the arguments


class UserError(Exception):
    """Bad input (missing file, wrong argument, unreadable data); ``str(err)`` is the whole message."""


class ConfigError(ValueError):
    """A config file, override or architecture that does not fit the schema; the message names the key."""


class RunFailed(Exception):
    """A run that could not go on although its input was fine; ``str(err)`` is the whole message."""


class OutOfRoom(UserError, RunFailed):
    """A write refused by a full or failing disk (ENOSPC, EDQUOT, EIO); nothing already written is lost."""


def write_error(err: OSError, message: str) -> UserError:
    """``message`` as the error a failed write raises: OutOfRoom for a full or failing disk, else UserError
    (a read-only or denied folder is about the path given)."""
    return (OutOfRoom if err.errno in OUT_OF_ROOM_ERRNOS else UserError)(message)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what stops fit and sweep with state saved (HUP: the terminal closed)


class Interrupted(Exception):
    """A run stopped by ``signum`` (one of ``STOP_SIGNALS``) once its state was saved; ``str(err)`` says where."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
