"""Repeated k-fold (`protocol.repeats=r`): r × k folds, each repeat split with its own seed, (repeat, fold) as
the fold key of the record, of resume and of the report's pairing; the paired test knows the repeats."""

from __future__ import annotations

import os

import numpy as np
import pytest
from omegaconf import OmegaConf

from agebench.config.compose import compose_config
from agebench.data.protocols import make_folds, repeat_seed
from agebench.errors import UserError
from agebench.results.store import read_records


def test_each_repeat_splits_with_its_own_seed_and_repeat_zero_is_the_single_run():
    import pandas as pd

    records = pd.DataFrame({"subject": np.repeat(np.arange(40), 2), "age": np.tile([20.0, 50.0], 40),
                            "gender": np.tile([0, 1], 40)})
    proto = OmegaConf.create({"name": "kfold", "n_folds": 4, "val_fraction": 0.1, "stratify": [], "repeats": 3})
    folds = make_folds(records, proto, seed=0)
    assert [f.key for f in folds] == [(r, k) for r in range(3) for k in range(4)]
    single = make_folds(records, OmegaConf.create({**OmegaConf.to_container(proto), "repeats": 1}), seed=0)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds[:4], single, strict=True))
    assert not np.array_equal(folds[0].test, folds[4].test)  # another split in repeat 1
    for r in range(3):  # every repeat is a partition of the faces, subject-exclusive
        tests = np.concatenate([f.test for f in folds if f.repeat == r])
        assert sorted(tests) == list(range(80))
    assert len({repeat_seed(0, r) for r in range(3)} | {repeat_seed(1, 1)}) == 4
    for bad in (0, "abc", 2.5):
        with pytest.raises(UserError, match="protocol.repeats"):
            make_folds(records, OmegaConf.create({**OmegaConf.to_container(proto), "repeats": bad}), seed=0)
    with pytest.raises(UserError, match="protocol=holdout has fixed splits"):
        make_folds(records, OmegaConf.create({"name": "holdout", "repeats": 2}), seed=0)


@pytest.mark.slow
def test_repeats_train_resume_after_a_kill_and_pair_by_repeat_and_fold(cli, tmp_path):
    from conftest import TINY

    out = tmp_path / "run"
    args = ["train", *[o for o in TINY if not o.startswith("protocol.n_folds")], "protocol.n_folds=2",
            "protocol.repeats=2", "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.threads=1",
            "tasks=age", f"output_dir={out}"]
    killed = cli(*args, env={"AGEBENCH_TEST_KILL_AT": "repeat=1,fold=0,epoch=1"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    first = read_records(out / "results.jsonl")
    assert [(r["repeat"], r["fold"]) for r in first] == [(0, 0), (0, 1)]
    assert (out / "repeat_1" / "fold_0" / "checkpoints" / "last.ckpt").exists()

    env = {k: v for k, v in os.environ.items() if k != "AGEBENCH_TEST_KILL_AT"}
    resumed = cli(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "fold 1/4" in resumed.stdout and "already finished; skipped" in resumed.stdout
    records = read_records(out / "results.jsonl")
    assert [(r["repeat"], r["fold"]) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # 4, not 5
    assert [r["started_at"] for r in records[:2]] == [r["started_at"] for r in first]  # not trained again
    assert records[2]["resumed_from_epoch"] == 0 and records[2]["checkpoint"].startswith("repeat_1/fold_0/")
    summary = (out / "summary.json").read_text()
    assert '"folds_ok": [\n    0,\n    1,\n    [\n      1,\n      0\n    ],' in summary

    # a multi-task partner on the same 2 × 2 folds: the report pairs (repeat, fold) with (repeat, fold)
    multi = tmp_path / "multi"
    assert cli(*[a for a in args if not a.startswith(("output_dir", "tasks"))], "tasks=age_gender",
               f"output_dir={multi}", env=env).returncode == 0
    from agebench.report.document import build_document

    cfg = OmegaConf.create({"runs": [str(out), str(multi)], "table": None, "format": "md", "percent": True,
                            "precision": 2, "incomplete": "mark", "compare": True, "confidence": 0.95,
                            "filters": {}, "metrics": None, "ignore": [], "power": None})
    _, _, groups, _, _ = build_document(cfg)
    from agebench.report.stats import compare_single_multi

    (c,) = compare_single_multi(groups, ["age/top1"])
    assert c.result.folds == [0, 1, (1, 0), (1, 1)] and c.result.runs == 2 and c.result.n == 4
    assert all(g.complete and g.folds_text == "4/4" for g in groups)


def test_repeats_keep_the_config_hash_of_a_single_run():
    from agebench.results.provenance import config_hash

    def hashed(*overrides):
        return config_hash(OmegaConf.to_container(compose_config(list(overrides)), resolve=True))

    assert hashed() == hashed("protocol.repeats=1")  # runs from before the key still resume
    assert hashed() != hashed("protocol.repeats=2")
