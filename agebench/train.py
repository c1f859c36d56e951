"""`agebench train`: run one experiment over its protocol's folds and write the results store.

For each selected fold: build the model, profile it, train with early stopping on a validation metric,
test the best checkpoint on the held-out fold, append a run record to `results.jsonl` and rewrite
`summary.json`. Rerunning with the same `output_dir` skips finished folds and resumes an unfinished
one from its last checkpoint. An experiment may declare `variants` (named override lists, e.g.
single-task age vs age+gender): each runs as its own experiment in `output_dir/<variant>/`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agebench import locking, preflight, progress, signals
from agebench.config import compose_config, hydra_output_dir, hydra_task_overrides
from agebench.data.loading import LoadedDataset, load_dataset
from agebench.data.protocols import TEST_SIDES, Fold, check_leakage, make_folds, shared_subjects
from agebench.errors import DivergedError, UserError
from agebench.files import NO_SPACE, disk_full
from agebench.provenance import config_hash, git_sha, hardware, versions
from agebench.recipe_models import check_variant_models
from agebench.results import (
    RESULTS_FILE,
    SUMMARY_FILE,
    append_record,
    atomic_write_json,
    atomic_write_text,
    drop_records,
    read_records,
    summarise,
)
from agebench.tasks import build_tasks, missing_tasks, targets_for
from agebench.validation import check_train_config

log = logging.getLogger("agebench.train")

# TEST-ONLY fault injection: "fold=1,epoch=1" hard-kills the process (as SIGKILL would) when that
# fold starts that epoch, after the previous epoch's checkpoint is on disk; "fold=1,epoch=1,signal=TERM"
# sends itself SIGTERM there instead.
FAULT_ENV = "AGEBENCH_TEST_KILL_AT"


def train_command(cfg: DictConfig):
    """Hydra task function behind `agebench train`."""
    output_dir = hydra_output_dir() or str(cfg.output_dir)
    with progress.log_to(output_dir):  # first and last stdout lines: where the output goes
        progress.output_started(output_dir)
        try:
            result = run_variants(cfg, output_dir) if cfg.get("variants") else run_experiment(cfg, output_dir)
        except UserError:
            raise
        except BaseException:
            progress.output_finished(output_dir, ok=False)
            raise
        progress.output_finished(output_dir)
    return result


# ---------------------------------------------------------------------------------------------------
# variants

def run_variants(cfg: DictConfig, output_dir: str, base_overrides: list[str] | None = None) -> dict:
    """Run each named variant of `cfg` (its overrides on top of the command line's) in its own dir."""
    base = hydra_task_overrides() if base_overrides is None else list(base_overrides)
    base = [o for o in base if not o.startswith(("output_dir=", "variants"))]
    check_variant_models(cfg.experiment_name, base, cfg.variants)  # a variant's model= would drop the user's
    summaries = {}
    for name, overrides in cfg.variants.items():
        variant_cfg = compose_config(base + list(overrides) + [f"output_dir={Path(output_dir) / name}", "variants=null"])
        OmegaConf.set_struct(variant_cfg, False)
        variant_cfg.variant = str(name)
        summaries[name] = run_experiment(variant_cfg, str(Path(output_dir) / name), print_table=False)
    if cfg.get("closing_report"):  # the report's own table, the paired answer, the dir (agebench/report/closing.py)
        from agebench.report.closing import closing_text

        print(closing_text(output_dir, str(cfg.closing_report)))
    elif cfg.get("summary_table"):
        print(format_summary_table(summaries))
    return summaries


def format_summary_table(summaries: dict[str, dict]) -> str:
    """A small mean ± std table over folds, one row per variant (the quickstart's closing output)."""
    from agebench.metrics import default_columns  # the registry's compact-table columns

    metrics = sorted(default_columns(m for s in summaries.values() for m in s["metrics"]))
    header = ["variant", "folds"] + metrics
    rows = []
    for name, s in summaries.items():
        cells = [name, str(len(s["folds_ok"]))]
        for m in metrics:
            v = s["metrics"].get(m)
            cells.append(f"{v['mean']:.3f} ± {v['std']:.3f}" if v else "—")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# one experiment

def run_experiment(cfg: DictConfig, output_dir: str, on_fold_end=None, extra_record: dict | None = None,
                   print_table: bool | None = None) -> dict:
    """Train every selected fold not finished yet; returns the experiment summary (see results.summarise).

    `on_fold_end(fold_index, record)` is called after each fold's record is written (sweeps report
    intermediate values there and may raise to prune); `extra_record` is merged into every record."""
    check_train_config(cfg)  # every value valid before any fold starts or record is written
    preflight.check_device(cfg.trainer)  # trainer=gpu on a machine without one: one line, no "failed" records
    _quiet_lightning()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(cfg_dict)
    _set_threads(cfg.trainer, int(cfg.data.get("num_workers") or 0))

    dataset = load_dataset(cfg.data, _cache_dir(cfg))
    tasks = build_tasks(cfg.tasks, race_classes=len(dataset.race_names) or None)
    _check_tasks(cfg, dataset, tasks)
    rows = _rows_for_tasks(dataset, tasks, allow_missing=bool(cfg.data.get("allow_missing_labels", False)))
    records = dataset.records.iloc[rows].reset_index(drop=True)
    targets = targets_for(tasks, dataset.records, dataset.native_age_bins)

    folds = make_folds(records, cfg.protocol, int(cfg.seed), _split_list_reader(dataset.name))
    selected = _select_folds(folds, cfg.protocol.get("folds"))
    for fold in selected:
        empty = [side for side, n in fold.sizes().items() if n == 0]
        if empty:
            raise UserError(f"fold {fold.index} has no {' or '.join(empty)} rows ({fold.sizes()}); use more data, "
                            f"fewer protocol.n_folds or a larger protocol.val_fraction")
    if bool(cfg.protocol.get("subject_exclusive", True)):
        for fold in selected:  # fail before any training when a split leaks
            _check_fold_leakage(cfg, records, fold)

    results_path = out / RESULTS_FILE
    existing = read_records(results_path)
    _check_same_config(existing, chash, out, extra_record)
    done = {r["fold"] for r in existing if r.get("status") == "ok" and _same_trial(r, extra_record)}
    writer = _global_rank() == 0  # under DDP every rank trains each fold; rank 0 alone writes results
    if writer:  # atomic: concurrent runs on one dir write it at the same time
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    progress.plan_folds([f.index for f in selected])  # progress lines say "fold k/n"
    # SIGTERM/SIGINT/SIGUSR1: stop at a safe point, exit 128+signal, resumable (agebench/signals.py)
    with signals.stop_on_signals(requeue=bool(cfg.trainer.get("slurm_requeue", True))):
        for fold in selected:
            signals.raise_if_requested()
            if fold.index in done:
                progress.fold_skipped(fold.index, cfg.get("variant"), (extra_record or {}).get("trial"))
                continue
            claim = _claim_fold(out, fold.index, results_path, extra_record)  # one process per fold
            if claim is None:
                continue
            with claim:
                with progress.log_to(out):
                    record = run_fold(cfg, cfg_dict, chash, dataset, tasks, records, rows, targets, fold, out, extra_record)
                    progress.fold_finished(record)
                if writer:
                    with locking.exclusive(out / locking.RESULTS_LOCK):  # concurrent runs append, never overwrite
                        append_record(results_path, record)
                        _write_summary(cfg, out, extra_record)  # after every fold, so a killed run keeps a true summary
            if on_fold_end is not None:
                on_fold_end(fold.index, record)

    if not writer:
        return summarise([])
    summary = _write_summary(cfg, out, extra_record)
    if (print_table if print_table is not None else cfg.get("summary_table")):
        print(format_summary_table({cfg.get("variant") or cfg.experiment_name: summary}))
    failed = [r for r in read_records(results_path) if r.get("status") != "ok" and _same_trial(r, extra_record)]
    if failed and on_fold_end is None:
        reasons = "; ".join(f"fold {r['fold']}: {r['status']} ({r.get('error', '')})" for r in failed)
        raise RuntimeError(f"{len(failed)} fold(s) did not finish: {reasons}; see {results_path}")
    return summary


def _claim_fold(out: Path, fold_index: int, results_path: Path, extra_record):
    """This process's lock on the fold, or None when another process is training it or has finished it
    since this run read results.jsonl. Under DDP every rank trains every fold together: no lock."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return contextlib.nullcontext()
    claim = locking.claim_fold(out / f"fold_{fold_index}")
    if claim is None:
        log.warning("fold %d is being trained by another process (it holds %s); skipping it here — rerun when "
                    "that process has finished to include it in %s", fold_index, out / f"fold_{fold_index}" / locking.FOLD_LOCK,
                    SUMMARY_FILE)
        return None
    if any(r.get("fold") == fold_index and r.get("status") == "ok" and _same_trial(r, extra_record)
           for r in read_records(results_path)):
        claim.release()
        log.info("fold %d was finished by another process meanwhile; skipping", fold_index)
        return None
    return claim


def _write_summary(cfg, out: Path, extra_record) -> dict:
    records = [r for r in read_records(out / RESULTS_FILE) if _same_trial(r, extra_record)]
    summary = {"experiment": cfg.experiment_name, "variant": cfg.get("variant"), **summarise(records)}
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def _same_trial(record: dict, extra: dict | None) -> bool:
    extra = extra or {}
    return all(record.get(k) == extra.get(k) for k in ("study", "trial"))


def _check_same_config(existing: list[dict], chash: str, out: Path, extra) -> None:
    """Refuse a dir holding results of another config. `failed` records hold no results: those of
    another config (a run that crashed on a bad value) are dropped, so the corrected command runs."""
    mine = [r for r in existing if _same_trial(r, extra)]
    other = {r.get("config_hash") for r in mine if r.get("status") != "failed"} - {chash}
    if other:
        raise UserError(f"{out} already holds results of a different config (hash {sorted(other)[0]} vs {chash}); "
                        f"use a new output_dir, or the same overrides to resume")
    if _global_rank() == 0 and any(r.get("status") == "failed" and r.get("config_hash") != chash for r in mine):
        with locking.exclusive(out / locking.RESULTS_LOCK):  # as every writer of results.jsonl
            n = drop_records(out / RESULTS_FILE, lambda r: _same_trial(r, extra) and r.get("status") == "failed"
                             and r.get("config_hash") != chash)
        log.warning("%s: dropped %d failed record(s) of an earlier, different config", out / RESULTS_FILE, n)


def _check_fold_leakage(cfg, records, fold: Fold) -> None:
    if not cfg.protocol.get("split_lists"):
        check_leakage(records, fold)
        return
    check_leakage(records, fold, pairs=TEST_SIDES)
    overlap = shared_subjects(records, fold, "train", "val")
    if overlap:
        log.warning("fold %d: the split lists share %d subject(s) between train and val (validation drawn by "
                    "image); test stays subject-exclusive", fold.index, len(overlap))


def _select_folds(folds: list[Fold], wanted) -> list[Fold]:
    if wanted is None:
        return folds
    wanted = [int(k) for k in wanted]
    known = {f.index for f in folds}
    bad = [k for k in wanted if k not in known]
    if bad:
        raise UserError(f"protocol.folds={wanted} names fold(s) {bad} that do not exist; this protocol has folds 0..{len(folds) - 1}")
    return [f for f in folds if f.index in wanted]


def _check_tasks(cfg, dataset: LoadedDataset, tasks) -> None:
    missing = missing_tasks(tasks, dataset.records)
    if missing:
        carried = [t for t in ("age", "gender", "race") if t not in missing_tasks(build_tasks(
            OmegaConf.create({"names": [t], t: OmegaConf.to_container(cfg.tasks).get(t, {})}),
            race_classes=len(dataset.race_names) or None), dataset.records)]
        raise UserError(f"data={dataset.name} has no {' or '.join(missing)} labels; choose tasks from what it carries "
                        f"({', '.join(carried) or 'nothing'}), e.g. tasks={'_'.join(carried) or 'age'}")
    monitor = str(cfg.early_stopping.monitor)
    parts = monitor.split("/")
    if parts[0] != "val" or (parts[1:2] != ["loss"] and parts[1] not in {t.name for t in tasks}):
        raise UserError(f"early_stopping.monitor={monitor!r} is not a validation metric of this run; use val/loss or "
                        f"val/<task>/<metric> for a task in {[t.name for t in tasks]}")


def _rows_for_tasks(dataset: LoadedDataset, tasks, allow_missing: bool) -> np.ndarray:
    """Rows this task-set can use: every label it needs (or, for multi-source data, at least one)."""
    recs = dataset.records
    has = []
    for task in tasks:
        if task.name == "age":
            has.append(recs["age"].notna().to_numpy() | (recs["age_group"].to_numpy() >= 0))
        else:
            has.append(recs[task.name].to_numpy() >= 0)
    has = np.stack(has)
    keep = has.any(axis=0) if allow_missing else has.all(axis=0)
    return np.flatnonzero(keep)


def _split_list_reader(name: str):
    try:
        module = importlib.import_module(f"agebench.data.sources.{name}")
    except ImportError:
        return None
    return getattr(module, "read_split_lists", None)


def _cache_dir(cfg) -> Path:
    from agebench.paths import cache_dir

    return Path(cfg.cache_dir) if cfg.get("cache_dir") else cache_dir()


def _set_threads(trainer_cfg, num_workers: int = 0) -> None:
    import torch

    from agebench.threads import set_threads

    set_threads(trainer_cfg, num_workers)  # trainer.threads, else this job's share of the node (agebench/threads.py)
    if trainer_cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(str(trainer_cfg.matmul_precision))


def _quiet_lightning() -> None:
    """Keep Lightning's per-fold banners (GPU available, tips) out of the output; warnings stay."""
    import warnings

    import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO; lower them after)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")  # DDP: every rank evaluates the whole set


