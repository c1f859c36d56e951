"""Decode-once: image files -> one (N, S, S, 3) uint8 array in the cache, memory-mapped by every run.

`decode_images(paths, size, cache_dir, on_bad_image, preprocessing)` decodes each file with Pillow,
crops it (see `face_crop` below) and resizes it to size x size, in a thread pool (Pillow releases the GIL
while decoding and resizing). The array and a per-file status vector are stored with
agebench.data.cache.cached_array under a key that hashes the file list with each file's size and
mtime, the size and the preprocessing config: a second run (any fold, any model) memory-maps the same
array without decoding anything; touching, adding or removing a file, or changing the preprocessing,
makes a new entry.

Crops (`preprocessing["crop"]`, from `data.face_crop`):

* null: the largest centred square (the full face crop of aligned datasets), resized;
* a number f in (0, 1]: a centred square of f × the shorter side (tighten loose crops, e.g. IMDB-WIKI's
  40% margin with 0.6), resized;
* `squash`: the whole image resized to a square, aspect ratio not kept.

Unreadable files are skipped (`on_bad_image=skip`, reported with a count and the first paths) or stop
the run (`on_bad_image=fail`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agebench.data.cache import cached_array
from agebench.errors import UserError
from agebench.files import default_file_mode

log = logging.getLogger(__name__)

OK, MISSING, UNREADABLE, TOO_LARGE = 0, 1, 2, 3
# A decompression-bomb guard: a file is decoded only if the pixels it would decode (after a JPEG's draft
# downscale) stay within this many; checked from the header, before any pixel is decoded. 64 MP is far above
# any face dataset's photos (UTKFace in-the-wild images are at most a few MP) and about 200 MB as RGB.
MAX_PIXELS = 64_000_000
STATUS_REASONS = {MISSING: "missing image file", UNREADABLE: "unreadable or corrupt image",
                  TOO_LARGE: f"image header claims more than {MAX_PIXELS // 1_000_000} MP (decompression-bomb guard)"}


class ImageTooLarge(ValueError):
    """The header claims more pixels than MAX_PIXELS: not decoded."""
SHOW_FIRST = 5


@dataclass
class DecodedImages:
    images: np.ndarray     # (N_kept, S, S, 3) uint8, read-only memmap
    kept: np.ndarray       # bool over the input paths
    status: np.ndarray     # int8 over the input paths: 0 ok, 1 missing, 2 unreadable
    paths: list[Path]
    cache_hit: bool

    @property
    def n_bad(self) -> int:
        return int((~self.kept).sum())

    def skipped_table(self) -> pd.DataFrame:
        bad = np.flatnonzero(~self.kept)
        return pd.DataFrame({"reason": pd.Series([STATUS_REASONS[int(self.status[i])] for i in bad], dtype=str),
                             "detail": pd.Series([str(self.paths[i]) for i in bad], dtype=str)})

    def bad_report(self) -> str:
        """'3 of 120 images skipped (2 missing image file, 1 unreadable or corrupt image); first: a, b, c'."""
        bad = np.flatnonzero(~self.kept)
        if not len(bad):
            return ""
        counts = {STATUS_REASONS[s]: int((self.status == s).sum()) for s in (MISSING, UNREADABLE, TOO_LARGE)}
        kinds = ", ".join(f"{n} {reason}" for reason, n in counts.items() if n)
        first = ", ".join(str(self.paths[i]) for i in bad[:SHOW_FIRST])
        return f"{len(bad)} of {len(self.paths)} images could not be used ({kinds}); first: {first}"


# --- one image -------------------------------------------------------------------------------------

def _crop_box(width: int, height: int, crop) -> tuple[int, int, int, int] | None:
    if crop == "squash":
        return None
    fraction = 1.0 if crop in (None, "", "none", "center", "centre") else float(crop)
    if not 0 < fraction <= 1:
        raise UserError(f"data.face_crop={crop!r}; use null (centre square), a fraction in (0, 1] or squash")
    side = max(1, int(round(min(width, height) * fraction)))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def decode_one(path, size: int, crop=None) -> np.ndarray:
    """(size, size, 3) uint8 from an image file (raises OSError / ValueError on unreadable files)."""
    from PIL import Image

    with Image.open(path) as im:
        # JPEG: let the decoder downscale by 1/2..1/8 while staying >= the crop's target resolution
        if im.format == "JPEG" and crop != "squash":
            fraction = 1.0 if crop in (None, "", "none", "center", "centre") else float(crop)
            want = int(np.ceil(size / fraction))
            scale = min(im.size) / max(want, 1)
            if scale >= 2:
                im.draft("RGB", (int(np.ceil(im.size[0] / scale)), int(np.ceil(im.size[1] / scale))))
        if im.size[0] * im.size[1] > MAX_PIXELS:  # read from the header: nothing decoded yet
            raise ImageTooLarge(f"{path}: {im.size[0]}×{im.size[1]} pixels")
        im = im.convert("RGB")
        box = _crop_box(im.size[0], im.size[1], crop)
        im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
        return np.asarray(im, dtype=np.uint8)


def try_decode(path, size, crop) -> tuple[int, np.ndarray | None]:
    if not os.path.isfile(path):
        return MISSING, None
    try:
        return OK, decode_one(path, size, crop)
    except ImageTooLarge:
        return TOO_LARGE, None
    except Exception:  # noqa: BLE001  (any decoder failure means: this file cannot be used)
        return UNREADABLE, None


# --- the cache entry -------------------------------------------------------------------------------

def files_digest(paths: list[Path]) -> str:
    """Hash of the file list with each file's size and mtime (missing files hash as missing)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{os.path.abspath(path)}\0{stamp}\n".encode())
    return digest.hexdigest()


