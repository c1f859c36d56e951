"""What an experiment trains on, decided before any fold starts: its tasks, the dataset rows they can
use (the one label rule: agebench.data.filtering), the protocol's folds and which of them run, each
checked (a task the dataset cannot train, an empty split, a leaking split) so a bad plan fails in one
line with no record written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agebench.data.filtering import carried_tasks, rows_for_run
from agebench.data.loading import LoadedDataset, split_list_reader
from agebench.data.protocols import TEST_SIDES, Fold, check_leakage, make_folds, shared_subjects
from agebench.errors import UserError
from agebench.tasks.base import missing_tasks, targets_for
from agebench.tasks.factory import build_tasks

log = logging.getLogger("agebench.training")


@dataclass
class FoldPlan:
    tasks: list
    rows: np.ndarray          # dataset row per task-filtered record (indexes images and targets)
    records: pd.DataFrame     # the task-filtered records, 0..n-1 (what folds index)
    targets: dict             # per task, over every dataset row
    folds: list[Fold]         # the selected folds, checked


def plan_folds(cfg, dataset: LoadedDataset) -> FoldPlan:
    tasks = build_tasks(cfg.tasks, race_classes=len(dataset.race_names) or None)
    check_tasks(cfg, dataset, tasks)
    rows, records = rows_for_run(dataset.records, [t.name for t in tasks], cfg.data)
    targets = targets_for(tasks, dataset.records, dataset.native_age_bins)

    folds = make_folds(records, cfg.protocol, int(cfg.seed), split_list_reader(dataset.name))
    selected = select_folds(folds, cfg.protocol.get("folds"))
    for fold in selected:
        empty = [side for side, n in fold.sizes().items() if n == 0]
        if empty:
            raise UserError(f"fold {fold.index} has no {' or '.join(empty)} rows ({fold.sizes()}); use more data, "
                            f"fewer protocol.n_folds or a larger protocol.val_fraction")
    if bool(cfg.protocol.get("subject_exclusive", True)):
        for fold in selected:  # fail before any training when a split leaks
            check_fold_leakage(cfg, records, fold)
    return FoldPlan(tasks, rows, records, targets, selected)


def check_tasks(cfg, dataset: LoadedDataset, tasks) -> None:
    """Every task has labels in the dataset, and early stopping watches a metric this run logs."""
    missing = missing_tasks(tasks, dataset.records)
    if missing:
        carried = carried_tasks(dataset.records)
        raise UserError(f"data={dataset.name} has no {' or '.join(missing)} labels; choose tasks from what it carries "
                        f"({', '.join(carried) or 'nothing'}), e.g. tasks={'_'.join(carried) or 'age'}")
    monitor = str(cfg.early_stopping.monitor)
    parts = monitor.split("/")
    if parts[0] != "val" or (parts[1:2] != ["loss"] and parts[1] not in {t.name for t in tasks}):
        raise UserError(f"early_stopping.monitor={monitor!r} is not a validation metric of this run; use val/loss or "
                        f"val/<task>/<metric> for a task in {[t.name for t in tasks]}")


def select_folds(folds: list[Fold], wanted) -> list[Fold]:
    if wanted is None:
        return folds
    wanted = [int(k) for k in wanted]
    known = {f.index for f in folds}
    bad = [k for k in wanted if k not in known]
    if bad:
        raise UserError(f"protocol.folds={wanted} names fold(s) {bad} that do not exist; this protocol has folds 0..{len(folds) - 1}")
    return [f for f in folds if f.index in wanted]


def check_fold_leakage(cfg, records, fold: Fold) -> None:
    if not cfg.protocol.get("split_lists"):
        check_leakage(records, fold)
        return
    check_leakage(records, fold, pairs=TEST_SIDES)
    overlap = shared_subjects(records, fold, "train", "val")
    if overlap:
        log.warning("fold %d: the split lists share %d subject(s) between train and val (validation drawn by "
                    "image); test stays subject-exclusive", fold.index, len(overlap))