# ---------------------------------------------------------------------------------------------------
# one fold

def run_fold(cfg, cfg_dict, chash, dataset, tasks, records, rows, targets, fold: Fold, out: Path, extra) -> dict:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine = hardware()
    record = {
        "experiment": cfg.experiment_name,
        "variant": cfg.get("variant"),
        "dataset": dataset.name,
        "model": cfg.model.name,
        "tasks": [t.name for t in tasks],
        "task_outputs": {t.name: t.num_outputs for t in tasks},  # rebuilds the model (agebench eval/export)
        "loss": _loss_description(cfg, tasks),
        "age_bins": _age_bins_name(tasks),
        "age_head": _age_head(tasks),  # head, its decoding to years, its bins
        "protocol": cfg.protocol.name,
        "fold": fold.index,
        "fold_sizes": fold.sizes(),
        "seed": int(cfg.seed),
        "status": "failed",
        "metrics": {},
        "epochs": 0,
        "train_seconds": 0.0,
        "params": None, "gmacs": None, "size_mb": None, "latency_ms": None,
        "git_sha": git_sha(),
        "config_hash": chash,
        "started_at": started,
        "host": machine["host"],
        "hardware": machine,
        "versions": versions(),
        "notes": list(dataset.notes),
        "config": cfg_dict,
        **(extra or {}),
    }
    t0 = time.perf_counter()
    try:
        record.update(fit_fold(cfg, cfg_dict, dataset, tasks, rows, targets, fold, out / f"fold_{fold.index}", record))
        record["status"] = "ok"
    except DivergedError as err:
        record.update(status="diverged", error=str(err))
    except UserError:
        raise
    except SystemExit as err:  # a stop signal: say which fold is unfinished, then keep exiting (128+signal)
        raise signals.fold_stopped(err, fold.index, out / f"fold_{fold.index}", int(cfg.trainer.max_epochs)) from None
    except Exception as err:  # a crash in one fold is recorded; the other folds still run
        if isinstance(err, OSError) and err.errno in NO_SPACE:  # one line, no record: the rerun resumes the fold
            raise disk_full(Path(err.filename or out / f"fold_{fold.index}"), err) from None
        log.error("fold %d failed:\n%s", fold.index, traceback.format_exc())
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    record["train_seconds"] = round(time.perf_counter() - t0, 3)
    return record


