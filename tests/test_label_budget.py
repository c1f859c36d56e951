"""data.age_label_fraction: only that share of the training subjects keeps its age target; folds, other
tasks, validation and test rows are untouched (agebench/data/label_budget.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from agebench.data.label_budget import apply_age_label_budget, subject_draws
from agebench.errors import UserError


def _setup(n_subjects=400, per_subject=3):
    subjects = pd.Series([f"s{s:05d}" for s in range(n_subjects) for _ in range(per_subject)])
    records = pd.DataFrame({"subject": subjects})
    n = len(records)
    age = np.stack([np.arange(n) % 8, np.linspace(1, 79, n)], axis=1).astype(np.float32)
    targets = {"age": age, "gender": (np.arange(n) % 2).astype(np.float32)[:, None]}
    train = np.arange(0, int(0.8 * n))
    return records, targets, train


def test_budget_hides_the_age_of_whole_training_subjects_only():
    records, targets, train = _setup()
    cfg = OmegaConf.create({"age_label_fraction": 0.25, "seed": 3})
    out = apply_age_label_budget(cfg, records, targets, train)
    hidden = out["age"][:, 0] < 0
    assert np.isnan(out["age"][hidden, 1]).all() and not np.isnan(out["age"][~hidden, 1]).any()
    assert set(np.flatnonzero(hidden)) <= set(train)  # validation / test rows keep every label
    kept_subjects = records.subject[train][~hidden[train]].unique()
    hidden_subjects = records.subject[hidden].unique()
    assert not set(kept_subjects) & set(hidden_subjects)  # a subject keeps all its ages or none
    share = len(kept_subjects) / records.subject[train].nunique()
    assert abs(share - 0.25) < 0.08
    assert np.array_equal(out["gender"], targets["gender"])  # other tasks untouched
    assert not (targets["age"][:, 0] < 0).any()  # the caller's targets are not modified


def test_budget_is_deterministic_per_seed_and_off_at_one():
    records, targets, train = _setup()
    a = apply_age_label_budget(OmegaConf.create({"age_label_fraction": 0.5, "seed": 0}), records, targets, train)
    b = apply_age_label_budget(OmegaConf.create({"age_label_fraction": 0.5, "seed": 0}), records, targets, train)
    c = apply_age_label_budget(OmegaConf.create({"age_label_fraction": 0.5, "seed": 1}), records, targets, train)
    assert np.array_equal(a["age"][:, 0], b["age"][:, 0]) and not np.array_equal(a["age"][:, 0], c["age"][:, 0])
    assert apply_age_label_budget(OmegaConf.create({"age_label_fraction": 1.0}), records, targets, train) is targets
    assert apply_age_label_budget(OmegaConf.create({}), records, targets, train) is targets
    draws = subject_draws(records.subject, 0)
    assert np.all(draws.reshape(-1, 3) == draws.reshape(-1, 3)[:, :1])  # one draw per subject


@pytest.mark.parametrize("bad", [0.0, -0.2])
def test_a_fraction_outside_zero_one_is_a_user_error(bad):
    records, targets, train = _setup(10)
    with pytest.raises(UserError, match="age_label_fraction"):
        apply_age_label_budget(OmegaConf.create({"age_label_fraction": bad}), records, targets, train)
