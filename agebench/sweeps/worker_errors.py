"""Why a worker stopped, kept in the study for `action=status`.

A worker that stops on a user error (a bad override caught by the pre-flight, `sweep.max_failures`
reached, ...) prints one line on stderr, and on a cluster that line ends up in a Slurm log file nobody
is watching. So the worker also writes it into the study (a study user attr, the last few stops with
worker id and time), and `action=status` shows them next to the trials. Best effort: if the storage
itself is the problem, the error is only printed.
"""

from __future__ import annotations

import logging
import time

from agebench.sweeps.spec import SweepSpec
from agebench.sweeps.storage import worker_id

log = logging.getLogger("agebench.sweep")

ERRORS_ATTR = "agebench:worker_errors"
KEEP = 5


def record(spec: SweepSpec, message: str) -> None:
    """Append (worker, time, message) to the study's worker errors, creating the study if needed."""
    from agebench.sweeps.study import open_study

    try:
        study, _ = open_study(spec, create=True)
        # read-modify-write: two workers failing in the same instant may keep only one entry, which is fine
        errors = list(study.user_attrs.get(ERRORS_ATTR, []))[-(KEEP - 1):]
        errors.append({"worker": worker_id(), "time": time.time(), "error": str(message)[:2000]})
        study.set_user_attr(ERRORS_ATTR, errors)
    except Exception as err:  # noqa: BLE001 — an unreachable storage must not hide the original error
        log.debug("worker error not recorded in the study: %s", err)


def record_for(sweep_cfg, message: str) -> None:
    """`record` for a worker whose config failed before its SweepSpec was built."""
    try:
        spec = SweepSpec(sweep_cfg)
    except Exception as err:  # noqa: BLE001 — e.g. the sweep config itself is the problem
        log.debug("worker error not recorded in the study: %s", err)
        return
    record(spec, message)


def status_lines(study) -> list[str]:
    errors = study.user_attrs.get(ERRORS_ATTR) or []
    if not errors:
        return []
    lines = ["workers that stopped on an error (latest last):"]
    for e in errors:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(e.get("time", 0))))
        lines.append(f"  {when} worker {e.get('worker', '?')}: {e.get('error', '')}")
    return lines
