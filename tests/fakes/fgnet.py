"""Fake FG-NET: <3-digit id>A<2-digit age>[a|b].JPG, with the case / extension variants of the real
folder and two malformed names."""

from __future__ import annotations

from pathlib import Path

from . import write_image

GOOD = {  # name -> (subject, age)
    "001A02.JPG": ("001", 2), "001A43a.JPG": ("001", 43), "001A43b.JPG": ("001", 43),
    "002A16.jpg": ("002", 16), "002a05.jpeg": ("002", 5), "003A61.JPG": ("003", 61),
}
MALFORMED = ["01A05.JPG", "004A5.JPG", "004B05.JPG"]
EXPECTED = {"records": len(GOOD), "skipped": len(MALFORMED), "subjects": 3}


def make_fgnet(root: Path) -> Path:
    images = Path(root) / "images"
    for i, name in enumerate([*GOOD, *MALFORMED]):
        write_image(images / name, seed=i)
    (Path(root) / "points").mkdir(parents=True, exist_ok=True)
    (Path(root) / "points" / "001a02.pts").write_text("version: 1\n")
    return Path(root)
