"""The tests behind every verdict (agebench.report.significance): calibrated under the null where folds are
correlated, more powerful with repeats, and the library numbers (baycomp, statsmodels) reproduced exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from agebench.report.significance import (
    bayes_verdict,
    corrected_t,
    default_ratio,
    detectable_difference,
    holm,
    repeats_needed,
)

K = 5
N_EXPERIMENTS = 2000


def correlated_folds(rng, n_experiments: int, folds: int, mean: float = 0.0, rho: float = 1 / K) -> np.ndarray:
    """Per-fold differences of two methods over (repeated) k-fold CV: every fold shares the data set, so the
    folds' differences are equicorrelated at ρ = n_test / n = 1/k (Nadeau & Bengio's model of k-fold CV)."""
    shared = rng.standard_normal((n_experiments, 1)) * math.sqrt(rho)
    own = rng.standard_normal((n_experiments, folds)) * math.sqrt(1 - rho)
    return mean + shared + own


def rejection_rates(diffs: np.ndarray, ratio: float) -> tuple[float, float]:
    corrected = np.mean([corrected_t(d, ratio).p < 0.05 for d in diffs])
    plain = np.mean(stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05)
    return float(corrected), float(plain)


def test_the_corrected_test_holds_its_level_where_the_plain_t_test_does_not():
    rng = np.random.default_rng(20261207)
    for repeats in (1, 3):
        corrected, plain = rejection_rates(correlated_folds(rng, N_EXPERIMENTS, repeats * K), default_ratio(K))
        assert abs(corrected - 0.05) <= 0.03, (repeats, corrected)
        assert plain > corrected + 0.05, (repeats, plain, corrected)  # the optimistic kind


def test_power_rises_with_repeats_under_a_true_difference():
    rng = np.random.default_rng(7)
    powers = [rejection_rates(correlated_folds(rng, N_EXPERIMENTS, r * K, mean=0.8), default_ratio(K))[0]
              for r in (1, 2, 5)]
    assert powers[0] < powers[1] < powers[2], powers


def real_kfold_differences(rng, n: int, repeats: int, k: int = K) -> np.ndarray:
    """A real k-fold on a toy problem with a true null: the same least-squares learner on one of two
    exchangeable noise features (so neither can be better in expectation); a data set whose feature 1
    happens to track y helps it on every fold at once — the correlation the plain t-test ignores."""
    x, y = rng.standard_normal((n, 2)), rng.standard_normal(n)
    diffs = []
    for _ in range(repeats):
        order = rng.permutation(n)
        for test in np.array_split(order, k):
            train = np.setdiff1d(order, test)
            errors = []
            for f in (0, 1):
                xt, yt = x[train, f], y[train]
                slope = np.dot(xt - xt.mean(), yt - yt.mean()) / np.dot(xt - xt.mean(), xt - xt.mean())
                errors.append(np.mean((yt.mean() + slope * (x[test, f] - xt.mean()) - y[test]) ** 2))
            diffs.append(errors[1] - errors[0])
    return np.array(diffs)


def test_on_a_real_repeated_kfold_the_plain_t_test_rejects_a_true_null_far_too_often():
    rng = np.random.default_rng(3)
    diffs = np.array([real_kfold_differences(rng, 60, repeats=5) for _ in range(500)])
    corrected, plain = rejection_rates(diffs, default_ratio(K))
    assert corrected <= 0.05 + 0.02, corrected
    assert plain >= 0.10, plain


def test_corrected_t_is_the_nadeau_bengio_formula():
    d = np.array([0.02, 0.05, -0.01, 0.04, 0.03])
    res = corrected_t(d, 0.25)
    se = math.sqrt((1 / 5 + 0.25) * d.var(ddof=1))
    assert res.t == pytest.approx(d.mean() / se)
    assert res.p == pytest.approx(2 * stats.t.sf(abs(d.mean() / se), 4))
    assert res.ci_high - res.ci_low == pytest.approx(2 * stats.t.ppf(0.975, 4) * se)
    assert corrected_t(d, 0.25).p > stats.ttest_1samp(d, 0).pvalue  # always the more cautious of the two


def test_baycomp_and_holm_are_reproduced_exactly():
    import baycomp
    from statsmodels.stats.multitest import multipletests

    single = np.array([0.61, 0.63, 0.60, 0.64, 0.62])
    multi = np.array([0.63, 0.64, 0.62, 0.67, 0.62])
    left, rope, right = baycomp.CorrelatedTTest.probs(single, multi, rope=0.01, runs=1)
    v = bayes_verdict(single, multi, rope=0.01, runs=1, lower_is_better=False)
    assert (v.p_multi_better, v.p_equivalent, v.p_single_better) == (right, rope, left)
    w = bayes_verdict(single, multi, rope=0.01, runs=1, lower_is_better=True)  # an error metric: the other tail
    assert (w.p_multi_better, w.p_single_better) == (left, right)
    ps = [0.01, 0.04, 0.03, float("nan"), 0.2]
    expected = multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    got = holm(ps)
    assert math.isnan(got[3]) and [got[i] for i in (0, 1, 2, 4)] == list(expected)


def test_power_planning_finds_the_repeats_a_target_needs():
    sd, ratio = 2.0, default_ratio(K)
    mde = detectable_difference(sd, K, ratio)
    assert mde > 0
    r = repeats_needed(mde / 1.5, sd, K, ratio)
    assert r is not None and r > 1
    assert detectable_difference(sd, r * K, ratio) <= mde / 1.5 < detectable_difference(sd, (r - 1) * K, ratio)
    # the overlap of the training sets sets a floor no number of repeats gets below: sd · sqrt(ρ) · z-sum
    assert repeats_needed(0.5 * sd * math.sqrt(ratio), sd, K, ratio) is None


def test_the_bootstrap_by_subject_covers_a_known_group_mean():
    """Faces of one subject share an error (a person looks older than their age): the bootstrap resamples
    subjects, so its interval covers the true group MAE in ≥ 90 % of simulated test sets."""
    from agebench.results.breakdown import compute_breakdown

    rng = np.random.default_rng(11)
    true_mae = 2.0 * math.sqrt(2 / math.pi) * math.sqrt(1 + 1)  # |N(0, σ² = 4 + 4)| has mean σ·sqrt(2/π)
    covered, draws = 0, 150
    for _ in range(draws):
        subjects = np.repeat(np.arange(60), 4)
        age = rng.uniform(20, 29, len(subjects))  # one decade: the group "20-29"
        error = rng.normal(0, 2, 60)[subjects] + rng.normal(0, 2, len(subjects))
        out = compute_breakdown({"age": age}, {"age": (age, age + error)}, subjects=subjects, seed=int(rng.integers(1e9)))
        cell = out["age"]["20-29"]
        low, high = cell["age/mae"] - 1.96 * cell["se"]["age/mae"], cell["age/mae"] + 1.96 * cell["se"]["age/mae"]
        covered += low <= true_mae <= high
    assert covered / draws >= 0.90, covered / draws
