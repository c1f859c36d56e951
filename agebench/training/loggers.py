"""The experiment logger of a fold, from the `logger` config group (conf/logger/*.yaml).

`logger.name` is the stable name (csv, tensorboard, wandb, none) the run config records; `logger._target_`
is what it builds (hydra-style: a class or factory), called with `save_dir=<output_dir>/fold_<k>`, the
entries of `logger.options`, and `context=` (the fold's run config and record) when the target takes it.
A user adds a logger with a new conf/logger/<name>.yaml; `name: none` (no `_target_`) logs nothing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from agebench.errors import UserError


@dataclass(frozen=True)
class LoggerContext:
    cfg: object      # the run config (DictConfig)
    cfg_dict: dict   # the same, resolved to plain values (what the record stores)
    record: dict     # the fold's run record so far: dataset, model, tasks, fold, variant, study, trial


def make_logger(cfg, cfg_dict, record: dict, fold_dir: Path):
    """The Lightning logger of one fold, or False (`logger=none`)."""
    from agebench.config.locate import locate

    lg = cfg.logger
    target = lg.get("_target_")
    if target is None:
        if str(lg.get("name", "none")) == "none":
            return False
        raise UserError(f"logger {lg.get('name')!r} names no _target_; use wandb, csv, tensorboard or none "
                        f"(or give conf/logger/{lg.get('name')}.yaml a _target_)")
    factory = locate(str(target), "logger", "lightning.pytorch.loggers.CSVLogger")
    options = OmegaConf.to_container(lg.options, resolve=True) if lg.get("options") is not None else {}
    try:
        takes_context = "context" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_context = False
    if takes_context:
        options["context"] = LoggerContext(cfg, cfg_dict, record)
    return factory(save_dir=str(fold_dir), **options)


def finish_logger(cfg) -> None:
    """End the fold's logger run where its library keeps one open per process (W&B)."""
    if str(cfg.logger.get("name")) == "wandb":
        import wandb

        wandb.finish()  # one W&B run per fold: never let the next fold (or multirun job) merge into this one


def wandb_logger(save_dir: str, context: LoggerContext):
    """One W&B run per fold: group = study or experiment, job_type = fold k, tags = dataset/model/tasks,
    and the run's identity (variant, study, trial) next to its resolved config (docs/wandb.md)."""
    from lightning.pytorch.loggers import WandbLogger

    cfg, record = context.cfg, context.record
    Path(save_dir).mkdir(parents=True, exist_ok=True)
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
                         name=run_name, tags=tags, save_dir=save_dir, mode=str(lg.get("mode", "offline")),
                         config={k: v for k, v in context.cfg_dict.items() if k != "hydra"} | identity)
    # Lightning always passes anonymous=None, and wandb warns "The anonymous setting has no effect" for any value
    logger._wandb_init.pop("anonymous", None)
    return logger
