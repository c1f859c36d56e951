"""Single- vs multi-task, answered: a paired comparison across folds.

Two configurations are *paired* when they share dataset, folds and trunk — every identity value except
the task-set and the loss weighting (and the experiment/variant/study/trial labels) — so fold k of the
multi-task run and fold k of the single-task run saw the same train/test split (with `protocol.repeats`,
the fold key is (repeat, fold)). For a metric of task t the single-task partner is the configuration whose
task-set is exactly {t}. Over the folds both finished we report the mean difference (multi − single) and,
from agebench.report.significance: the verdict of the corrected resampled t-test (Nadeau–Bengio) with its
CI, Holm-adjusted across a table's comparisons; the plain paired t-test and Wilcoxon p as columns only; the
Bayesian correlated t-test's probabilities with the metric's ROPE; and the smallest Δ the run could detect.
docs/statistics.md explains each.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from agebench.report import significance
from agebench.report.frame import metric_sort_key
from agebench.report.groups import Group
from agebench.report.significance import BayesVerdict
from agebench.results import metrics as registry
from agebench.results import run_identity
from agebench.results.store import fold_order


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
    ci_low: float         # CI of the mean difference, corrected resampled t (the verdict's)
    ci_high: float
    confidence: float
    t_stat: float         # plain paired t (a column for comparison with papers; decides nothing)
    p_t: float
    w_stat: float         # Wilcoxon signed-rank (a column)
    p_w: float
    ratio: float = float("nan")        # ρ = n_test / n_train of the corrected test
    runs: int = 1                      # repeats of the k folds among the paired folds
    t_corrected: float = float("nan")
    p_corrected: float = float("nan")
    p_adjusted: float = float("nan")   # p_corrected after Holm over the table's comparisons (= p_corrected alone)
    family: int = 1                    # how many comparisons the adjustment covered
    detectable: float = float("nan")   # smallest |Δ| this run detects (α 0.05, power 0.8, corrected test)
    spread: float = float("nan")       # sample std of the per-fold differences
    bayes: BayesVerdict | None = None

    @property
    def p(self) -> float:
        """The p the verdict reads: corrected, and Holm-adjusted when the table compares several."""
        return self.p_adjusted if math.isfinite(self.p_adjusted) else self.p_corrected

    @property
    def mean_single(self) -> float:
        return float(np.mean(self.single)) if self.single else float("nan")

    @property
    def mean_multi(self) -> float:
        return float(np.mean(self.multi)) if self.multi else float("nan")


def paired_test(single: Mapping, multi: Mapping, metric: str = "", confidence: float = 0.95,
                ratio: float | None = None) -> Paired:
    """Paired comparison of two fold → value maps over their common folds. A fold key is the fold index or
    a (repeat, fold) pair; `ratio` is n_test / n_train (None: 1/(k − 1) for the k folds of a repeat)."""
    from scipy import stats as sps  # imported here: a report without pairs never pays for scipy
    folds = [f for f in single if f in multi and _finite(single[f]) and _finite(multi[f])]
    folds.sort(key=fold_order)
    a = np.array([float(single[f]) for f in folds])
    b = np.array([float(multi[f]) for f in folds])
    n = len(folds)
    diff = b - a
    nan = float("nan")
    mean = float(diff.mean()) if n else nan
    runs = max(len({_repeat_of(f) for f in folds}), 1)
    if ratio is None or not math.isfinite(ratio):
        ratio = significance.default_ratio(n // runs if n else 0)
    ci_low = ci_high = t_stat = p_t = w_stat = p_w = t_c = p_c = detectable = spread = nan
    bayes = None
    if n >= 2:
        corrected = significance.corrected_t(diff, ratio, confidence)
        t_c, p_c, ci_low, ci_high = corrected.t, corrected.p, corrected.ci_low, corrected.ci_high
        spread = float(diff.std(ddof=1))
        detectable = significance.detectable_difference(spread, n, ratio)
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
        rope = registry.rope(metric) if metric else None
        if rope is not None and registry.direction(metric) != registry.ZERO:
            bayes = significance.bayes_verdict(a, b, rope, runs if n % runs == 0 else 1, lower_is_better(metric))
    return Paired(metric=metric, n=n, folds=folds, single=a.tolist(), multi=b.tolist(), mean_diff=mean,
                  ci_low=ci_low, ci_high=ci_high, confidence=confidence, t_stat=t_stat, p_t=p_t,
                  w_stat=w_stat, p_w=p_w, ratio=float(ratio), runs=runs, t_corrected=t_c, p_corrected=p_c,
                  p_adjusted=p_c, detectable=detectable, spread=spread, bayes=bayes)


def _repeat_of(f) -> int:
    return int(f[0]) if isinstance(f, tuple) else 0


def split_ratio(*groups: Group) -> float | None:
    """ρ = n_test / n_train of the corrected test from the records' `fold_sizes` (test ÷ train + val: what
    a method learnt from), averaged over the paired groups' folds; None when no record states them."""
    ratios = []
    for g in groups:
        for record in g.frame.get("_record", []):
            sizes = record.get("fold_sizes") if isinstance(record, Mapping) else None
            if not isinstance(sizes, Mapping):
                continue
            try:
                learn = float(sizes.get("train", 0)) + float(sizes.get("val", 0))
                test = float(sizes.get("test", 0))
            except (TypeError, ValueError):
                continue
            if learn > 0 and test > 0:
                ratios.append(test / learn)
    return float(np.mean(ratios)) if ratios else None


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def pair_key(group: Group) -> tuple:
    return tuple(sorted((k, v) for k, v in group.key.items() if not pair_free_column(k)))


