"""Tiny fake copies of every dataset format agebench reads (the torchgeo way).

One builder module per on-disk format. Each `make_*(root, ...)` writes a few rows in exactly the
format the real dataset uses — including the malformed entries the real data has — and returns the
counts a correct parser must report, so tests compare against numbers worked out by hand here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 32), fmt: str | None = None) -> Path:
    """A small random RGB image (JPEG unless the extension says otherwise)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    ext = path.suffix.lower()
    fmt = fmt or {".png": "PNG", ".bmp": "BMP"}.get(ext, "JPEG")
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image extension that no decoder can read (a truncated download)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return path
