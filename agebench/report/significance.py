"""Is a difference between two methods over cross-validation folds real? The tests agebench's verdicts use.

Over k-fold cross-validation the k training sets overlap, so the per-fold differences of two methods are
correlated and the plain paired t-test's variance is too small: it rejects a true null far more often than
its α says (Dietterich 1998; Nadeau & Bengio 2003; Bouckaert & Frank 2004). Every verdict the suite prints
therefore comes from the **corrected resampled t-test** (Nadeau & Bengio 2003, for r × k-fold CV as in
Bouckaert & Frank 2004): with J = r·k paired folds, per-fold differences d_j of sample variance s² and
ρ = n_test / n_train,

    t = mean(d) / sqrt((1/J + ρ) · s²),   J − 1 degrees of freedom,

and the confidence interval of the mean difference uses the same corrected standard error. The plain
paired t-test and the Wilcoxon signed-rank test stay as columns, for comparison with papers that use them.

Beside the p-value: the **Bayesian correlated t-test** (Corani & Benavoli 2015, computed by `baycomp`) with a
region of practical equivalence (ROPE) per metric from the metric registry, giving P(multi better),
P(equivalent), P(single better); **Holm's adjustment** (`statsmodels.stats.multitest`) when a table makes
several comparisons; and **power**: the smallest difference the run could have detected (α = 0.05, power
0.8, corrected test) and how many repeats of the k folds a target difference needs. docs/statistics.md
says which question each answers. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
MAX_REPEATS = 100   # power planning looks no further than this many repeats of the k folds


@dataclass(frozen=True)
class CorrectedT:
    t: float
    p: float
    ci_low: float
    ci_high: float
    se: float        # corrected standard error of the mean difference
    df: int


def corrected_t(diff, ratio: float, confidence: float = 0.95) -> CorrectedT:
    """The corrected resampled t-test of per-fold differences `diff` (all J folds of r × k-fold CV) with
    ρ = `ratio` = n_test / n_train; two-sided p and the corrected CI of the mean difference."""
    from scipy import stats as sps

    d = np.asarray(diff, dtype=float)
    j = len(d)
    nan = float("nan")
    if j < 2:
        return CorrectedT(nan, nan, nan, nan, nan, max(j - 1, 0))
    mean, var = float(d.mean()), float(d.var(ddof=1))
    se = math.sqrt((1.0 / j + float(ratio)) * var)
    half = float(sps.t.ppf(0.5 + confidence / 2, j - 1)) * se
    if se == 0.0:  # every fold differs by the same amount: no spread to test against
        return CorrectedT(nan, nan, mean, mean, 0.0, j - 1)
    t = mean / se
    p = float(2 * sps.t.sf(abs(t), j - 1))
    return CorrectedT(t, p, mean - half, mean + half, se, j - 1)


def default_ratio(folds_per_repeat: int) -> float:
    """n_test / n_train of k-fold CV when the records do not state their split sizes: 1 / (k − 1)."""
    return 1.0 / (folds_per_repeat - 1) if folds_per_repeat > 1 else 1.0


def detectable_difference(sd: float, n_folds: int, ratio: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference the corrected test finds with probability `power` at level `alpha`
    (two-sided), given a per-fold spread `sd` over `n_folds` paired folds: (t_{1−α/2} + t_{power}) · SE."""
    from scipy import stats as sps

    if n_folds < 2 or not math.isfinite(sd):
        return float("nan")
    df = n_folds - 1
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * sd * math.sqrt(1.0 / n_folds + ratio))


def repeats_needed(target: float, sd: float, folds_per_repeat: int, ratio: float, alpha: float = ALPHA,
                   power: float = POWER) -> int | None:
    """How many repeats of the k folds the corrected test needs to detect a difference `target` (same unit
    as `sd`); None when even MAX_REPEATS cannot (the correction keeps a floor of sd·sqrt(ρ): more repeats of
    the same data do not shrink the training-set overlap)."""
    if not (math.isfinite(sd) and math.isfinite(target)) or target <= 0:
        return None
    for r in range(1, MAX_REPEATS + 1):
        if detectable_difference(sd, r * folds_per_repeat, ratio, alpha, power) <= target:
            return r
    return None


@dataclass(frozen=True)
class BayesVerdict:
    p_multi_better: float
    p_equivalent: float
    p_single_better: float
    rope: float


def bayes_verdict(single, multi, rope: float, runs: int, lower_is_better: bool) -> BayesVerdict | None:
    """baycomp's Bayesian correlated t-test of multi − single with ROPE ±`rope`; None with fewer than two
    folds or no spread (the posterior is undefined)."""
    import baycomp

    x, y = np.asarray(single, dtype=float), np.asarray(multi, dtype=float)
    if len(x) < 2 or len(x) % runs or float(np.var(y - x)) == 0.0:
        return None
    p_left, p_rope, p_right = baycomp.CorrelatedTTest.probs(x, y, rope=rope, runs=runs)  # diff = y − x
    better, worse = (p_left, p_right) if lower_is_better else (p_right, p_left)
    return BayesVerdict(float(better), float(p_rope), float(worse), float(rope))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels), NaN kept in place and left out of the family."""
    from statsmodels.stats.multitest import multipletests

    finite = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out = [float("nan")] * len(pvalues)
    if finite:
        adjusted = multipletests([pvalues[i] for i in finite], method="holm")[1]
        for i, p in zip(finite, adjusted, strict=True):
            out[i] = float(p)
    return out
