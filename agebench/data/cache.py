"""Decode-once cache: uint8 image arrays stored as .npy files and memory-mapped by every fold and run.

An entry is keyed by a hash of a JSON-able description of what produced it (source file list with
sizes and mtimes, or the synthetic spec, plus the preprocessing config). It is written to a temporary
file and renamed into place, so concurrent workers and killed runs never see a half-written array.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agebench.files import replacing

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def cache_key(description: dict) -> str:
    blob = json.dumps({"v": CACHE_VERSION, **description}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def open_verified(path: Path, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray | None, str]:
    """(the memory-mapped array, "") when `path` is a whole .npy of the expected shape, else (None, why).

    Entries are renamed into place whole, so a damaged one was cut short or overwritten from outside
    (a full disk on a copy, a crashed rsync): the header must parse, the file must hold exactly the
    bytes the header promises, and the shape must be the one the caller expects."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        return None, f"unreadable: {' '.join(str(err).split())[:120]}"
    if not isinstance(array, np.memmap):
        return None, "not a single array"
    size, expected = os.path.getsize(path), array.offset + array.nbytes
    if size != expected:
        return None, f"{size} bytes where its header promises {expected}"
    if shape is not None and tuple(array.shape) != tuple(shape):
        return None, f"shape {tuple(array.shape)} where {tuple(shape)} is expected"
    return array, ""


def cached_array(cache_dir: str | Path, description: dict, build: Callable[[], np.ndarray], prefix: str = "images",
                 shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, bool]:
    """The array for `description`, memory-mapped read-only; built with `build()` and stored on a miss.

    An entry that fails `open_verified` (truncated, or not of `shape` when given) is rebuilt, with a
    warning. Returns (array, hit) so callers and tests can tell a reuse from a rebuild."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{prefix}-{cache_key(description)}.npy"
    if path.exists():
        array, damage = open_verified(path, shape)
        if array is not None:
            return array, True
        log.warning("image cache %s is damaged (%s); rebuilding it", path, damage)
    array = np.ascontiguousarray(build())
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    (cache_dir / f"{path.stem}.json").write_text(json.dumps(description, sort_keys=True, default=str, indent=1))
    return np.load(path, mmap_mode="r"), False
