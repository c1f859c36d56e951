"""Fake IMDB-WIKI: <variant>_crop/<variant>.mat (written with scipy.io.savemat in the original struct
layout: a 1x1 struct whose fields are 1xN rows, full_path/name cell arrays) + the crops it lists."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from . import write_image


def datenum(d: date) -> float:
    """MATLAB datenum of a date (datenum 1 = 0001-01-01)."""
    return float(d.toordinal() + 366)


NAN, INF = float("nan"), float("inf")
# full_path, dob, photo_taken, gender (1 male, 0 female), face_score, second_face_score, celeb_id, expectation
ROWS = [
    ("01/nm0000001_rm1_1980-3-15_2010.jpg", datenum(date(1980, 3, 15)), 2010, 1.0, 3.1, NAN, 1, "age 30, male"),
    ("02/nm0000002_rm2_1980-9-1_2010.jpg", datenum(date(1980, 9, 1)), 2010, 0.0, 2.5, NAN, 2, "age 29 (born after June), female"),
    ("03/nm0000003_rm3_1970-1-1_2000.jpg", datenum(date(1970, 1, 1)), 2000, 1.0, -INF, NAN, 3, "skip: no face"),
    ("04/nm0000004_rm4_1970-1-1_2000.jpg", datenum(date(1970, 1, 1)), 2000, 1.0, 0.5, NAN, 4, "skip: face_score < 1"),
    ("05/nm0000005_rm5_1970-1-1_2000.jpg", datenum(date(1970, 1, 1)), 2000, 0.0, 2.0, 1.4, 5, "skip: second face"),
    ("06/nm0000006_rm6_1990-7-1_2015.jpg", datenum(date(1990, 7, 1)), 2015, NAN, 1.5, NAN, 6, "age 24, gender missing"),
    ("07/nm0000007_rm7_1800-1-1_2010.jpg", datenum(date(1800, 1, 1)), 2010, 0.0, 4.0, NAN, 7, "age 210 -> missing, female"),
    ("08/nm0000008_rm8_0-0-0_2010.jpg", 0.0, 2010, NAN, 4.0, NAN, 8, "skip: no usable label"),
    ("01/nm0000001_rm9_1980-3-15_2012.jpg", datenum(date(1980, 3, 15)), 2012, 1.0, 1.0, NAN, 1, "age 32, male, same celeb as row 0"),
]
EXPECTED = {
    "records": 5, "skipped": 4,
    "ages": {"01/nm0000001_rm1_1980-3-15_2010.jpg": 30, "02/nm0000002_rm2_1980-9-1_2010.jpg": 29,
             "06/nm0000006_rm6_1990-7-1_2015.jpg": 24, "01/nm0000001_rm9_1980-3-15_2012.jpg": 32},
    "skipped_reasons": {"no face found (face_score -Inf)": 1, "face_score < 1": 1, "second face in the image": 1,
                        "no usable label (age from an unusable dob/photo_taken, gender NaN)": 1},
    "age_gender": 3, "age": 4, "gender": 4, "subjects": 4,
}


def _cell(strings):
    cell = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        cell[0, i] = np.array([s])
    return cell


def _row(values):
    return np.asarray(values, dtype=np.float64).reshape(1, -1)


def make_imdb_wiki(root: Path, variant: str = "imdb", images: bool = True, drop_field: str | None = None) -> Path:
    """Write `<root>/<variant>_crop/<variant>.mat` (+ images); returns the <variant>_crop dir."""
    from scipy.io import savemat

    crop = Path(root) / f"{variant}_crop"
    crop.mkdir(parents=True, exist_ok=True)
    struct = {
        "dob": _row([r[1] for r in ROWS]),
        "photo_taken": _row([r[2] for r in ROWS]),
        "full_path": _cell([r[0] for r in ROWS]),
        "gender": _row([r[3] for r in ROWS]),
        "name": _cell([f"Person {r[6]}" for r in ROWS]),
        "face_location": _cell(["" for _ in ROWS]),
        "face_score": _row([r[4] for r in ROWS]),
        "second_face_score": _row([r[5] for r in ROWS]),
    }
    if variant == "imdb":
        struct["celeb_names"] = _cell([f"Person {i}" for i in range(1, 9)])
        struct["celeb_id"] = _row([r[6] for r in ROWS])
    if drop_field:
        struct.pop(drop_field)
    savemat(str(crop / f"{variant}.mat"), {variant: struct})
    if images:
        for i, row in enumerate(ROWS):
            write_image(crop / row[0], seed=i, size=(50, 50))
    return crop
