"""MegaAge-Asian: official train/test split, exact ages, no gender/race/subject ids.

On disk (`data.root`)::

    list/train_name.txt   list/train_age.txt     one entry per line, the two files line-aligned
    list/test_name.txt    list/test_age.txt
    train/<n>.jpg         test/<n>.jpg

`records.split` is the official split (train / test): `protocol=predefined` tests on the official test
set and carves validation out of train. The paper's metric CA(n) — the fraction of test images whose
predicted age is within n years — is the regression head's CS(n): use `tasks.age.head=regression
tasks.age.cs_thresholds=[3,5]` to report CA(3) and CA(5) (as `age/cs3`, `age/cs5`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import opt, read_lines, root_of, skipped_frame
from agebench.errors import UserError

SPLITS = ("train", "test")
NOTES = (
    "no subject ids: splitting by image (each image is its own subject)",
    "official split in records.split (train/test); CA(n) = the regression head's CS(n): "
    "tasks.age.head=regression tasks.age.cs_thresholds=[3,5]",
)


@register_source
class MegaAgeAsian(DatasetSource):
    name: str = "megaage_asian"
    tasks: tuple[str, ...] = ("age",)

    def parse(self, data_cfg) -> ParsedRecords:
        root = root_of(data_cfg)
        list_dir = root / str(opt(data_cfg, "list_dir", "list"))
        max_age = float(opt(data_cfg, "max_age", 100))
        rows, skipped = [], []
        for split in SPLITS:
            names_path, ages_path = list_dir / f"{split}_name.txt", list_dir / f"{split}_age.txt"
            names = read_lines(names_path, what="MegaAge-Asian list")
            ages = read_lines(ages_path, what="MegaAge-Asian list")
            if len(names) != len(ages):
                raise UserError(f"{names_path.name} has {len(names)} lines but {ages_path.name} has {len(ages)}; "
                                f"the two lists must be line-aligned, restore the original list/ files")
            for line, (name, age_text) in enumerate(zip(names, ages, strict=True), start=1):
                image = f"{split}/{name}"
                try:
                    age = float(age_text)
                except ValueError:
                    age = np.nan
                if not (0 <= age <= max_age):
                    skipped.append((f"age not a number in 0-{max_age:g}", f"{ages_path.name}:{line} {image} age={age_text!r}"))
                    continue
                rows.append({"image": image, "subject": image, "age": age, "split": split})
        frame = pd.DataFrame(rows, columns=["image", "subject", "age", "split"])
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), list(NOTES))
