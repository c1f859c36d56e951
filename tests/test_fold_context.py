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


def test_resume_refuses_folds_made_from_another_record_table(tiny_overrides, tmp_path):
    """A parser that now keeps other files (issue 27's repaired UTKFace names) makes other folds under the
    same config hash: resuming an output_dir trained on the old record table is refused in one line."""
    import json

    import pytest

    from agebench.errors import UserError
    from agebench.results.store import read_records

    out = tmp_path / "run"
    cfg = compose_config([*tiny_overrides, "protocol.folds=[0]", f"output_dir={out}"])
    run_experiment(cfg, str(out))
    (record,) = read_records(out / "results.jsonl")
    assert len(record["records_fingerprint"]) == 16
    record["records_fingerprint"] = "0" * 16  # as if trained on another record table
    (out / "results.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(UserError, match="holds folds trained on another record table"):
        run_experiment(compose_config([*tiny_overrides, "protocol.folds=[0,1]", f"output_dir={out}"]), str(out))


def test_resume_refuses_older_records_whose_fold_sizes_differ(tiny_overrides, tmp_path):
    """Records written before the fingerprint existed are compared by their folds' sizes."""
    import json

    import pytest

    from agebench.errors import UserError
    from agebench.results.store import read_records

    out = tmp_path / "run"
    run_experiment(compose_config([*tiny_overrides, "protocol.folds=[0]", f"output_dir={out}"]), str(out))
    (record,) = read_records(out / "results.jsonl")
    del record["records_fingerprint"]
    record["fold_sizes"] = {**record["fold_sizes"], "test": record["fold_sizes"]["test"] + 1}
    (out / "results.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(UserError, match="fold 0 had"):
        run_experiment(compose_config([*tiny_overrides, "protocol.folds=[0,1]", f"output_dir={out}"]), str(out))
