"""Decode-once cache: uint8 image arrays stored as .npy files and memory-mapped by every fold and run.

An entry is keyed by a hash of a JSON-able description of what produced it (source file list with
sizes and mtimes, or the synthetic spec, plus the preprocessing config). It is written to a temporary
file and renamed into place, so concurrent workers and killed runs never see a half-written array.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def cache_key(description: dict) -> str:
    blob = json.dumps({"v": CACHE_VERSION, **description}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_array(cache_dir: str | Path, description: dict, build: Callable[[], np.ndarray], prefix: str = "images") -> tuple[np.ndarray, bool]:
    """The array for `description`, memory-mapped read-only; built with `build()` and stored on a miss.

    Returns (array, hit) so callers and tests can tell a reuse from a rebuild."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{prefix}-{cache_key(description)}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r"), True
    array = np.ascontiguousarray(build())
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
        (cache_dir / f"{path.stem}.json").write_text(json.dumps(description, sort_keys=True, default=str, indent=1))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return np.load(path, mmap_mode="r"), False
