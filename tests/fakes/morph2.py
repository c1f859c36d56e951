"""Fake MORPH-II album 2: the CSV (id_num, picture_num, dob, doa, race, gender, facial_hair, age,
age_diff, glasses, photo) + Album2/ images."""

from __future__ import annotations

from pathlib import Path

from . import write_image

HEADER = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
ROWS = [
    "003160,0,1/2/1970,3/4/1996,B,M,0,26,0,0,Album2/003160_00M26.JPG",
    "003160,1,1/2/1970,5/6/1998,B,M,0,28,2,0,Album2/003160_01M28.JPG",
    "014223,0,7/8/1980,1/1/2000,W,F,0,19,0,0,Album2/014223_00F19.JPG",
    "020511,0,2/2/1955,2/2/2000,H,F,0,45,0,1,Album2/020511_00F45.JPG",
    "020511,1,2/2/1955,2/2/2001,X,F,0,46,1,1,Album2/020511_01F46.JPG",   # unknown race -> race missing
    "031001,0,3/3/1990,3/3/2006,A,M,0,16,0,0,",                            # no photo -> Album2/031001_00M16.JPG
    ",0,3/3/1990,3/3/2006,A,M,0,16,0,0,Album2/none.JPG",                   # no id_num -> skipped
    "040000,0,3/3/1990,3/3/2006,?,?,0,??,0,0,Album2/040000_00X00.JPG",    # no usable label -> skipped
]
EXPECTED = {"records": 6, "skipped": 2, "subjects": 4, "age_gender_race": 5,
            "derived_photo": "Album2/031001_00M16.JPG"}


def make_morph2(root: Path, separator: str = ",", drop_column: str | None = None, images: bool = True) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    header = HEADER.split(",")
    keep = [i for i, c in enumerate(header) if c != drop_column]
    lines = [[header[i] for i in keep]] + [[r.split(",")[i] for i in keep] for r in ROWS]
    (root / "morph_2008_nonCommercial.csv").write_text("\n".join(separator.join(line) for line in lines) + "\n")
    if images:
        for i, row in enumerate(ROWS[:6]):
            photo = row.split(",")[-1] or EXPECTED["derived_photo"]
            write_image(root / photo, seed=i)
    return root
