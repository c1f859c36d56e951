"""`agebench eval`: evaluate a trained checkpoint again, on its own test fold or on another dataset.

    agebench eval ckpt=<run dir | fold_<k>/ | fold_<k>/checkpoints/best.ckpt> [data=<dataset> data.root=…]
                  [eval.split=auto|test|val|train|all] [eval.folds=[0,2]] [protocol=<name>] [eval.oversample=true]

The model is rebuilt from the run's own saved config (`<run>/config.yaml`; the record in `results.jsonl`
names the checkpoint and the fold), so nothing about the training command line has to be repeated. The
target dataset is decoded at the run's input and load sizes and filtered by the same label rule as
training; `eval.split=auto` evaluates the trained fold's own test split when the target is the run's
own dataset (and then reproduces the run record's test metrics exactly) and the whole dataset
otherwise. Age bins: a target with exact ages is binned with the model's bins; a target that only
gives age groups in another scheme gets the model's class probabilities summed into its groups (by
bin centre), or one clear error when some group would receive no model bin.

Each evaluated checkpoint appends an **eval record** (the run record's fields, plus `kind: eval`,
`trained_on`, `tested_on`, `split`, `checkpoint`) to `evals.jsonl` in the run dir (or `eval.out`),
replacing an earlier eval of the same checkpoint on the same data and split, and writes a
predictions CSV (id, subject, per task: truth, prediction and scores). `agebench report` shows the
eval records as a trained-on × tested-on table (agebench/report/cross_dataset.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agebench.errors import UserError
from agebench.evaluation.target_data import evaluation_tasks, race_by_name, same_data, target_data_config
from agebench.evaluation.trained_runs import TrainedFold, load_weights, locate_checkpoints, run_config
from agebench.results.store import EVALS_FILE, append_record, atomic_write_text

log = logging.getLogger("agebench.eval")

SPLITS = ("auto", "test", "val", "train", "all")


# ---------------------------------------------------------------------------------------------------
# evaluation


@dataclass
class EvalOptions:
    split: str = "auto"
    oversample: bool | None = None     # None: as the run (its eval.oversample)
    protocol: DictConfig | None = None  # folds of the target; None: the run's protocol
    limit_batches: object = "auto"      # auto: the run's trainer.limit_test_batches on its own split
    out: Path | None = None
    cache_dir: Path | None = None


def evaluate(ckpt: str, data_cfg: DictConfig | None = None, data_overrides: list[str] | None = None,
             folds=None, options: EvalOptions | None = None, echo=print) -> list[dict]:
    """Evaluate every trained fold `ckpt` names; returns the eval records (also written)."""
    options = options or EvalOptions()
    if options.split not in SPLITS:
        raise UserError(f"eval.split={options.split!r}; choose one of {', '.join(SPLITS)}")
    run_dir, trained = locate_checkpoints(ckpt, folds)
    out = Path(options.out) if options.out else run_dir
    run_cfg = run_config(run_dir, trained[0].record)
    target_cfg = target_data_config(run_cfg, data_cfg, list(data_overrides or []))
    own_data = same_data(target_cfg, run_cfg.data)
    split = options.split if options.split != "auto" else ("test" if own_data else "all")
    records = []
    for fold in trained:
        record = evaluate_fold(fold, run_cfg, target_cfg, split, own_data, options, out)
        records.append(record)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(record["metrics"].items()))
        echo(f"agebench eval: fold {fold.fold} ({record['trained_on']} → {record['tested_on']}, {split}, "
             f"{record['fold_sizes']['test']} images): {shown}")
    echo(f"agebench eval: {len(records)} eval record(s) in {out / EVALS_FILE}; predictions in {out / 'evals'}")
    return records


def _cache_dir(options: EvalOptions, run_cfg) -> Path:
    from agebench.paths import cache_dir

    if options.cache_dir:
        return Path(options.cache_dir)
    return Path(run_cfg.cache_dir) if run_cfg.get("cache_dir") else cache_dir()


def _rows(dataset, tasks, data_cfg) -> np.ndarray:
    """Dataset rows the model's tasks can score: the label rule training applies."""
    from agebench.data.filtering import label_mask, require_from_cfg

    return np.flatnonzero(label_mask(dataset.records, [t.name for t in tasks], require_from_cfg(data_cfg)))


def _split_rows(split: str, fold_key: tuple[int, int], records, rows: np.ndarray, protocol_cfg, seed: int, name: str):
    """Dataset rows of `split` of the fold with key (repeat, fold) of the target, made by the protocol as
    training does."""
    from agebench.data.loading import split_list_reader as _split_list_reader
    from agebench.data.protocols import make_folds

    if split == "all":
        return rows
    folds = {f.key: f for f in make_folds(records, protocol_cfg, seed, _split_list_reader(name))}
    if fold_key not in folds:
        shown = sorted({k[1] for k in folds})
        raise UserError(f"eval.split={split}: protocol {protocol_cfg.name} on data={name} has folds "
                        f"{shown}, not the trained fold {fold_key[1]}; use eval.split=all or eval.folds=...")
    return rows[getattr(folds[fold_key], split)]


