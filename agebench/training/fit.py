"""One fold: build its model, module, data and trainer, fit with early stopping, test the best
checkpoint, and fill in the fold's run record (`run_fold` keeps the record's status true when the fold
diverges, crashes or is stopped by a signal).
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import numpy as np

from agebench.errors import DivergedError, UserError
from agebench.files import NO_SPACE, disk_full
from agebench.training import signals
from agebench.training.fold_context import FoldContext
from agebench.training.run_record import new_record, trainer_description

log = logging.getLogger("agebench.training")


def run_fold(ctx: FoldContext) -> dict:
    """The run record of `ctx.fold` after fitting it: status ok, diverged or failed (with the error)."""
    record = new_record(ctx)
    cfg, fold, fold_dir = ctx.cfg, ctx.fold, ctx.fold_dir
    t0 = time.perf_counter()
    try:
        record.update(fit_fold(ctx, record))
        record["status"] = "ok"
    except DivergedError as err:
        record.update(status="diverged", error=str(err))
    except UserError:
        raise
    except SystemExit as err:  # a stop signal: say which fold is unfinished, then keep exiting (128+signal)
        raise signals.fold_stopped(err, fold.index, fold_dir, int(cfg.trainer.max_epochs)) from None
    except Exception as err:  # a crash in one fold is recorded; the other folds still run
        if isinstance(err, OSError) and err.errno in NO_SPACE:  # one line, no record: the rerun resumes the fold
            raise disk_full(Path(err.filename or fold_dir), err) from None
        log.error("fold %d failed:\n%s", fold.index, traceback.format_exc())
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    record["train_seconds"] = round(time.perf_counter() - t0, 3)
    return record


def fit_fold(ctx: FoldContext, record: dict, extra_callbacks=()) -> dict:
    """Train and test one fold; the record fields it measured. `extra_callbacks` join the trainer's
    callbacks (benchmarks/fold_overhead.py times the phases of this very function with one)."""
    import lightning.pytorch as pl
    import torch

    from agebench.data.datamodule import FaceDataModule
    from agebench.data.label_budget import apply_age_label_budget
    from agebench.training.builders import build_model, build_trainer
    from agebench.training.callbacks import fold_callbacks
    from agebench.training.fold_progress import FoldProgress
    from agebench.training.loggers import finish_logger, make_logger
    from agebench.training.module import MultiTaskModule

    cfg, cfg_dict, dataset, tasks, fold, fold_dir = ctx.cfg, ctx.cfg_dict, ctx.dataset, ctx.tasks, ctx.fold, ctx.fold_dir
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    image_size = ctx.sizes.image_size
    model = build_model(cfg, tasks, image_size=image_size)
    profile = _profile(model, image_size, int(cfg.profile.latency_iters))

    module = MultiTaskModule(model, tasks, cfg.loss, cfg.optim, image_size=image_size,
                             max_epochs=int(cfg.trainer.max_epochs), seed=int(cfg.seed),
                             oversample=bool(cfg.eval.oversample), channels_last=bool(cfg.trainer.channels_last))
    if cfg.trainer.channels_last:  # weights in the layout of the inputs: no per-step weight reorder
        module.model = module.model.to(memory_format=torch.channels_last)
    if cfg.trainer.get("compile"):
        module.model = torch.compile(module.model)
    on_gpu = str(cfg.trainer.accelerator) in ("gpu", "cuda")
    dataset_fold = ctx.dataset_fold
    targets = apply_age_label_budget(cfg.data, dataset.records, ctx.plan.targets, dataset_fold.train)  # data.age_label_fraction
    datamodule = FaceDataModule(dataset.images, targets, dataset_fold, batch_size=int(cfg.data.batch_size),
                                num_workers=int(cfg.data.num_workers), seed=int(cfg.seed), pin_memory=on_gpu)

    monitor, mode = str(cfg.early_stopping.monitor), str(cfg.early_stopping.mode)
    callbacks = fold_callbacks(cfg, fold.index, fold_dir, FoldProgress(cfg, fold, record, profile.get("params")),
                               extra=extra_callbacks, repeat=fold.repeat)
    logger = make_logger(cfg, cfg_dict, record, fold_dir)
    trainer = build_trainer(cfg, logger=logger, callbacks=callbacks.all, default_root_dir=str(fold_dir))
    try:
        last = fold_dir / "checkpoints" / "last.ckpt"
        resumed_from = _checkpoint_epoch(last, fold.index) if last.exists() else None
        with signals.deferred():  # weights_only: a planted checkpoint cannot run code (our IO enforces it too)
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resumed_from is not None else None,
                        weights_only=True)
            best = callbacks.best.best_model_path or str(last)
            trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics = {k: float(v) for k, v in module.last_metrics.get("test", {}).items()}
        uncertainty, calibration = module.test_uncertainty()  # AuRC, ECE and their curves
        metrics.update(uncertainty)
        predictions = fold_dir / "predictions.npz"
        if trainer.is_global_zero:
            np.savez_compressed(predictions, **module.test_predictions)
        history = callbacks.history.history
        result = {
            "metrics": metrics,
            "val_metrics": _val_metrics(module, history),
            "epochs": int(trainer.current_epoch),
            "best_epoch": _best_epoch(history, monitor, mode),
            "resumed_from_epoch": resumed_from,  # epoch (0-based) of the last.ckpt this fold resumed from
            "history": history,
            "predictions": str(predictions.relative_to(ctx.out)),  # run-dir relative (repeat_<r>/fold_<k>/…)
            "breakdown": _breakdown(tasks, module, dataset, dataset_fold),  # per age decade / gender / race
            "calibration": calibration,  # reliability bins per classifier, the age risk–coverage curve
            "checkpoint": str(Path(best).relative_to(ctx.out)) if best else None,
            "trainer": trainer_description(cfg, on_gpu),
            **profile,
        }
        if logger and hasattr(logger, "experiment") and cfg.logger.name == "wandb":
            logger.experiment.summary.update({f"test/{k}": v for k, v in metrics.items()} | profile)
        return result
    finally:
        finish_logger(cfg)


def _checkpoint_epoch(path: Path, fold_index: int) -> int | None:
    """The epoch `path` (a fold's last.ckpt) ends, read with weights_only=True; None after an unreadable
    or unsafe file was moved aside (the fold then restarts from scratch)."""
    from agebench.training.checkpointing import read_or_move_aside

    checkpoint = read_or_move_aside(path, f"fold {fold_index}")
    return None if checkpoint is None else int(checkpoint.get("epoch", 0))


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
    from agebench.models.profile import profile_model

    p = profile_model(model, image_size, latency_iters=latency_iters)
    return {"params": p["params"], "gmacs": p["gmacs"], "size_mb": p["size_mb"], "latency_ms": p["latency_ms"]}


def _breakdown(tasks, module, dataset, dataset_fold) -> dict:
    from agebench.results.breakdown import fold_breakdown

    return fold_breakdown(tasks, module.test_predictions, dataset.records.iloc[dataset_fold.test], dataset.race_names)

