"""One sweep trial: compose its config, run its folds, and return each objective's fold mean.

`run_trial` reports the running fold mean to Optuna after each fold (pruning) and turns anything
that keeps a trial from giving its objectives into `TrialFailed(kind, reason)`, which the worker
loop (agebench/sweeps/driver.py) records as the trial's `fail_kind` / `fail_reason`.
"""

from __future__ import annotations

import logging
import math
import time

from agebench.errors import UserError
from agebench.sweeps.spec import SweepSpec

log = logging.getLogger("agebench.sweep")


class TrialFailed(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def run_trial(spec: SweepSpec, trial, params: dict, user_overrides: list[str]) -> list[float]:
    """Run one trial's folds; returns the fold mean of each objective or raises TrialFailed/TrialPruned."""
    import optuna

    from agebench.config.compose import compose_checked
    from agebench.results.store import RESULTS_FILE, read_records
    from agebench.training import experiment  # looked up at call time: tests replace run_experiment

    out = spec.trial_dir(trial.number)
    overrides = spec.trial_overrides(user_overrides, params, out)
    try:
        cfg = compose_checked(overrides)
    except UserError as err:
        raise TrialFailed("config", f"config does not compose: {err}") from None
    if cfg.get("variants"):
        raise TrialFailed("config", "the trial config declares `variants`; a sweep trial runs one experiment — "
                                    "sweep over the variant's overrides instead")
    extra = {"study": spec.study_name, "trial": trial.number, "trial_params": dict(params)}
    first = spec.objectives[0]
    seen: list[float] = []

    def on_fold_end(fold: int, record: dict) -> None:
        status = record.get("status")
        if status != "ok":
            kind = "diverged" if status == "diverged" else "error"
            raise TrialFailed(kind, f"fold {fold} {status}: {record.get('error', 'no error message')}")
        value = first.fold_value(record)
        if value is None or not math.isfinite(value):
            raise TrialFailed("no_objective", _missing(first.metric, record, fold))
        seen.append(value)
        if spec.prunes:
            trial.report(sum(seen) / len(seen), step=int(fold))
            if trial.should_prune():
                raise optuna.TrialPruned(f"running mean {first.metric}={seen[-1]:.4g} after fold {fold}")

    t0 = time.perf_counter()
    experiment.run_experiment(cfg, str(out), on_fold_end=on_fold_end, extra_record=extra, print_table=False)
    records = [r for r in read_records(out / RESULTS_FILE)
               if r.get("study") == spec.study_name and r.get("trial") == trial.number]
    bad = [r for r in records if r.get("status") != "ok"]
    if bad:
        r = bad[0]
        raise TrialFailed("diverged" if r.get("status") == "diverged" else "error",
                          f"fold {r.get('fold')} {r.get('status')}: {r.get('error', '')}")
    if not records:
        raise TrialFailed("no_objective", "the trial produced no run record (no folds selected?)")
    values = []
    for objective in spec.objectives:
        per_fold = [objective.fold_value(r) for r in records]
        if any(v is None or not math.isfinite(v) for v in per_fold):
            raise TrialFailed("no_objective", _missing(objective.metric, records[0], records[0].get("fold")))
        values.append(sum(per_fold) / len(per_fold))
    log.debug("trial %d took %.1f s", trial.number, time.perf_counter() - t0)
    return values


def _missing(metric: str, record: dict, fold) -> str:
    available = sorted((record.get("metrics") or {}).keys())
    return (f"objective {metric!r} missing or not finite on fold {fold}; the run reports "
            f"{', '.join(available) or 'no metrics'} (and record fields latency_ms, gmacs, params, size_mb)")
