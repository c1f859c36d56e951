"""The ask/tell worker loop of `agebench sweep` (the study: sweeps/study.py; one trial: sweeps/trial.py).

A worker opens (or creates) the study in `sweep.storage`, then repeats until the study's budget is
spent: fail trials whose worker died (no heartbeat), count the budget, ask for a trial, compose its
config, run its folds with `agebench.training.experiment.run_experiment` and tell Optuna the fold mean of each
objective. Any number of workers, on one machine or many, may run this loop on the same storage.

* **Budget.** `sweep.n_trials` counts the study's COMPLETE, PRUNED and FAIL trials plus the RUNNING
  ones of every worker; it is checked before each ask, so workers that ask in the same instant may
  overshoot it by at most (workers − 1) trials. Trials failed because their worker died or was
  interrupted are requeued and not counted; neither are discarded grid duplicates.
* **Unfinished trials.** A worker that finds the budget spent does not exit while another worker's
  trial is RUNNING and the budget would not be spent without it: a fresh heartbeat does not prove a
  live worker (one killed a moment ago looks the same), so it watches the trial until it beats again
  (a live worker: that worker finishes it) or goes silent for over 2 × `sweep.heartbeat_s` — then it
  waits until the trial is silent for `sweep.stale_after_s`, fails it as stale, requeues and runs it.
  A dead-looking trial is waited on for at most about `sweep.stale_after_s`. A worker never exits 0
  while a trial is WAITING, RUNNING without a live worker, or a failed grid point: it ends in one line
  (exit 4) that says which, and rerunning the same command finishes the study.
* **Pruning.** Single-objective studies with a pruner report, after each fold, the running fold mean
  of the objective (`trial.report(value, step=fold)`); a pruned trial ends as PRUNED.
* **Failures.** A fold that raises or diverges, a config that does not compose, or an objective the
  run does not produce ends the trial as FAIL with user attrs `fail_kind` and `fail_reason`; the
  worker goes on. Once `sweep.max_failures` trials have failed, every worker stops.
* **Grids.** With the grid sampler every point runs once: if two workers draw the same point at the
  same moment, the later trial is discarded (FAIL, `fail_kind=duplicate`, not counted) and the worker
  asks again. (Optuna's GridSampler gives trial k < grid size the k-th point, so this is rare.)
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from contextlib import contextmanager

from agebench.config import preflight
from agebench.config.validation import check_train_config
from agebench.errors import UserError
from agebench.sweeps.hints import sweep_hint
from agebench.sweeps.spec import SweepSpec
from agebench.sweeps.storage import (
    DISCARDED_KINDS,
    FAIL_KIND,
    FAIL_REASON,
    RETRIED_KINDS,
    WORKER,
    display_url,
    fail_stale_trials,
    heartbeat,
    last_sign_of_life,
    requeue,
    superseded_failures,
    worker_id,
)
from agebench.sweeps.study import TRIAL_DIR, Counts, count_trials, open_study
from agebench.sweeps.trial import TrialFailed, run_trial  # driver.run_trial: tests replace it here
from agebench.sweeps.trial_lines import report_trial
from agebench.training import signals

log = logging.getLogger("agebench.sweep")


class StudyStopped(UserError):
    """The study cannot go on (too many failures, interrupted); one line, non-zero exit."""

    exit_code = 4

    def __init__(self, message: str, exit_code: int = 4, interrupted: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.interrupted = interrupted  # a signal or Ctrl-C: no error of the study's (not recorded as one)


def _interrupted(number: int | None, err: BaseException) -> StudyStopped:
    """The one line a worker stopped by a signal ends with — during trial `number` (the run inside
    prints none: `signals.caller_reports_stops`) or between trials (None) — exiting 128 + the signal."""
    stop = signals.as_stop(err) if isinstance(err, SystemExit) else None
    signum = stop.signum if stop is not None else getattr(err, "signum", signal.SIGINT)  # Ctrl-C: SIGINT
    name = signals.NAMES.get(signum, f"signal {signum}")
    tail = f"; requeued Slurm job {stop.requeued}" if stop is not None and getattr(stop, "requeued", None) else ""
    where = (f"trial {number} is queued again for the next worker" if number is not None
             else "between trials, none was running")
    return StudyStopped(f"interrupted ({name}); {where}: rerun the same command to go on with the study{tail}",
                        exit_code=128 + int(signum), interrupted=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM as the worker loop sees it (`_sigterm_as_interrupt`): Ctrl-C's path, with its signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)


# ---------------------------------------------------------------------------------------------------
# worker loop


def run_worker(spec: SweepSpec, user_overrides: list[str], echo=print) -> dict:
    """Run trials until the study's budget is spent; returns this worker's tally."""
    _check_composes(spec, user_overrides)
    preflight.check_sweep(spec, user_overrides)  # sample configs compose, device and data exist: else no trial
    study, storage = open_study(spec)
    me = worker_id()
    echo(f"agebench sweep: study {spec.study_name!r} in {display_url(spec.storage_url())}; "
         f"budget {spec.n_trials} trials; worker {me}")
    tally = {"ran": 0, "complete": 0, "pruned": 0, "failed": 0}
    dead_wait = _DeadTrialWait(spec, me)
    with _sigterm_as_interrupt():
        while True:
            fail_stale_trials(study, storage, spec.stale_after_s)
            trials = study.get_trials(deepcopy=False)
            counts = count_trials(trials)
            if counts.budget_used >= spec.n_trials:
                pause = dead_wait.pause(trials, counts)
                if pause is None:
                    break
                time.sleep(pause)
                continue
            if spec.max_failures is not None and counts.failures >= spec.max_failures:
                raise StudyStopped(f"study {spec.study_name!r} stopped: {counts.failures} failed trials reached "
                                   f"sweep.max_failures={spec.max_failures}; see `{sweep_hint(spec, 'status')}` "
                                   f"for their reasons, then rerun them with "
                                   f"`{sweep_hint(spec, 'retry_failed', user_overrides)}`")
            trial = study.ask()
            storage.set_trial_user_attr(trial._trial_id, WORKER, me)
            storage.set_trial_user_attr(trial._trial_id, TRIAL_DIR, str(spec.trial_dir(trial.number)))
            with heartbeat(storage, trial._trial_id, spec.heartbeat_s):
                state = _run_and_tell(spec, study, storage, trial, user_overrides)
            if state == "DISCARDED":
                continue
            report_trial(spec, study, storage, trial, state)  # params, objective(s), the study's best so far
            tally["ran"] += 1
            tally[{"COMPLETE": "complete", "PRUNED": "pruned"}.get(state, "failed")] += 1
    counts = count_trials(study.get_trials(deepcopy=False))
    echo(f"agebench sweep: worker done after {tally['ran']} trial(s) ({tally['complete']} complete, "
         f"{tally['pruned']} pruned, {tally['failed']} failed); study {spec.study_name!r} has "
         f"{counts.budget_used}/{spec.n_trials} trials: {_state_text(counts)}")
    _fail_if_nothing_succeeded(spec, study, counts)
    _fail_if_unfinished(spec, study, dead_wait.alive | dead_wait.surplus)
    return tally


def _fail_if_unfinished(spec: SweepSpec, study, others: set[int]) -> None:
    """A worker never exits 0 while a point of the study is unfinished — WAITING, or RUNNING without a worker
    seen alive (a dead one, this worker's own crashed run) — or, for a grid, failed: rerunning the same
    command finishes it (issue 26). `others` are other workers' RUNNING trials that are not missing points:
    seen beating (theirs to finish), or surplus beyond a budget the finished trials already spend."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    superseded = superseded_failures(trials)
    open_ = [t.number for t in trials if t.state == TrialState.WAITING
             or (t.state == TrialState.RUNNING and t.number not in others)]
    failed = [t.number for t in trials if spec.kind == "grid" and t.state == TrialState.FAIL
              and t.number not in superseded and t.user_attrs.get(FAIL_KIND) not in RETRIED_KINDS + DISCARDED_KINDS]
    if open_ or failed:
        what = "; ".join(p for p in (f"trial(s) {', '.join(map(str, open_))} not finished" if open_ else "",
                                     f"grid point trial(s) {', '.join(map(str, failed))} failed" if failed else "") if p)
        how = ("rerun the same command to finish it" if open_ else "") + (" and " if open_ and failed else "") + \
              (f"`{sweep_hint(spec, 'retry_failed')}` reruns the failed points" if failed else "")
        raise StudyStopped(f"study {spec.study_name!r} ends with {what}: {how} "
                           f"(`{sweep_hint(spec, 'status')}` shows each trial's state)")


def _fail_if_nothing_succeeded(spec: SweepSpec, study, counts: Counts) -> None:
    """A finished study whose every counted trial failed is an error (exit 4), not a success: the
    cause is almost always the same for all (a bad base config, a missing objective)."""
    from optuna.trial import TrialState

    if counts.failures == 0 or any(counts.by_state.get(s, 0) for s in ("COMPLETE", "PRUNED", "RUNNING", "WAITING")):
        return
    failed = [t for t in study.get_trials(deepcopy=False)
              if t.state == TrialState.FAIL and t.user_attrs.get(FAIL_KIND) not in RETRIED_KINDS + DISCARDED_KINDS]
    first = failed[0].user_attrs if failed else {}
    raise StudyStopped(f"study {spec.study_name!r}: all {counts.failures} trial(s) failed; the first "
                       f"({first.get(FAIL_KIND, 'error')}): {str(first.get(FAIL_REASON, 'no reason recorded'))[:300]}; "
                       f"see `{sweep_hint(spec, 'status')}`")


def retry_failed(spec: SweepSpec, user_overrides: list[str], echo=print) -> dict:
    """`action=retry_failed`: queue every failed trial's parameters again (a grid point keeps its point),
    then run trials as `action=run` does. The failed trials stop counting towards the budget and
    sweep.max_failures, so a study stopped by its failures runs again; failing again counts anew."""
    from optuna.trial import TrialState

    _check_composes(spec, user_overrides)
    preflight.check_sweep(spec, user_overrides)  # a still-broken config reruns nothing
    study, _ = open_study(spec, create=False)
    trials = study.get_trials(deepcopy=False)
    superseded = superseded_failures(trials)
    failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in superseded
              and t.user_attrs.get(FAIL_KIND) not in RETRIED_KINDS + DISCARDED_KINDS]
    for t in failed:
        requeue(study, t)
    echo(f"agebench sweep: {len(failed)} failed trial(s) of study {spec.study_name!r} queued again"
         + (f" ({', '.join(str(t.number) for t in failed)})" if failed else "; nothing to retry"))
    return run_worker(spec, user_overrides, echo=echo)


