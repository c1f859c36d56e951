"""Helpers shared by the on-disk dataset parsers: config options, metadata tables read with one-line
errors, skipped-row tables, image listing."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from agebench.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", " ": "space", "|": "pipe"}


def opt(cfg, key: str, default=None):
    """cfg.key, or `default` when absent or null (works for DictConfig and dict)."""
    if cfg is None:
        return default
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def root_of(cfg) -> Path:
    return Path(str(opt(cfg, "root", "."))).expanduser()


def configured_path(cfg, key: str) -> Path | None:
    """data.<key> as a path (absolute as given, relative ones under data.root), or None when unset."""
    explicit = opt(cfg, key)
    if not explicit:
        return None
    path = Path(str(explicit)).expanduser()
    return path if path.is_absolute() else root_of(cfg) / path


def read_table(path: Path, sep: str, required: Iterable[str], what: str, header: bool = True) -> pd.DataFrame:
    """A metadata table as strings (missing cells = ""), or a one-line UserError naming the file and
    the fix: missing or unreadable file, wrong separator, missing columns."""
    path = Path(path)
    required = list(required)
    sep_name = _SEPARATOR_NAMES.get(sep, repr(sep))
    if not path.is_file():
        raise UserError(f"{what} {path} not found; check data.root (and the dataset's layout in its conf/data yaml)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {what} {path} ({type(err).__name__}); replace it with the dataset's original file") from None
    if header:
        columns = [c.strip() for c in first.split(sep)]
        if len(columns) < len(required) or not set(required) <= set(columns):
            others = [s for s in _SEPARATOR_NAMES if s != sep and s != " " and s in first]
            if len(columns) == 1 and others:
                raise UserError(
                    f"{what} {path} is not {sep_name}-separated (its header uses {_SEPARATOR_NAMES[others[0]]}s); "
                    f"restore the original {sep_name}-separated file"
                )
            lacking = [c for c in required if c not in columns]
            raise UserError(
                f"{what} {path} lacks column(s) {', '.join(lacking)} (header: {', '.join(columns)[:120]}); "
                f"restore the original file with columns {', '.join(required)}"
            )
    try:
        frame = pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, na_filter=False, header=0 if header else None,
            encoding="utf-8-sig", quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE,
            skipinitialspace=False, engine="python" if len(sep) > 1 else "c",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot parse {what} {path} ({detail[:120]}); restore the original {sep_name}-separated file") from None
    if header:
        frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.fillna("")
    for column in frame.columns:
        frame[column] = frame[column].astype(str).str.strip()
    return frame


def read_lines(path: Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} not found; check data.root (and the dataset's layout in its conf/data yaml)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {what} {path} ({type(err).__name__}); replace it with the dataset's original file") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def skipped_frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"reason": pd.Series([r for r, _ in rows], dtype=str),
                         "detail": pd.Series([d for _, d in rows], dtype=str)})


def list_images(root: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under `root` (recursive, sorted), as '/'-separated paths relative to `root`.
    Hidden files (e.g. macOS '._' resource forks) are ignored."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(extensions):
                continue
            found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def count_note(counts: dict[str, int], what: str) -> str | None:
    """'what: 3 x, 2 y' for the non-zero counts, or None."""
    items = [f"{n} {k}" for k, n in counts.items() if n]
    return f"{what}: {', '.join(items)}" if items else None
