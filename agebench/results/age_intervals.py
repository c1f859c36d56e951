"""Age bins as closed [lo, hi] intervals in years: labels, and the bin of an age. Pure numpy, so both
training (agebench.data.binning) and the report (agebench.report.age_bins) can read it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def interval_labels(intervals: Sequence[tuple[float, float]]) -> list[str]:
    return [f"{lo:g}-{hi:g}" for lo, hi in intervals]


def assign_intervals(ages, intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    """Bin index per age (int64): the interval holding it, else the nearest one; NaN ages give -1."""
    ages = np.asarray(ages, dtype=np.float64)
    lo = np.array([a for a, _ in intervals])
    hi = np.array([b for _, b in intervals])
    # distance to each interval: 0 inside it, else the gap to its nearer end
    dist = np.maximum(lo[None, :] - ages[:, None], 0) + np.maximum(ages[:, None] - hi[None, :], 0)
    index = dist.argmin(axis=1).astype(np.int64)
    index[np.isnan(ages)] = -1
    return index
