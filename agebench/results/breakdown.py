"""Per-group error of one fold's test predictions: by age decade, by gender and by race.

Users of age estimators ask first how wrong a model is on children and on the elderly. Every fold's
run record carries `breakdown`: for each grouping attribute with labels (`age` decades "0-9", "10-19", …
of the true age; `gender`; `race`), each group's face count `n` and the metrics of the tasks the run
trained, measured on that group's faces only — `age/mae`, `age/bias` (mean signed error, predicted −
true), `age/cs{θ}`, `gender/acc`, `race/acc` (names and directions from agebench.results.metrics). A
single-task age run is still broken down by gender and race: the grouping labels come from the
dataset, not from the heads. Groups partition the test faces (faces lacking the grouping label are
left out), so the `n` of a breakdown sum to the test faces that have that label, and the n-weighted
group MAE is the whole set's MAE. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agebench.results import metrics as registry

DECADE = 10
GENDER_NAMES = ("male", "female")
ATTRIBUTES = ("age", "gender", "race", "gender×race")
BOOTSTRAP = 200     # bootstrap replicates of each group's metrics, resampling subjects
MIN_CELL = 30       # an intersectional cell needs this many test faces in the fold, else it is left out


def age_bucket(years: float) -> str | None:
    """The decade of an age: 0-9, 10-19, …; None for a missing age."""
    if years is None or not np.isfinite(years):
        return None
    lo = int(np.floor(max(float(years), 0.0) / DECADE) * DECADE)
    return f"{lo}-{lo + DECADE - 1}"


def bucket_sort_key(name: str) -> tuple:
    head = str(name).split("-", 1)[0]
    return (0, float(head), "") if head.replace(".", "", 1).isdigit() else (1, 0.0, str(name))


def _group_labels(attribute: str, values: np.ndarray, names: Sequence[str]) -> list[str | None]:
    if attribute == "age":
        return [age_bucket(v) for v in np.asarray(values, dtype=np.float64)]
    out = []
    for v in np.asarray(values, dtype=np.float64):
        if not np.isfinite(v) or v < 0:
            out.append(None)
        else:
            i = int(v)
            out.append(names[i] if i < len(names) else str(i))
    return out


def group_metrics(mask: np.ndarray, outcomes: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  cs_thresholds: Sequence[int] = (5,)) -> dict[str, float]:
    """The metrics of the faces in `mask`: age error from (true years, predicted years), accuracy from
    (true class, predicted class); a task with no labelled face in the group is left out."""
    out: dict[str, float] = {"n": int(mask.sum())}
    if "age" in outcomes:
        true, pred = (np.asarray(a, dtype=np.float64) for a in outcomes["age"])
        ok = mask & np.isfinite(true) & np.isfinite(pred)
        if ok.any():
            err = pred[ok] - true[ok]
            out["age/mae"] = float(np.abs(err).mean())
            out["age/bias"] = float(err.mean())
            for theta in cs_thresholds:
                out[registry.cs_name(theta)] = float((np.abs(err) <= theta).mean())
    for task in ("gender", "race"):
        if task in outcomes:
            true, pred = (np.asarray(a, dtype=np.float64) for a in outcomes[task])
            ok = mask & (true >= 0)
            if ok.any():
                out[f"{task}/acc"] = float((pred[ok] == true[ok]).mean())
    return out


def compute_breakdown(labels: Mapping[str, np.ndarray], outcomes: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      cs_thresholds: Sequence[int] = (5,), names: Mapping[str, Sequence[str]] | None = None,
                      subjects: np.ndarray | None = None, seed: int = 0) -> dict:
    """{attribute: {group: {"n": count, metric: value, "se": {metric: bootstrap standard error}}}} for every
    attribute in `labels` with labels, and the intersectional `gender×race` cells with ≥ MIN_CELL faces.

    `labels[attr]` is the grouping value of each face (age in years, NaN missing; gender / race class,
    −1 missing); `outcomes[task]` = (truth, prediction) per face for each task the run trained. With
    `subjects` (one id per face), each group's metrics get a bootstrap standard error that resamples whole
    subjects (a person's faces are not independent draws), BOOTSTRAP replicates from `seed`."""
    names = {"gender": GENDER_NAMES, **dict(names or {})}
    arrays: dict[str, np.ndarray] = {}
    for attribute in ATTRIBUTES[:3]:
        if attribute in labels:
            groups = _group_labels(attribute, labels[attribute], names.get(attribute, ()))
            arrays[attribute] = np.array([g if g is not None else "" for g in groups], dtype=object)
    if "gender" in arrays and "race" in arrays:  # intersectional cells: both labels present
        both = (arrays["gender"] != "") & (arrays["race"] != "")
        arrays["gender×race"] = np.where(both, arrays["gender"] + "/" + arrays["race"], "").astype(object)
    out: dict[str, dict] = {}
    for attribute, array in arrays.items():
        present = sorted({g for g in array if g != ""}, key=bucket_sort_key)
        if attribute == "gender×race":
            present = [g for g in present if int((array == g).sum()) >= MIN_CELL]
        if present:
            out[attribute] = {g: group_metrics(array == g, outcomes, cs_thresholds) for g in present}
    if subjects is not None and out:
        _bootstrap_errors(out, arrays, outcomes, cs_thresholds, np.asarray(subjects), seed)
    return out


def _bootstrap_errors(out: dict, arrays: Mapping[str, np.ndarray], outcomes, cs_thresholds, subjects: np.ndarray,
                      seed: int) -> None:
    """Each group's metric gains `se`: the std of BOOTSTRAP replicates, each drawing the fold's test subjects
    with replacement (all faces of a drawn subject, as often as it is drawn)."""
    rng = np.random.default_rng(seed)
    ids, inverse = np.unique(subjects, return_inverse=True)
    faces_of = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    replicates: dict[tuple, list[float]] = {}
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([faces_of[s] for s in rng.integers(0, len(ids), len(ids))])
        drawn = {task: (np.asarray(t)[idx], np.asarray(p)[idx]) for task, (t, p) in outcomes.items()}
        for attribute, groups in out.items():
            array = arrays[attribute][idx]
            for g in groups:
                for metric, value in group_metrics(array == g, drawn, cs_thresholds).items():
                    if metric != "n":
                        replicates.setdefault((attribute, g, metric), []).append(value)
    for (attribute, g, metric), values in replicates.items():
        if metric in out[attribute][g] and len(values) > 1:
            out[attribute][g].setdefault("se", {})[metric] = float(np.std(values, ddof=1))


def fold_breakdown(tasks, predictions: Mapping[str, np.ndarray], test_records, race_names: Sequence[str] = ()) -> dict:
    """The run record's `breakdown` from the module's test predictions and the fold's test records (in
    test-loader order; a run limited to fewer test batches covers their first rows)."""
    task_names = [t.name for t in tasks]
    n = next((len(v) for k, v in predictions.items() if k.endswith("_true")), 0)
    if n == 0:
        return {}
    recs = test_records.iloc[:n]
    labels = {"age": recs["age"].to_numpy(dtype=np.float64)}
    for attribute in ("gender", "race"):
        if attribute in recs.columns:
            labels[attribute] = recs[attribute].to_numpy(dtype=np.float64)
    outcomes = {}
    if "age" in task_names and "age_years" in predictions:
        outcomes["age"] = (np.asarray(predictions["age_true"])[:, 1], np.asarray(predictions["age_years"]))
    for task in ("gender", "race"):
        if task in task_names and f"{task}_pred" in predictions:
            outcomes[task] = (np.asarray(predictions[f"{task}_true"]).reshape(-1), np.asarray(predictions[f"{task}_pred"]))
    cs = next((tuple(getattr(t, "cs_thresholds", (5,))) for t in tasks if t.name == "age"), (5,))
    subjects = recs["subject"].to_numpy() if "subject" in recs.columns else None
    return compute_breakdown(labels, outcomes, cs, names={"race": tuple(race_names)}, subjects=subjects)