class _DeadTrialWait:
    """Whether a worker that finds the budget spent should wait for other workers' dead-looking trials.

    It waits only while the budget would not be spent without the RUNNING trials of other workers
    that look dead (silent for over 2 × sweep.heartbeat_s): those either finish, beat again, or go
    stale after sweep.stale_after_s and are requeued by `fail_stale_trials` for this worker to run.
    A trial without any heartbeat counts from its start (`last_sign_of_life`). As a safety net, each
    trial is waited on for at most sweep.stale_after_s + 2 × sweep.heartbeat_s (it is reaped before
    that unless, say, its heartbeat is dated in the future), so the wait always ends."""

    def __init__(self, spec: SweepSpec, me: str):
        self.spec, self.me = spec, me
        self.since: dict[int, float] = {}   # trial number → when this worker began waiting for it
        self.given_up: set[int] = set()
        self.first_beat: dict[int, float] = {}   # trial number → the heartbeat seen when first looked at
        self.alive: set[int] = set()              # trials seen beating again since: a live worker runs them
        self.watched_since: dict[int, float] = {}  # trial number → when this worker began watching its fresh beat
        self.surplus: set[int] = set()            # other workers' unfinished trials beyond an already spent budget

    def pause(self, trials, counts: Counts) -> float | None:
        """Seconds to sleep before looking again, or None to exit now."""
        from optuna.trial import TrialState

        spec, now = self.spec, time.time()
        give_up_after = spec.stale_after_s + 2 * spec.heartbeat_s
        suspects = []   # (trial, seconds silent)
        unproven = []   # fresh heartbeat, not yet seen beating again: a live worker, or one killed a moment ago
        for t in trials:
            if t.state != TrialState.RUNNING or t.number in self.given_up or t.user_attrs.get(WORKER) == self.me:
                continue  # never wait for this worker's own trial
            beat = last_sign_of_life(t)
            silent = now - beat
            if beat > self.first_beat.setdefault(t.number, beat):
                self.alive.add(t.number)  # it beat again while this worker looked: its worker is alive
            if t.number in self.alive and silent <= 2 * spec.heartbeat_s:
                continue  # a live worker's trial: that worker finishes it
            if silent <= 2 * spec.heartbeat_s:
                # A fresh heartbeat alone does not prove a live worker: one killed a moment ago looks the same.
                # Watch it for another beat (alive) or for silence (dead: wait until stale, then rerun it). A beat
                # that stays fresh for longer than two beats without changing is dated ahead (clock skew): trust it.
                watched = now - self.watched_since.setdefault(t.number, now)
                if watched > 2 * spec.heartbeat_s + 1.0:
                    self.alive.add(t.number)
                    continue
                unproven.append(t)
                continue
            self.alive.discard(t.number)  # silent for over two beats: watched as a dead one from now
            if now - self.since.get(t.number, now) > give_up_after:
                log.warning("trial %d still RUNNING after waiting %.0f s for it to go stale; not waiting longer",
                            t.number, now - self.since[t.number])
                self.given_up.add(t.number)
                continue
            suspects.append((t, silent))
        if counts.budget_used - len(suspects) - len(unproven) >= spec.n_trials:
            # the budget is spent even without the unfinished trials: they are surplus (two workers asked for
            # the last trial at once), not a missing point, and no reason for this worker to fail
            self.surplus = {t.number for t, _ in suspects} | {t.number for t in unproven}
            return None
        if unproven and not suspects:
            return max(0.05, min(spec.heartbeat_s / 2, spec.stale_after_s / 4))  # look again within a beat
        if not suspects:
            return None
        for t, silent in suspects:
            if t.number not in self.since:
                self.since[t.number] = now
                log.info("waiting for trial %d (no heartbeat for %.1f s) to go stale or finish; its worker %s "
                         "looks dead (sweep.stale_after_s=%g)", t.number, silent, t.user_attrs.get(WORKER, "?"),
                         spec.stale_after_s)
        until_stale = spec.stale_after_s - max(silent for _, silent in suspects) + 0.05
        return max(0.05, min(spec.heartbeat_s, spec.stale_after_s / 4, until_stale))


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (scancel, a Slurm time limit, `kill`) interrupts the running trial like Ctrl-C, so its
    parameters are queued again at once rather than after sweep.stale_after_s. Left alone when
    someone else (e.g. submitit) already handles SIGTERM, or outside the main thread. Either signal
    between trials ends the worker with one line too (StudyStopped, 128 + signal), not a traceback."""
    def interrupt(signum, frame):
        raise Terminated(signum)

    install = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None))
    previous = signal.signal(signal.SIGTERM, interrupt) if install else None
    try:
        yield
    except KeyboardInterrupt as err:  # between trials (a storage call, a wait for a dead trial): one line
        raise _interrupted(None, err) from None
    finally:
        if install:
            signal.signal(signal.SIGTERM, previous)


def _state_text(counts: Counts) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.by_state.items())) or "none"


def _check_composes(spec: SweepSpec, user_overrides) -> None:
    """Fail before any trial when the base config + the user's overrides do not compose."""
    from agebench.config.compose import compose_checked

    try:
        cfg = compose_checked(spec.trial_overrides(user_overrides, {}, None))
    except UserError as err:
        raise UserError(f"sweep {spec.name}: the trial config does not compose: {err}") from None
    try:
        check_train_config(cfg)  # values too (sweep.base + your overrides), before any trial
    except UserError as err:
        raise UserError(f"sweep {spec.name}: the trial config has invalid values: {err}") from None


