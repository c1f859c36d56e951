"""MORPH-II (album 2): one CSV + the Album2 images.

On disk (`data.root`)::

    <album2 csv>      comma-separated, header: id_num, picture_num, dob, doa, race, gender, facial_hair,
                      age, age_diff, glasses, photo   (data.csv_file, else the one *.csv in the root)
    Album2/<id>_<picture>[M|F]<age>.JPG    `photo`, relative to data.root (derived from the other
                                           columns when the CSV has no photo column)

race B/W/A/H/O -> Black, White, Asian, Hispanic, Other; gender M -> 0, F -> 1; age in years.
Subjects are id_num, so `protocol=kfold` gives the usual subject-exclusive 5-fold split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import configured_path, count_note, opt, read_table, root_of, skipped_frame
from agebench.errors import UserError

REQUIRED_COLUMNS = ("id_num", "race", "gender", "age")
RACE_CODES = {"B": 0, "W": 1, "A": 2, "H": 3, "O": 4}
RACE_NAMES = ("Black", "White", "Asian", "Hispanic", "Other")
GENDER_CODES = {"M": 0, "F": 1}


@register_source
class Morph2(DatasetSource):
    name: str = "morph2"
    tasks: tuple[str, ...] = ("age", "gender", "race")

    def csv_path(self, data_cfg) -> Path:
        root = root_of(data_cfg)
        explicit = configured_path(data_cfg, "csv_file")
        if explicit is not None:
            return explicit
        found = sorted(root.glob("*.csv"))
        if len(found) > 1:
            found = [p for p in found if "morph" in p.name.lower()] or found
        if len(found) != 1:
            raise UserError(f"data.root={root} holds {len(found)} CSV files ({', '.join(p.name for p in found[:3]) or 'none'}); "
                            f"set data.csv_file to the MORPH-II album2 CSV")
        return found[0]

    def parse(self, data_cfg) -> ParsedRecords:
        path = self.csv_path(data_cfg)
        table = read_table(path, ",", REQUIRED_COLUMNS, what="MORPH-II album2 CSV")
        max_age = float(opt(data_cfg, "max_age", 100))
        rows, skipped = [], []
        masked = {"age": 0, "gender": 0, "race": 0}
        has_photo = "photo" in table.columns
        for line, rec in enumerate(table.to_dict("records"), start=2):
            subject = rec["id_num"]
            if not subject:
                skipped.append(("empty id_num", f"{path.name}:{line}"))
                continue
            try:
                age = float(rec["age"])
            except ValueError:
                age = np.nan
            if not (0 <= age <= max_age):
                age = np.nan
            gender = GENDER_CODES.get(rec["gender"].upper(), -1)
            race = RACE_CODES.get(rec["race"].upper(), -1)
            image = rec["photo"] if has_photo and rec["photo"] else self._derived_photo(rec, age)
            if image is None:
                skipped.append(("no photo path (empty photo and picture_num)", f"{path.name}:{line}"))
                continue
            image = image.replace("\\", "/")
            if np.isnan(age) and gender < 0 and race < 0:
                skipped.append(("no usable label (age, gender and race unreadable)",
                                f"{path.name}:{line} {image} age={rec['age']!r} gender={rec['gender']!r} race={rec['race']!r}"))
                continue
            masked["age"] += int(np.isnan(age))
            masked["gender"] += int(gender < 0)
            masked["race"] += int(race < 0)
            rows.append({"image": image, "subject": subject, "age": age, "gender": gender, "race": race})
        frame = pd.DataFrame(rows, columns=["image", "subject", "age", "gender", "race"])
        notes = [n for n in [count_note(masked, "unreadable labels read as missing on kept rows")] if n]
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), notes, race_names=RACE_NAMES)

    @staticmethod
    def _derived_photo(rec: dict, age: float) -> str | None:
        picture = rec.get("picture_num", "")
        try:
            number = int(float(picture))
        except ValueError:
            return None
        if np.isnan(age):
            return None
        return f"Album2/{rec['id_num']}_{number:02d}{rec['gender'].upper()}{int(age):02d}.JPG"
