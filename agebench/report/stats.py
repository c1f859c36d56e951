"""Single- vs multi-task, answered: a paired comparison across folds.

Two configurations are *paired* when they share dataset, folds and trunk — every identity value except
the task-set and the loss weighting (and the experiment/variant/study/trial labels) — so fold k of the
multi-task run and fold k of the single-task run saw the same train/test split. For a metric of task t
the single-task partner is the configuration whose task-set is exactly {t}. Over the folds both
finished we report the mean difference (multi − single), its confidence interval (Student t), the
paired t-test p-value (scipy.stats.ttest_rel) and the Wilcoxon signed-rank p-value
(scipy.stats.wilcoxon). Seed 001 only compares overlapping intervals; this is the test it lacked.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from agebench.report.frame import metric_sort_key
from agebench.report.groups import Group
from agebench.results import metrics as registry
from agebench.results import run_identity


def pair_free_column(column: str) -> bool:
    """May the two sides of a pair differ in this identity column? (agebench.results.run_identity.pair_free: the
    labels and the task-set; a top-level field counts as the config path it repeats)"""
    free = run_identity.pair_free()
    if column.startswith("config."):
        return run_identity.covers(free, column[len("config."):])
    path = run_identity.RECORD_FIELDS.get(column)
    return run_identity.covers(free, column) or (path is not None and run_identity.covers(free, path))


def lower_is_better(metric: str) -> bool:
    """From the metric registry (agebench.results.metrics), the one place directions are declared."""
    return registry.lower_is_better(metric)


@dataclass
class Paired:
    metric: str
    n: int
    folds: list
    single: list          # values per paired fold
    multi: list
    mean_diff: float      # multi − single
    ci_low: float
    ci_high: float
    confidence: float
    t_stat: float
    p_t: float
    w_stat: float
    p_w: float

    @property
    def mean_single(self) -> float:
        return float(np.mean(self.single)) if self.single else float("nan")

    @property
    def mean_multi(self) -> float:
        return float(np.mean(self.multi)) if self.multi else float("nan")


def paired_test(single: Mapping, multi: Mapping, metric: str = "", confidence: float = 0.95) -> Paired:
    """Paired comparison of two fold → value maps over their common folds."""
    from scipy import stats as sps  # imported here: a report without pairs never pays for scipy
    folds = [f for f in single if f in multi and _finite(single[f]) and _finite(multi[f])]
    folds.sort(key=lambda f: (0, f) if isinstance(f, (int, np.integer)) else (1, str(f)))
    a = np.array([float(single[f]) for f in folds])
    b = np.array([float(multi[f]) for f in folds])
    n = len(folds)
    diff = b - a
    nan = float("nan")
    mean = float(diff.mean()) if n else nan
    ci_low = ci_high = t_stat = p_t = w_stat = p_w = nan
    if n >= 2:
        sd = float(diff.std(ddof=1))
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        ci_low, ci_high = mean - half, mean + half
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # near-constant differences: scipy's precision note
            res = sps.ttest_rel(b, a)
        t_stat, p_t = float(res.statistic), float(res.pvalue)
        if np.any(diff != 0):
            try:
                w = sps.wilcoxon(b, a)
                w_stat, p_w = float(w.statistic), float(w.pvalue)
            except ValueError:
                pass
        else:
            p_w = 1.0
    return Paired(metric=metric, n=n, folds=folds, single=a.tolist(), multi=b.tolist(), mean_diff=mean,
                  ci_low=ci_low, ci_high=ci_high, confidence=confidence, t_stat=t_stat, p_t=p_t,
                  w_stat=w_stat, p_w=p_w)


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def pair_key(group: Group) -> tuple:
    return tuple(sorted((k, v) for k, v in group.key.items() if not pair_free_column(k)))


@dataclass
class Comparison:
    multi: Group
    single: Group
    task: str
    result: Paired


def single_task_partner(group: Group, task: str, groups: Iterable[Group]) -> Group | None:
    key = pair_key(group)
    matches = [g for g in groups if g is not group and g.tasks == [task] and pair_key(g) == key]
    if not matches:
        return None
    # prefer the partner with the most finished folds
    return max(matches, key=lambda g: len(g.folds_ok))


def compare_single_multi(groups: list[Group], metrics: Iterable[str] | None = None,
                         confidence: float = 0.95) -> list[Comparison]:
    """Every (multi-task configuration, task metric) that has a single-task partner."""
    wanted = set(metrics) if metrics is not None else None
    out = []
    for g in groups:
        if len(g.tasks) < 2:
            continue
        for name in sorted(g.metrics, key=metric_sort_key):
            task = name.split("/", 1)[0]
            if task not in g.tasks or (wanted is not None and name not in wanted):
                continue
            partner = single_task_partner(g, task, groups)
            if partner is None or name not in partner.metrics:
                continue
            res = paired_test(partner.metrics[name].values, g.metrics[name].values, name, confidence)
            out.append(Comparison(multi=g, single=partner, task=task, result=res))
    return out


def format_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3g}"


def delta_text(res: Paired, scale: float = 1.0, fmt: str = ".2f") -> str:
    """"+1.23 [−0.40, 2.86], p=0.041" (t-test p); "n/a" with fewer than two paired folds."""
    if res.n == 0 or not math.isfinite(res.mean_diff):
        return "n/a"
    d = res.mean_diff * scale
    if res.n < 2:
        return f"{d:+{fmt}} (1 fold)"
    return (f"{d:+{fmt}} [{res.ci_low * scale:{fmt}}, {res.ci_high * scale:{fmt}}], "
            f"p={format_p(res.p_t)}")
