"""UTKFace: labels live in the file names.

On disk (`data.root`, searched recursively: UTKFace/, crop_part1/, part1..3/ all work)::

    [age]_[gender]_[race]_[date&time].jpg             (in-the-wild images)
    [age]_[gender]_[race]_[date&time].jpg.chip.jpg    (aligned & cropped faces)

age 0-116 in years; gender 0 male, 1 female; race 0-4 = White, Black, Asian, Indian, Others.
A name with a missing or invalid field (e.g. `39_1_20170116174525125.jpg.chip.jpg`, which lacks the
race) is skipped and reported with its reason, never guessed. UTKFace has no subject ids: each image
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
_INT = re.compile(r"^\d+$")


def parse_name(filename: str, max_age: int = 116) -> tuple[dict | None, str]:
    """({age, gender, race}, "") for a well-formed name, else (None, reason)."""
    stem = filename.split("/")[-1].split(".", 1)[0]
    fields = stem.split("_")
    if len(fields) != 4 or any(f == "" for f in fields):
        return None, "malformed name: expected [age]_[gender]_[race]_[datetime]"
    age, gender, race, stamp = fields
    if not _INT.match(age) or int(age) > max_age:
        return None, f"malformed name: age not an integer in 0-{max_age}"
    if gender not in ("0", "1"):
        return None, "malformed name: gender not 0/1"
    if race not in ("0", "1", "2", "3", "4"):
        return None, "malformed name: race not 0-4"
    if not _INT.match(stamp):
        return None, "malformed name: date&time not digits"
    return {"age": float(age), "gender": int(gender), "race": int(race)}, ""


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
        rows, skipped = [], []
        for rel in files:
            labels, reason = parse_name(rel, max_age)
            if labels is None:
                skipped.append((reason, rel))
                continue
            rows.append({"image": rel, "subject": rel, **labels})
        frame = pd.DataFrame(rows, columns=["image", "subject", "age", "gender", "race"])
        frame["age"] = frame["age"].astype(np.float64)
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), [NO_SUBJECTS_NOTE],
                             race_names=RACE_NAMES)
