"""Per-task-set row filtering: which records a run over `tasks.names` can use.

Parsers keep every row that has at least one usable label and mark the others missing (see
agebench.data.records). A run then keeps the rows its tasks can use:

* `require="all"` (single-dataset default, `data.allow_missing_labels: false`): a row needs a label for
  every task of the run. This is the Levi–Hassner / LMTCNN protocol on Adience: with tasks=age_gender
  a row needs a canonical age group *and* gender m/f, which reproduces seed 000's Table 2.
* `require="any"` (multi-source default, `data.allow_missing_labels: true`): a row needs a label for at least one task; the tasks whose
  label it lacks mask it out of their loss and metrics (agebench.tasks.base), never fill it.

A task whose label no record carries at all is a user error (the dataset cannot train it).

`has_label` is THE rule for "does this row carry a label for this task?": training (`rows_for_run`),
evaluation, `agebench data summary` and `agebench.tasks.base.missing_tasks` all read it, so the seed-000
Table 2 counts tested through `rows_for_run` are the rows training uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agebench.errors import UserError

REQUIRE_CHOICES = ("all", "any")


def require_from_cfg(data_cfg) -> str:
    """"any" when the data config sets allow_missing_labels (multi-source data), else "all"."""
    allow = data_cfg.get("allow_missing_labels", False) if data_cfg is not None else False
    return "any" if bool(allow) else "all"


def has_label(records: pd.DataFrame, task: str) -> np.ndarray:
    """Bool mask: rows that carry a usable label for `task` (age: years or a group)."""
    if task == "age":
        return (records["age"].notna() | (records["age_group"] >= 0)).to_numpy()
    if task in ("gender", "race"):
        return (records[task] >= 0).to_numpy()
    raise UserError(f"unknown task {task!r}; tasks.names takes a subset of ['age', 'gender', 'race']")


def label_mask(records: pd.DataFrame, task_names, require: str = "all") -> np.ndarray:
    """Bool mask over `records`: the rows a run over `task_names` keeps (see module docstring)."""
    require = str(require or "all")
    if require not in REQUIRE_CHOICES:
        raise UserError(f"require={require!r}; use all or any (data.allow_missing_labels=true means any)")
    names = list(task_names)
    if not names:
        raise UserError("no tasks given; set tasks=age, gender, age_gender or age_gender_race")
    masks = {t: has_label(records, t) for t in names}
    if len(records):
        absent = [t for t, m in masks.items() if not m.any()]
        if absent and (require == "all" or len(absent) == len(names)):
            source = ",".join(sorted(set(records["source"].astype(str)))) or "this dataset"
            raise UserError(
                f"{source} has no {' or '.join(absent)} labels; choose tasks that it carries "
                f"(e.g. tasks={'_'.join(t for t in names if t not in absent) or 'age'})"
            )
    stacked = np.stack([masks[t] for t in names], axis=0) if names else np.zeros((0, len(records)), bool)
    return stacked.all(axis=0) if require == "all" else stacked.any(axis=0)


def carried_tasks(records: pd.DataFrame, task_names=("age", "gender", "race")) -> list[str]:
    """The tasks of `task_names` for which at least one record carries a label."""
    return [t for t in task_names if has_label(records, t).any()]


def rows_for_run(records: pd.DataFrame, task_names, data_cfg=None) -> tuple[np.ndarray, pd.DataFrame]:
    """What `agebench train` trains on: (dataset row positions a run over `task_names` keeps, those
    records re-indexed 0..n-1). Protocols and split lists index the re-indexed records; the image
    array and the targets are indexed by the positions. `data_cfg` gives the require rule."""
    rows = np.flatnonzero(label_mask(records, task_names, require_from_cfg(data_cfg)))
    return rows, records.iloc[rows].reset_index(drop=True)


def filter_for_tasks(records: pd.DataFrame, task_names, require: str = "all") -> pd.DataFrame:
    """The rows a run over `task_names` keeps, re-indexed 0..n-1 (positions are what split lists and
    protocols index)."""
    return records[label_mask(records, task_names, require)].reset_index(drop=True)


def dropped_for_tasks(records: pd.DataFrame, task_names, require: str = "all") -> pd.DataFrame:
    """reason/detail rows for the records `filter_for_tasks` drops (reason e.g. "no gender label")."""
    keep = label_mask(records, task_names, require)
    names = list(task_names)
    dropped = records[~keep]
    if dropped.empty:
        return pd.DataFrame({"reason": pd.Series(dtype=str), "detail": pd.Series(dtype=str)})
    missing = {t: ~has_label(dropped, t) for t in names}
    reasons = []
    for i in range(len(dropped)):
        lacking = [t for t in names if missing[t][i]]
        reasons.append(f"no {' / '.join(lacking)} label (tasks={'_'.join(names)})")
    return pd.DataFrame({"reason": reasons, "detail": dropped["image"].astype(str).to_numpy()})
