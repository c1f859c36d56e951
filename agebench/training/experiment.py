"""One experiment over its protocol's folds, resumably: train every selected fold not finished yet
(agebench/training/fit.py), append each fold's record to `results.jsonl` and rewrite `summary.json` after it.

Rerunning with the same `output_dir` skips finished folds and resumes an unfinished one from its last
checkpoint; a second process on the same dir skips the folds the first holds (agebench/training/locking.py); a
dir holding another config's results is refused (config_hash).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agebench.config import preflight
from agebench.config.validation import check_train_config
from agebench.data.loading import load_dataset
from agebench.errors import UserError
from agebench.results.provenance import config_hash
from agebench.results.store import (
    RESULTS_FILE,
    SUMMARY_FILE,
    append_record,
    atomic_write_json,
    atomic_write_text,
    drop_records,
    read_records,
    summarise,
)
from agebench.runtime import progress
from agebench.runtime.process import cache_dir, global_rank, quiet_lightning, set_threads
from agebench.training import locking, signals
from agebench.training.builders import resolve_sizes, sized_config
from agebench.training.fit import run_fold
from agebench.training.fold_context import FoldContext
from agebench.training.fold_plan import plan_folds
from agebench.training.summary_table import format_summary_table

log = logging.getLogger("agebench.training")


def run_experiment(cfg: DictConfig, output_dir: str, on_fold_end=None, extra_record: dict | None = None,
                   print_table: bool | None = None) -> dict:
    """Train every selected fold not finished yet; returns the experiment summary (see results.summarise).

    `on_fold_end(fold_index, record)` is called after each fold's record is written (sweeps report
    intermediate values there and may raise to prune); `extra_record` is merged into every record."""
    check_train_config(cfg)  # every value valid before any fold starts or record is written
    preflight.check_device(cfg.trainer)  # trainer=gpu on a machine without one: one line, no "failed" records
    sizes = resolve_sizes(cfg)  # once per experiment: every fold reads them from its FoldContext
    cfg = sized_config(cfg, sizes)  # the config (and so the record) states the input size the network is built at
    quiet_lightning()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(cfg_dict)
    set_threads(cfg.trainer, int(cfg.data.get("num_workers") or 0))

    dataset = load_dataset(cfg.data, cache_dir(cfg))
    plan = plan_folds(cfg, dataset)
    context = FoldContext(cfg, cfg_dict, chash, dataset, plan, sizes, out, extra_record,
                          records_fingerprint=dataset.fingerprint)

    results_path = out / RESULTS_FILE
    existing = read_records(results_path)
    check_same_config(existing, chash, out, extra_record)
    check_same_records(existing, context.records_fingerprint, {f.key: f.sizes() for f in plan.folds}, out,
                       extra_record)
    done = {_key(r) for r in existing if r.get("status") == "ok" and same_trial(r, extra_record)}
    writer = global_rank() == 0  # under DDP every rank trains each fold; rank 0 alone writes results
    if writer:  # atomic: concurrent runs on one dir write it at the same time
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    progress.plan_folds([f.key for f in plan.folds])  # progress lines say "fold k/n"
    # SIGTERM/SIGINT/SIGUSR1: stop at a safe point, exit 128+signal, resumable (agebench/training/signals.py)
    with signals.stop_on_signals(requeue=bool(cfg.trainer.get("slurm_requeue", True))):
        for fold in plan.folds:
            signals.raise_if_requested()
            if fold.key in done:
                progress.fold_skipped(fold.key, fold.dirname, cfg.get("variant"), (extra_record or {}).get("trial"))
                continue
            claim = claim_fold(out, fold, results_path, extra_record)  # one process per fold
            if claim is None:
                continue
            with claim:
                with progress.log_to(out):
                    record = run_fold(context.for_fold(fold))
                    progress.fold_finished(record)
                if writer:
                    with locking.exclusive(out / locking.RESULTS_LOCK):  # concurrent runs append, never overwrite
                        append_record(results_path, record)
                        write_summary(cfg, out, extra_record)  # after every fold, so a killed run keeps a true summary
            if on_fold_end is not None:  # a step number unique across repeats (sweeps report per step)
                on_fold_end(fold.repeat * len({f.index for f in plan.folds}) + fold.index, record)

    if not writer:
        return summarise([])
    summary = write_summary(cfg, out, extra_record)
    if (print_table if print_table is not None else cfg.get("summary_table")):
        print(format_summary_table({cfg.get("variant") or cfg.experiment_name: summary}))
    failed = [r for r in read_records(results_path) if r.get("status") != "ok" and same_trial(r, extra_record)]
    if failed and on_fold_end is None:
        reasons = "; ".join(f"fold {r['fold']}: {r['status']} ({r.get('error', '')})" for r in failed)
        raise RuntimeError(f"{len(failed)} fold(s) did not finish: {reasons}; see {results_path}")
    return summary


def _key(record: dict) -> tuple:
    """A record's (repeat, fold): the fold key of resume and locks (records before repeats: repeat 0)."""
    return (int(record.get("repeat") or 0), record.get("fold"))


