"""Study storages, worker heartbeats and the recovery of trials whose worker died.

`sweep.storage` spellings:

* `null` — `sqlite:///<sweep.dir>/study.db`: one machine, a few workers;
* `journal:<path>` (or any path ending in `.journal`) — Optuna's JournalStorage on a file: many
  machines on a shared filesystem (NFS, Lustre) without a database server;
* any SQLAlchemy URL — `postgresql://user:pass@host:5432/db` (needs `psycopg`: `pip install -e ".[postgres]"`), `mysql://...`,
  `sqlite:///path.db`: many machines with a database server.

A running trial records a heartbeat (a trial system attribute) every `sweep.heartbeat_s` from a
background thread. Before each ask, a worker fails every RUNNING trial whose heartbeat is older than
`sweep.stale_after_s` (its worker was killed, lost its node or was preempted) with
`fail_kind=stale` and enqueues its parameters again, so the next ask reruns them. The same works on
every storage (Optuna's own heartbeat exists for RDB storages only and is tied to study.optimize).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from agebench.errors import UserError

log = logging.getLogger("agebench.sweep")

HEARTBEAT_ATTR = "agebench:heartbeat"
# user attrs a trial carries
FAIL_KIND = "fail_kind"          # error | diverged | config | no_objective | stale | interrupted | duplicate
FAIL_REASON = "fail_reason"
RETRY_OF = "retry_of"
WORKER = "worker"
# failures that are not the trial's fault: its parameters are queued again, and the trial counts
# neither towards the budget nor towards sweep.max_failures
RETRIED_KINDS = ("stale", "interrupted")
DISCARDED_KINDS = ("duplicate",)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def display_url(url: str) -> str:
    """The storage URL with any password masked."""
    if "://" in url and "@" in url and not url.startswith("journal:"):
        try:
            from sqlalchemy.engine import make_url

            return make_url(url).render_as_string(hide_password=True)
        except Exception:
            return url
    return url


def journal_path(url: str) -> Path | None:
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        if path.startswith("//"):
            path = path[2:]
        return Path(path).expanduser()
    if "://" not in url and url.endswith(".journal"):
        return Path(url).expanduser()
    return None


def open_storage(url: str):
    """An Optuna storage for a `sweep.storage` value (see the module docstring)."""
    import optuna

    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        journal.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(journal)))
    if "://" not in url:
        raise UserError(f"sweep.storage={url!r} is neither a database URL (sqlite:///..., postgresql://...) "
                        f"nor a journal file (journal:<path>); leave it null for a SQLite file in sweep.dir")
    engine_kwargs = {}
    if url.startswith("sqlite:"):
        db = url.split(":///", 1)[-1]
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 120}}
    url = _with_postgres_driver(url)
    last_err: Exception | None = None
    for attempt in range(5):  # workers creating the same fresh database race on its tables
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except ImportError:
            scheme = url.split(":", 1)[0].split("+", 1)[0]
            hint = {"postgresql": 'pip install -e ".[postgres]" (psycopg)', "mysql": "pip install PyMySQL"}.get(scheme, "")
            raise UserError(f"sweep.storage={display_url(url)} needs a {scheme} driver that is not installed"
                            + (f"; {hint}" if hint else "")) from None
        except Exception as err:  # OperationalError / IntegrityError while another worker creates tables
            last_err = err
            time.sleep(0.1 + random.random() * (attempt + 1))
    raise UserError(f"cannot open sweep.storage={display_url(url)}: {str(last_err).splitlines()[0]}")


def _with_postgres_driver(url: str) -> str:
    """`postgresql://` names no driver, and SQLAlchemy's default changed (psycopg2 up to 2.0, psycopg 3
    from 2.1): pick whichever of the two is installed, psycopg 3 first."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for module in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{module}://{rest}"
    return url  # RDBStorage's ImportError becomes the one-line hint above


@contextmanager
def heartbeat(storage, trial_id: int, interval_s: float):
    """Record a heartbeat for `trial_id` now and every `interval_s` until the block ends."""
    stop = threading.Event()

    def beat():
        while True:
            try:
                storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except Exception as err:  # the trial was finished (e.g. failed as stale) or the storage is down
                log.debug("heartbeat for trial id %s not recorded: %s", trial_id, err)
            if stop.wait(interval_s):
                return

    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
    thread = threading.Thread(target=beat, name=f"agebench-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def last_sign_of_life(trial) -> float:
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if isinstance(beat, (int, float)):
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


def fail_stale_trials(study, storage, stale_after_s: float) -> list[int]:
    """Fail RUNNING trials without a heartbeat for `stale_after_s` and queue their parameters again."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    reaped = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        silent = now - last_sign_of_life(trial)
        if silent <= stale_after_s:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, FAIL_KIND, "stale")
            storage.set_trial_user_attr(trial._trial_id, FAIL_REASON,
                                        f"no heartbeat for {silent:.0f} s (worker {trial.user_attrs.get(WORKER, '?')} "
                                        f"stopped); parameters queued again")
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker reaped it, or it just finished
        requeue(study, trial)
        reaped.append(trial.number)
        log.warning("trial %d: no heartbeat for %.0f s; marked failed (stale) and queued again", trial.number, silent)
    return reaped


def superseded_failures(trials) -> set[int]:
    """Numbers of FAIL trials whose parameters were queued again later (`requeue`: a stale or
    interrupted trial, or `action=retry_failed`): a later trial names their origin in RETRY_OF."""
    from optuna.trial import TrialState

    latest_retry: dict[int, int] = {}
    for t in trials:
        origin = t.user_attrs.get(RETRY_OF)
        if origin is not None:
            latest_retry[int(origin)] = max(latest_retry.get(int(origin), -1), t.number)
    return {t.number for t in trials if t.state == TrialState.FAIL
            and latest_retry.get(int(t.user_attrs.get(RETRY_OF, t.number)), -1) > t.number}


# GridSampler's system attrs naming a trial's grid point; set at ask time, before any parameter
GRID_ATTRS = ("grid_id", "search_space")


def requeue(study, trial) -> None:
    """Queue a trial's parameters again (a WAITING trial the next ask picks up first).

    A grid trial also keeps its grid point: a worker killed between ask and suggest leaves a trial
    without parameters (GridSampler rejects an enqueued trial that lacks some), and GridSampler
    already counts that point as visited once the trial has failed."""
    from optuna.trial import TrialState, create_trial

    origin = trial.user_attrs.get(RETRY_OF, trial.number)
    grid = {k: trial.system_attrs[k] for k in GRID_ATTRS if k in trial.system_attrs}
    if not grid:
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: origin})
        return
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": dict(trial.params), **grid},
                                 user_attrs={RETRY_OF: origin}))
