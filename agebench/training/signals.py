"""Stopping a run on SIGTERM / SIGINT / SIGUSR1 at a safe point, with a non-zero exit and a resumable fold.

Slurm (time limit, preemption, scancel), `kill` and Ctrl-C all mean "stop now, keep what is done".
Inside a fold the signal is only noted; the fold stops at the next batch or epoch boundary, where the
latest `last.ckpt` (written at every epoch end) is whole on disk, and a rerun of the same command
resumes the fold from it, ending with the same record as a run that was never stopped. Outside a fold
(data loading, between folds) nothing needs finishing and the stop is immediate; a second signal
during a fold also stops at once. Every write is atomic, so neither way leaves a partial file.

The stop is a `SystemExit` with code 128 + signal (143 SIGTERM, 130 SIGINT, 138 SIGUSR1), so Hydra and
a fold's `except Exception` let it through, and the shell, Slurm or a sweep driver sees a failure
instead of Lightning's own SIGTERM exit (a `SystemExit` without code: status 0, "success").

On Slurm, SIGUSR1 (`sbatch --signal=USR1@120`) is the requeue signal, as in Lightning's
SLURMEnvironment(auto_requeue=True): after the safe stop the job is requeued with `scontrol requeue`
and its rerun resumes the fold (turn off with trainer.slurm_requeue=false). Lightning's own requeue
handler stays off (see `cluster_plugins`): it saves a mid-epoch `hpc_ckpt_*.ckpt`, and a fold resumed
mid-epoch would not reproduce an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("agebench.training.signals")

NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGUSR1: "SIGUSR1"}


class StopRequested(SystemExit):
    """A stop signal, raised at a safe point; its exit status is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.reported = False  # the one line saying what is unfinished has been printed
        self.requeued: str | None = None  # the Slurm job requeued after a SIGUSR1 stop, if any


class _State:
    signum: int | None = None  # the first stop signal received, if any
    deferring: bool = False     # inside a fold: StopAtSafePoint raises at the next boundary
    requeue: bool = True
    caller_reports: bool = False  # inside `caller_reports_stops()`: the caller prints the one line


STATE = _State()


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _handler(signum, frame) -> None:
    first = STATE.signum is None
    if first:
        STATE.signum = signum
    if STATE.deferring and first:
        log.info("%s received: stopping at the end of the current batch", NAMES.get(signum, signum))
        return
    raise StopRequested(STATE.signum)


