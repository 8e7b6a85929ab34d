"""Errors that mean "the user has something to fix" (exit code 2 in the CLI).

Anything else that escapes the library is a bug and is reported as an internal error.
"""


class CleanlabNgError(Exception):
    """Base class: the dataset or an option is wrong; the message says what to do."""


class DatasetError(CleanlabNgError):
    """The dataset cannot be read as given (missing labels, unknown layout, bad rows)."""


class ConfigError(CleanlabNgError):
    """An option or a combination of options is invalid."""
