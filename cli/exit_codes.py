"""Exit codes of the ``cleanlab-ng`` command, one place for all of them."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL_ERROR = 1
    BAD_INPUT = 2  # the dataset or an option is wrong; the same code click uses for usage
    NOISE_ABOVE_THRESHOLD = 3  # only with --fail-above
    INTERRUPTED = 130


EPILOG = (
    "Exit codes: 0 ok; 1 internal error; 2 bad input or usage; "
    "3 estimated noise rate above --fail-above; 130 interrupted."
)
