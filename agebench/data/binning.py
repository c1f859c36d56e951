"""Age targets: named group schemes, uniform bins and explicit edges.

An `AgeBins` is a list of closed intervals [lo, hi] in years. Exact ages are assigned to the interval
that contains them; an age that falls in a gap between groups (Adience's groups leave 3, 7, 13–14,
21–24, ... uncovered) goes to the nearest interval. Each bin's centre (midpoint) is what a
classification head's MAE is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agebench.errors import UserError
from agebench.results.age_intervals import assign_intervals, interval_labels

ADIENCE8 = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
FAIRFACE9 = ((0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 100))
NAMED_SCHEMES = {"adience8": ADIENCE8, "fairface9": FAIRFACE9}


@dataclass(frozen=True)
class AgeBins:
    name: str
    intervals: tuple[tuple[float, float], ...]

    @property
    def num_bins(self) -> int:
        return len(self.intervals)

    @property
    def centres(self) -> np.ndarray:
        return np.array([(lo + hi) / 2.0 for lo, hi in self.intervals], dtype=np.float64)

    @property
    def labels(self) -> list[str]:
        return interval_labels(self.intervals)

    def assign(self, ages: np.ndarray) -> np.ndarray:
        """Bin index per age (int64): the interval holding it, else the nearest one; NaN ages give -1."""
        return assign_intervals(ages, self.intervals)


def parse_bins(spec, age_range=(0.0, 80.0)) -> AgeBins:
    """`adience8` / `fairface9`, `uniform:K` over `age_range`, `years` (one bin per whole year of `age_range`;
    `years:LO-HI` names its own range), or a list of K+1 edges."""
    if isinstance(spec, str):
        if spec == "years" or spec.startswith("years:"):
            return _one_year_bins(spec, age_range)
        if spec in NAMED_SCHEMES:
            return AgeBins(spec, tuple((float(a), float(b)) for a, b in NAMED_SCHEMES[spec]))
        if spec.startswith("uniform:"):
            try:
                k = int(spec.split(":", 1)[1])
            except ValueError:
                k = 0
            if k < 2:
                raise UserError(f"tasks.age.bins={spec!r} needs an integer K >= 2, e.g. uniform:5")
            edges = np.linspace(float(age_range[0]), float(age_range[1]), k + 1)
            return _from_edges(edges, name=spec)
        raise UserError(
            f"unknown age bin scheme {spec!r}; use one of {sorted(NAMED_SCHEMES)}, uniform:K or a list of edges"
        )
    edges = np.asarray(list(spec), dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 3 or np.any(np.diff(edges) <= 0):
        raise UserError(f"tasks.age.bins edges {list(spec)} must be >= 3 increasing numbers")
    return _from_edges(edges, name="edges:" + ",".join(f"{e:g}" for e in edges))


def _from_edges(edges: np.ndarray, name: str) -> AgeBins:
    # half-open [e_i, e_{i+1}) intervals represented as closed ones just below the next edge
    eps = 1e-9
    intervals = [(float(edges[i]), float(edges[i + 1]) - eps) for i in range(len(edges) - 2)]
    intervals.append((float(edges[-2]), float(edges[-1])))
    return AgeBins(name, tuple(intervals))


def _one_year_bins(spec: str, age_range) -> AgeBins:
    """One bin per whole year: bin k is the age lo + k (its centre), an exact age goes to the nearest year,
    so the distribution and ordinal age heads decode to years and MAE is against the exact age."""
    lo, hi = float(age_range[0]), float(age_range[1])
    if spec != "years":
        try:
            lo, hi = (float(v) for v in spec.split(":", 1)[1].split("-"))
        except ValueError:
            raise UserError(f"tasks.age.bins={spec!r}; write years (over tasks.age.range) or years:LO-HI, "
                            f"e.g. years:0-80") from None
    first, last = int(np.ceil(lo)), int(np.floor(hi))
    if last - first < 1:
        raise UserError(f"tasks.age.bins=years needs a range of at least two whole years, got [{lo:g}, {hi:g}]; "
                        f"set tasks.age.range")
    return AgeBins(f"years:{first}-{last}", tuple((float(a), float(a)) for a in range(first, last + 1)))
