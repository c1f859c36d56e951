"""Fake MegaAge-Asian: list/{train,test}_{name,age}.txt (line-aligned) + {train,test}/<n>.jpg."""

from __future__ import annotations

from pathlib import Path

from . import write_image

TRAIN = [("1.jpg", "13"), ("2.jpg", "45"), ("3.jpg", "abc"), ("4.jpg", "70")]  # "abc": skipped
TEST = [("1.jpg", "8"), ("2.jpg", "33")]
EXPECTED = {"records": 5, "skipped": 1, "train": 3, "test": 2}


def make_megaage_asian(root: Path, misaligned: bool = False, images: bool = True) -> Path:
    root = Path(root)
    (root / "list").mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", TRAIN), ("test", TEST)):
        ages = [a for _, a in rows] + (["20"] if misaligned and split == "train" else [])
        (root / "list" / f"{split}_name.txt").write_text("".join(f"{n}\n" for n, _ in rows))
        (root / "list" / f"{split}_age.txt").write_text("".join(f"{a}\n" for a in ages))
        if images:
            for i, (name, _) in enumerate(rows):
                write_image(root / split / name, seed=i)
    return root
