"""FairFace: two label CSVs, age in nine bins, gender, race in seven classes.

On disk (`data.root`)::

    fairface_label_train.csv   fairface_label_val.csv    comma-separated, header:
                               file, age, gender, race[, service_test]
    train/<n>.jpg   val/<n>.jpg                          `file`, relative to data.root

age bins `0-2 3-9 10-19 20-29 30-39 40-49 50-59 60-69 more than 70` -> `age_group` 0..8 (native scheme
fairface9: set tasks.age.bins=fairface9 for a classification head); gender Male -> 0, Female -> 1;
race White, Black, Latino_Hispanic, East Asian, Southeast Asian, Indian, Middle Eastern -> 0..6.

FairFace publishes train and val only, and the literature reports on val: `records.split` is `train`
for the train CSV and `test` for the val CSV, so `protocol=predefined` tests on the official val set
and carves its validation out of train. There are no subject ids (each image is its own subject).
An unknown value in a label column makes that label missing; a row with no usable label is skipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agebench.data.binning import FAIRFACE9, parse_bins
from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import count_note, opt, read_table, root_of, skipped_frame

REQUIRED_COLUMNS = ("file", "age", "gender", "race")
AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
RACE_NAMES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")
GENDERS = {"male": 0, "female": 1}
FILES = {"train": "fairface_label_train.csv", "test": "fairface_label_val.csv"}
NOTES = (
    "official split: fairface_label_train.csv -> split=train, fairface_label_val.csv -> split=test "
    "(validation is carved out of train)",
    "no subject ids: splitting by image (each image is its own subject)",
)
assert len(AGE_BINS) == len(FAIRFACE9)

_AGE_INDEX = {a.lower(): i for i, a in enumerate(AGE_BINS)}
_AGE_INDEX["70+"] = len(AGE_BINS) - 1
_RACE_INDEX = {r.lower().replace("_", " "): i for i, r in enumerate(RACE_NAMES)}


@register_source
class FairFace(DatasetSource):
    name: str = "fairface"
    tasks: tuple[str, ...] = ("age", "gender", "race")
    native_age_bins = parse_bins("fairface9")

    def parse(self, data_cfg) -> ParsedRecords:
        root = root_of(data_cfg)
        files = dict(FILES)
        files["train"] = str(opt(data_cfg, "train_csv", files["train"]))
        files["test"] = str(opt(data_cfg, "val_csv", files["test"]))
        frames, skipped = [], []
        masked = {"age": 0, "gender": 0, "race": 0}
        for split, name in files.items():
            path = root / name
            table = read_table(path, ",", REQUIRED_COLUMNS, what="FairFace label CSV")
            group = table["age"].str.lower().map(_AGE_INDEX).fillna(-1).astype(np.int64)
            gender = table["gender"].str.lower().map(GENDERS).fillna(-1).astype(np.int64)
            race = table["race"].str.lower().str.replace("_", " ").map(_RACE_INDEX).fillna(-1).astype(np.int64)
            no_label = (group < 0) & (gender < 0) & (race < 0)
            empty_file = table["file"] == ""
            for line in np.flatnonzero(empty_file.to_numpy()):
                skipped.append(("empty file column", f"{name}:{line + 2}"))
            for line in np.flatnonzero((no_label & ~empty_file).to_numpy()):
                rec = table.iloc[line]
                skipped.append(("no usable label (age, gender and race unknown)",
                                f"{name}:{line + 2} {rec['file']} age={rec['age']!r} gender={rec['gender']!r} race={rec['race']!r}"))
            keep = (~no_label & ~empty_file).to_numpy()
            for column, values in (("age", group), ("gender", gender), ("race", race)):
                masked[column] += int((values[keep] < 0).sum())
            frames.append(pd.DataFrame({
                "image": table["file"][keep].to_numpy(), "subject": table["file"][keep].to_numpy(),
                "age_group": group[keep].to_numpy(), "gender": gender[keep].to_numpy(),
                "race": race[keep].to_numpy(), "split": split,
            }))
        frame = pd.concat(frames, ignore_index=True)
        notes = list(NOTES) + [n for n in [count_note(masked, "unknown label values read as missing on kept rows")] if n]
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), notes,
                             race_names=RACE_NAMES, age_group_names=AGE_BINS)