def claim_fold(out: Path, fold, results_path: Path, extra_record):
    """This process's lock on the fold, or None when another process is training it or has finished it
    since this run read results.jsonl. Under DDP every rank trains every fold together: no lock."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return contextlib.nullcontext()
    claim = locking.claim_fold(out / fold.dirname)
    if claim is None:
        log.warning("fold %d is being trained by another process (it holds %s); skipping it here — rerun when "
                    "that process has finished to include it in %s", fold.index, out / fold.dirname / locking.FOLD_LOCK,
                    SUMMARY_FILE)
        return None
    if any(_key(r) == fold.key and r.get("status") == "ok" and same_trial(r, extra_record)
           for r in read_records(results_path)):
        claim.release()
        log.info("%s was finished by another process meanwhile; skipping", fold.dirname)
        return None
    return claim


def write_summary(cfg, out: Path, extra_record) -> dict:
    records = [r for r in read_records(out / RESULTS_FILE) if same_trial(r, extra_record)]
    summary = {"experiment": cfg.experiment_name, "variant": cfg.get("variant"), **summarise(records)}
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def same_trial(record: dict, extra: dict | None) -> bool:
    """Whether `record` belongs to the same sweep trial (study, trial) as `extra` (both None: no sweep)."""
    extra = extra or {}
    return all(record.get(k) == extra.get(k) for k in ("study", "trial"))


def check_same_records(existing: list[dict], fingerprint: str, sizes: dict, out: Path, extra) -> None:
    """Refuse to resume folds made from another record table (a parser that now keeps or skips other files, a
    changed data.root): the finished folds' splits would not be this run's. Records from before the
    fingerprint existed are compared by their folds' sizes."""
    finished = [r for r in existing if same_trial(r, extra) and r.get("status") == "ok"]
    other = {r.get("records_fingerprint") for r in finished if r.get("records_fingerprint")} - {fingerprint}
    resized = [r for r in finished if not r.get("records_fingerprint") and isinstance(r.get("fold_sizes"), dict)
               and _key(r) in sizes and r["fold_sizes"] != sizes[_key(r)]]
    if other or resized:
        why = (f"fingerprint {sorted(other)[0]} vs {fingerprint}" if other else
               f"fold {resized[0]['fold']} had {resized[0]['fold_sizes']}, now {sizes[_key(resized[0])]}")
        raise UserError(f"{out} holds folds trained on another record table ({why}: the dataset's files or their "
                        f"parsing changed); use a new output_dir")


def check_same_config(existing: list[dict], chash: str, out: Path, extra) -> None:
    """Refuse a dir holding results of another config. `failed` records hold no results: those of
    another config (a run that crashed on a bad value) are dropped, so the corrected command runs."""
    mine = [r for r in existing if same_trial(r, extra)]
    other = {r.get("config_hash") for r in mine if r.get("status") != "failed"} - {chash}
    if other:
        raise UserError(f"{out} already holds results of a different config (hash {sorted(other)[0]} vs {chash}); "
                        f"use a new output_dir, or the same overrides to resume")
    if global_rank() == 0 and any(r.get("status") == "failed" and r.get("config_hash") != chash for r in mine):
        with locking.exclusive(out / locking.RESULTS_LOCK):  # as every writer of results.jsonl
            n = drop_records(out / RESULTS_FILE, lambda r: same_trial(r, extra) and r.get("status") == "failed"
                             and r.get("config_hash") != chash)
        log.warning("%s: dropped %d failed record(s) of an earlier, different config", out / RESULTS_FILE, n)