def _loss_description(cfg, tasks) -> dict:
    from agebench.module import loss_weights

    names = [t.name for t in tasks]
    return {"weighting": str(cfg.loss.get("weighting", "fixed")), "gamma": cfg.loss.get("gamma"),
            "weights": loss_weights(names, cfg.loss)}


def _age_head(tasks) -> dict | None:
    from agebench.age_heads import describe

    return describe(tasks)


def _breakdown(tasks, module, dataset, dataset_fold) -> dict:
    from agebench.breakdown import fold_breakdown

    return fold_breakdown(tasks, module.test_predictions, dataset.records.iloc[dataset_fold.test], dataset.race_names)


def _age_bins_name(tasks) -> str | None:
    for t in tasks:
        if t.name == "age":
            bins = getattr(t, "bins", None)
            return bins.name if bins is not None else None
    return None


def fit_fold(cfg, cfg_dict, dataset, tasks, rows, targets, fold: Fold, fold_dir: Path, record: dict) -> dict:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from agebench.builders import build_model
    from agebench.data.datamodule import FaceDataModule
    from agebench.data.label_budget import apply_age_label_budget
    from agebench.module import MultiTaskModule

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    image_size = int(cfg.data.image_size)
    model = build_model(cfg, tasks)
    profile = _profile(model, image_size, int(cfg.profile.latency_iters))

    module = MultiTaskModule(model, tasks, cfg.loss, cfg.optim, image_size=image_size,
                             max_epochs=int(cfg.trainer.max_epochs), seed=int(cfg.seed),
                             oversample=bool(cfg.eval.oversample), channels_last=bool(cfg.trainer.channels_last))
    if cfg.trainer.channels_last:  # weights in the layout of the inputs: no per-step weight reorder
        module.model = module.model.to(memory_format=_channels_last())
    if cfg.trainer.get("compile"):
        module.model = _compile(module.model)
    on_gpu = str(cfg.trainer.accelerator) in ("gpu", "cuda")
    # fold indices address the task-filtered records; the image array and targets use dataset rows
    dataset_fold = Fold(fold.index, rows[fold.train], rows[fold.val], rows[fold.test])
    targets = apply_age_label_budget(cfg.data, dataset.records, targets, dataset_fold.train)  # data.age_label_fraction
    datamodule = FaceDataModule(dataset.images, targets, dataset_fold, batch_size=int(cfg.data.batch_size),
                                num_workers=int(cfg.data.num_workers), seed=int(cfg.seed), pin_memory=on_gpu)

    monitor, mode = str(cfg.early_stopping.monitor), str(cfg.early_stopping.mode)
    # Two checkpoints. best.ckpt: weights only (what testing needs; a third of LMTCNN's 90 MB with AdamW
    # state), written when the monitor improves. last.ckpt: full training state, written EVERY epoch so a
    # killed fold resumes from its latest epoch. (Lightning ≥ 2.6 writes `save_last=True` only alongside
    # a top-k save, i.e. at the best epoch: a resume would redo every epoch since.)
    async_writes = bool(cfg.trainer.get("async_checkpoint"))
    checkpoint = ModelCheckpoint(dirpath=fold_dir / "checkpoints", filename="best", monitor=monitor, mode=mode,
                                 save_top_k=1, save_weights_only=True, auto_insert_metric_name=False,
                                 enable_version_counter=False)
    # last.ckpt at train-epoch end, after HistoryCallback has added the epoch's row (monitoring callbacks
    # run last there): the checkpoint carries the history up to and including its epoch
    latest = ModelCheckpoint(dirpath=fold_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                             auto_insert_metric_name=False, enable_version_counter=False, save_on_train_epoch_end=True)
    history = HistoryCallback()
    callbacks = [checkpoint, latest, EarlyStopping(monitor=monitor, mode=mode, patience=int(cfg.early_stopping.patience)),
                 history]
    if os.environ.get(FAULT_ENV):
        callbacks.append(_KillAt(os.environ[FAULT_ENV], fold.index))
    callbacks.append(signals.stop_at_safe_point_callback())  # a stop signal ends the fold between batches
    callbacks.append(_fold_progress(cfg, fold, record, profile.get("params")))  # fold and epoch lines, live bar
    callbacks.append(_threads_callback(cfg))  # jobs started or ended since: re-split the cores each epoch
    logger = make_logger(cfg, cfg_dict, record, fold_dir)
    t = cfg.trainer
    trainer = build_trainer(cfg, logger=logger, callbacks=callbacks, default_root_dir=str(fold_dir))
    try:
        last = fold_dir / "checkpoints" / "last.ckpt"
        resumed_from = _checkpoint_epoch(last, fold.index) if last.exists() else None
        with signals.deferred():  # weights_only: a planted checkpoint cannot run code (our IO enforces it too)
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resumed_from is not None else None,
                        weights_only=True)
            best = checkpoint.best_model_path or str(last)
            trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics = {k: float(v) for k, v in module.last_metrics.get("test", {}).items()}
        predictions = fold_dir / "predictions.npz"
        if trainer.is_global_zero:
            np.savez_compressed(predictions, **module.test_predictions)
        result = {
            "metrics": metrics,
            "val_metrics": _val_metrics(module, history.history),
            "epochs": int(trainer.current_epoch),
            "best_epoch": _best_epoch(history.history, monitor, mode),
            "resumed_from_epoch": resumed_from,  # epoch (0-based) of the last.ckpt this fold resumed from
            "history": history.history,
            "predictions": str(predictions.relative_to(fold_dir.parent)),
            "breakdown": _breakdown(tasks, module, dataset, dataset_fold),  # per age decade / gender / race
            "checkpoint": str(Path(best).relative_to(fold_dir.parent)) if best else None,
            "trainer": {"precision": str(t.precision), "accelerator": str(t.accelerator), "compile": bool(t.get("compile")),
                        "channels_last": bool(t.channels_last), "threads": _threads(), "threads_reason": _threads_reason(), "num_workers": int(cfg.data.num_workers),
                        "batch_size": int(cfg.data.batch_size), "deterministic": bool(t.deterministic),
                        "cudnn_benchmark": _cudnn_benchmark(t), "matmul_precision": t.get("matmul_precision"),
                        "pin_memory": on_gpu, "async_checkpoint": async_writes},
            **profile,
        }
        if logger and hasattr(logger, "experiment") and cfg.logger.name == "wandb":
            logger.experiment.summary.update({f"test/{k}": v for k, v in metrics.items()} | profile)
        return result
    finally:
        _finish_logger(cfg)


