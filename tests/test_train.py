"""`agebench train` end to end on tiny synthetic data: records, determinism, leakage, resume, loggers."""

import json
import os

import pytest
from omegaconf import OmegaConf

from agebench.config.compose import compose_config
from agebench.errors import LeakageError, UserError
from agebench.results.store import RECORD_FIELDS, read_records
from agebench.training.experiment import run_experiment


def run(overrides, out):
    cfg = compose_config([*overrides, f"output_dir={out}"])
    return run_experiment(cfg, str(out))


def test_run_writes_records_and_summary(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    summary = run(tiny_overrides, out)
    records = read_records(out / "results.jsonl")
    assert [r["fold"] for r in records] == [0, 1, 2]
    for r in records:
        assert set(RECORD_FIELDS) <= set(r)
        assert r["status"] == "ok"
        assert {"age/top1", "age/top2", "age/one_off", "age/mae", "gender/acc"} <= set(r["metrics"])
        assert r["params"] > 0 and r["gmacs"] > 0 and r["size_mb"] > 0 and r["latency_ms"] > 0
        assert r["tasks"] == ["age", "gender"] and r["age_bins"]["name"] == "adience8" and r["dataset"] == "synthetic"
        # issue 11: age bins recorded as data, and the input size the network was built at
        assert r["age_bins"]["num_bins"] == len(r["age_bins"]["edges"]) == 8 and r["age_bins"]["edges"][0] == [0.0, 2.0]
        assert r["image_size"] == r["config"]["data"]["image_size"] == r["config"]["model"]["input_size"]
        assert len(r["config_hash"]) == 12 and r["git_sha"] and r["versions"]["torch"] and r["hardware"]["cpu_count"]
        assert (out / r["predictions"]).exists() and r["history"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["metrics"]["age/top1"]["n"] == 3
    assert on_disk["metrics"] == summary["metrics"]


def test_same_config_and_seed_give_identical_metrics(tiny_overrides, tmp_path):
    a = run(tiny_overrides + ["protocol.folds=[0]"], tmp_path / "a")
    b = run(tiny_overrides + ["protocol.folds=[0]"], tmp_path / "b")
    c = run(tiny_overrides + ["protocol.folds=[0]", "seed=1"], tmp_path / "c")
    assert a["metrics"] == b["metrics"]
    assert a["metrics"] != c["metrics"]


def test_rerun_skips_finished_folds(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    run(tiny_overrides + ["protocol.folds=[0]"], out)
    before = (out / "results.jsonl").read_text()
    run(tiny_overrides + ["protocol.folds=[0,1]"], out)
    records = read_records(out / "results.jsonl")
    assert [r["fold"] for r in records] == [0, 1]
    assert (out / "results.jsonl").read_text().startswith(before)  # fold 0's record untouched


def test_different_config_in_same_dir_is_refused(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    run(tiny_overrides + ["protocol.folds=[0]"], out)
    with pytest.raises(UserError, match="different config"):
        run(tiny_overrides + ["protocol.folds=[0]", "optim.lr=0.5"], out)


def test_config_hash_ignores_how_a_run_executes():
    """More loader workers, another thread count, background checkpoint writes or another fold subset
    continue the same experiment; a different learning rate is a different one."""
    import copy

    from agebench.results.provenance import config_hash

    cfg = compose_config(["trainer=debug"])
    base = OmegaConf.to_container(cfg, resolve=True)
    untouched = copy.deepcopy(base)
    executed_elsewhere = compose_config(["trainer=debug", "data.num_workers=4", "trainer.threads=2",
                                         "trainer.async_checkpoint=true", "protocol.folds=[1]",
                                         "profile.latency_iters=3"])
    assert config_hash(base) == config_hash(OmegaConf.to_container(executed_elsewhere, resolve=True))
    assert base == untouched  # the record's config keeps every key
    other = compose_config(["trainer=debug", "optim.lr=0.5"])
    assert config_hash(base) != config_hash(OmegaConf.to_container(other, resolve=True))


def test_leaking_subjects_fails_before_training(tiny_overrides, tmp_path):
    with pytest.raises(LeakageError, match="both train and test"):
        run(tiny_overrides + ["protocol.leak_subjects_for_testing=0.3"], tmp_path / "run")
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_gamma_three_tasks_and_uncertainty(tiny_overrides, tmp_path):
    s = run(tiny_overrides + ["protocol.folds=[0]", "tasks=age_gender_race", "loss=uncertainty"], tmp_path / "u")
    assert {"age/top1", "gender/acc", "race/acc"} <= set(s["metrics"])
    run(tiny_overrides + ["protocol.folds=[0]", "loss.gamma=0.3"], tmp_path / "g")
    (rec,) = read_records(tmp_path / "g" / "results.jsonl")
    assert rec["loss"]["gamma"] == 0.3 and rec["loss"]["weights"] == pytest.approx({"gender": 0.3, "age": 0.7})


def test_regression_head_and_oversampled_evaluation(tiny_overrides, tmp_path):
    s = run(tiny_overrides + ["protocol.folds=[0]", "tasks=age", "tasks.age.head=regression", "eval.oversample=true"], tmp_path / "r")
    assert {"age/mae", "age/cs5", "age/top1"} <= set(s["metrics"])


def test_divergence_is_recorded_not_raised(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="diverged"):
        run(tiny_overrides + ["protocol.folds=[0]", "optim.lr=1e30", "optim.name=sgd", "optim.momentum=0"], out)
    (rec,) = read_records(out / "results.jsonl")
    assert rec["status"] == "diverged" and "non-finite" in rec["error"]


def test_wandb_offline_logs_each_fold_and_finishes(tiny_overrides, tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [o for o in tiny_overrides if not o.startswith("logger=")] + ["logger=wandb", "protocol.folds=[0,1]"]
    out = tmp_path / "run"
    run(overrides, out)
    assert wandb.run is None  # finished after every fold
    runs = sorted(p.name for p in out.glob("fold_*/wandb/offline-run-*"))
    assert len(runs) == 2


@pytest.mark.slow
def test_kill_during_fold_then_resume(cli, tmp_path):
    from conftest import TINY

    out = tmp_path / "run"
    # one thread pinned: with a thread count chosen from the machine's load, float sums may differ in the last bits
    args = ["train", *TINY, "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.threads=1", f"output_dir={out}"]
    killed = cli(*args, env={"AGEBENCH_TEST_KILL_AT": "fold=1,epoch=1"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    records = read_records(out / "results.jsonl")
    assert [r["fold"] for r in records] == [0]
    fold0 = (out / "results.jsonl").read_text()
    assert (out / "fold_1" / "checkpoints" / "last.ckpt").exists()

    env = {k: v for k, v in os.environ.items() if k != "AGEBENCH_TEST_KILL_AT"}
    resumed = cli(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = read_records(out / "results.jsonl")
    assert [r["fold"] for r in records] == [0, 1, 2]  # 3 records, not 4
    assert (out / "results.jsonl").read_text().splitlines()[0] == fold0.splitlines()[0]
    # fold 1 resumed from the checkpoint written at the end of its epoch 0; fold 2 started fresh
    assert records[1]["resumed_from_epoch"] == 0 and records[2]["resumed_from_epoch"] is None

    # and the resumed fold equals an uninterrupted one: data order, augmentation and dropout of an epoch
    # depend on (seed, epoch) only, and last.ckpt holds the latest epoch's full state
    clean_out = tmp_path / "clean"
    clean = cli(*args[:-1], f"output_dir={clean_out}", "protocol.folds=[1]", env=env)
    assert clean.returncode == 0, clean.stderr[-2000:]
    uninterrupted = read_records(clean_out / "results.jsonl")[0]
    assert uninterrupted["metrics"] == records[1]["metrics"]
    # the whole record, history and best epoch included (the history travels in last.ckpt), less when,
    # where and how fast it ran, and the output_dir and fold selection inside its config
    volatile = {"train_seconds", "latency_ms", "started_at", "host", "hardware", "resumed_from_epoch"}

    def comparable(record):
        kept = {k: v for k, v in record.items() if k not in volatile}
        kept["config"] = {k: v for k, v in record["config"].items() if k != "output_dir"}
        kept["config"]["protocol"] = {k: v for k, v in record["config"]["protocol"].items() if k != "folds"}
        return kept

    assert len(records[1]["history"]) == 2
    assert comparable(records[1]) == comparable(uninterrupted)


def test_checkpoints_sync_and_async_give_the_same_fold(tiny_overrides, tmp_path):
    """trainer.async_checkpoint (trainer=gpu's default) snapshots checkpoints and writes them from a
    background thread: the fold ends with the same metrics and a last.ckpt of its final epoch."""
    import torch

    common = tiny_overrides + ["protocol.folds=[0]", "trainer.max_epochs=3"]
    sync = run(common, tmp_path / "sync")
    background = run([*common, "trainer.async_checkpoint=true"], tmp_path / "async")
    assert sync["metrics"] == background["metrics"]
    for name, flag in (("sync", False), ("async", True)):
        record = read_records(tmp_path / name / "results.jsonl")[0]
        assert record["trainer"]["async_checkpoint"] is flag
        checkpoints = tmp_path / name / "fold_0" / "checkpoints"
        best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=False)
        assert best["state_dict"] and "optimizer_states" not in best  # weights only: testing needs no more
        last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
        assert last["epoch"] == 2 and last["optimizer_states"]  # every epoch, full state: resume from the latest


def test_ddp_without_torchrun_is_one_clear_error(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(UserError, match="torchrun --nproc_per_node"):
        run([*tiny_overrides, "trainer.strategy=ddp", "trainer.devices=2", "protocol.folds=[0]"], tmp_path / "ddp")


@pytest.mark.slow
def test_ddp_under_torchrun_writes_one_record_per_fold(tmp_path):
    """Two CPU processes (gloo) train one fold together: rank 0 alone writes the record, and the metrics
    cover the whole test set (every rank evaluates all of it)."""
    import subprocess
    import sys

    import numpy as np
    from conftest import PROJECT_ROOT, TINY

    out = tmp_path / "ddp"
    args = [a for a in TINY if not a.startswith("trainer=")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "agebench.cli.main",
           "train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
           "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.async_checkpoint=false", *args,
           "protocol.folds=[0]", f"output_dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_records(out / "results.jsonl")
    assert [(r["fold"], r["status"]) for r in records] == [(0, "ok")]
    predictions = np.load(out / records[0]["predictions"])
    assert len(predictions["age_pred"]) == records[0]["fold_sizes"]["test"]