def decode_workers(n_items: int) -> int:
    configured = os.environ.get("AGEBENCH_DECODE_WORKERS")
    workers = int(configured) if configured else min(16, (os.cpu_count() or 1) * 2)
    return max(1, min(workers, n_items))


class _Decoder:
    """Decodes every file once into a disk-backed array (bounded memory for large datasets)."""

    def __init__(self, paths, size, crop, cache_dir):
        self.paths, self.size, self.crop, self.cache_dir = paths, size, crop, Path(cache_dir)
        self._status: np.ndarray | None = None
        self._images: np.ndarray | None = None
        self._tmp: str | None = None

    def run(self) -> None:
        if self._status is not None:
            return
        n, s = len(self.paths), self.size
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".decode-", suffix=".npy")
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600; the cache is shared, honour the umask
        os.close(fd)
        array = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.uint8, shape=(n, s, s, 3))
        status = np.zeros(n, dtype=np.int8)

        def work(i):
            code, image = try_decode(self.paths[i], s, self.crop)
            status[i] = code
            if image is not None:
                array[i] = image

        if n:
            from agebench.runtime.progress import counted_work  # a bar on a terminal, start/end lines else

            with counted_work(n, "decoding", "decoded", f"images into the cache ({s}×{s})") as advance, \
                    ThreadPoolExecutor(max_workers=decode_workers(n)) as pool:
                for _ in pool.map(work, range(n), chunksize=64):
                    advance()
        kept = np.flatnonzero(status == OK)
        if len(kept) < n:  # compact the kept rows to the front, in order
            for dst, src in enumerate(kept):
                if dst != src:
                    array[dst] = array[src]
        self._status, self._images = status, array[: len(kept)]

    def status(self) -> np.ndarray:
        self.run()
        return self._status

    def images(self) -> np.ndarray:
        self.run()
        return self._images

    def close(self) -> None:
        self._images = None
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)


def decode_images(paths, size: int, cache_dir, on_bad_image: str = "skip", preprocessing: dict | None = None) -> DecodedImages:
    """Decoded (N_kept, size, size, 3) uint8 images for `paths`, from the cache when it has them."""
    if on_bad_image not in ("skip", "fail"):
        raise UserError(f"data.on_bad_image={on_bad_image!r}; use skip or fail")
    paths = [Path(p) for p in paths]
    preprocessing = dict(preprocessing or {})
    crop = preprocessing.get("crop")
    _crop_box(2, 2, crop)  # validate the option before any work
    description = {
        "kind": "decoded-images", "n": len(paths), "files": files_digest(paths), "size": int(size),
        "preprocessing": preprocessing, "first": str(paths[0]) if paths else "",
    }
    if not paths:
        empty = np.zeros((0, int(size), int(size), 3), dtype=np.uint8)
        return DecodedImages(empty, np.zeros(0, bool), np.zeros(0, np.int8), paths, cache_hit=False)
    decoder = _Decoder(paths, int(size), crop, cache_dir)
    try:
        status, status_hit = cached_array(cache_dir, description, decoder.status, prefix="status", shape=(len(paths),))
        status = np.asarray(status)
        kept = status == OK
        report = DecodedImages(None, kept, status, paths, cache_hit=status_hit).bad_report()  # type: ignore[arg-type]
        if report and on_bad_image == "fail":
            raise UserError(f"{report}; fix or remove them, or set data.on_bad_image=skip")
        if not kept.any():
            raise UserError(f"{report}; no image could be read — check data.root")
        images, images_hit = cached_array(cache_dir, description, decoder.images, prefix="images",
                                          shape=(int(kept.sum()), int(size), int(size), 3))
    finally:
        decoder.close()
    if report:
        log.warning("%s (skipped; data.on_bad_image=fail stops instead)", report)
    return DecodedImages(images, kept, status, paths, cache_hit=status_hit and images_hit)
