"""Fake FairFace: fairface_label_{train,val}.csv (file, age, gender, race, service_test) + train/ val/."""

from __future__ import annotations

from pathlib import Path

from . import write_image

HEADER = "file,age,gender,race,service_test"
TRAIN = [
    "train/1.jpg,50-59,Male,East Asian,True",
    "train/2.jpg,30-39,Female,Indian,False",
    "train/3.jpg,more than 70,Female,Latino_Hispanic,True",
    "train/4.jpg,0-2,Male,Martian,False",          # unknown race -> race missing
    "train/5.jpg,??,Unknown,Martian,False",         # no usable label -> skipped
]
VAL = [
    "val/1.jpg,3-9,Male,Middle Eastern,False",
    "val/2.jpg,20-29,Female,Southeast Asian,True",
    "val/3.jpg,10-19,Male,White,True",
]
EXPECTED = {"records": 7, "skipped": 1, "train": 4, "test": 3, "age_gender_race": 6,
            "groups": {"train/1.jpg": 6, "train/3.jpg": 8, "train/4.jpg": 0, "val/1.jpg": 1},
            "races": {"train/1.jpg": 3, "train/3.jpg": 2, "val/1.jpg": 6, "val/2.jpg": 4}}


def make_fairface(root: Path, separator: str = ",", drop_column: str | None = None, images: bool = True) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    header = HEADER.split(",")
    keep = [i for i, c in enumerate(header) if c != drop_column]
    for name, rows in (("fairface_label_train.csv", TRAIN), ("fairface_label_val.csv", VAL)):
        lines = [[header[i] for i in keep]] + [[r.split(",")[i] for i in keep] for r in rows]
        (root / name).write_text("\n".join(separator.join(line) for line in lines) + "\n")
    if images:
        for i, row in enumerate(TRAIN + VAL):
            write_image(root / row.split(",")[0], seed=i)
    return root
