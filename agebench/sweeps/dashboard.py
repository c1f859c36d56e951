"""`action=dashboard`: optuna-dashboard's web UI on the study's storage (`pip install -e ".[dashboard]"`).

Serves every study in `sweep.storage` (SQLite, journal file or database) on http://127.0.0.1:<port> until
Ctrl-C; the study list is also at /api/studies. Bound to 127.0.0.1: to look at a cluster's study from
your laptop, forward the port (`ssh -L 8080:127.0.0.1:8080 login-node`) instead of opening it up.
"""

from __future__ import annotations

import errno
import socket
import sys

from agebench.errors import UserError
from agebench.sweeps.spec import SweepSpec
from agebench.sweeps.storage import display_url

HOST = "127.0.0.1"


def serve_dashboard(spec: SweepSpec, port: int, echo=print) -> None:
    from agebench.sweeps.study import open_study

    if not 0 < port < 65536:
        raise UserError(f"port={port}: choose a TCP port in 1..65535 (default 8080)")
    study, storage = open_study(spec, create=False)  # a missing study is a one-line error, not an empty page
    try:
        import optuna_dashboard
    except ImportError:
        raise UserError('action=dashboard needs optuna-dashboard: pip install -e ".[dashboard]"') from None
    _check_port_free(port)  # before any line: a busy port is one error line, not an address then a failure
    echo(f"agebench sweep: optuna-dashboard for study {study.study_name!r} in {display_url(spec.storage_url())} "
         f"on http://{HOST}:{port}/dashboard (Ctrl-C stops it)")
    sys.stdout.flush()  # the address before the server's own log lines, also when stdout is a pipe
    try:
        optuna_dashboard.run_server(storage, host=HOST, port=port)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"port={port} is in use on {HOST}; pick a free one with port=<n>") from None
        raise
    except KeyboardInterrupt:
        echo("agebench sweep: dashboard stopped")


def _check_port_free(port: int) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((HOST, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"port={port} is in use on {HOST}; pick a free one with port=<n>") from None
        raise UserError(f"cannot listen on {HOST}:{port} ({err.strerror}); pick another port with port=<n>") from None
    finally:
        probe.close()
