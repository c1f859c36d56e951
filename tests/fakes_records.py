"""Fabricated run records with known numbers, shaped like the ones `agebench train` writes.

`make_record` builds one fold's record (top-level fields, `metrics`, the resolved `config`, `history`);
`write_run` writes one experiment run's results.jsonl; `fake_study` lays out a small set of
configurations (single-task age / gender and multi-task age+gender on two LMTCNN widths, one of them
with a failed and a missing fold) whose per-fold values are listed in `VALUES` so tests can compute the
expected mean ± std and paired statistics independently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# per-fold metric values of the fabricated study (5 folds)
VALUES = {
    ("age", (1, 1)): {"age/top1": [0.40, 0.42, 0.38, 0.44, 0.41], "age/top2": [0.65, 0.66, 0.62, 0.69, 0.64]},
    ("gender", (1, 1)): {"gender/acc": [0.80, 0.82, 0.81, 0.79, 0.83]},
    ("age+gender", (1, 1)): {"age/top1": [0.43, 0.44, 0.41, 0.47, 0.42], "age/top2": [0.67, 0.69, 0.63, 0.70, 0.66],
                             "gender/acc": [0.81, 0.81, 0.83, 0.80, 0.82]},
    # width 2-1, multi-task: folds 0-2 ok, fold 3 diverged, fold 4 never ran
    ("age+gender", (2, 1)): {"age/top1": [0.45, 0.47, 0.44], "age/top2": [0.70, 0.71, 0.69],
                             "gender/acc": [0.84, 0.85, 0.86]},
}
COSTS = {(1, 1): {"params": 1_250_000, "gmacs": 0.31, "size_mb": 5.0, "latency_ms": 2.5},
         (2, 1): {"params": 3_400_000, "gmacs": 0.62, "size_mb": 13.6, "latency_ms": 4.0}}


def make_config(*, experiment="fake", dataset="synthetic", model="lmtcnn", tasks=("age", "gender"), width=(1, 1),
                gamma=None, bins="adience8", seed=0, n_folds=5, folds=None, head="classification", weighting="fixed",
                extra=None) -> dict:
    cfg = {
        "experiment_name": experiment,
        "seed": seed,
        "output_dir": f"outputs/{experiment}/2024-01-01_00-00-00",
        "cache_dir": None,
        "data": {"name": dataset, "root": None, "image_size": 56, "batch_size": 64, "num_workers": 0},
        "model": {"name": model, "width": list(width), "input_size": 227, "dropout": 0.5},
        "tasks": {"names": list(tasks),
                  "age": {"head": head, "bins": bins, "range": [0, 80], "loss": "l1", "cs_thresholds": [5]},
                  "gender": {"loss": "ce"}, "race": {"loss": "ce", "classes": 5}},
        "loss": {"weighting": weighting, "gamma": gamma, "weights": {"age": 1.0, "gender": 1.0, "race": 1.0}},
        "protocol": {"name": "kfold", "n_folds": n_folds, "folds": list(folds) if folds is not None else None},
        "trainer": {"accelerator": "cpu", "max_epochs": 30, "devices": 1},
        "logger": {"name": "csv"},
        "optim": {"name": "adamw", "lr": 1e-3},
    }
    for dotted, value in (extra or {}).items():
        cur = cfg
        parts = dotted.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return cfg


def make_record(fold: int, metrics: dict | None = None, *, status="ok", experiment="fake", dataset="synthetic",
                model="lmtcnn", tasks=("age", "gender"), width=(1, 1), gamma=None, bins="adience8", seed=0,
                n_folds=5, folds=None, epochs=10, train_seconds=60.0, params=1_000_000, gmacs=0.3, size_mb=4.0,
                latency_ms=2.0, history=None, predictions=None, extra_config=None, **fields) -> dict:
    config = make_config(experiment=experiment, dataset=dataset, model=model, tasks=tasks, width=width, gamma=gamma,
                         bins=bins, seed=seed, n_folds=n_folds, folds=folds, extra=extra_config)
    record = {
        "experiment": experiment, "dataset": dataset, "model": model, "tasks": list(tasks),
        "loss": {"gamma": gamma, "weights": {t: 1.0 for t in tasks}, "weighting": "fixed"},
        "age_bins": bins, "protocol": "kfold", "fold": fold, "seed": seed, "status": status,
        "metrics": dict(metrics or {}) if status == "ok" else {},
        "epochs": epochs, "train_seconds": train_seconds, "params": params, "gmacs": gmacs, "size_mb": size_mb,
        "latency_ms": latency_ms, "git_sha": "0" * 40, "config_hash": "fake", "started_at": f"2024-01-01T00:0{fold}:00",
        "host": "fake-host", "config": config,
        "history": history if history is not None else [
            {"epoch": e, "train/loss": 2.0 / (e + 1), "val/loss": 2.2 / (e + 1) + 0.05 * fold,
             "val/age/top1": 0.2 + 0.02 * e} for e in range(5)],
    }
    if predictions is not None:
        record["predictions"] = predictions
    record.update(fields)
    return record


def write_run(run_dir: Path, records: list[dict]) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "results.jsonl"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return path


def fake_study(root: Path, experiment: str = "fake", with_predictions: bool = False) -> Path:
    """Four configurations under root/<run>/results.jsonl; returns root."""
    root = Path(root)
    rng = np.random.default_rng(0)
    for (tasks, width), values in VALUES.items():
        task_list = tasks.split("+")
        run_dir = root / f"{tasks.replace('+', '_')}_w{width[0]}{width[1]}"
        records = []
        n = len(next(iter(values.values())))
        for fold in range(n):
            preds = None
            if with_predictions and "age" in task_list:
                true = rng.integers(0, 8, size=200)
                pred = np.where(rng.random(200) < 0.5, true, rng.integers(0, 8, size=200))
                run_dir.mkdir(parents=True, exist_ok=True)
                np.savez(run_dir / f"predictions_fold{fold}.npz", age_true=true, age_pred=pred)
                preds = f"predictions_fold{fold}.npz"
            records.append(make_record(fold, {m: v[fold] for m, v in values.items()}, experiment=experiment,
                                       tasks=task_list, width=width, predictions=preds, **COSTS[width]))
        if width == (2, 1):
            records.append(make_record(3, None, status="diverged", experiment=experiment, tasks=task_list,
                                       width=width, **COSTS[width]))
        write_run(run_dir, records)
    return root