@dataclass
class Comparison:
    multi: Group          # the compared side (a row contrast's compared row)
    single: Group         # the baseline side (a row contrast's baseline row)
    task: str
    result: Paired
    label: str = ""       # a row contrast's name ("K = 10, age vs K = 3, age"); else the multi side's identity


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
            res = paired_test(partner.metrics[name].values, g.metrics[name].values, name, confidence,
                              ratio=split_ratio(g, partner))
            out.append(Comparison(multi=g, single=partner, task=task, result=res))
    adjust(out)
    return out


def adjust(comparisons: list[Comparison]) -> None:
    """Holm over the comparisons of one table (statsmodels): each result's p_adjusted and family size."""
    adjusted = significance.holm([c.result.p_corrected for c in comparisons])
    family = sum(1 for p in adjusted if math.isfinite(p))
    for c, p in zip(comparisons, adjusted, strict=True):
        c.result.p_adjusted, c.result.family = p, family


P_THRESHOLDS = (0.05, 0.01)  # a shown p never rounds onto a usual α it is below: 0.04998 is not "0.05"


def format_p(p: float) -> str:
    """Three significant digits, more where rounding would reach a threshold from below (a significant
    verdict beside "p = 0.05" reads as a contradiction)."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "<0.001"
    digits = 3
    text = f"{p:.{digits}g}"
    while digits < 8 and any(p < t <= float(text) for t in P_THRESHOLDS):
        digits += 1
        text = f"{p:.{digits}g}"
    return text


def delta_text(res: Paired, scale: float = 1.0, fmt: str = ".2f") -> str:
    """"+1.23 [−0.40, 2.86], p=0.041": Δ, its corrected CI and the verdict's p (corrected, Holm-adjusted in
    a family); "n/a" with fewer than two paired folds."""
    if res.n == 0 or not math.isfinite(res.mean_diff):
        return "n/a"
    d = res.mean_diff * scale
    if res.n < 2:
        return f"{d:+{fmt}} (1 fold)"
    return (f"{d:+{fmt}} [{res.ci_low * scale:{fmt}}, {res.ci_high * scale:{fmt}}], "
            f"p={format_p(res.p)}")