def _run_and_tell(spec, study, storage, trial, user_overrides) -> str:
    import optuna
    from optuna.trial import TrialState

    state, values, kind, reason = TrialState.FAIL, None, None, None
    try:
        params = {p.key: p.suggest(trial, as_grid=spec.is_grid) for p in spec.space.params}
        if spec.is_grid and _is_grid_duplicate(study, trial, params):
            _discard(study, storage, trial)
            return "DISCARDED"
        log.info("trial %d: %s", trial.number, " ".join(spec.space.overrides(params)) or "(no params)")
        with signals.caller_reports_stops():  # the one line a stop ends with is ours (_interrupted)
            values = run_trial(spec, trial, params, user_overrides)
        state = TrialState.COMPLETE
    except optuna.TrialPruned as err:
        state = TrialState.PRUNED
        log.info("trial %d pruned: %s", trial.number, err)
    except TrialFailed as err:
        kind, reason = err.kind, err.reason
    except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C, SIGTERM; Lightning turns Ctrl-C into sys.exit(1)
        storage.set_trial_user_attr(trial._trial_id, FAIL_KIND, "interrupted")
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, "worker interrupted; parameters queued again")
        study.tell(trial, state=TrialState.FAIL)
        requeue(study, storage.get_trial(trial._trial_id))
        raise _interrupted(trial.number, err) from None
    except UserError as err:
        kind, reason = "config", str(err)
    except Exception as err:  # a bug or a crash in this trial: record it, keep the study going
        log.error("trial %d raised:\n%s", trial.number, traceback.format_exc())
        kind, reason = "error", f"{type(err).__name__}: {err}"
    if state == TrialState.FAIL:
        storage.set_trial_user_attr(trial._trial_id, FAIL_KIND, kind or "error")
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, (reason or "")[:2000])
        log.warning("trial %d failed (%s): %s", trial.number, kind, reason)
    try:
        study.tell(trial, values=values if state == TrialState.COMPLETE else None, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (taken for dead?); result dropped", trial.number)
    if state == TrialState.COMPLETE:
        shown = ", ".join(f"{m}={v:.4g}" for m, v in zip(spec.metric_names, values, strict=False))
        log.info("trial %d complete: %s", trial.number, shown)
    return state.name


def _is_grid_duplicate(study, trial, params: dict) -> bool:
    """Whether a lower-numbered live trial already holds this grid point (same parameters).

    Compared by parameters, not by GridSampler's grid_id: requeued trials carry none."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    superseded = superseded_failures(trials)
    for other in trials:
        if other.number >= trial.number or other.state == TrialState.WAITING or other.params != params:
            continue
        if other.state == TrialState.FAIL and (other.user_attrs.get(FAIL_KIND) in RETRIED_KINDS + DISCARDED_KINDS
                                               or other.number in superseded):
            continue
        return True
    return False


def _discard(study, storage, trial) -> None:
    from optuna.trial import TrialState

    storage.set_trial_user_attr(trial._trial_id, FAIL_KIND, "duplicate")
    storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, "another worker drew the same grid point first")
    study.tell(trial, state=TrialState.FAIL)
    log.info("trial %d discarded: its grid point is already taken", trial.number)


__all__ = ["run_worker", "retry_failed", "open_study", "count_trials", "StudyStopped", "TrialFailed", "run_trial"]
