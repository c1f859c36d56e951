"""`agebench sweep ... action=dashboard`: optuna-dashboard answers over HTTP on 127.0.0.1 for the study."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
from conftest import run_cli

AGEBENCH = [sys.executable, "-m", "agebench.cli.main"]
STUDY = "objectives: {age/top1: maximize}\nparams: {loss.gamma: 'interval(0, 1)'}\nbase: [loss=gamma]\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def study_dir(tmp_path):
    """A sweep yaml and its SQLite study with three finished trials (made by Optuna directly: no training)."""
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "dash.yaml").write_text(STUDY)
    (tmp_path / "dash").mkdir()
    study = optuna.create_study(study_name="dash", direction="maximize", storage=f"sqlite:///{tmp_path / 'dash' / 'study.db'}")
    study.optimize(lambda t: t.suggest_float("loss.gamma", 0, 1), n_trials=3)
    return tmp_path


def test_dashboard_serves_the_study_list_on_localhost(study_dir):
    pytest.importorskip("optuna_dashboard", reason='pip install -e ".[dashboard]"')
    port = _free_port()
    env = {**os.environ, "AGEBENCH_SWEEPS_DIR": str(study_dir / "sweeps")}
    proc = subprocess.Popen([*AGEBENCH, "sweep", "sweep=dash", f"sweep.dir={study_dir / 'dash'}", "action=dashboard",
                             f"port={port}"], cwd=study_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 60, None
        while body is None and time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    assert response.status == 200
                    body = json.loads(response.read())
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.3)
        assert body is not None, "the dashboard never answered on 127.0.0.1"
        (study,) = body["study_summaries"]
        assert (study["study_name"], study["directions"]) == ("dash", ["maximize"])
        url = f"http://127.0.0.1:{port}/api/studies/{study['study_id']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            detail = json.loads(response.read())
        assert [t["number"] for t in detail["trials"]] == [0, 1, 2]  # the trials in the storage
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}/dashboard" in out


def test_dashboard_for_a_missing_study_is_one_line(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "dash.yaml").write_text(STUDY)
    proc = run_cli("sweep", "sweep=dash", f"sweep.dir={tmp_path / 'none'}", "action=dashboard",
                   f"port={_free_port()}", env={"AGEBENCH_SWEEPS_DIR": str(tmp_path / "sweeps")}, cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no study 'dash' yet" in lines[0], proc.stderr


def test_dashboard_on_a_busy_port_is_one_line_and_prints_nothing_else(study_dir):
    """Issue 26 (9): it printed its own "on http://…" line and Bottle's "Listening…" before the error."""
    pytest.importorskip("optuna_dashboard", reason='pip install -e ".[dashboard]"')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_cli("sweep", "sweep=dash", f"sweep.dir={study_dir / 'dash'}", "action=dashboard", f"port={port}",
                       env={"AGEBENCH_SWEEPS_DIR": str(study_dir / "sweeps")}, cwd=study_dir, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "http://" not in proc.stdout and "Listening" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port={port} is in use on 127.0.0.1" in lines[0], proc.stderr
