"""Run records → one pandas frame → configurations (groups of folds) with mean ± std per metric.

The report's one import for that path, so callers (recipes, regress, tests) need not know its seams:
`canon` (canonical identity values), `age_bins` (a record's bins), `frame` (records → rows, identity
columns from agebench.results.run_identity), `filters` (`key: value` selection), `groups` (configurations).
"""

from __future__ import annotations

from agebench.report.age_bins import age_classes
from agebench.report.canon import TASK_ORDER, canon, canon_tasks
from agebench.report.filters import ALIASES, FILTER_OPS, apply_filters, flatten_filters, resolve_key
from agebench.report.frame import (
    ALWAYS_SHOWN,
    COST_FIELDS,
    DUPLICATE_CONFIG,
    IDENTITY_FIELDS,
    IGNORED_CONFIG,
    LOSS_COLUMNS,
    METRIC_PREFIX,
    build_frame,
    collect_records,
    display_name,
    identity_columns,
    metric_names,
    metric_sort_key,
    record_row,
    shown_columns,
    varying_columns,
)
from agebench.report.groups import Group, Stat, aggregate, label_columns, make_group

__all__ = [
    "ALIASES", "ALWAYS_SHOWN", "COST_FIELDS", "DUPLICATE_CONFIG", "FILTER_OPS", "IDENTITY_FIELDS", "IGNORED_CONFIG",
    "LOSS_COLUMNS", "METRIC_PREFIX", "TASK_ORDER", "Group", "Stat", "age_classes", "aggregate",
    "apply_filters", "build_frame", "canon", "canon_tasks", "collect_records", "display_name", "flatten_filters",
    "identity_columns", "label_columns", "make_group", "metric_names", "metric_sort_key", "record_row",
    "resolve_key", "shown_columns", "varying_columns",
]
