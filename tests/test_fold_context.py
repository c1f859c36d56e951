"""One object carries a fold's facts from the experiment to the fold: the input sizes are resolved once
per experiment, however many folds run, and the fold sees its split in dataset rows."""

from __future__ import annotations

import sys

import numpy as np

from agebench.config.compose import compose_config
from agebench.training import builders
from agebench.training.experiment import run_experiment


def test_resolve_sizes_runs_once_per_experiment(tiny_overrides, tmp_path, monkeypatch):
    original = builders.resolve_sizes
    calls = []

    def counting(cfg):
        calls.append(1)
        return original(cfg)

    # every module that took the function by name, so a new caller anywhere is counted too
    for module in [m for name, m in sys.modules.items() if name.startswith("agebench") and m is not None]:
        if getattr(module, "resolve_sizes", None) is original:
            monkeypatch.setattr(module, "resolve_sizes", counting)
    cfg = compose_config([*tiny_overrides, f"output_dir={tmp_path / 'run'}"])
    summary = run_experiment(cfg, str(tmp_path / "run"))
    assert len(summary["folds_ok"]) >= 2  # several folds, one resolution
    assert len(calls) == 1


def test_a_fold_context_maps_fold_indices_to_dataset_rows(tmp_path):
    from agebench.data.protocols import Fold
    from agebench.training.builders import Sizes
    from agebench.training.fold_context import FoldContext
    from agebench.training.fold_plan import FoldPlan

    rows = np.array([3, 5, 7, 9, 11])  # the task-filtered records sit at these dataset rows
    plan = FoldPlan(tasks=[], rows=rows, records=None, targets={}, folds=[])
    ctx = FoldContext(None, {}, "h", None, plan, Sizes(32, 36), tmp_path).for_fold(
        Fold(2, train=np.array([0, 1]), val=np.array([2]), test=np.array([3, 4])))
    assert ctx.fold_dir == tmp_path / "fold_2"
    assert ctx.dataset_fold.train.tolist() == [3, 5] and ctx.dataset_fold.test.tolist() == [9, 11]