def _trainer_config(run_cfg, split: str, own_data: bool, limit) -> DictConfig:
    """The run's trainer settings (precision, channels_last, ...) for one process, on a device that exists."""
    import torch

    t = OmegaConf.create(OmegaConf.to_container(run_cfg.trainer, resolve=True))
    OmegaConf.set_struct(t, False)
    if str(t.accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        log.warning("the run trained on %s; no CUDA here, evaluating on cpu", t.accelerator)
        t.accelerator = "cpu"
    t.devices, t.strategy = 1, "auto"
    if limit == "auto":  # the run's own test split with the run's limit reproduces its record exactly
        limit = t.get("limit_test_batches") if (own_data and split == "test") else None
    t.limit_test_batches = limit
    return OmegaConf.create({"trainer": t})


def evaluate_fold(fold: TrainedFold, run_cfg, target_cfg, split: str, own_data: bool, options: EvalOptions,
                  out: Path) -> dict:
    import torch

    from agebench.data.datamodule import FaceDataModule
    from agebench.data.loading import load_dataset
    from agebench.data.protocols import Fold
    from agebench.runtime.process import quiet_lightning as _quiet_lightning
    from agebench.tasks.base import targets_for
    from agebench.tasks.factory import build_tasks
    from agebench.training.builders import build_trained_model, build_trainer, input_size
    from agebench.training.module import MultiTaskModule

    t0 = time.perf_counter()
    _quiet_lightning()
    # on a Slurm login node Lightning suggests `srun` for any Trainer; an evaluation is one local process
    warnings.filterwarnings("ignore", message=".*`srun` command is available.*")
    race_classes = (fold.record.get("task_outputs") or {}).get("race")
    tasks = build_tasks(run_cfg.tasks, race_classes=race_classes)
    dataset = load_dataset(target_cfg, _cache_dir(options, run_cfg))
    scored, mapping = evaluation_tasks(tasks, dataset, str(target_cfg.name))
    rows = _rows(dataset, tasks, target_cfg)
    records = dataset.records.iloc[rows].reset_index(drop=True)
    protocol = options.protocol if options.protocol is not None else run_cfg.protocol
    test_rows = _split_rows(split, (fold.repeat, fold.fold), records, rows, protocol, int(run_cfg.seed), dataset.name)
    if len(test_rows) == 0:
        raise UserError(f"data={dataset.name} {split} split of fold {fold.fold} has no images the model's tasks can score")

    targets = targets_for(scored, dataset.records, dataset.native_age_bins)
    race_note = None
    if "race" in targets:  # class i of the model is scored against the target's class of the same name
        targets["race"], race_note = race_by_name((fold.record.get("class_names") or {}).get("race"),
                                                  dataset.race_names, targets["race"], str(run_cfg.data.name),
                                                  str(target_cfg.name))
    model_targets = dict(targets)
    if mapping is not None:  # the module scores age in its own bins: give it none, score the mapped output below
        model_targets["age"] = np.stack([np.full(len(dataset.records), -1, np.float32),
                                         np.full(len(dataset.records), np.nan, np.float32)], axis=1)
    model = build_trained_model(run_cfg, tasks)
    oversample = bool(run_cfg.eval.oversample) if options.oversample is None else bool(options.oversample)
    module = MultiTaskModule(model, tasks, run_cfg.loss, run_cfg.optim, image_size=input_size(run_cfg),
                             max_epochs=int(run_cfg.trainer.max_epochs), seed=int(run_cfg.seed),
                             oversample=oversample, channels_last=bool(run_cfg.trainer.channels_last))
    load_weights(module, fold.checkpoint)
    if run_cfg.trainer.channels_last:
        module.model = module.model.to(memory_format=torch.channels_last)
    eval_fold = Fold(fold.fold, rows[:0], rows[:0], np.asarray(test_rows))
    datamodule = FaceDataModule(dataset.images, model_targets, eval_fold, batch_size=int(run_cfg.data.batch_size),
                                num_workers=int(target_cfg.get("num_workers") or 0), seed=int(run_cfg.seed))
    trainer_cfg = _trainer_config(run_cfg, split, own_data, options.limit_batches)
    trainer = build_trainer(trainer_cfg, logger=False, callbacks=[], enable_checkpointing=False,
                            default_root_dir=str(out / "evals"))
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in module.last_metrics.get("test", {}).items()}
    predictions = dict(module.test_predictions)
    uncertainty, _ = module.test_uncertainty()  # as training records them (a mapped age drops its own below)
    metrics.update(uncertainty)
    if mapping is not None:
        metrics = {k: v for k, v in metrics.items() if k not in ("age/aurc", "age/ece")}  # of the model's own bins
        age = next(t for t in scored if t.name == "age")
        mapped = mapping(torch.from_numpy(predictions["age_output"]))
        order = _prediction_order(test_rows, int(run_cfg.data.batch_size), len(mapped))
        truth = torch.from_numpy(targets["age"][order])
        metrics.update({f"age/{k}": float(v) for k, v in age.metrics(mapped, truth).items()})
        predictions.update(age_true=truth[:, 0].numpy(), age_pred=age.predict(mapped).numpy(), age_output=mapped.numpy())

    order = _prediction_order(test_rows, int(run_cfg.data.batch_size), len(next(iter(predictions.values()))))
    csv_path = write_predictions(out, fold, dataset, split, oversample, order, predictions, scored,
                                 tag="" if own_data else _data_tag(target_cfg))
    record = eval_record(fold, run_cfg, target_cfg, dataset, split, oversample, metrics, len(order), csv_path, out,
                         mapping, time.perf_counter() - t0)
    if race_note:
        record["notes"] = [*record.get("notes", []), race_note]
    append_record(out / EVALS_FILE, record, key=_eval_key)
    return record


