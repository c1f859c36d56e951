"""Evaluation protocols: which rows train, validate and test in each fold, and the leakage check.

- kfold: subject-exclusive, label-stratified k-fold (sklearn's StratifiedGroupKFold) with a fixed
  seed; validation is carved subject-exclusively out of the training folds.
- holdout: one subject-exclusive train/val/test split.
- predefined: the dataset's own folds (records.fold; test = fold k) or official split (records.split),
  validation from the official split, from LMTCNN-style split lists, or carved as above.
- lopo: leave one person out (one fold per subject).

Every fold passes `check_leakage` before training: a subject on two sides of a split fails the run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from agebench.errors import LeakageError, UserError


@dataclass
class Fold:
    index: int
    train: np.ndarray  # row indices into the record table
    val: np.ndarray
    test: np.ndarray
    repeat: int = 0    # which repeat of the k folds (protocol.repeats); (repeat, index) is the fold's key

    @property
    def key(self) -> tuple[int, int]:
        return (self.repeat, self.index)

    @property
    def dirname(self) -> str:
        """`fold_<k>`, or `repeat_<r>/fold_<k>` for the repeats after the first (repeat 0 keeps the
        single-repeat layout, so a run resumed with more repeats keeps its finished folds)."""
        return f"fold_{self.index}" if self.repeat == 0 else f"repeat_{self.repeat}/fold_{self.index}"

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratification_labels(records: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """One integer per row combining the requested labels (age as its group, else decade; gender; race)."""
    parts = []
    for name in labels:
        if name == "age":
            decade = np.floor(records["age"].fillna(-10).to_numpy() / 10).astype(np.int64)
            group = records["age_group"].to_numpy()
            parts.append(np.where(group >= 0, group, decade))
        elif name in ("gender", "race"):
            parts.append(records[name].to_numpy())
        else:
            raise UserError(f"protocol.stratify lists {name!r}; use any of age, gender, race")
    if not parts:
        return np.zeros(len(records), dtype=np.int64)
    combined = pd.Series(list(zip(*parts))).astype(str)
    return pd.factorize(combined)[0]


def _splitter(n_splits: int, seed: int, by_subject: bool):
    if by_subject:
        return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def _split_off(rows: np.ndarray, fraction: float, strat: np.ndarray, groups: np.ndarray, seed: int,
               by_subject: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` into (kept, carved) with about `fraction` carved out, subject-exclusively."""
    if fraction <= 0 or len(rows) < 2:
        return rows, rows[:0]
    n_splits = max(2, int(round(1.0 / fraction)))
    n_splits = min(n_splits, len(np.unique(groups[rows])) if by_subject else len(rows))
    if n_splits < 2:
        return rows, rows[:0]
    splitter = _splitter(n_splits, seed, by_subject)
    kept, carved = next(iter(_safe_split(splitter, rows, strat[rows], groups[rows])))
    return np.sort(rows[kept]), np.sort(rows[carved])


def _safe_split(splitter, rows, y, groups) -> list:
    # stratification needs >= n_splits members per class; classes rarer than that are merged into one
    counts = pd.Series(y).value_counts()
    rare = counts.index[counts < splitter.n_splits]
    y = np.where(np.isin(y, rare), -1, y)
    with warnings.catch_warnings():
        # the merged class may still be smaller than n_splits: sklearn then spreads it as far as it goes and
        # says so in two lines per fold (issue 26: noise on every tiny run); the split is the same without them
        warnings.filterwarnings("ignore", message="The least populated class in y has only", category=UserWarning)
        return list(splitter.split(rows, y, groups if isinstance(splitter, StratifiedGroupKFold) else None))


def repeats_of(protocol_cfg) -> int:
    """`protocol.repeats` (absent = 1: one pass of the k folds, as before the key existed)."""
    raw = protocol_cfg.get("repeats", 1)
    try:
        repeats = int(raw if raw is not None else 1)
    except (TypeError, ValueError):
        repeats = 0
    if repeats < 1 or str(raw).strip() not in (str(repeats), "None"):
        raise UserError(f"protocol.repeats={raw!r}: give a whole number ≥ 1 (repeats of the k folds, each with its "
                        f"own split seed), e.g. protocol.repeats=3")
    return repeats


def repeat_seed(seed: int, repeat: int) -> int:
    """The split seed of repeat `repeat`: the run's seed for the first (so repeat 0 is the single-repeat run's
    folds), then one drawn from (seed, repeat) so two runs' repeats never coincide."""
    if repeat == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(repeat)]).generate_state(1)[0] % (2**31 - 1))


