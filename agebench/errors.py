"""User-facing errors.

A `UserError` is a mistake the user can fix (a missing dataset root, an unknown option, a task the
dataset has no labels for). The CLI prints its message as one line and exits non-zero, with no stack
trace; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input. The message names the problem and the fix, on one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class LeakageError(UserError):
    """A subject appears on both sides of a train/validation/test split."""

    exit_code = 3


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the fold is recorded with status `diverged`."""


class RegressionError(UserError):
    """`agebench regress` found a metric outside its tolerated baseline (the CI gate fails): exit 1."""

    exit_code = 1


class DiskFullError(UserError):
    """A write ran out of space (ENOSPC/EDQUOT); the message says where. The partial file is removed."""

    exit_code = 74  # EX_IOERR (sysexits.h)
