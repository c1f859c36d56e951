"""Fake Adience: fold_{0..4}_data.txt (tab-separated, the 12 original columns) + aligned/ crops +
LMTCNN-style split lists test_fold_is_{k}/agegender_{train,val,test}.txt."""

from __future__ import annotations

from pathlib import Path

from . import write_corrupt, write_image

HEADER = ["user_id", "original_image", "face_id", "age", "gender", "x", "y", "dx", "dy", "tilt_ang",
          "fiducial_yaw_angle", "fiducial_score"]
CANONICAL = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)", "(60, 100)"]

# (fold, user_id, original_image, face_id, age, gender) — odd strings as the real files have them
ROWS = [
    (0, "u0@N01", "100_a_o.jpg", "1", "(25, 32)", "m"),
    (0, "u0@N01", "101_b_o.jpg", "2", "(0, 2)", "f"),
    (0, "u0@N01", "102_c_o.jpg", "3", "None", "f"),       # age missing, gender kept
    (0, "u0@N01", "103_d_o.jpg", "4", "35", "m"),         # drop: age missing; remap: (25, 32) (tie -> younger), 35 y
    (0, "u0@N01", "104_e_o.jpg", "5", "(38, 42)", "u"),   # drop: no label -> skipped; remap: (38, 43), gender missing
    (0, "u0@N01", "105_f_o.jpg", "6", "None", ""),        # skipped under both policies
    (0, "u0@N01", "106_g_o.jpg", "7", "(8, 12)", "u"),    # age only
    (1, "u1@N02", "200_a_o.jpg", "1", "(4, 6)", "f"),
    (1, "u1@N02", "201_b_o.jpg", "2", "(60, 100)", "m"),
    (1, "u1@N02", "202_c_o.jpg", "3", "(25, 23)", "f"),   # remap: midpoint 24 -> (25, 32)
    (1, "u1@N02", "203_d_o.jpg", "4", "(8, 23)", "m"),    # remap: midpoint 15.5 -> (15, 20)
    (1, "u1@N02", "204_e_o.jpg", "5", "13", "m"),         # remap: (8, 12)
    (2, "u2@N03", "300_a_o.jpg", "1", "(15, 20)", "m"),
    (2, "u2@N03", "301_b_o.jpg", "2", "(48, 53)", "f"),
    (2, "u2@N03", "301_b_o.jpg", "2", "(48, 53)", "f"),   # listed twice, as in the real files
    (3, "u3@N04", "400_a_o.jpg", "1", "(38, 43)", "m"),
    (3, "u3@N04", "401_b_o.jpg", "2", "(0, 2)", ""),      # age only
    (4, "u4@N05", "500_a_o.jpg", "1", "(25, 32)", "f"),
    (4, "u4@N05", "501_b_o.jpg", "2", "57", "f"),         # drop: gender only; remap: (60, 100)
    (4, "u4@N05", "502_c_o.jpg", "", "(25, 32)", "f"),    # malformed: no face_id -> skipped
]

# hand-worked counts (see the comments above)
EXPECTED = {
    "rows": 20,
    "drop": {
        "records": 17, "skipped": 3,
        "skipped_reasons": {"no usable label (age odd, gender u)": 1, "no usable label (age None, gender empty)": 1,
                            "malformed row (empty user_id/original_image/face_id)": 1},
        "age_gender_per_fold": [2, 2, 3, 1, 1], "age_per_fold": [3, 2, 3, 2, 1], "gender_per_fold": [4, 5, 3, 1, 2],
    },
    "remap": {
        "records": 18, "skipped": 2,
        "age_gender_per_fold": [3, 5, 3, 1, 2], "age_per_fold": [5, 5, 3, 2, 2],
        # image -> age group index under remap
        "groups": {"103_d_o.jpg": 4, "104_e_o.jpg": 5, "202_c_o.jpg": 4, "203_d_o.jpg": 3, "204_e_o.jpg": 2,
                   "501_b_o.jpg": 7},
    },
    "users": 5,
}


def image_rel(user: str, original: str, face_id: str, layout: str = "aligned") -> str:
    prefix = {"aligned": "landmark_aligned_face", "faces": "coarse_tilt_aligned_face"}[layout]
    return f"{layout}/{user}/{prefix}.{face_id}.{original}"


def make_adience(root: Path, images: bool = True, split_lists: bool = True, folds_subdir: str = "",
                 separator: str = "\t", drop_column: str | None = None, corrupt: tuple[str, ...] = (),
                 missing: tuple[str, ...] = ()) -> Path:
    """Write the fake copy under `root`; returns root. `corrupt` / `missing`: original_image names whose
    aligned crop is written corrupt / not written. `separator` / `drop_column` make bad fold files."""
    root = Path(root)
    fold_dir = root / folds_subdir if folds_subdir else root
    fold_dir.mkdir(parents=True, exist_ok=True)
    header = [c for c in HEADER if c != drop_column]
    for k in range(5):
        lines = [separator.join(header)]
        for i, (fold, user, original, face_id, age, gender) in enumerate(ROWS):
            if fold != k:
                continue
            full = dict(zip(HEADER, [user, original, face_id, age, gender, "10", "20", "300", "300", "-5", "0", str(40 + i)],
                            strict=True))
            lines.append(separator.join(full[c] for c in header))
        (fold_dir / f"fold_{k}_data.txt").write_text("\n".join(lines) + "\n")
    if images:
        seen = set()
        for i, (_, user, original, face_id, *_rest) in enumerate(ROWS):
            if not face_id or original in missing or (user, original, face_id) in seen:
                continue
            seen.add((user, original, face_id))
            path = root / image_rel(user, original, face_id)
            if original in corrupt:
                write_corrupt(path)
            else:
                write_image(path, seed=i, size=(48, 40))
    if split_lists:
        write_split_lists(root / "lmtcnn_agegender_splits")
    return root


def usable_rows() -> list[tuple]:
    """Rows with a canonical age group and gender m/f (what the LMTCNN lists hold)."""
    return [r for r in ROWS if r[3] and r[4] in CANONICAL and r[5] in ("m", "f")]


def write_split_lists(directory: Path) -> dict[int, dict[str, int]]:
    """LMTCNN-format lists: test = fold k; validation = the first usable row of the next fold, like the
    published lists (image-level, not subject-exclusive). Returns the sizes written."""
    sizes = {}
    rows = usable_rows()
    for k in range(5):
        out = Path(directory) / f"test_fold_is_{k}"
        out.mkdir(parents=True, exist_ok=True)
        split = {"train": [], "val": [], "test": []}
        val_fold = (k + 1) % 5
        val_taken = False
        for fold, user, original, face_id, age, gender in rows:
            line = f"{user}/landmark_aligned_face.{face_id}.{original} {CANONICAL.index(age)} {0 if gender == 'm' else 1}"
            if fold == k:
                split["test"].append(line)
            elif fold == val_fold and not val_taken:
                split["val"].append(line)
                val_taken = True
            else:
                split["train"].append(line)
        for name, lines in split.items():
            (out / f"agegender_{name}.txt").write_text("".join(line + "\n" for line in lines))
        sizes[k] = {name: len(lines) for name, lines in split.items()}
    return sizes
