"""A sweep's Optuna study: opened or created in `sweep.storage`, checked against the spec, counted.

`open_study(spec)` is what every action starts from (run, status, export, dashboard, retry_failed);
`count_trials(trials)` is the one place that says what the budget (`sweep.n_trials`) and
`sweep.max_failures` count (see agebench/sweeps/driver.py for the rules).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

from agebench.errors import UserError
from agebench.sweeps.hints import sweep_hint
from agebench.sweeps.spec import SweepSpec
from agebench.sweeps.storage import (
    DISCARDED_KINDS,
    FAIL_KIND,
    RETRIED_KINDS,
    display_url,
    open_storage,
    superseded_failures,
)

log = logging.getLogger("agebench.sweep")

SPEC_ATTR = "agebench_sweep"
BUDGET_ATTR = "n_trials"          # the budget the last worker started with
TRIAL_DIR = "trial_dir"

def open_study(spec: SweepSpec, create: bool = True):
    """(study, storage) for the spec; creates the study unless `create` is false (status/export)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = spec.storage_url()
    if not create and spec.storage is None and not (spec.dir / "study.db").exists():
        raise UserError(f"no study {spec.study_name!r} yet: {spec.dir / 'study.db'} does not exist; start it with "
                        f"`{sweep_hint(spec)}` (or pass the sweep.storage / sweep.dir it ran with)")
    storage = open_storage(url)
    # the sampler continues the study's stream: seeded from the trials it holds (SweepSpec.sampler_seed)
    sampler, pruner = spec.make_sampler(_trials_in(storage, spec.study_name)), spec.make_pruner()
    if create:
        study = optuna.create_study(storage=storage, study_name=spec.study_name, directions=spec.directions,
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
    else:
        try:
            study = optuna.load_study(study_name=spec.study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            names = optuna.study.get_all_study_names(storage)
            raise UserError(f"no study {spec.study_name!r} in {display_url(url)} (it holds: {', '.join(names) or 'none'}); "
                            f"start it with `{sweep_hint(spec)}`") from None
    wanted = [d.upper() for d in spec.directions]
    have = [d.name for d in study.directions]
    if have != wanted:
        raise UserError(f"study {spec.study_name!r} in {display_url(url)} optimises {have}, but sweep {spec.name} "
                        f"asks for {wanted} ({', '.join(spec.metric_names)}); use a new sweep.study_name")
    if create:
        if not study.metric_names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # flagged experimental
                study.set_metric_names(spec.metric_names)
        if study.user_attrs.get(BUDGET_ATTR) != spec.n_trials:
            study.set_user_attr(BUDGET_ATTR, spec.n_trials)  # what action=status reports as the budget
        if SPEC_ATTR not in study.user_attrs:
            study.set_user_attr(SPEC_ATTR, spec.describe())
        elif study.user_attrs[SPEC_ATTR].get("params") != spec.describe()["params"]:
            log.warning("study %s was created with params %s; this worker samples %s", spec.study_name,
                        study.user_attrs[SPEC_ATTR].get("params"), spec.describe()["params"])
    return study, study._storage  # the wrapper Optuna itself writes through (RDB: a caching layer)


def _trials_in(storage, study_name: str) -> int:
    """How many trials the study already holds (0 when it does not exist yet)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


@dataclass
class Counts:
    by_state: dict[str, int] = field(default_factory=dict)
    budget_used: int = 0
    failures: int = 0
    retried: int = 0
    discarded: int = 0


def count_trials(trials) -> Counts:
    """Trials by state, and what the budget and sweep.max_failures see (agebench/sweeps/driver.py's docstring)."""
    from optuna.trial import TrialState

    c = Counts()
    trials = list(trials)
    superseded = superseded_failures(trials)  # failed trials queued again by action=retry_failed
    for t in trials:
        c.by_state[t.state.name] = c.by_state.get(t.state.name, 0) + 1
        kind = t.user_attrs.get(FAIL_KIND)
        if t.state == TrialState.FAIL and (kind in RETRIED_KINDS or t.number in superseded):
            c.retried += 1
        elif t.state == TrialState.FAIL and kind in DISCARDED_KINDS:
            c.discarded += 1
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL):
            c.budget_used += 1
            if t.state == TrialState.FAIL:
                c.failures += 1
    return c
