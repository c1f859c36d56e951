"""The age bins of a run record, as the report needs them: a name to group by, a class count, and the
bins' intervals for confusion-matrix labels and for binning a regression head's predictions.

A run record's `age_bins` is `{"name", "edges" ([lo, hi] per bin, in years), "num_bins"}` (None without a
binned age task; agebench/training/run_record.py writes it). Records written before that hold the name alone
("adience8", "uniform:5"): they still group by that name and still count their classes through
`legacy_num_bins` (so older result directories keep their granularity plots), but carry no intervals,
so their confusion matrices label classes by index and a regression head's predictions in years are
not binned (that plot is skipped). Re-running the fold writes the structured entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agebench.report.canon import get
from agebench.results.age_intervals import assign_intervals, interval_labels


@dataclass(frozen=True)
class Bins:
    name: str
    intervals: tuple[tuple[float, float], ...]   # closed [lo, hi] per bin, in years

    @property
    def num_bins(self) -> int:
        return len(self.intervals)

    @property
    def labels(self) -> list[str]:
        return interval_labels(self.intervals)

    def assign(self, ages) -> np.ndarray:
        """Bin index per age, as training assigns it (nearest interval); NaN → -1."""
        return assign_intervals(ages, self.intervals)


def bins_name(record: Mapping, config: Mapping):
    """What a record's configurations group by: the structured entry's name, a legacy record's name
    string, or (no entry at all) the config's `tasks.age.bins`."""
    entry = record.get("age_bins")
    if isinstance(entry, Mapping):
        return entry.get("name")
    return entry if entry is not None else get(config, "tasks.age.bins")


def record_bins(record: Mapping) -> Bins | None:
    """The record's bins with their intervals; None for a legacy (name-only) record or no age bins."""
    entry = record.get("age_bins")
    if not isinstance(entry, Mapping) or not entry.get("edges"):
        return None
    return Bins(str(entry.get("name")), tuple((float(lo), float(hi)) for lo, hi in entry["edges"]))


def age_classes(age_bins, config: Mapping | None = None):
    """Number of age classes: a structured entry's num_bins; else (legacy name, list of edges, or the
    config's tasks.age.bins) counted by `legacy_num_bins`; None if unknown or for a regression head."""
    if isinstance(age_bins, Mapping):
        n = age_bins.get("num_bins")
        return int(n) if n is not None else None
    if config and get(config, "tasks.age.head") == "regression" and age_bins in (None, "null"):
        return None
    spec = age_bins if age_bins not in (None, "null") else get(config or {}, "tasks.age.bins")
    return legacy_num_bins(spec)


def legacy_num_bins(spec):
    """Class count of a bin scheme written as a name or edges (records from before structured age_bins):
    adience8 → 8, uniform:5 → 5, years:0-80 → 81, edges:1,27,53,81 → 3, [e0, …, eK] → K; None if unknown."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return len(spec) - 1 if len(spec) >= 3 else None
    text = str(spec)
    if text.startswith("uniform:"):
        try:
            return int(text.split(":", 1)[1])
        except ValueError:
            return None
    if text.startswith("edges:"):
        return len(text.split(":", 1)[1].split(",")) - 1
    years = re.fullmatch(r"years:(-?\d+)-(-?\d+)", text)  # one bin per year, both ends included
    if years:
        return int(years.group(2)) - int(years.group(1)) + 1
    if text.startswith("["):
        try:
            return len(json.loads(text)) - 1
        except ValueError:
            return None
    found = re.search(r"(\d+)$", text)
    return int(found.group(1)) if found else None
