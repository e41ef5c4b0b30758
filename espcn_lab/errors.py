"""Errors caused by the user's input: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input (missing file, wrong argument, unreadable data); ``str(err)`` is the whole message."""