def build_trainer(cfg, **overrides):
    """The `pl.Trainer` of a fold, from `cfg.trainer` (benchmarks/ builds the same one). Lean by design
    for many small runs: no progress bar, model summary or sanity validation; `overrides` win."""
    import lightning.pytorch as pl

    from agebench.checkpointing import checkpoint_plugins

    t = cfg.trainer
    _check_ddp_launch(t)
    options = dict(
        accelerator=str(t.accelerator), devices=t.devices, strategy=str(t.strategy), precision=str(t.precision),
        max_epochs=int(t.max_epochs), min_epochs=int(t.get("min_epochs") or 1),
        enable_progress_bar=False,  # agebench.fold_progress prints epoch lines / draws the bar (trainer.progress_bar)
        enable_model_summary=False, num_sanity_val_steps=0, deterministic=bool(t.deterministic),
        benchmark=_cudnn_benchmark(t),
        log_every_n_steps=int(t.log_every_n_steps), gradient_clip_val=t.get("gradient_clip_val"),
        limit_train_batches=t.get("limit_train_batches"), limit_val_batches=t.get("limit_val_batches"),
        limit_test_batches=t.get("limit_test_batches"),
        # DDP: EpochShuffledBatches splits training batches across ranks itself, and every rank evaluates the
        # whole validation/test set (exact metrics, identical on all ranks, so early stopping agrees)
        use_distributed_sampler=False,
    )
    options["plugins"] = checkpoint_plugins(t)  # direct atomic writes; background ones with async_checkpoint
    options["plugins"] += signals.cluster_plugins()  # on Slurm: no mid-epoch hpc checkpoints (agebench/signals.py)
    options.update(overrides)
    return pl.Trainer(**options)


