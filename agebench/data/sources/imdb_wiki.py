"""IMDB-WIKI: `imdb.mat` / `wiki.mat` (MATLAB structs, read with scipy.io.loadmat) + face crops.

On disk (`data.root`)::

    imdb.mat  (or imdb_crop/imdb.mat; data.variant=wiki: wiki.mat / wiki_crop/wiki.mat; data.mat_file overrides)
    <two-digit folder>/<file>.jpg       full_path, relative to the .mat file's folder

The struct (`imdb` or `wiki`, 1x1) has 1xN fields: full_path (cell of str), dob (MATLAB datenum),
photo_taken (year), gender (1 male, 0 female, NaN unknown), face_score (-Inf: no face found),
second_face_score (NaN: no second face), name, face_location, and for imdb celeb_id / celeb_names.

Age = photo_taken − birth year, minus one when born in or after July (the photo is assumed taken in the
middle of the year); birth date = date.fromordinal(datenum − 366). Cleaning (all configurable):

* rows: face_score >= data.min_face_score (1.0; -Inf always fails), and with data.drop_second_face
  (true) no second face (second_face_score NaN) — these rows are skipped;
* labels: an age outside data.age_range ([0, 100]) or from an unusable dob is missing, as is a NaN
  gender; a row with neither label is skipped.

Subjects: imdb's celeb_id; wiki (no celeb_id) uses the Wikipedia id that starts each file name.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import configured_path, count_note, opt, root_of, skipped_frame
from agebench.errors import UserError

REQUIRED_FIELDS = ("full_path", "dob", "photo_taken", "gender", "face_score", "second_face_score")


def birth_date(datenum: float) -> date | None:
    """MATLAB datenum (1 = 0001-01-01 proleptic, 367 = 0001-01-01 in Python's ordinal + 366) → date."""
    if datenum is None or not math.isfinite(datenum) or int(datenum) - 366 < 1:
        return None
    try:
        return date.fromordinal(int(datenum) - 366)
    except (ValueError, OverflowError):
        return None


def age_at_photo(dob: float, photo_taken: float) -> float:
    """photo_taken − birth year, minus one when born in or after July; NaN when either is unusable."""
    born = birth_date(dob)
    if born is None or photo_taken is None or not math.isfinite(photo_taken):
        return float("nan")
    return float(int(photo_taken) - born.year - (1 if born.month >= 7 else 0))


def _strings(field) -> list[str]:
    """A MATLAB cell array of strings (any shape loadmat gives) as a flat list of str."""
    out = []
    for item in np.asarray(field, dtype=object).ravel():
        value = np.asarray(item).ravel()
        out.append(str(value[0]) if value.size else "")
    return out


def _numbers(field) -> np.ndarray:
    return np.asarray(field, dtype=np.float64).ravel()


@register_source
class ImdbWiki(DatasetSource):
    name: str = "imdb_wiki"
    tasks: tuple[str, ...] = ("age", "gender")

    def mat_path(self, data_cfg) -> Path:
        root = root_of(data_cfg)
        variant = str(opt(data_cfg, "variant", "imdb"))
        if variant not in ("imdb", "wiki"):
            raise UserError(f"data.variant={variant!r}; use imdb or wiki")
        explicit = configured_path(data_cfg, "mat_file")
        if explicit is not None:
            return explicit
        for candidate in (root / f"{variant}.mat", root / f"{variant}_crop" / f"{variant}.mat"):
            if candidate.is_file():
                return candidate
        return root / f"{variant}.mat"

    def parse(self, data_cfg) -> ParsedRecords:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        root = root_of(data_cfg)
        path = self.mat_path(data_cfg)
        if not path.is_file():
            raise UserError(f"IMDB-WIKI metadata {path} not found; set data.root to the imdb_crop/ (or wiki_crop/) folder or data.mat_file")
        try:
            mat = loadmat(str(path))
        except (MatReadError, ValueError, OSError, TypeError, NotImplementedError) as err:
            raise UserError(f"cannot read IMDB-WIKI metadata {path} ({type(err).__name__}); "
                            f"replace it with the original imdb.mat / wiki.mat") from None
        keys = [k for k in mat if not k.startswith("__")]
        key = next((k for k in ("imdb", "wiki") if k in mat), keys[0] if keys else None)
        meta = mat.get(key) if key else None
        if meta is None or not getattr(meta, "dtype", None) or meta.dtype.names is None:
            raise UserError(f"{path} holds no imdb/wiki struct (variables: {', '.join(keys) or 'none'}); use the original imdb.mat / wiki.mat")
        meta = meta.ravel()[0]
        lacking = [f for f in REQUIRED_FIELDS if f not in meta.dtype.names]
        if lacking:
            raise UserError(f"{path} struct {key!r} lacks field(s) {', '.join(lacking)}; use the original imdb.mat / wiki.mat")

        full_path = _strings(meta["full_path"])
        dob, taken = _numbers(meta["dob"]), _numbers(meta["photo_taken"])
        gender_raw = _numbers(meta["gender"])
        face, second = _numbers(meta["face_score"]), _numbers(meta["second_face_score"])
        n = len(full_path)
        if not all(len(a) == n for a in (dob, taken, gender_raw, face, second)):
            raise UserError(f"{path}: struct fields have different lengths; the file is damaged, re-download it")
        if "celeb_id" in meta.dtype.names and _numbers(meta["celeb_id"]).size == n:
            subjects = [f"celeb{int(c)}" if math.isfinite(c) else "" for c in _numbers(meta["celeb_id"])]
        else:
            subjects = [p.split("/")[-1].split("_")[0] for p in full_path]

        min_face_score = float(opt(data_cfg, "min_face_score", 1.0))
        drop_second = bool(opt(data_cfg, "drop_second_face", True))
        age_lo, age_hi = (float(a) for a in opt(data_cfg, "age_range", (0, 100)))
        prefix = path.parent.resolve().relative_to(root.resolve()).as_posix() if _inside(path.parent, root) else None
        if prefix is None:
            raise UserError(f"data.mat_file {path} is outside data.root={root}; images are read relative to the .mat's folder, keep it inside the root")

        rows, skipped = [], []
        masked = {"age from an unusable dob/photo_taken": 0, "age outside data.age_range": 0, "gender NaN": 0}
        for i in range(n):
            image = full_path[i] if prefix in ("", ".") else f"{prefix}/{full_path[i]}"
            if not full_path[i]:
                skipped.append(("empty full_path", f"row {i}"))
                continue
            if not (face[i] >= min_face_score):  # -Inf (no face) and NaN fail too
                reason = "no face found (face_score -Inf)" if face[i] == -np.inf else f"face_score < {min_face_score:g}"
                skipped.append((reason, f"{image} face_score={face[i]:g}"))
                continue
            if drop_second and not np.isnan(second[i]):
                skipped.append(("second face in the image", f"{image} second_face_score={second[i]:g}"))
                continue
            age = age_at_photo(dob[i], taken[i])
            age_problem = ""
            if math.isnan(age):
                age_problem = "age from an unusable dob/photo_taken"
            elif not (age_lo <= age <= age_hi):
                age_problem, age = "age outside data.age_range", float("nan")
            g = gender_raw[i]
            gender = -1 if np.isnan(g) or g not in (0.0, 1.0) else (0 if g == 1.0 else 1)
            if age_problem and gender < 0:
                skipped.append((f"no usable label ({age_problem}, gender NaN)",
                                f"{image} dob={dob[i]:g} photo_taken={taken[i]:g}"))
                continue
            if age_problem:
                masked[age_problem] += 1
            if gender < 0:
                masked["gender NaN"] += 1
            rows.append({"image": image, "subject": subjects[i] or image, "age": age, "gender": gender})
        frame = pd.DataFrame(rows, columns=["image", "subject", "age", "gender"])
        notes = [note for note in [count_note(masked, "labels read as missing on kept rows")] if note]
        return ParsedRecords(normalise(frame, self.name), skipped_frame(skipped), notes)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False
