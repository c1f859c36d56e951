"""Splits: subject-exclusive and stratified k-fold, holdout, predefined folds/splits, LOPO, leakage."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from agebench.data.protocols import check_leakage, make_folds
from agebench.data.records import normalise
from agebench.data.render import generate
from agebench.data.sources.synthetic import synthetic_spec
from agebench.errors import LeakageError, UserError


@pytest.fixture(scope="module")
def synthetic_records():
    cfg = OmegaConf.create({"n_subjects": 120, "images_per_subject": 4, "image_size": 16, "load_size": 16,
                            "age_range": [0, 80], "age_spread": 3.0, "label_noise": 0.0,
                            "gender_specific_aging": 0.5, "nuisance": 1.0, "seed": 0})
    _, labels = generate(synthetic_spec(cfg))
    return normalise(labels, "synthetic")


def protocol(**kw):
    base = {"name": "kfold", "n_folds": 5, "folds": None, "val_fraction": 0.1, "stratify": ["age", "gender"],
            "subject_exclusive": True, "leak_subjects_for_testing": 0.0, "test_fraction": 0.2, "split_lists": None}
    base.update(kw)
    return OmegaConf.create(base)


def test_kfold_is_subject_exclusive_and_covers_everything(synthetic_records):
    folds = make_folds(synthetic_records, protocol(), seed=0)
    assert len(folds) == 5
    subjects = synthetic_records["subject"].to_numpy()
    all_test = np.concatenate([f.test for f in folds])
    assert sorted(all_test.tolist()) == list(range(len(synthetic_records)))  # every row tested exactly once
    for f in folds:
        check_leakage(synthetic_records, f)
        assert not set(subjects[f.train]) & set(subjects[f.test])
        assert not set(subjects[f.val]) & set(subjects[f.train])
        assert not set(subjects[f.val]) & set(subjects[f.test])
        assert len(f.val) > 0
        assert len(np.intersect1d(f.train, f.test)) == 0


def test_kfold_is_stratified_and_seeded(synthetic_records):
    folds = make_folds(synthetic_records, protocol(), seed=0)
    overall = synthetic_records["gender"].mean()
    for f in folds:  # each test fold's gender balance within 12 points of the whole set's
        assert abs(synthetic_records["gender"].to_numpy()[f.test].mean() - overall) < 0.12
    again = make_folds(synthetic_records, protocol(), seed=0)
    other = make_folds(synthetic_records, protocol(), seed=1)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_leak_option_trips_the_leakage_check(synthetic_records):
    folds = make_folds(synthetic_records, protocol(leak_subjects_for_testing=0.2), seed=0)
    with pytest.raises(LeakageError, match="both train and test"):
        check_leakage(synthetic_records, folds[0])


def test_image_level_split_lets_subjects_leak(synthetic_records):
    folds = make_folds(synthetic_records, protocol(subject_exclusive=False), seed=0)
    subjects = synthetic_records["subject"].to_numpy()
    assert any(set(subjects[f.train]) & set(subjects[f.test]) for f in folds)


def test_holdout_and_lopo(synthetic_records):
    (hold,) = make_folds(synthetic_records, protocol(name="holdout", n_folds=1), seed=0)
    check_leakage(synthetic_records, hold)
    assert 0.1 < len(hold.test) / len(synthetic_records) < 0.3
    small = synthetic_records[synthetic_records["subject"].isin(synthetic_records["subject"].unique()[:6])].reset_index(drop=True)
    lopo = make_folds(small, protocol(name="lopo", n_folds=None), seed=0)
    assert len(lopo) == 6
    for f in lopo:
        assert small["subject"].to_numpy()[f.test].tolist() == [small["subject"].to_numpy()[f.test][0]] * len(f.test)
        check_leakage(small, f)


def test_predefined_folds_and_official_split():
    recs = normalise(pd.DataFrame({"image": [f"i{i}" for i in range(12)], "subject": [f"s{i // 2}" for i in range(12)],
                                   "age": np.linspace(1, 70, 12), "gender": [0, 1] * 6, "fold": [i // 4 for i in range(12)]}), "toy")
    folds = make_folds(recs, protocol(name="predefined", val_fraction=0.0), seed=0)
    assert [f.test.tolist() for f in folds] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert folds[0].train.tolist() == list(range(4, 12))
    split = normalise(pd.DataFrame({"image": ["a", "b", "c", "d"], "subject": ["a", "b", "c", "d"], "age": [1.0, 2, 3, 4],
                                    "split": ["train", "train", "val", "test"]}), "toy")
    (f,) = make_folds(split, protocol(name="predefined"), seed=0)
    assert (f.train.tolist(), f.val.tolist(), f.test.tolist()) == ([0, 1], [2], [3])
    with pytest.raises(UserError, match="official folds"):
        make_folds(normalise(pd.DataFrame({"image": ["a"], "subject": ["a"], "age": [1.0]}), "toy"), protocol(name="predefined"), 0)


def test_a_class_rarer_than_the_folds_splits_silently_and_as_sklearn_would(synthetic_records):
    """Issue 26 (9): sklearn's two-line "least populated class" warning printed on every fold of a tiny run.
    The split itself is unchanged: the same folds as StratifiedGroupKFold on the merged labels."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from agebench.data.protocols import stratification_labels

    records = synthetic_records.copy()
    records.loc[records.index[:3], "race"] = 4  # three faces of one subject: a class rarer than 5 folds
    records.loc[records.index[3:], "race"] = records["race"].iloc[3:].clip(upper=3)
    cfg = protocol(stratify=["race"], val_fraction=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folds = make_folds(records, cfg, seed=0)
    assert not [w for w in caught if "least populated" in str(w.message)]
    y = stratification_labels(records, ["race"])
    counts = pd.Series(y).value_counts()
    y = np.where(np.isin(y, counts.index[counts < 5]), -1, y)
    groups = pd.factorize(records["subject"])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [test for _, test in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(records, y, groups)]
    assert [sorted(f.test.tolist()) for f in folds] == [sorted(t.tolist()) for t in expected]