def _global_rank() -> int:
    """This process's rank under torchrun (RANK), else 0."""
    return int(os.environ.get("RANK", "0"))


def _check_ddp_launch(t) -> None:
    """Lightning would re-run `sys.argv` to start the other DDP processes, which a console script plus
    Hydra cannot survive; under torchrun every process starts itself."""
    if str(t.strategy).startswith("ddp") and "LOCAL_RANK" not in os.environ and t.devices not in (1, "1"):
        raise UserError("trainer=ddp needs one process per device: launch with `torchrun --nproc_per_node=<devices> "
                        "-m agebench.cli train trainer=ddp …` (or use one device: trainer=gpu)")


def _cudnn_benchmark(t) -> bool:
    """cudnn.benchmark (autotuned conv algorithms; fixed batch shapes make it pay off): `trainer.benchmark`
    when set, else on for GPU runs that need not be bit-deterministic."""
    if t.get("benchmark") is not None:
        return bool(t.benchmark)
    return str(t.accelerator) in ("gpu", "cuda") and not bool(t.deterministic)


def _channels_last():
    import torch

    return torch.channels_last


def _checkpoint_epoch(path: Path, fold_index: int) -> int | None:
    """The epoch `path` (a fold's last.ckpt) ends, read with weights_only=True; None after an unreadable
    or unsafe file was moved aside (the fold then restarts from scratch)."""
    from agebench.checkpointing import read_or_move_aside

    checkpoint = read_or_move_aside(path, f"fold {fold_index}")
    return None if checkpoint is None else int(checkpoint.get("epoch", 0))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _threads_reason() -> str | None:
    from agebench.threads import current

    choice = current()
    return choice.reason if choice else None


