"""Errors caused by the user's input: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (missing file, wrong argument, unreadable data); ``str(err)`` is the whole message."""


class ConfigError(ValueError):
    """A config file, override or architecture that does not fit the schema; the message names the key."""
