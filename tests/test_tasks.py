"""Task losses and metrics against hand-computed values; missing labels are masked, never filled."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from agebench.data.binning import parse_bins
from agebench.data.records import normalise
from agebench.errors import UserError
from agebench.tasks.base import AgeClassification, AgeRegression, Classification, targets_for
from agebench.tasks.factory import build_tasks
from agebench.training.module import loss_weights


def tasks_cfg(**kw):
    base = {"names": ["age", "gender"], "age": {"head": "classification", "bins": "adience8", "range": [0, 80]},
            "gender": {"loss": "ce"}, "race": {"loss": "ce", "classes": 5}}
    base.update(kw)
    return OmegaConf.create(base)


def test_age_classification_metrics_by_hand():
    task = AgeClassification("age", 8, bins=parse_bins("adience8"))
    # rows: correct; second choice right (top-2, adjacent); wrong by 3 bins
    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 3.0, 2.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 4.0, 0, 0]])
    target = torch.tensor([[0, 1.0], [3, float("nan")], [2, 10.0]])
    m = task.metrics(logits, target)
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top2"] == pytest.approx(2 / 3)
    assert m["one_off"] == pytest.approx(2 / 3)
    centres = torch.tensor(parse_bins("adience8").centres, dtype=torch.float32)
    expected = logits.softmax(1) @ centres
    truth = torch.tensor([1.0, centres[3].item(), 10.0])  # exact age when known, else the bin centre
    assert m["mae"] == pytest.approx((expected - truth).abs().mean().item(), rel=1e-5)


def test_masked_rows_do_not_touch_the_loss():
    task = Classification("gender", 2)
    logits = torch.randn(6, 2)
    target = torch.tensor([[0.0], [1], [-1], [1], [-1], [0]])
    valid = target[:, 0] >= 0
    expected = F.cross_entropy(logits[valid], target[valid, 0].long())
    assert task.loss(logits, target).item() == pytest.approx(expected.item())
    none = torch.full((6, 1), -1.0)
    out = logits.clone().requires_grad_()
    loss = task.loss(out, none)
    assert loss.item() == 0.0
    loss.backward()  # graph stays connected, gradient is zero
    assert torch.count_nonzero(out.grad) == 0


def test_age_regression_loss_and_metrics():
    task = AgeRegression("age", 1, bins=parse_bins("uniform:4", (0, 80)), age_range=(0.0, 80.0), loss_kind="l1", cs_thresholds=(5,))
    years = torch.tensor([10.0, 30.0, 70.0, float("nan")])
    target = torch.stack([torch.tensor([0.0, 1, 3, -1]), years], 1)
    out = ((torch.tensor([12.0, 40.0, 69.0, 50.0]) - 40.0) / 40.0)[:, None]
    m = task.metrics(out, target)
    assert m["mae"] == pytest.approx((2 + 10 + 1) / 3, rel=1e-5)
    assert m["cs5"] == pytest.approx(2 / 3)
    assert m["top1"] == pytest.approx(2 / 3)  # 40 years falls in bin 2, not 1
    goal = (years[:3] - 40) / 40
    assert task.loss(out, target).item() == pytest.approx(F.l1_loss(out[:3, 0], goal).item(), rel=1e-5)


@pytest.mark.parametrize("kind,outputs", [("bce", 1), ("mse", 1), ("ce", 2)])
def test_gender_loss_kinds(kind, outputs):
    tasks = build_tasks(tasks_cfg(names=["gender"], gender={"loss": kind}))
    assert tasks[0].num_outputs == outputs
    target = torch.tensor([[0.0], [1.0]])
    good = torch.tensor([[-5.0, 5.0][::-1], [-5.0, 5.0]]) if kind == "ce" else torch.tensor([[-5.0 if kind == "bce" else 0.0], [5.0 if kind == "bce" else 1.0]])
    assert tasks[0].metrics(good, target)["acc"] == 1.0


def test_build_tasks_rejects_bad_options():
    with pytest.raises(UserError, match="unknown task"):
        build_tasks(tasks_cfg(names=["age", "beauty"]))
    with pytest.raises(UserError, match="tasks.age.head"):
        build_tasks(tasks_cfg(age={"head": "ordinal", "bins": "adience8"}))
    with pytest.raises(UserError, match="uniform"):
        build_tasks(tasks_cfg(age={"bins": "uniform:x"}))


def test_binning_schemes():
    adience = parse_bins("adience8")
    assert adience.num_bins == 8
    # inside a group, and in the gaps between groups (nearest group wins)
    assert adience.assign(np.array([1.0, 13.0, 14.0, 22.0, 24.0, 35.0, 99.0, np.nan])).tolist() == [0, 2, 3, 3, 4, 4, 7, -1]
    uniform = parse_bins("uniform:5", (0, 80))
    assert uniform.assign(np.array([0.0, 15.99, 16.0, 79.0, 80.0])).tolist() == [0, 0, 1, 4, 4]
    edges = parse_bins([0, 18, 65, 100])
    assert edges.assign(np.array([17.0, 18.0, 70.0])).tolist() == [0, 1, 2]
    with pytest.raises(UserError):
        parse_bins([0, 10, 5])


def test_targets_from_group_only_datasets():
    recs = normalise(pd.DataFrame({"image": ["a", "b", "c"], "subject": ["1", "2", "3"],
                                   "age_group": [0, 7, -1], "gender": [0, 1, -1]}), "toy")
    native = parse_bins("adience8")
    tasks = build_tasks(tasks_cfg())
    t = targets_for(tasks, recs, native)
    assert t["age"][:, 0].tolist() == [0, 7, -1]
    assert math.isnan(t["age"][2, 1])
    assert t["gender"][:, 0].tolist() == [0, 1, -1]
    with pytest.raises(UserError, match="tasks.age.bins=adience8"):
        targets_for(build_tasks(tasks_cfg(age={"bins": "uniform:5"})), recs, native)
    reg = targets_for(build_tasks(tasks_cfg(names=["age"], age={"head": "regression", "bins": "adience8"})), recs, native)
    assert reg["age"][:2, 1].tolist() == [1.0, 80.0]  # group centres when only groups are known


def test_loss_weights_gamma_and_weights():
    assert loss_weights(["age", "gender"], OmegaConf.create({"gamma": 0.3, "weights": {}})) == pytest.approx({"gender": 0.3, "age": 0.7})
    assert loss_weights(["age"], OmegaConf.create({"gamma": 0.3, "weights": {}})) == {"age": 1.0}
    three = OmegaConf.create({"gamma": None, "weights": {"age": 2.0, "gender": 1.0, "race": 0.5}})
    assert loss_weights(["age", "gender", "race"], three) == {"age": 2.0, "gender": 1.0, "race": 0.5}
    with pytest.raises(UserError, match="gamma"):
        loss_weights(["age", "gender", "race"], OmegaConf.create({"gamma": 0.5, "weights": {}}))
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        loss_weights(["age", "gender"], OmegaConf.create({"gamma": 1.5, "weights": {}}))