def _prediction_order(test_rows: np.ndarray, batch_size: int, n: int) -> np.ndarray:
    """Dataset rows in the order predictions come out: batches of the split in order, each sorted
    (BatchSlices reads a batch's rows in file order); cut at `n` when the batches were limited."""
    rows = np.asarray(test_rows)
    parts = [np.sort(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
    return np.concatenate(parts)[:n] if parts else rows


# ---------------------------------------------------------------------------------------------------
# outputs


def _data_tag(target_cfg) -> str:
    text = json.dumps(OmegaConf.to_container(target_cfg, resolve=True), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def write_predictions(out: Path, fold: TrainedFold, dataset, split: str, oversample: bool, order: np.ndarray,
                      predictions: dict, tasks, tag: str = "") -> Path:
    """One row per evaluated image: id, subject, and per task its truth, prediction and scores
    (class probabilities for softmax heads, the raw output otherwise)."""
    import pandas as pd
    import torch

    columns = {"id": dataset.records["image"].to_numpy()[order], "subject": dataset.records["subject"].to_numpy()[order]}
    for task in tasks:
        name = task.name
        columns[f"{name}_true"] = predictions[f"{name}_true"][:, 0] if predictions[f"{name}_true"].ndim > 1 else predictions[f"{name}_true"]
        if name == "age" and predictions[f"{name}_true"].ndim > 1:
            columns["age_years_true"] = predictions["age_true"][:, 1]
        columns[f"{name}_pred"] = predictions[f"{name}_pred"]
        output = torch.from_numpy(np.asarray(predictions[f"{name}_output"]))
        if output.shape[-1] > 1:
            probs = output.float().softmax(-1).numpy()
            for k in range(probs.shape[1]):
                columns[f"{name}_p{k}"] = probs[:, k]
        else:
            columns[f"{name}_score"] = output[:, 0].numpy()
    # another data config than the run's (another root, another synthetic set) gets its own file
    name = f"{dataset.name}-{tag}" if tag else dataset.name
    path = out / "evals" / f"{name}_{split}{'_10crop' if oversample else ''}_fold{fold.fold}_predictions.csv"
    buffer = io.StringIO()
    pd.DataFrame(columns).to_csv(buffer, index=False)
    atomic_write_text(path, buffer.getvalue())
    return path


def eval_record(fold: TrainedFold, run_cfg, target_cfg, dataset, split, oversample, metrics, n, csv_path, out,
                mapping, seconds) -> dict:
    """A run record (same fields as `agebench train` writes) describing this evaluation."""
    from agebench.results.provenance import git_sha, hardware, versions

    trained = fold.record
    machine = hardware()
    notes = list(dataset.notes)
    if mapping is not None:
        notes.append(f"age: model bins {mapping.model_bins.name} mapped onto {mapping.target_bins.name} groups by bin centre")
    keep = ("experiment", "variant", "model", "tasks", "loss", "age_bins", "seed", "epochs", "train_seconds",
            "params", "gmacs", "size_mb", "latency_ms", "config_hash", "study", "trial", "trial_params", "task_outputs")
    return {
        **{k: trained.get(k) for k in keep if k in trained},
        "kind": "eval",
        "dataset": dataset.name,
        "trained_on": trained["dataset"],
        "tested_on": dataset.name,
        "protocol": str(run_cfg.protocol.name) if split != "all" else "all",
        "split": split,
        "oversample": bool(oversample),
        "fold": fold.fold,
        "fold_sizes": {"test": int(n)},
        "status": "ok",
        "metrics": metrics,
        "checkpoint": str(fold.checkpoint.resolve()),
        "run_dir": str(fold.run_dir.resolve()),
        "predictions": str(csv_path.relative_to(out)) if csv_path.is_relative_to(out) else str(csv_path),
        "eval_data": OmegaConf.to_container(target_cfg, resolve=True),
        "eval_data_tag": _data_tag(target_cfg),
        "eval_seconds": round(seconds, 3),
        "git_sha": git_sha(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": machine["host"],
        "hardware": machine,
        "versions": versions(),
        "notes": notes,
    }


def _eval_key(record: dict) -> tuple:
    """An eval replaces an earlier eval of the same checkpoint on the same data, split and crops."""
    return (record.get("checkpoint"), record.get("eval_data_tag"), record.get("split"), record.get("oversample"))


# ---------------------------------------------------------------------------------------------------
# `agebench eval`