def _threads_callback(cfg):
    from agebench.threads import epoch_callback

    return epoch_callback(cfg.trainer, int(cfg.data.get("num_workers") or 0))


def _fold_progress(cfg, fold, record, params):
    from agebench.fold_progress import FoldProgress

    return FoldProgress(cfg, fold, record, params)


def _compile(model):
    import torch

    return torch.compile(model)


def _val_metrics(module, history: list[dict]) -> dict:
    """The last validation's metrics; from the history's last row when this run validated nothing
    (a fold resumed from the checkpoint of its final epoch trains and validates no more)."""
    metrics = module.last_metrics.get("val")
    if metrics:
        return {k: float(v) for k, v in metrics.items()}
    last = history[-1] if history else {}
    return {k.removeprefix("val/"): v for k, v in last.items() if k.startswith("val/") and k != "val/loss"}


def _best_epoch(history: list[dict], monitor: str, mode: str) -> int | None:
    values = [(h.get(monitor), h["epoch"]) for h in history if h.get(monitor) is not None]
    if not values:
        return None
    return (min if mode == "min" else max)(values)[1]


def _profile(model, image_size: int, latency_iters: int) -> dict:
    """The run record's cost fields; measured before training (weights do not change them)."""
    from agebench.profile import profile_model

    p = profile_model(model, image_size, latency_iters=latency_iters)
    return {"params": p["params"], "gmacs": p["gmacs"], "size_mb": p["size_mb"], "latency_ms": p["latency_ms"]}


