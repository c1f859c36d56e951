"""Grids: `agebench train -m` multiruns (job dirs, launchers) and grid studies (`kind: grid`) that
run every point once, across workers and restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from agebench.sweeps.command import load_spec, run_action
from agebench.sweeps.storage import HEARTBEAT_ATTR, open_storage
from agebench.sweeps.study import count_trials, open_study

AGEBENCH = [sys.executable, "-m", "agebench.cli.main"]
FAST = ["trainer=debug", "trainer.threads=1", "logger=none", "data.n_subjects=40", "data.images_per_subject=2",
        "data.image_size=48", "data.load_size=52", "protocol.n_folds=2", "profile.latency_iters=1"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    from agebench.config.compose import compose_config
    from agebench.data.loading import load_dataset

    path = tmp_path_factory.mktemp("cache")
    load_dataset(compose_config([*FAST, f"cache_dir={path}"]).data, path)
    return path


@pytest.fixture
def sweeps_env(tmp_path, monkeypatch):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    monkeypatch.setenv("AGEBENCH_SWEEPS_DIR", str(folder))
    return folder


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------
# Hydra multirun of `agebench train`


@pytest.mark.slow
def test_two_point_grid_gives_two_job_dirs_and_two_sets_of_records(tmp_path, cache_dir):
    """Both jobs start at once (joblib, 2 processes): each gets its own readable job dir."""
    sweep_dir = tmp_path / "multirun"
    proc = subprocess.run([*AGEBENCH, "train", "-m", "tasks=age,age_gender", *FAST, f"cache_dir={cache_dir}",
                           f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert len(jobs) == 2
    assert jobs[0].name.startswith("0_") and "tasks=age," in jobs[0].name + ","
    assert jobs[1].name.startswith("1_") and "tasks=age_gender" in jobs[1].name
    for job, tasks in zip(jobs, (["age"], ["age", "gender"]), strict=True):
        records = _records(job / "results.jsonl")
        assert [r["fold"] for r in records] == [0, 1]
        assert all(r["status"] == "ok" and r["tasks"] == tasks for r in records)
        assert (job / "summary.json").exists() and (job / ".hydra" / "overrides.yaml").exists()


def test_slurm_launcher_preset_composes():
    from hydra import compose, initialize_config_dir

    from agebench.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=a100"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "a100" and launcher.gpus_per_node == 1 and launcher.array_parallelism >= 1
    assert launcher.timeout_min > 0


def test_sweep_workers_can_be_launched_as_a_multirun():
    """`agebench sweep -m 'sweep.worker=range(N)' hydra/launcher=...` starts N workers on one study."""
    from hydra import compose, initialize_config_dir

    from agebench.paths import conf_dir
    from agebench.sweeps.source import register

    register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("sweep", overrides=["sweep=gamma", "sweep.worker=3", "hydra/launcher=joblib"],
                      return_hydra_config=True)
    from omegaconf import OmegaConf

    assert cfg.sweep.worker == 3
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "worker_${hydra.job.num}"
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")


# ---------------------------------------------------------------------------------------------------
# grid studies


GRID = "kind: grid\nbase: [tasks=age]\nparams: {seed: 'range(0, 4)'}\nobjectives: {age/top1: maximize}\n"


def fake_trainer(monkeypatch):
    import agebench.training.experiment

    def run_experiment(cfg, output_dir, on_fold_end=None, extra_record=None, print_table=None):
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = {"fold": 0, "status": "ok", "metrics": {"age/top1": 0.1 * int(cfg.seed)}, **extra_record}
        (out / "results.jsonl").write_text(json.dumps(record) + "\n")
        on_fold_end(0, record)

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", run_experiment)


@pytest.mark.slow  # 76 s on 2 cores: six tiny trainings
def test_grid_study_runs_each_point_once_and_discards_a_drawn_duplicate(sweeps_env, tmp_path, monkeypatch):
    fake_trainer(monkeypatch)
    (sweeps_env / "g.yaml").write_text(GRID)
    spec, user = load_spec("g", [f"sweep.dir={tmp_path / 'g'}", "sweep.n_trials=100"])
    assert spec.n_trials == 4  # a grid's budget is its size
    # another, live worker holds seed=1; a second trial for the same point is queued (as two workers
    # drawing the same point at the same instant would produce)
    study, storage = open_study(spec)
    other = study.ask()
    held = other.suggest_categorical("seed", [0, 1, 2, 3])
    storage.set_trial_system_attr(other._trial_id, HEARTBEAT_ATTR, time.time() + 3600)
    study.enqueue_trial({"seed": held})
    run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    seeds = sorted(t.params["seed"] for t in complete)
    assert seeds == sorted({0, 1, 2, 3} - {held})  # each other point once; the held one not again
    discarded = [t for t in study.trials if t.user_attrs.get("fail_kind") == "duplicate"]
    assert len(discarded) == 1 and discarded[0].params == {"seed": held} and discarded[0].number == 1
    counts = count_trials(study.trials)
    assert counts.by_state["RUNNING"] == 1 and counts.budget_used == 4 and counts.discarded == 1


def test_a_grid_trial_killed_before_its_params_were_drawn_is_rerun_at_its_point(sweeps_env, tmp_path, monkeypatch):
    """A worker killed between ask and suggest leaves a RUNNING trial with a grid point but no params;
    once stale, that point is queued again (not an empty enqueue, which GridSampler rejects)."""
    fake_trainer(monkeypatch)
    (sweeps_env / "g.yaml").write_text(GRID)
    spec, user = load_spec("g", [f"sweep.dir={tmp_path / 'g'}", "sweep.heartbeat_s=0.1", "sweep.stale_after_s=1"])
    study, storage = open_study(spec)
    dead = study.ask()  # grid point 0 assigned, nothing suggested
    storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 60)
    run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["seed"] for t in complete) == [0, 1, 2, 3]
    assert study.trials[0].user_attrs["fail_kind"] == "stale" and study.trials[0].params == {}
    assert [t.user_attrs.get("retry_of") for t in complete] == [0, None, None, None]


def test_a_worker_killed_a_moment_ago_is_not_taken_for_a_live_one(sweeps_env, tmp_path, monkeypatch):
    """Issue 26 (2): the dead worker's trial still had a fresh heartbeat (within 2 × heartbeat_s) when the worker
    was restarted, so the old loop took it for a live worker's, never waited and exited 0 with its point never
    run. Now a fresh beat must be seen again to count as alive; this one goes silent, stale, and is rerun."""
    fake_trainer(monkeypatch)
    (sweeps_env / "g.yaml").write_text(GRID)
    spec, user = load_spec("g", [f"sweep.dir={tmp_path / 'g'}", "sweep.heartbeat_s=1", "sweep.stale_after_s=3"])
    study, storage = open_study(spec)
    dead = study.ask()
    dead.suggest_categorical("seed", [0, 1, 2, 3])
    storage.set_trial_user_attr(dead._trial_id, "worker", "deadhost:1")
    storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 0.5)  # killed half a beat ago
    run_action(spec, "run", user, echo=lambda s: None)  # returns only when every point is COMPLETE
    study, _ = open_study(spec, create=False)
    assert sorted(t.params["seed"] for t in study.trials if t.state == TrialState.COMPLETE) == [0, 1, 2, 3]
    assert study.trials[0].user_attrs["fail_kind"] == "stale"


def _wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited early with {proc.returncode}")
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_killed_grid_worker_restarts_without_repeating_finished_points(tmp_path, cache_dir):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "seeds.yaml").write_text(GRID)
    env = {**os.environ, "AGEBENCH_SWEEPS_DIR": str(tmp_path / "sweeps"), "OMP_NUM_THREADS": "1"}
    # AGEBENCH_TEST_GRID_HEARTBEAT="30,75" runs the scenario at the default heartbeat (30 s; issue 26's 20-run
    # loop): the dead trial then looks alive for up to a minute after the kill
    beat, stale = os.environ.get("AGEBENCH_TEST_GRID_HEARTBEAT", "0.5,15").split(",")
    args = [*AGEBENCH, "sweep", "sweep=seeds", *FAST, f"cache_dir={cache_dir}", f"sweep.dir={tmp_path / 'seeds'}",
            f"sweep.heartbeat_s={beat}", f"sweep.stale_after_s={stale}"]
    db = tmp_path / "seeds" / "study.db"

    def trials():
        if not db.exists():
            return []
        try:
            return optuna.load_study(study_name="seeds", storage=open_storage(f"sqlite:///{db}")).trials
        except (KeyError, Exception):
            return []

    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=open(tmp_path / "w1.log", "w"), stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: any(t.state == TrialState.COMPLETE for t in trials()), 300, first)
    finally:
        first.send_signal(signal.SIGKILL)  # no chance to clean up: its running trial stays RUNNING
        first.wait()
    before = trials()
    finished_before = {t.number: t.params["seed"] for t in before if t.state == TrialState.COMPLETE}
    assert finished_before and first.returncode == -signal.SIGKILL

    # Restarted at once, well within sweep.stale_after_s (15 s) of the dead worker's last heartbeat: the
    # new worker runs the other points, then waits for the dead trial to go stale and reruns it (were
    # those points slower than 15 s, it would reap the trial before it asks instead).
    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    after = trials()
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert sorted(t.params["seed"] for t in complete) == [0, 1, 2, 3]  # every point once, none twice
    for number, seed in finished_before.items():  # finished trials kept their number and result
        assert after[number].state == TrialState.COMPLETE and after[number].params["seed"] == seed
    assert [t.number for t in after] == list(range(len(after)))
    stale = [t for t in after if t.user_attrs.get("fail_kind") == "stale"]
    killed_running = [t.number for t in before if t.state == TrialState.RUNNING]
    assert [t.number for t in stale] == killed_running  # the killed worker's trial was failed and rerun
    for t in stale:
        assert any(r.user_attrs.get("retry_of") == t.number and r.state == TrialState.COMPLETE for r in after)
