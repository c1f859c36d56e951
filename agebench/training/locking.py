"""One process per fold: `flock` locks that make a second `agebench train` on one output_dir skip
the folds another process is training, and serialise their read-modify-write of results.jsonl.

`flock` locks belong to the open file and the kernel drops them when the holder exits, however it
exits (kill -9 included), so a lock file left behind never blocks a later run; the files themselves
stay (deleting a lock file another process may be about to lock would let two processes hold "it").
On NFS, Linux emulates `flock` with byte-range locks, which the server honours across clients.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agebench.files import exclusive, open_lock_file  # noqa: F401  (exclusive: callers lock through here)

FOLD_LOCK = ".lock"
RESULTS_LOCK = ".results.lock"


class FoldClaim:
    """An exclusive lock on a fold directory, held until `release()` (or the end of a `with`)."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_fold(fold_dir: Path) -> FoldClaim | None:
    """The fold's lock when no other process holds it, else None (that process is training it)."""
    path = Path(fold_dir) / FOLD_LOCK
    fd = open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return FoldClaim(fd, path)
