"""Selecting run records by identity values: `key: value` filters of `report`, recipes and `regress`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from agebench.report.canon import canon, canon_tasks, plain
from agebench.report.frame import DUPLICATE_CONFIG, METRIC_PREFIX

# short names users may write in filters
ALIASES = {
    "width": "config.model.width",
    "bins": "age_bins",
    "γ": "gamma",
    "backbone": "config.model.backbone",
    "num_convs": "config.model.num_convs",
    "head": "config.tasks.age.head",
}

FILTER_OPS = {"in", "not", "not_in", "lt", "le", "gt", "ge"}


def resolve_key(key: str, frame: pd.DataFrame) -> str:
    key = str(key)
    key = ALIASES.get(key, key)
    if key in frame.columns:
        return key
    if METRIC_PREFIX + key in frame.columns:
        return METRIC_PREFIX + key
    if "config." + key in frame.columns:
        return "config." + key
    if key.startswith("config.") and key in DUPLICATE_CONFIG:
        return DUPLICATE_CONFIG[key]
    if ("config." + key) in DUPLICATE_CONFIG:
        return DUPLICATE_CONFIG["config." + key]
    return key  # absent: matches only a null filter value


def _match_value(series: pd.Series, key: str, wanted) -> pd.Series:
    if isinstance(wanted, Mapping) and (set(wanted) & FILTER_OPS):
        mask = pd.Series(True, index=series.index)
        if "in" in wanted:
            mask &= _match_value(series, key, {"__any__": list(wanted["in"])})
        if "not" in wanted:
            mask &= ~_match_value(series, key, wanted["not"])
        if "not_in" in wanted:
            mask &= ~_match_value(series, key, {"__any__": list(wanted["not_in"])})
        numeric = pd.to_numeric(series.replace("null", np.nan), errors="coerce")
        for op, fn in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
            if op in wanted:
                mask &= fn(numeric, float(wanted[op])).fillna(False)
        return mask
    if isinstance(wanted, Mapping) and "__any__" in wanted:
        mask = pd.Series(False, index=series.index)
        for w in wanted["__any__"]:
            mask |= _match_value(series, key, w)
        return mask
    conv = canon_tasks if key == "tasks" else canon
    if key in ("single_task",):
        return series.astype(bool) == (canon(wanted) == "true")
    if key in ("n_tasks", "age_classes", "fold"):
        return series.map(canon) == canon(wanted)
    values = series.map(lambda v: v if isinstance(v, str) else canon(v))
    if isinstance(wanted, (list, tuple)) and key != "tasks":
        as_list = values == canon(list(wanted))
        # a list filter on a scalar field means "any of these"
        any_of = values.isin([conv(w) for w in wanted])
        return as_list | any_of
    return values == conv(wanted)


def apply_filters(frame: pd.DataFrame, filters: Mapping | None) -> pd.DataFrame:
    """Records whose values match every `key: value` (value: scalar, list = any of / list-valued
    equality, or {in: [...], not: x, lt/le/gt/ge: n})."""
    if not filters:
        return frame
    mask = pd.Series(True, index=frame.index)
    for key, wanted in flatten_filters(plain(filters)).items():
        col = resolve_key(key, frame)
        if col not in frame.columns:
            if canon(wanted) != "null":
                mask &= False
            continue
        mask &= _match_value(frame[col], col, plain(wanted))
    return frame[mask]


def flatten_filters(filters: Mapping, prefix: str = "") -> dict:
    """{model: {width: [2, 1]}} (as `+filters.model.width=[2,1]` builds it) → {"model.width": [2, 1]}."""
    out = {}
    for key, value in dict(filters).items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and not (set(map(str, value)) & FILTER_OPS):
            out.update(flatten_filters(value, name))
        else:
            out[name] = value
    return out