class HistoryCallback:
    """Per-epoch train/val metrics for learning curves (kept in the run record)."""

    def __new__(cls):
        from lightning.pytorch.callbacks import Callback

        class _History(Callback):
            def __init__(self):
                self.history: list[dict] = []

            def on_train_epoch_end(self, trainer, pl_module):
                row = {"epoch": int(trainer.current_epoch)}
                for key, value in trainer.callback_metrics.items():
                    if key.startswith(("train/", "val/")):
                        row[key] = float(value)
                self.history.append(row)

            # kept in last.ckpt, so a resumed fold's record has the whole history (and best epoch)
            def state_dict(self):
                return {"history": [dict(row) for row in self.history]}

            def load_state_dict(self, state_dict):
                self.history = [dict(row) for row in state_dict.get("history", [])]

        return _History()


class _KillAt:
    def __new__(cls, spec: str, fold_index: int):
        from lightning.pytorch.callbacks import Callback

        want = dict(part.split("=") for part in spec.split(","))
        # "signal=TERM" (or INT, USR1) sends that signal to this process instead of dying at once
        signum = getattr(signal, f"SIG{want['signal']}") if "signal" in want else None

        class _Kill(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if int(want["fold"]) == fold_index and int(want["epoch"]) == trainer.current_epoch:
                    if signum is None:
                        os._exit(137)
                    os.kill(os.getpid(), signum)

        return _Kill()


def make_logger(cfg, cfg_dict, record: dict, fold_dir: Path):
    name = str(cfg.logger.name)
    if name == "none":
        return False
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        # metrics.csv is current after every epoch: Lightning's logger connector calls save() after each
        # log_metrics (flush_logs_every_n_steps only adds flushes); tests/test_progress.py kills a fold to check
        return CSVLogger(save_dir=str(fold_dir), name="", version="csv")
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(fold_dir), name="", version="tensorboard")
    if name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        fold_dir.mkdir(parents=True, exist_ok=True)
        lg = cfg.logger
        group = lg.get("group") or record.get("study") or cfg.experiment_name
        tags = [record["dataset"], record["model"], "+".join(record["tasks"]), *list(lg.get("tags") or [])]
        run_name = "-".join(str(p) for p in (record.get("study") or cfg.experiment_name, record.get("variant"),
                                              f"trial{record['trial']}" if record.get("trial") is not None else None,
                                              f"fold{record['fold']}") if p is not None)
        # the record's identity next to the resolved config (which has tasks.names), so a workspace can
        # group and filter by variant, study and trial (docs/wandb.md)
        identity = {k: record.get(k) for k in ("fold", "variant", "study", "trial", "trial_params")}
        logger = WandbLogger(project=str(lg.project), entity=lg.get("entity"), group=str(group), job_type=f"fold_{record['fold']}",
                             name=run_name, tags=tags, save_dir=str(fold_dir), mode=str(lg.get("mode", "offline")),
                             config={k: v for k, v in cfg_dict.items() if k != "hydra"} | identity)
        # Lightning always passes anonymous=None, and wandb warns "The anonymous setting has no effect" for any value
        logger._wandb_init.pop("anonymous", None)
        return logger
    raise UserError(f"unknown logger {name!r}; use wandb, csv, tensorboard or none")


def _finish_logger(cfg) -> None:
    if str(cfg.logger.name) == "wandb":
        import wandb

        wandb.finish()  # one W&B run per fold: never let the next fold (or multirun job) merge into this one
