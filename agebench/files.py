"""Files written safely: temporary files for atomic writes that get the permissions a plain `open()` would give,
and `flock` locks for read-modify-write sections.

`tempfile.mkstemp` creates its file mode 0600 whatever the umask, so a results store or checkpoint
written through it could not be read by the other users of a shared sweep directory. `temp_beside`
gives the temporary file `0666 & ~umask` (0644 under the usual umask 022) before anything is written,
and a name unique to this process and call, so concurrent writers of one file never share a temp file.

Every file agebench replaces (run records, checkpoints, the image cache, exports, report plots) goes through
`replacing` / `atomic_write_bytes`: a reader sees the old file or the new one, never half of one, and a full
disk is one line naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from agebench.errors import DiskFullError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, a full quota


def current_umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it, which
    races with other threads creating files); falls back to set-and-restore off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode `open(path, "w")` would create a file with under the current umask."""
    return 0o666 & ~current_umask()


def temp_beside(path: str | Path) -> tuple[int, str]:
    """An open descriptor and the name of a new, uniquely named temporary file next to `path`
    (same directory, so `os.replace` onto `path` is atomic), with umask-honouring permissions."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, default_file_mode())
    return fd, tmp


def remove_quietly(path: str | Path) -> None:
    """Delete a leftover temporary file; it may already be gone (or never have been created)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


RERUN_FIX = "free some space or set output_dir to a larger disk, then rerun the same command to resume"


def disk_full(path: Path, err: OSError, fix: str | None = None) -> DiskFullError:
    """One line saying which file could not be written, how much room its file system has left and `fix`
    (by default: make room and rerun, for the commands that resume)."""
    try:
        free = f"{shutil.disk_usage(Path(path).parent).free / 2**20:.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{os.strerror(err.errno).lower()} writing {path} ({free}); {fix or RERUN_FIX}")


@contextmanager
def replacing(path: str | Path, fix: str | None = None):
    """Yields the name of a new temporary file beside `path`; when the block ends, the file replaces `path`
    (`os.replace`: atomic on a local file system). On any error (a kill, an interrupt, a full disk) the
    temporary file is removed and `path` keeps what it held; a full disk is a DiskFullError naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)  # unique per writer: two processes never write one temp file
    os.close(fd)  # writers open it themselves (torch.save and np.save write faster through their own)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        remove_quietly(tmp)
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            raise disk_full(path, err, fix) from None
        raise


def write_synced(fh, data: bytes) -> None:
    """Write, flush and fsync, so that a full disk fails here (and not later, at close or in a reader)."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def atomic_write_bytes(path: str | Path, data: bytes, fix: str | None = None) -> None:
    """`path` holds `data` whole afterwards, or keeps what it held (see `replacing`)."""
    with replacing(path, fix) as tmp, open(tmp, "wb") as fh:
        write_synced(fh, data)


def open_lock_file(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # 0o666 & ~umask, like any file we write


@contextmanager
def exclusive(path: str | Path):
    """Wait for, then hold, an exclusive `flock` on `path` (a short critical section, e.g. appending a run
    record: two processes read-modify-writing one JSONL file at once would lose one record). The kernel drops
    the lock when its holder exits, however it exits, so a lock file left behind never blocks."""
    fd = open_lock_file(Path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