def make_folds(records: pd.DataFrame, protocol_cfg, seed: int, split_lists_reader=None) -> list[Fold]:
    name = str(protocol_cfg.name)
    by_subject = bool(protocol_cfg.get("subject_exclusive", True))
    strat = stratification_labels(records, list(protocol_cfg.get("stratify", []) or []))
    groups = pd.factorize(records["subject"])[0]
    val_fraction = float(protocol_cfg.get("val_fraction", 0.1))
    rows = np.arange(len(records))
    folds: list[Fold] = []

    repeats = repeats_of(protocol_cfg)
    if repeats > 1 and name != "kfold":
        raise UserError(f"protocol.repeats={repeats} repeats k-fold cross-validation; protocol={name} has fixed "
                        f"splits: use protocol=kfold, or drop protocol.repeats")
    if name == "kfold":
        n = int(protocol_cfg.n_folds)
        if n < 2:
            raise UserError(f"protocol.n_folds={n}: k-fold needs at least 2 folds (use protocol=holdout for one split)")
        if by_subject and len(np.unique(groups)) < n:
            raise UserError(f"only {len(np.unique(groups))} subjects for {n} folds; lower protocol.n_folds")
        for repeat in range(repeats):
            split_seed = repeat_seed(seed, repeat)
            for k, (train, test) in enumerate(_safe_split(_splitter(n, split_seed, by_subject), rows, strat, groups)):
                train, val = _split_off(rows[train], val_fraction, strat, groups, split_seed + k, by_subject)
                folds.append(Fold(k, train, val, np.sort(rows[test]), repeat=repeat))
    elif name == "holdout":
        rest, test = _split_off(rows, float(protocol_cfg.get("test_fraction", 0.2)), strat, groups, seed, by_subject)
        train, val = _split_off(rest, val_fraction, strat, groups, seed + 1, by_subject)
        folds.append(Fold(0, train, val, test))
    elif name == "lopo":
        subjects = np.unique(groups)
        for k, subject in enumerate(subjects):
            test = rows[groups == subject]
            train, val = _split_off(rows[groups != subject], val_fraction, strat, groups, seed + k, by_subject)
            folds.append(Fold(k, train, val, test))
    elif name == "predefined":
        folds = _predefined(records, protocol_cfg, seed, strat, groups, val_fraction, by_subject, split_lists_reader)
    else:
        raise UserError(f"unknown protocol {name!r}; use kfold, holdout, predefined or lopo")

    leak = float(protocol_cfg.get("leak_subjects_for_testing", 0.0) or 0.0)
    if leak > 0:
        folds = [_leak(f, groups, leak, seed) for f in folds]
    return folds


def _predefined(records, protocol_cfg, seed, strat, groups, val_fraction, by_subject, split_lists_reader) -> list[Fold]:
    rows = np.arange(len(records))
    fold_col = records["fold"].to_numpy()
    split_col = records["split"].to_numpy().astype(str)
    lists_dir = protocol_cfg.get("split_lists")
    if lists_dir:
        if split_lists_reader is None:
            raise UserError("protocol.split_lists is only understood for data=adience; remove it for this dataset")
        lists = split_lists_reader(str(lists_dir), records)
        return [Fold(k, np.sort(s["train"]), np.sort(s["val"]), np.sort(s["test"])) for k, s in sorted(lists.items())]
    if (fold_col >= 0).any():
        folds = []
        for k in sorted(np.unique(fold_col[fold_col >= 0])):
            test = rows[fold_col == k]
            train, val = _split_off(rows[(fold_col != k) & (fold_col >= 0)], val_fraction, strat, groups, seed + int(k), by_subject)
            folds.append(Fold(int(k), train, val, test))
        return folds
    if (split_col != "").any():
        test = rows[split_col == "test"]
        train = rows[split_col == "train"]
        val = rows[split_col == "val"]
        if len(test) == 0:
            raise UserError("protocol=predefined: this dataset's official split has no test rows")
        if len(val) == 0:
            train, val = _split_off(train, val_fraction, strat, groups, seed, by_subject)
        return [Fold(0, np.sort(train), np.sort(val), np.sort(test))]
    raise UserError("protocol=predefined needs a dataset with official folds or splits; use protocol=kfold here")


def _leak(fold: Fold, groups: np.ndarray, fraction: float, seed: int) -> Fold:
    """TEST-ONLY: copy half the images of a fraction of test subjects into train, so the check fires."""
    rng = np.random.default_rng(seed)
    test_subjects = np.unique(groups[fold.test])
    chosen = rng.choice(test_subjects, size=max(1, int(round(fraction * len(test_subjects)))), replace=False)
    moved = fold.test[np.isin(groups[fold.test], chosen)][::2]
    return Fold(fold.index, np.sort(np.concatenate([fold.train, moved])), fold.val,
                np.setdiff1d(fold.test, moved), repeat=fold.repeat)


ALL_SIDES = (("train", "test"), ("val", "test"), ("train", "val"))
TEST_SIDES = (("train", "test"), ("val", "test"))


def shared_subjects(records: pd.DataFrame, fold: Fold, a: str, b: str) -> set:
    subject = records["subject"].to_numpy()
    return set(subject[getattr(fold, a)]) & set(subject[getattr(fold, b)])


def check_leakage(records: pd.DataFrame, fold: Fold, pairs=ALL_SIDES) -> None:
    """Raise LeakageError when a subject appears on both sides of one of the fold's split `pairs`.

    Published split lists may draw validation by image (the LMTCNN lists share 115 users between
    train and val in fold 0); for those only the test side is enforced (`pairs=TEST_SIDES`)."""
    for a, b in pairs:
        shared = shared_subjects(records, fold, a, b)
        if shared:
            example = sorted(shared)[:3]
            raise LeakageError(
                f"fold {fold.index}: {len(shared)} subject(s) in both {a} and {b} (e.g. {example}); splits must be "
                f"subject-exclusive: fix the split, or set protocol.subject_exclusive=false to accept inflated results"
            )
