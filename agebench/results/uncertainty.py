"""How sure each prediction is, and whether that certainty can be trusted: the risk–coverage curve and its
area (AuRC) for age, and the expected calibration error (ECE) with its reliability bins for every classifier.

AuRC (as in Paplham & Franc's benchmark): rank the test faces from the most to the least certain prediction
(certainty = the negative standard deviation, in years, of the head's predicted age distribution); the risk
at coverage c is the mean absolute error of the most certain fraction c; AuRC is the mean risk over all
coverages. A head that knows when it is wrong has an AuRC well below its MAE; one whose certainty means
nothing has AuRC ≈ MAE. Regression heads give no distribution and so no AuRC.

ECE (Guo et al. 2017): the faces binned by their top-class probability into CALIBRATION_BINS equal-width
bins; the weighted mean over bins of |accuracy − mean confidence|. For gender, race and age bins alike.
Torch-free: numpy arrays in, floats and lists out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

CALIBRATION_BINS = 15
CURVE_POINTS = 20   # coverages stored for the risk–coverage plot


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = CALIBRATION_BINS) -> dict:
    """Per confidence bin: faces, mean confidence and accuracy (bins without faces hold None)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(np.int64)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins)
    return {"edges": edges.round(6).tolist(), "count": count.astype(int).tolist(),
            "confidence": [float(c / n) if n else None for c, n in zip(conf_sum, count, strict=True)],
            "accuracy": [float(a / n) if n else None for a, n in zip(acc_sum, count, strict=True)]}


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = CALIBRATION_BINS) -> float:
    bins = reliability(probs, labels, n_bins)
    total = sum(bins["count"])
    if not total:
        return float("nan")
    return float(sum(n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
                     if n) / total)


def risk_coverage(errors: np.ndarray, uncertainty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) with the faces taken from the most certain (lowest uncertainty) on; ties keep order."""
    errors = np.asarray(errors, dtype=np.float64)
    order = np.argsort(np.asarray(uncertainty, dtype=np.float64), kind="stable")
    risk = np.cumsum(errors[order]) / np.arange(1, len(errors) + 1)
    coverage = np.arange(1, len(errors) + 1) / len(errors)
    return coverage, risk


def aurc(errors: np.ndarray, uncertainty: np.ndarray) -> float:
    if len(errors) == 0:
        return float("nan")
    return float(risk_coverage(errors, uncertainty)[1].mean())


def age_spread(probs: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The standard deviation (years) of each face's predicted age distribution over bin centres."""
    probs, centres = np.asarray(probs, dtype=np.float64), np.asarray(centres, dtype=np.float64)
    mean = probs @ centres
    return np.sqrt(np.clip(probs @ centres**2 - mean**2, 0.0, None))


def fold_uncertainty(predictions: Mapping[str, np.ndarray], age_centres: np.ndarray | None) -> tuple[dict, dict]:
    """(metrics, calibration) of one fold's test predictions: `age/aurc` where the age head gives a
    distribution, `<task>/ece` for every task with class probabilities; calibration holds the reliability
    bins per task and the age risk–coverage curve at CURVE_POINTS coverages."""
    metrics, calibration = {}, {}
    for key in sorted(k for k in predictions if k.endswith("_proba")):
        task = key[: -len("_proba")]
        probs = np.asarray(predictions[key], dtype=np.float64)
        truth = np.asarray(predictions[f"{task}_true"])
        cls = (truth[:, 0] if truth.ndim == 2 else truth).astype(np.float64)
        ok = np.isfinite(cls) & (cls >= 0)
        if not ok.any():
            continue
        bins = reliability(probs[ok], cls[ok])
        calibration[task] = {"reliability": bins}
        metrics[f"{task}/ece"] = ece(probs[ok], cls[ok])
        if task == "age" and age_centres is not None and f"{task}_years" in predictions and truth.ndim == 2:
            years_true = truth[:, 1].astype(np.float64)
            has_age = np.isfinite(years_true)
            errors = np.abs(np.asarray(predictions["age_years"], dtype=np.float64) - years_true)[has_age]
            spread = age_spread(probs[has_age], age_centres)
            if len(errors):
                metrics["age/aurc"] = aurc(errors, spread)
                coverage, risk = risk_coverage(errors, spread)
                at = np.unique(np.clip(np.ceil(np.linspace(1, CURVE_POINTS, CURVE_POINTS) / CURVE_POINTS
                                               * len(errors)).astype(int) - 1, 0, len(errors) - 1))
                calibration["age"]["risk_coverage"] = {"coverage": coverage[at].round(6).tolist(),
                                                       "risk": risk[at].round(6).tolist()}
    return metrics, calibration
