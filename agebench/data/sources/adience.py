"""Adience: the five original fold files + aligned face crops.

On disk (`data.root`)::

    fold_{0..4}_data.txt                      tab-separated, header: user_id, original_image, face_id,
                                              age, gender, x, y, dx, dy, tilt_ang, fiducial_yaw_angle,
                                              fiducial_score   (or under folds/, or data.folds_dir)
    aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>     (data.images=aligned)
    faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>    (data.images=faces)

Labels: the eight canonical age groups `(0, 2) (4, 6) (8, 12) (15, 20) (25, 32) (38, 43) (48, 53)
(60, 100)` become `age_group` 0..7 (native scheme adience8); gender m -> 0, f -> 1; `u` or empty ->
missing gender. Odd age strings follow `data.odd_labels`:

* `drop` (default; the Levi–Hassner / LMTCNN protocol): the row's age is missing.
* `remap`: an exact age (`35`) keeps its years in `age` and goes to the group that contains it, or the
  nearest group for ages in a gap (ties go to the younger group: 3 -> (0, 2), 35 -> (25, 32));
  a range (`(38, 42)`, `(27, 32)`, `(25, 23)`, `(8, 23)`) goes to the group nearest its midpoint.
* `None` is always missing.

A row is kept when it has at least one usable label; `agebench.data.filtering.filter_for_tasks`
then keeps what a task-set needs. With tasks=age_gender and `drop` that is "canonical age group and
gender m/f", which gives seed 000's Table 2 test folds 3,879 / 3,005 / 3,121 / 2,866 / 3,387.
Rows listed twice in the fold files (114 images, 231 rows in the raw files) are kept: the published sizes count them.

`read_split_lists` reads the LMTCNN per-fold train/val/test lists (`protocol.split_lists=<dir>`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from agebench.data.binning import ADIENCE8, parse_bins
from agebench.data.records import ParsedRecords, normalise
from agebench.data.sources import DatasetSource, register_source
from agebench.data.sources._common import configured_path, opt, read_lines, read_table, root_of, skipped_frame
from agebench.errors import UserError

log = logging.getLogger(__name__)

N_FOLDS = 5
REQUIRED_COLUMNS = ("user_id", "original_image", "face_id", "age", "gender")
AGE_GROUP_NAMES = tuple(f"({lo}, {hi})" for lo, hi in ADIENCE8)
IMAGE_LAYOUTS = {"aligned": "landmark_aligned_face", "faces": "coarse_tilt_aligned_face"}
GENDERS = {"m": 0, "f": 1}
SPLIT_NAMES = ("train", "val", "test")

_RANGE = re.compile(r"^\(\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*\)$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_CANONICAL = {(float(lo), float(hi)): i for i, (lo, hi) in enumerate(ADIENCE8)}
_BINS = parse_bins("adience8")


@lru_cache(maxsize=4096)
def parse_age(text: str, odd_labels: str = "drop") -> tuple[int, float, str]:
    """(age_group, years, kind) for one age string. kind: canonical | remapped | none | odd | unreadable.
    years is NaN unless the string is an exact age kept by `remap`."""
    text = str(text).strip()
    match = _RANGE.match(text)
    if match:
        lo, hi = float(match.group(1)), float(match.group(2))
        if (lo, hi) in _CANONICAL:
            return _CANONICAL[(lo, hi)], np.nan, "canonical"
        if odd_labels == "remap":
            mid = (min(lo, hi) + max(lo, hi)) / 2.0
            return int(_BINS.assign(np.array([mid]))[0]), np.nan, "remapped"
        return -1, np.nan, "odd"
    if _NUMBER.match(text):
        if odd_labels == "remap":
            years = float(text)
            return int(_BINS.assign(np.array([years]))[0]), years, "remapped"
        return -1, np.nan, "odd"
    if text.lower() == "none":
        return -1, np.nan, "none"
    return -1, np.nan, "unreadable"


def _gender_kind(text: str) -> str:
    text = str(text).strip().lower()
    if text in GENDERS:
        return "ok"
    return {"u": "u", "": "empty"}.get(text, "invalid")


@register_source
class Adience(DatasetSource):
    name: str = "adience"
    tasks: tuple[str, ...] = ("age", "gender")
    native_age_bins = _BINS

    def folds_dir(self, data_cfg) -> Path:
        root = root_of(data_cfg)
        explicit = configured_path(data_cfg, "folds_dir")
        if explicit is not None:
            return explicit
        pattern = str(opt(data_cfg, "fold_pattern", "fold_{k}_data.txt"))
        for candidate in (root, root / "folds"):
            if (candidate / pattern.format(k=0)).is_file():
                return candidate
        return root

    def parse(self, data_cfg) -> ParsedRecords:
        odd_labels = str(opt(data_cfg, "odd_labels", "drop"))
        if odd_labels not in ("drop", "remap"):
            raise UserError(f"data.odd_labels={odd_labels!r}; use drop (Levi-Hassner protocol) or remap")
        layout = str(opt(data_cfg, "images", "aligned"))
        if layout not in IMAGE_LAYOUTS:
            raise UserError(f"data.images={layout!r}; use aligned (aligned/ crops) or faces (faces/ crops)")
        pattern = str(opt(data_cfg, "fold_pattern", "fold_{k}_data.txt"))
        folds_dir = self.folds_dir(data_cfg)

        rows, skipped = [], []
        counts: Counter = Counter()
        for k in range(N_FOLDS):
            path = folds_dir / pattern.format(k=k)
            table = read_table(path, "\t", REQUIRED_COLUMNS, what="Adience fold file")
            for line, rec in enumerate(table[list(REQUIRED_COLUMNS)].itertuples(index=False), start=2):
                user, original, face_id, age_text, gender_text = rec
                if not user or not original or not face_id:
                    skipped.append(("malformed row (empty user_id/original_image/face_id)", f"{path.name}:{line}"))
                    continue
                image = f"{layout}/{user}/{IMAGE_LAYOUTS[layout]}.{face_id}.{original}"
                group, years, age_kind = parse_age(age_text, odd_labels)
                gender_kind = _gender_kind(gender_text)
                counts[f"age {age_kind}"] += 1
                counts[f"gender {gender_kind}"] += 1
                if group < 0 and gender_kind != "ok":
                    age_desc = {"none": "None", "odd": "odd", "unreadable": "unreadable"}[age_kind]
                    skipped.append((f"no usable label (age {age_desc}, gender {gender_kind})",
                                    f"{image} age={age_text!r} gender={gender_text!r}"))
                    continue
                rows.append({
                    "image": image, "subject": user, "age": years, "age_group": group,
                    "gender": GENDERS.get(gender_text.strip().lower(), -1), "fold": k,
                })
        columns = ["image", "subject", "age", "age_group", "gender", "fold"]
        frame = pd.DataFrame(rows, columns=columns)
        records = normalise(frame, self.name)
        return ParsedRecords(records, skipped_frame(skipped), self._notes(records, counts, odd_labels),
                             age_group_names=AGE_GROUP_NAMES)

    @staticmethod
    def _notes(records: pd.DataFrame, counts: Counter, odd_labels: str) -> list[str]:
        notes = []
        odd = counts["age odd"] + counts["age remapped"]
        if odd_labels == "drop" and (counts["age none"] or counts["age odd"]):
            notes.append(f"age: {counts['age none']} 'None' and {counts['age odd']} odd age strings read as missing "
                         f"(odd_labels=drop; remap maps the odd ones into groups)")
        elif odd_labels == "remap" and odd:
            notes.append(f"age: {counts['age remapped']} odd age strings remapped into groups (odd_labels=remap); "
                         f"{counts['age none']} 'None' read as missing")
        if counts["age unreadable"]:
            notes.append(f"age: {counts['age unreadable']} unreadable age strings read as missing")
        gender_missing = counts["gender u"] + counts["gender empty"] + counts["gender invalid"]
        if gender_missing:
            notes.append(f"gender: {counts['gender u']} 'u', {counts['gender empty']} empty and "
                         f"{counts['gender invalid']} other values read as missing")
        duplicated = records["image"].duplicated(keep=False)
        if duplicated.any():
            notes.append(f"{records['image'][duplicated].nunique()} images are listed more than once in the fold "
                         f"files ({int(duplicated.sum())} rows); kept, as the published fold sizes count them")
        per_user = records.groupby("subject")["fold"].nunique()
        crossing = per_user[per_user > 1]
        if len(crossing):
            notes.append(f"{len(crossing)} user ids appear in more than one fold file (e.g. {crossing.index[0]}); "
                         f"the original folds are subject-exclusive, so the fold files were edited")
        return notes


def _match_key(path: str) -> str:
    """`<user_id>/<face_id>.<original_image>`: what an image path in the split lists and in the records
    share, whichever crop layout (aligned/landmark_aligned_face.*, faces/coarse_tilt_aligned_face.*)."""
    parts = PurePosixPath(str(path).replace("\\", "/")).parts
    name = parts[-1]
    for prefix in IMAGE_LAYOUTS.values():
        if name.startswith(prefix + "."):
            name = name[len(prefix) + 1:]
            break
    return "/".join([*parts[-2:-1], name])


def read_split_lists(split_lists_dir, records: pd.DataFrame, prefix: str | None = None,
                     strict: bool = False) -> dict[int, dict[str, np.ndarray]]:
    """The LMTCNN / Levi–Hassner per-fold lists as row positions into `records`.

    `split_lists_dir` holds `test_fold_is_{k}/<prefix>_{train,val,test}.txt`, one image per line:
    `<user_id>/landmark_aligned_face.<face_id>.<original_image> <label...>`. A line matches the record
    whose image path ends with the same `<user_id>/<crop prefix>.<face_id>.<original_image>` (the crop prefix
    may differ, so data.images=faces matches the aligned lists). An image listed n times takes n distinct
    records with that path (the fold files list some images twice, and so do the lists), in record order.
    Returns {k: {"train": int64 positions, "val": ..., "test": ...}} for every fold directory found.

    Lines that match no record (an image filtered out for the run's tasks, or not decodable) are left
    out with a warning; `strict=True` makes that a UserError instead."""
    root = Path(str(split_lists_dir)).expanduser()
    if not root.is_dir():
        raise UserError(f"protocol.split_lists={split_lists_dir} is not a directory; point it at the dir holding test_fold_is_<k>/")
    fold_dirs = {}
    for child in root.iterdir():
        match = re.fullmatch(r"test_fold_is_(\d+)", child.name)
        if match and child.is_dir():
            fold_dirs[int(match.group(1))] = child
    if not fold_dirs:
        raise UserError(f"protocol.split_lists={split_lists_dir} has no test_fold_is_<k>/ directories; use the LMTCNN split-list layout")
    if prefix is None:
        prefix = _detect_prefix(fold_dirs[min(fold_dirs)])

    pool: dict[str, list[int]] = defaultdict(list)
    for position, image in enumerate(records["image"].astype(str)):
        pool[_match_key(image)].append(position)

    out: dict[int, dict[str, np.ndarray]] = {}
    for k in sorted(fold_dirs):
        taken: Counter = Counter()
        out[k] = {}
        for split in SPLIT_NAMES:
            path = fold_dirs[k] / f"{prefix}_{split}.txt"
            lines = read_lines(path, what="split list")
            positions, unmatched = [], []
            for line in lines:
                key = _match_key(line.split()[0])
                candidates = pool.get(key, ())
                if taken[key] < len(candidates):
                    positions.append(candidates[taken[key]])
                    taken[key] += 1
                else:
                    unmatched.append(line.split()[0])
            if unmatched:
                message = (f"{len(unmatched)} of {len(lines)} lines of {path} match no record "
                           f"(first: {unmatched[0]}); images filtered out for the tasks or not decodable")
                if strict:
                    raise UserError(message + "; run `agebench data summary` to see which rows were dropped")
                log.warning(message)
            out[k][split] = np.asarray(positions, dtype=np.int64)
    return out


def _detect_prefix(fold_dir: Path) -> str:
    prefixes = sorted({p.name.rsplit("_", 1)[0] for p in fold_dir.glob("*_test.txt")})
    if "agegender" in prefixes:
        return "agegender"
    if len(prefixes) == 1:
        return prefixes[0]
    raise UserError(f"{fold_dir} holds split lists {prefixes or 'none'}; expected <prefix>_{{train,val,test}}.txt "
                    f"(LMTCNN: agegender_*)")
