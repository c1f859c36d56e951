"""Configurations: the records of one identity, de-duplicated per fold, with mean ± std per metric.

A configuration whose protocol expects folds that are missing or not `ok` is *incomplete*: it is
reported, with its finished folds' mean and std, and marked; it is never averaged silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agebench.report.frame import (
    ALWAYS_SHOWN,
    COST_FIELDS,
    LOSS_COLUMNS,
    METRIC_PREFIX,
    display_name,
    identity_columns,
)
from agebench.results.store import fold_order


@dataclass
class Stat:
    mean: float
    std: float          # sample std (ddof=1); NaN with one fold
    n: int
    values: dict        # fold → value (ok folds)


@dataclass
class Group:
    key: dict                       # identity column → canonical value
    frame: pd.DataFrame             # its records (one per fold after de-duplication)
    expected: list | None
    folds_ok: list = field(default_factory=list)
    folds_bad: dict = field(default_factory=dict)    # fold → status
    folds_missing: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)   # folds that had more than one record
    metrics: dict = field(default_factory=dict)      # name → Stat
    costs: dict = field(default_factory=dict)        # name → mean over ok folds

    @property
    def complete(self) -> bool:
        return not self.folds_bad and not self.folds_missing and bool(self.folds_ok)

    @property
    def n_expected(self) -> int:
        return len(self.expected) if self.expected is not None else len(self.folds_ok) + len(self.folds_bad)

    @property
    def folds_text(self) -> str:
        return f"{len(self.folds_ok)}/{self.n_expected}"

    @property
    def tasks(self) -> list[str]:
        return [t for t in self.key.get("tasks", "").split("+") if t and t != "null"]

    def problems(self) -> str:
        """"fold 3 failed, fold 4 missing" (empty when complete)."""
        parts = [f"fold {f} {s}" for f, s in sorted(self.folds_bad.items(), key=lambda kv: str(kv[0]))]
        parts += [f"fold {f} missing" for f in self.folds_missing]
        if not self.folds_ok:
            parts.append("no finished fold")
        return ", ".join(parts)

    def label(self, columns: Iterable[str]) -> str:
        return ", ".join(f"{display_name(c)}={self.key.get(c, 'null')}" for c in columns)


def _fold_sort(f):
    return fold_order(f)


def _dedup(records: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """One record per fold (the latest ok one, else the latest), and the folds that had several."""
    chosen, duplicates = [], []
    for fold, recs in records.groupby("fold", dropna=False, sort=False):
        if len(recs) > 1:
            duplicates.append(fold)
            ok = recs[recs["status"] == "ok"]
            pick = (ok if len(ok) else recs).sort_values("started_at").iloc[[-1]]
        else:
            pick = recs
        chosen.append(pick)
    return (pd.concat(chosen) if chosen else records.iloc[:0]), duplicates


def make_group(key: dict, records: pd.DataFrame) -> Group:
    expected_sets = [e for e in records["expected_folds"] if e is not None]
    expected = sorted(set().union(*map(set, expected_sets)), key=_fold_sort) if expected_sets else None
    dedup, duplicates = _dedup(records)
    ok = dedup[dedup["status"] == "ok"]
    bad = dedup[dedup["status"] != "ok"]
    folds_ok = sorted(ok["fold"].tolist(), key=_fold_sort)
    folds_bad = {f: s for f, s in zip(bad["fold"], bad["status"], strict=False)}
    seen = set(folds_ok) | set(folds_bad)
    missing = [f for f in (expected or []) if f not in seen]
    group = Group(key=key, frame=dedup.sort_values("fold", key=lambda s: s.map(_fold_sort)), expected=expected,
                  folds_ok=folds_ok, folds_bad=folds_bad, folds_missing=missing,
                  duplicates=sorted(duplicates, key=_fold_sort))
    for col in [c for c in ok.columns if c.startswith(METRIC_PREFIX)]:
        sub = ok[["fold", col]].dropna()
        if sub.empty:
            continue
        values = sub[col].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", over="ignore"):  # an inf fold makes mean/std inf or NaN; the gate says why
            mean, std = float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else float("nan"))
        group.metrics[col[len(METRIC_PREFIX):]] = Stat(
            mean=mean,
            std=std,
            n=int(len(values)),
            values=dict(zip(sub["fold"].tolist(), values.tolist(), strict=False)),
        )
    for name in COST_FIELDS:
        vals = ok[name].dropna() if name in ok.columns else pd.Series(dtype=float)
        if vals.empty and name in dedup.columns:  # params etc. are known even for a failed fold
            vals = dedup[name].dropna() if name in ("params", "gmacs", "size_mb") else vals
        group.costs[name] = float(vals.mean()) if len(vals) else float("nan")
    return group


def aggregate(frame: pd.DataFrame, by: list[str] | None = None) -> list[Group]:
    """Configurations of `frame`, grouped by every identity column (or `by`), in first-seen order."""
    if frame.empty:
        return []
    by = by if by is not None else identity_columns(frame)
    groups = []
    for values, recs in frame.groupby(by, dropna=False, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        groups.append(make_group(dict(zip(by, values, strict=False)), recs))
    return groups


def label_columns(groups: list[Group]) -> list[str]:
    """dataset, model, tasks and the identity columns whose values differ among `groups`."""
    if not groups:
        return list(ALWAYS_SHOWN)
    keys = [k for k in groups[0].key]
    multi = [g for g in groups if len(g.tasks) > 1]
    varying = [k for k in keys if k not in ALWAYS_SHOWN
               and len({g.key.get(k) for g in (multi if k in LOSS_COLUMNS else groups)}) > 1]
    return [k for k in ALWAYS_SHOWN if k in keys] + varying
