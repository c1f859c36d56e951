"""One progress line per finished sweep trial: its parameters, its objective(s) and the study's best so far."""

from __future__ import annotations

from agebench.runtime import progress


def _values_text(names: list[str], values) -> str:
    return ", ".join(f"{m}={progress.number(v)}" for m, v in zip(names, values or [], strict=False))


def best_so_far(spec, study) -> str:
    """`best: trial 3 age/top1=0.41` (one objective) or `Pareto front: trials 2, 5` (several)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not done:
        return "no complete trial yet"
    if spec.multi_objective:
        front = sorted(t.number for t in study.best_trials)
        return f"Pareto front: trial{'s' if len(front) > 1 else ''} {', '.join(map(str, front))}"
    pick = max if spec.directions[0] == "maximize" else min
    best = pick(done, key=lambda t: t.values[0])
    return f"best: trial {best.number} {_values_text(spec.metric_names, best.values)}"


def report_trial(spec, study, storage, trial, state: str) -> None:
    """Called once a trial is told to the study (any final state)."""
    from agebench.sweeps.storage import FAIL_KIND, FAIL_REASON

    frozen = storage.get_trial(trial._trial_id)
    params = " ".join(spec.space.overrides(frozen.params)) or "(no params)"
    outcome = _values_text(spec.metric_names, frozen.values) if state == "COMPLETE" else \
        (frozen.user_attrs.get(FAIL_REASON) or frozen.user_attrs.get(FAIL_KIND) or "")
    budget = f"/{spec.n_trials}" if getattr(spec, "n_trials", None) else ""
    finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    progress.say(f"sweep {spec.study_name} · trial {trial.number} {state.lower()} ({finished}{budget} finished) · "
                 f"{params} · {outcome or '—'} · {best_so_far(spec, study)}")
