"""The commands of this package: `agebench eval`, `agebench export` and `agebench profile`.

Each is a Hydra task function taking the composed config (conf/eval.yaml, conf/export.yaml,
conf/profile.yaml): it reads the command's keys, calls the library (agebench.evaluation.evaluate,
agebench.evaluation.export, agebench.evaluation.profile_models) and prints what it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from agebench.config.compose import hydra_task_overrides
from agebench.errors import UserError
from agebench.evaluation.evaluate import EvalOptions, evaluate
from agebench.evaluation.export import FORMATS, export_model, rebuild
from agebench.evaluation.profile_models import (
    format_set,
    format_single,
    profile_config,
    profile_entries,
    profile_set_rows,
)


def eval_command(cfg: DictConfig):
    """Hydra task function behind `agebench eval` (conf/eval.yaml)."""
    if cfg.get("ckpt") in (None, "", "???"):
        raise UserError("ckpt= is required: a run dir, a fold_<k>/ dir or a fold's checkpoints/best.ckpt")
    overrides = hydra_task_overrides()
    data_overrides = [o for o in overrides if o.startswith("data.")]
    e = cfg.eval
    options = EvalOptions(split=str(e.split), oversample=e.get("oversample"), protocol=cfg.get("protocol"),
                          limit_batches=e.get("limit_batches", "auto"), out=Path(str(e.out)) if e.get("out") else None,
                          cache_dir=Path(str(cfg.cache_dir)) if cfg.get("cache_dir") else None)
    folds = list(e.folds) if e.get("folds") is not None else None
    return evaluate(str(cfg.ckpt), cfg.get("data"), data_overrides, folds, options)


def export_command(cfg) -> dict:
    """Hydra task function behind `agebench export` (conf/export.yaml)."""
    if cfg.get("ckpt") in (None, "", "???"):
        raise UserError("ckpt= is required: a fold's checkpoints/best.ckpt, a fold_<k>/ dir or a run dir (fold 0)")
    fmt = str(cfg.get("format", "onnx"))
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r}; choose onnx or torchscript")
    model, run_cfg, tasks, fold = rebuild(str(cfg.ckpt))
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    out = Path(str(cfg.out)) if cfg.get("out") else fold.checkpoint.parent.parent / "export" / f"model{suffix}"
    e = cfg.export
    report = export_model(model, run_cfg, tasks, out, fmt, opset=int(e.opset), check_batch=int(e.check_batch),
                          atol=float(e.atol), extra={"run_dir": str(fold.run_dir.resolve()), "fold": fold.fold,
                                                     "checkpoint": str(fold.checkpoint.resolve()),
                                                     "config_hash": fold.record.get("config_hash")},
                          class_names=fold.record.get("class_names"))
    worst = max(report["check"]["max_abs_diff"].values())
    print(f"agebench export: {out} ({fmt}, {out.stat().st_size / 1e6:.2f} MB); outputs {', '.join(report['outputs'])} "
          f"match PyTorch within {worst:.1e} on a batch of {report['check']['batch']}; preprocessing in its metadata "
          f"and {out.name}.json")
    return report


def profile_command(cfg, overrides: list[str] | None = None) -> None:
    """`agebench profile`: print the cost figures of one model or of a profile set (table or JSON).

    `overrides` are the command line's (read from Hydra when not given); a profile set's entries are
    composed with them."""
    if overrides is None:
            overrides = hydra_task_overrides()
    fmt = str(cfg.get("format", "table"))
    if fmt not in ("table", "json"):
        raise UserError(f"format={fmt!r}; use table or json")
    chosen = profile_entries(cfg)
    if chosen is None:
        result = profile_config(cfg)
        print(json.dumps(result, indent=2) if fmt == "json" else format_single(result))
        return
    name, title, entries = chosen
    if not entries:
        raise UserError(f"profile set {name!r} lists no models; add entries under `models:`")
    rows = profile_set_rows(entries, overrides)
    if fmt == "json":
        keep = ("device", "threads", "torch")
        doc = {"profile_set": name, "title": title, **{k: rows[0][k] for k in keep},
               "models": [{k: v for k, v in r.items() if k not in keep} for r in rows]}
        print(json.dumps(doc, indent=2))
    else:
        print(format_set(name, title, rows))