@contextmanager
def stop_on_signals(requeue: bool = True):
    """Handle stop signals for the duration of a run (main thread only; a no-op elsewhere).

    Under DDP, SIGTERM stays Lightning's: it stops every rank at the same batch (a broadcast), which
    per-rank handlers cannot; its SystemExit is turned into a StopRequested by `as_stop`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = [s for s in NAMES if not (s == signal.SIGTERM and _world_size() > 1)]
    previous = {s: signal.signal(s, _handler) for s in signums}
    STATE.signum, STATE.deferring, STATE.requeue = None, False, bool(requeue)
    try:
        yield
    except StopRequested as stop:
        if not stop.reported:  # stopped between folds: nothing is half done
            requeued = _requeue_slurm_job() if stop.signum == signal.SIGUSR1 and STATE.requeue else None
            stop.reported, stop.requeued = True, requeued
            if not STATE.caller_reports:  # else the caller says what stopped (caller_reports_stops)
                name = NAMES.get(stop.signum, f"signal {stop.signum}")
                tail = f"; requeued Slurm job {requeued}" if requeued else ""
                print(f"agebench: stopped by {name} between folds; rerun the same command to run the remaining "
                      f"folds{tail}", file=sys.stderr, flush=True)
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        STATE.signum, STATE.deferring = None, False


@contextmanager
def deferred():
    """A region (a fold's fit and test) where a first stop signal waits for StopAtSafePoint."""
    before = STATE.deferring
    STATE.deferring = _world_size() == 1
    try:
        yield
    finally:
        STATE.deferring = before
    raise_if_requested()


def raise_if_requested() -> None:
    if STATE.signum is not None:
        raise StopRequested(STATE.signum)


def as_stop(err: BaseException) -> StopRequested | None:
    """`err` as a StopRequested when it is one, or Lightning's SIGTERM exit; else None."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(err, StopRequested):
        return err
    if isinstance(err, SIGTERMException):
        return StopRequested(STATE.signum or signal.SIGTERM)
    return None


def stop_at_safe_point_callback():
    """A Lightning callback raising StopRequested at the first batch/epoch boundary after a signal.
    Boundaries lie outside checkpoint saves, so the latest last.ckpt is always whole."""
    from lightning.pytorch.callbacks import Callback

    class StopAtSafePoint(Callback):
        def _check(self, *args, **kwargs) -> None:
            if STATE.deferring:
                raise_if_requested()

        on_train_epoch_start = on_train_batch_start = on_train_batch_end = _check
        on_validation_batch_end = on_test_batch_end = _check

    return StopAtSafePoint()


@contextmanager
def caller_reports_stops():
    """A region whose caller prints the one line a stop signal ends with, instead of the run: a sweep
    worker, whose stopped trial is queued again as a new trial rather than resumed from its fold's
    checkpoint, so "rerun the same command to resume it from last.ckpt" would be the wrong advice.
    The StopRequested still propagates (with `reported` set); nothing else changes."""
    before = STATE.caller_reports
    STATE.caller_reports = True
    try:
        yield
    finally:
        STATE.caller_reports = before


def report_unfinished_fold(stop: StopRequested, fold_index: int, fold_dir: Path, max_epochs: int) -> None:
    """The one line a stopped run prints: which fold is unfinished and how it resumes; then, for
    SIGUSR1 on Slurm, the requeue. Inside `caller_reports_stops()` the caller prints it instead
    (the requeued Slurm job, if any, in `stop.requeued`)."""
    requeued = _requeue_slurm_job() if stop.signum == signal.SIGUSR1 and STATE.requeue else None
    stop.reported, stop.requeued = True, requeued
    if STATE.caller_reports:
        return
    last = fold_dir / "checkpoints" / "last.ckpt"
    epoch = _finished_epoch(last)
    where = (f"rerun the same command to resume it from {last} (epoch {epoch + 1} of {max_epochs} done)"
             if epoch is not None else "rerun the same command to run it (no epoch of it had finished)")
    name = NAMES.get(stop.signum, f"signal {stop.signum}")
    tail = f"; requeued Slurm job {requeued}" if requeued else ""
    print(f"agebench: stopped by {name}: fold {fold_index} in {fold_dir.parent} is unfinished; {where}{tail}",
          file=sys.stderr, flush=True)


def _finished_epoch(last: Path) -> int | None:
    if not last.exists():
        return None
    from agebench.training.checkpointing import read_checkpoint

    try:
        return int(read_checkpoint(last)["epoch"])
    except Exception:  # unreadable: the rerun moves it aside and says so
        return None


def cluster_plugins() -> list:
    """On Slurm, Lightning's SLURMEnvironment without its own requeue handler (we requeue after a
    safe stop instead, see the module docstring); elsewhere nothing."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _requeue_slurm_job() -> str | None:
    """`scontrol requeue` this Slurm job (the job id as Lightning's SLURM plugin builds it); None off Slurm."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID", "")
    if not re.fullmatch(r"[0-9_]+", job):
        log.warning("cannot requeue: SLURM_JOB_ID=%r is not a job id", job)
        return None
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("scontrol requeue %s failed (%s); resubmit the job to resume", job, err)
        return None
    if result.returncode != 0:
        log.warning("scontrol requeue %s failed (%s); resubmit the job to resume", job, result.stderr.strip())
        return None
    return job


def fold_stopped(err: SystemExit, fold_index: int, fold_dir: Path, max_epochs: int) -> SystemExit:
    """For a stop signal that ended a fold: report it (one line) and return the StopRequested to raise;
    any other SystemExit is returned as it is."""
    stop = as_stop(err)
    if stop is None:
        return err
    report_unfinished_fold(stop, fold_index, fold_dir, max_epochs)
    return stop
