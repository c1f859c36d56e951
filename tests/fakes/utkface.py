"""Fake UTKFace: [age]_[gender]_[race]_[datetime].jpg[.chip.jpg] files, with the malformed names the
real archive has (a missing field) and a few more invalid ones."""

from __future__ import annotations

from pathlib import Path

from . import write_image

GOOD = [
    "1_0_0_20161219140623097.jpg.chip.jpg",
    "26_1_1_20170116165020563.jpg.chip.jpg",
    "45_0_2_20170104201724588.jpg.chip.jpg",
    "80_1_3_20170110121508133.jpg.chip.jpg",
    "9_0_4_20170103200814791.jpg.chip.jpg",
    "part2/33_1_0_20170117135555218.jpg",          # in-the-wild layout: plain .jpg, in a sub-folder
]
# the full set's two names whose labels read fine around a glued extension: repaired, kept and counted
REPAIRED = ["24_0_1_20170116220224657 .jpg.chip.jpg", "55_0_0_20170116232725357jpg.chip.jpg"]
MALFORMED = {
    "39_1_20170116174525125.jpg.chip.jpg": "malformed name: expected [age]_[gender]_[race]_[datetime]",  # real: no race
    "61_1_20170109142408075.jpg.chip.jpg": "malformed name: expected [age]_[gender]_[race]_[datetime]",  # real: no race
    "24_0_1_.jpg.chip.jpg": "malformed name: expected [age]_[gender]_[race]_[datetime]",
    "25_2_0_20170116174525125.jpg.chip.jpg": "malformed name: gender not 0/1",
    "30_0_7_20170116174525125.jpg.chip.jpg": "malformed name: race not 0-4",
    "xx_0_1_20170116174525125.jpg.chip.jpg": "malformed name: age not an integer in 0-116",
    "２4_0_1_20170116174525125.jpg.chip.jpg": "malformed name: age not an integer in 0-116",  # fullwidth digit
}
IGNORED = ["README.txt", ".DS_Store"]  # not images: not records, not skipped rows

EXPECTED = {"records": len(GOOD) + len(REPAIRED), "skipped": len(MALFORMED), "races": [3, 2, 1, 1, 1],
            "genders": [5, 3]}


def make_utkface(root: Path) -> Path:
    root = Path(root)
    for i, name in enumerate([*GOOD, *REPAIRED, *MALFORMED]):
        write_image(root / name, seed=i, size=(40, 40))
    for name in IGNORED:
        (root / name).write_text("not an image")
    return root
