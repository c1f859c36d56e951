"""UTKFace: labels live in the file names.

On disk (`data.root`, searched recursively: UTKFace/, crop_part1/, part1..3/ all work)::

    [age]_[gender]_[race]_[date&time].jpg             (in-the-wild images)
    [age]_[gender]_[race]_[date&time].jpg.chip.jpg    (aligned & cropped faces)

age 0-116 in years; gender 0 male, 1 female; race 0-4 = White, Black, Asian, Indian, Others.
A name with a missing or invalid field (e.g. `39_1_20170116174525125.jpg.chip.jpg`, which lacks the
race) is skipped and reported with its reason, never guessed. A name whose labels read fine but whose
date&time is glued to its extension is repaired and kept, and counted in a note: the full set has
`24_0_1_20170116220224657 .jpg.chip.jpg` (a space before the extension) and
`55_0_0_20170116232725357jpg.chip.jpg` (a missing dot). Only ASCII digits count as digits. UTKFace has no subject ids: each image
is its own subject (so a subject-exclusive split is a split by image), and the parser says so.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import list_images, opt, root_of, skipped_frame
from agebench.errors import UserError

RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")
NO_SUBJECTS_NOTE = "no subject ids: splitting by image (each image is its own subject; identities may leak across folds)"
_INT = re.compile(r"[0-9]+")            # fullmatch, ASCII only: no fullwidth digits, no trailing newline
_GLUED = re.compile(r"([0-9]+)( +|jpg|jpeg|png)")   # a date&time with a space or the extension glued on
REPAIRED = "name repaired (space or missing dot before the extension)"


def parse_name(filename: str, max_age: int = 116) -> tuple[dict | None, str]:
    """({age, gender, race}, "") for a well-formed name, ({…}, REPAIRED) for one whose date&time only has a
    space or its extension glued on, else (None, reason)."""
    stem = filename.split("/")[-1].split(".", 1)[0]
    fields = stem.split("_")
    repaired = ""
    if len(fields) == 4 and not _INT.fullmatch(fields[3]) and (glued := _GLUED.fullmatch(fields[3])):
        fields[3], repaired = glued.group(1), REPAIRED
    if len(fields) != 4 or any(f == "" for f in fields):
        return None, "malformed name: expected [age]_[gender]_[race]_[datetime]"
    age, gender, race, stamp = fields
    if not _INT.fullmatch(age) or int(age) > max_age:
        return None, f"malformed name: age not an integer in 0-{max_age}"
    if gender not in ("0", "1"):
        return None, "malformed name: gender not 0/1"
    if race not in ("0", "1", "2", "3", "4"):
        return None, "malformed name: race not 0-4"
    if not _INT.fullmatch(stamp):
        return None, "malformed name: date&time not digits"
    return {"age": float(age), "gender": int(gender), "race": int(race)}, repaired


@register_source
class UTKFace(DatasetSource):
    name: str = "utkface"
    tasks: tuple[str, ...] = ("age", "gender", "race")

    def parse(self, data_cfg) -> ParsedRecords:
        root = root_of(data_cfg)
        max_age = int(opt(data_cfg, "max_age", 116))
        files = list_images(root)
        if not files:
            raise UserError(f"no images under data.root={root}; point it at the UTKFace folder of [age]_[gender]_[race]_[datetime].jpg files")
        rows, skipped, repaired = [], [], []
        for rel in files:
            labels, reason = parse_name(rel, max_age)
            if labels is None:
                skipped.append((reason, rel))
                continue
            if reason:
                repaired.append(rel)
            rows.append({"image": rel, "subject": rel, **labels})
        frame = pd.DataFrame(rows, columns=["image", "subject", "age", "gender", "race"])
        frame["age"] = frame["age"].astype(np.float64)
        notes = [NO_SUBJECTS_NOTE]
        if repaired:  # kept, and counted: `agebench data summary` lists the notes
            shown = "; ".join(repr(r.split("/")[-1]) for r in repaired[:3]) + (" …" if len(repaired) > 3 else "")
            notes.append(f"{len(repaired)} file name(s) repaired (space or missing dot before the extension), kept "
                         f"with their labels: {shown}")
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), notes, race_names=RACE_NAMES)
