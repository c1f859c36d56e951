"""The run record of one fold: what it trained (experiment, dataset, model, tasks, loss, age bins,
sizes, protocol, fold, seed) and where (git sha, host, hardware, versions), before any training;
agebench/training/fit.py adds the results. The fields are the public contract of the run record (docs/architecture.md);
agebench/results/store.py stores and reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agebench.results.provenance import git_sha, hardware, versions


def new_record(ctx) -> dict:
    """A fold's record as it starts (`ctx`: its agebench.training.fold_context.FoldContext): status
    "failed" until its fit returns (a crash keeps that)."""
    cfg, dataset, tasks, fold, sizes = ctx.cfg, ctx.dataset, ctx.tasks, ctx.fold, ctx.sizes
    machine = hardware()
    return {
        "experiment": cfg.experiment_name,
        "variant": cfg.get("variant"),
        "dataset": dataset.name,
        "model": cfg.model.name,
        "tasks": [t.name for t in tasks],
        "task_outputs": {t.name: t.num_outputs for t in tasks},  # rebuilds the model (agebench eval/export)
        # class names in output order: eval scores another dataset's classes by name, export writes them
        "class_names": {"gender": ["male", "female"],
                        **({"race": list(dataset.race_names)} if getattr(dataset, "race_names", None) else {})},
        "loss": loss_description(cfg, tasks),
        "age_bins": age_bins_entry(tasks),
        "age_head": age_head(tasks),  # head, its decoding to years, its bins
        "image_size": sizes.image_size,  # the network input actually built and trained (agebench.training.builders)
        "load_size": sizes.load_size,    # the cached size the crops were taken from
        "protocol": cfg.protocol.name,
        "fold": fold.index,
        "repeat": fold.repeat,  # with protocol.repeats, (repeat, fold) is the fold's key
        "fold_sizes": fold.sizes(),
        "seed": int(cfg.seed),
        "status": "failed",
        "metrics": {},
        "epochs": 0,
        "train_seconds": 0.0,
        "params": None, "gmacs": None, "size_mb": None, "latency_ms": None,
        "git_sha": git_sha(),
        "config_hash": ctx.config_hash,
        "records_fingerprint": ctx.records_fingerprint,  # which record table the folds were made from
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": machine["host"],
        "hardware": machine,
        "versions": versions(),
        "notes": list(dataset.notes),
        "config": ctx.cfg_dict,
        **(ctx.extra or {}),
    }


def loss_description(cfg, tasks) -> dict:
    from agebench.training.module import loss_weights

    names = [t.name for t in tasks]
    return {"weighting": str(cfg.loss.get("weighting", "fixed")), "gamma": cfg.loss.get("gamma"),
            "weights": loss_weights(names, cfg.loss)}


def age_bins_entry(tasks) -> dict | None:
    """The age task's bins as data: {"name", "edges" (each bin's closed [lo, hi] in years, in order),
    "num_bins"}; None without an age task or with an unbinned (regression) age head. Reports group by
    `name` and never parse it."""
    for t in tasks:
        if t.name == "age":
            bins = getattr(t, "bins", None)
            if bins is None:
                return None
            return {"name": bins.name, "edges": [[float(lo), float(hi)] for lo, hi in bins.intervals],
                    "num_bins": int(bins.num_bins)}
    return None


def age_head(tasks) -> dict | None:
    from agebench.tasks.age_heads import describe

    return describe(tasks)


def trainer_description(cfg, on_gpu: bool) -> dict:
    """How the fold executed (precision, threads, loader, determinism): the record's `trainer` field."""
    import torch

    from agebench.runtime.threads import current
    from agebench.training.builders import cudnn_benchmark

    t = cfg.trainer
    choice = current()
    return {"precision": str(t.precision), "accelerator": str(t.accelerator), "compile": bool(t.get("compile")),
            "channels_last": bool(t.channels_last), "threads": torch.get_num_threads(),
            "threads_reason": choice.reason if choice else None, "num_workers": int(cfg.data.num_workers),
            "batch_size": int(cfg.data.batch_size), "deterministic": bool(t.deterministic),
            "cudnn_benchmark": cudnn_benchmark(t), "matmul_precision": t.get("matmul_precision"),
            "pin_memory": on_gpu, "async_checkpoint": bool(t.get("async_checkpoint"))}
