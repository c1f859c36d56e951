"""Optuna sweeps: search-space spelling, study yamls, the ask/tell worker (budget, failures, pruning,
stale workers), storages, status/export, and real workers on synthetic data.

Driver-logic tests replace `agebench.training.experiment.run_experiment` with a fake that writes run records in
milliseconds; the `slow` tests train for real (tiny synthetic data, trainer=debug) and start
`agebench sweep` as subprocesses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from agebench.errors import UserError
from agebench.paths import sweeps_dir
from agebench.sweeps.command import check, load_spec, multirun_command, run_action
from agebench.sweeps.driver import StudyStopped
from agebench.sweeps.source import forwarded_overrides, merge_overrides
from agebench.sweeps.space import parse_space
from agebench.sweeps.storage import HEARTBEAT_ATTR, WORKER, heartbeat, journal_path, open_storage, worker_id
from agebench.sweeps.study import count_trials, open_study

AGEBENCH = [sys.executable, "-m", "agebench.cli.main"]
# A trial in a few seconds: 80 tiny synthetic faces, 2 folds, 1 epoch of 2 batches.
FAST = ["trainer=debug", "trainer.threads=1", "logger=none", "data.n_subjects=40", "data.images_per_subject=2",
        "data.image_size=48", "data.load_size=52", "protocol.n_folds=2", "profile.latency_iters=1"]
SHIPPED = sorted(p.stem for p in sweeps_dir().glob("*.yaml") if not p.name.startswith("_"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One decoded-image cache for every real trial of the session (built once, before any worker)."""
    from agebench.config.compose import compose_config
    from agebench.data.loading import load_dataset

    path = tmp_path_factory.mktemp("cache")
    cfg = compose_config([*FAST, f"cache_dir={path}"])
    load_dataset(cfg.data, path)
    return path


def write_study(tmp_path: Path, name: str, text: str) -> Path:
    """A study yaml in a private sweeps dir (AGEBENCH_SWEEPS_DIR), next to copies of the shipped ones."""
    folder = tmp_path / "sweeps"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return folder


@pytest.fixture
def sweeps_env(tmp_path, monkeypatch):
    folder = tmp_path / "sweeps"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("AGEBENCH_SWEEPS_DIR", str(folder))
    return folder


# ---------------------------------------------------------------------------------------------------
# search space spelling


def test_space_spellings_map_to_optuna_distributions():
    space = parse_space({
        "loss.gamma": "interval(0, 1)",
        "optim.lr": "tag(log, interval(1e-4, 1e-1))",
        "trainer.max_epochs": "int(interval(2, 8))",
        "data.batch_size": "tag(log, int(interval(16, 256)))",
        "seed": "range(0, 10, 3)",
        "optim.weight_decay": "range(0.0, 1.0, 0.25)",
        "tasks": "choice(age, age_gender)",
        "model.width": "choice([1,1], [2,1])",
        "tasks.age.bins": "choice(uniform:3, uniform:5)",
        "optim.name": "adamw,sgd",
        "trainer.deterministic": "true",
        "model.strides": [1, 2],
    })
    d = {p.key: p.distribution() for p in space.params}
    assert isinstance(d["loss.gamma"], optuna.distributions.FloatDistribution) and not d["loss.gamma"].log
    assert (d["loss.gamma"].low, d["loss.gamma"].high) == (0.0, 1.0)
    assert d["optim.lr"].log and d["optim.lr"].low == pytest.approx(1e-4)
    assert isinstance(d["trainer.max_epochs"], optuna.distributions.IntDistribution)
    assert (d["trainer.max_epochs"].low, d["trainer.max_epochs"].high) == (2, 8)
    assert isinstance(d["data.batch_size"], optuna.distributions.IntDistribution) and d["data.batch_size"].log
    # range excludes its stop, as Hydra's range (and Python's) does
    assert (d["seed"].low, d["seed"].high, d["seed"].step) == (0, 9, 3)
    assert (d["optim.weight_decay"].low, d["optim.weight_decay"].high, d["optim.weight_decay"].step) == (0.0, 0.75, 0.25)
    assert d["tasks"].choices == ("age", "age_gender")
    assert d["model.width"].choices == ("[1,1]", "[2,1]")
    assert d["optim.name"].choices == ("adamw", "sgd")
    assert space.fixed == ["trainer.deterministic=true", "model.strides=[1,2]"]
    # sampled values come back as overrides that compose to the intended config
    overrides = space.overrides({"model.width": "[2,1]", "tasks.age.bins": "uniform:5", "loss.gamma": 0.25, "seed": 3})
    assert overrides == ["loss.gamma=0.25", "seed=3", "model.width=[2,1]", "tasks.age.bins=uniform\\:5"]
    from agebench.config.compose import compose_config

    cfg = compose_config(["tasks=age_gender", *overrides])
    assert list(cfg.model.width) == [2, 1] and cfg.tasks.age.bins == "uniform:5" and cfg.loss.gamma == 0.25


def test_grid_values_of_discrete_spaces():
    space = parse_space({"tasks": "choice(age, age_gender)", "seed": "range(3)"})
    assert space.grid() == {"tasks": ["age", "age_gender"], "seed": [0, 1, 2]}
    assert space.grid_size() == 6
    with pytest.raises(UserError, match="continuous"):
        parse_space({"loss.gamma": "interval(0, 1)"}).grid()


@pytest.mark.parametrize("text, message", [
    ("interval(0, 1", "cannot parse"),
    ("interval(1, 0)", "low < high"),
    ("tag(log, interval(0, 1))", "positive lower bound"),
    ("tag(cheap, interval(1, 2))", "unknown tag"),
    ("range(5, 5)", "empty"),
    ("shuffle(choice(a, b))", "shuffle"),
])
def test_bad_space_spellings_name_the_key(text, message):
    with pytest.raises(UserError, match=message) as err:
        parse_space({"loss.gamma": text})
    assert "sweep.params.loss.gamma" in str(err.value)


# ---------------------------------------------------------------------------------------------------
# study yamls and overrides


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_sweep_yaml_validates(name):
    """Search space parses, sampler/pruner build, the base config composes with every choice."""
    spec, user = load_spec(name, [])
    report = check(spec, user)
    assert report and "ok" in report[0]
    assert spec.objectives and spec.n_trials >= 1


def test_required_shipped_studies_exist():
    assert {"lmtcnn_width", "age_granularity", "gamma"} <= set(SHIPPED)
    width, _ = load_spec("lmtcnn_width", [])
    assert width.multi_objective and width.metric_names == ["age/top1", "latency_ms"]
    assert {p.key for p in width.space.params} == {"model.width.0", "model.width.1"}
    gran, _ = load_spec("age_granularity", [])
    assert gran.is_grid and gran.n_trials == gran.space.grid_size() >= 9
    assert gran.space.grid()["tasks"] == ["age", "age_gender", "age_gender_race"]
    gamma, _ = load_spec("gamma", [])
    assert gamma.prunes and gamma.space.params[0].low == 0.0 and gamma.space.params[0].high == 1.0


def test_cli_overrides_are_forwarded_to_trials_and_params_win():
    spec, user = load_spec("gamma", ["trainer=debug", "data.n_subjects=40", "sweep.n_trials=3", "action=status",
                                     "loss.gamma=0.9", "output_dir=/elsewhere"])
    assert spec.n_trials == 3
    assert user == ["trainer=debug", "data.n_subjects=40", "loss.gamma=0.9"]
    overrides = spec.trial_overrides(user, {"loss.gamma": 0.2}, Path("/tmp/s/trial_0003"))
    assert overrides[0] == "experiment_name=gamma"
    assert "loss.gamma=0.2" in overrides and "loss.gamma=0.9" not in overrides
    assert overrides[-1] == "output_dir='/tmp/s/trial_0003'"
    assert forwarded_overrides(["sweep=x", "+sweep.foo=1", "action=run", "+data.extra=2"]) == ["+data.extra=2"]
    assert merge_overrides(["a=1", "b=2"], ["a=3"]) == ["b=2", "a=3"]


def test_unknown_study_and_bad_keys_are_user_errors(sweeps_env):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException):
        load_spec("no_such_study")
    (sweeps_env / "bad.yaml").write_text("params: {loss.gamma: 'interval(0, 1)'}\nobjectives: {age/top1: up}\n")
    with pytest.raises(UserError, match="maximize, minimize or auto"):
        load_spec("bad")
    (sweeps_env / "bad.yaml").write_text("params: {loss.gamma: 'interval(0, 1)'}\nobjectives: {accuracy: maximize}\n")
    with pytest.raises(UserError, match="neither a task metric"):
        load_spec("bad")
    (sweeps_env / "bad.yaml").write_text("base: [tasks=age]\nparams: {loss.gamma: 'interval(0, 1)'}\n"
                                         "objectives: {gender/acc: maximize}\n")
    spec, user = load_spec("bad")
    with pytest.raises(UserError, match="needs the gender task"):
        check(spec, user)
    (sweeps_env / "bad.yaml").write_text("params: {tasks: 'choice(age, agee)'}\nobjectives: {age/top1: maximize}\n")
    spec, user = load_spec("bad")
    with pytest.raises(UserError, match="tasks=agee does not compose"):
        check(spec, user)


def test_cli_unknown_study_is_one_line(tmp_path):
    proc = subprocess.run([*AGEBENCH, "sweep", "sweep=no_such_study"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "no_such_study" in proc.stderr and "gamma" in proc.stderr


def test_command_action_prints_the_grid_as_a_train_multirun():
    spec, user = load_spec("task_sets_grid", ["trainer=debug"])
    line = multirun_command(spec, user)
    assert line.startswith("agebench train -m experiment_name=task_sets_grid")
    assert "'tasks=choice(age, age_gender, age_gender_race)'" in line and "'seed=range(0, 3)'" in line


# ---------------------------------------------------------------------------------------------------
# storages


def test_storage_spellings(tmp_path):
    from optuna.storages import JournalStorage, RDBStorage

    spec, _ = load_spec("gamma", [f"sweep.dir={tmp_path / 'g'}"])
    assert spec.storage_url() == f"sqlite:///{tmp_path / 'g' / 'study.db'}"
    assert isinstance(open_storage(spec.storage_url()), RDBStorage)
    assert (tmp_path / "g" / "study.db").exists()
    assert journal_path(f"journal:{tmp_path}/a.journal") == tmp_path / "a.journal"
    assert journal_path(f"journal://{tmp_path}/a.journal") == tmp_path / "a.journal"
    assert journal_path(str(tmp_path / "b.journal")) == tmp_path / "b.journal"
    assert isinstance(open_storage(f"journal:{tmp_path}/j/a.journal"), JournalStorage)
    with pytest.raises(UserError, match="neither a database URL"):
        open_storage("my-study")
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):  # no driver: one clear line
        with pytest.raises(UserError, match=r"postgres.*psycopg"):
            open_storage("postgresql://user:secret@localhost:1/agebench")


# ---------------------------------------------------------------------------------------------------
# the worker loop with a fake trainer


def fake_trainer(monkeypatch, value_of, n_folds=3, fail_if=None, calls=None):
    """Replace run_experiment: fold k of a trial scores value_of(cfg, k); fail_if(cfg) → a failed fold."""
    import agebench.training.experiment

    def run_experiment(cfg, output_dir, on_fold_end=None, extra_record=None, print_table=None):
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if calls is not None:
            calls.append(extra_record["trial"])
        for fold in range(n_folds):
            record = {"fold": fold, "status": "ok", "metrics": {"age/top1": value_of(cfg, fold)},
                      "latency_ms": 1.0 + float(cfg.loss.gamma or 0), "gmacs": 0.1, **(extra_record or {})}
            if fail_if is not None and fail_if(cfg):
                record.update(status="diverged", metrics={}, error="loss became nan at epoch 0")
            with open(out / "results.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if on_fold_end is not None:
                on_fold_end(fold, record)
        return {}

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", run_experiment)


GAMMA_STUDY = """
base: [tasks=age_gender, loss=gamma]
params: {{loss.gamma: 'interval(0, 1)'}}
objectives: {{{objectives}}}
sampler: {{name: random, seed: 0}}
pruner: {pruner}
n_trials: {n}
"""


def study_spec(sweeps_env, tmp_path, n=5, objectives="age/top1: maximize", pruner="{name: none}", extra=()):
    (sweeps_env / "toy.yaml").write_text(GAMMA_STUDY.format(objectives=objectives, pruner=pruner, n=n))
    return load_spec("toy", [f"sweep.dir={tmp_path / 'toy'}", *extra])


def test_worker_runs_the_budget_and_a_restart_resumes(sweeps_env, tmp_path, monkeypatch):
    calls = []
    fake_trainer(monkeypatch, lambda cfg, k: 1 - abs(cfg.loss.gamma - 0.3), calls=calls)
    spec, user = study_spec(sweeps_env, tmp_path, n=3)
    tally = run_action(spec, "run", user, echo=lambda s: None)
    assert tally["complete"] == 3 and calls == [0, 1, 2]
    # a second worker on the finished study runs nothing; a bigger budget continues the numbering
    assert run_action(spec, "run", user, echo=lambda s: None)["ran"] == 0
    spec5, user = study_spec(sweeps_env, tmp_path, n=5)
    run_action(spec5, "run", user, echo=lambda s: None)
    assert calls == [0, 1, 2, 3, 4]
    study, _ = open_study(spec5, create=False)
    assert [t.number for t in study.trials] == list(range(5))
    best = study.best_trial
    assert best.value == pytest.approx(max(1 - abs(t.params["loss.gamma"] - 0.3) for t in study.trials))
    records = [json.loads(line) for line in (tmp_path / "toy" / f"trial_{best.number:04d}" / "results.jsonl").open()]
    assert {(r["study"], r["trial"]) for r in records} == {("toy", best.number)}
    assert records[0]["trial_params"] == {"loss.gamma": best.params["loss.gamma"]}


def test_failed_trials_are_recorded_and_max_failures_stops_the_study(sweeps_env, tmp_path, monkeypatch):
    def odd_trial(cfg):  # trials 1, 3, 5, ... diverge
        return int(Path(cfg.output_dir).name.split("_")[1]) % 2 == 1

    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma, fail_if=odd_trial)
    spec, user = study_spec(sweeps_env, tmp_path, n=12, extra=["sweep.max_failures=3"])
    with pytest.raises(StudyStopped, match="max_failures=3"):
        run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL] * 3  # went on after each failure
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["fail_kind"] == "diverged" and "nan" in t.user_attrs["fail_reason"] for t in failed)
    # the CLI answer is one line with a non-zero exit
    assert StudyStopped("x").exit_code != 0


def test_a_missing_objective_fails_the_trial(sweeps_env, tmp_path, monkeypatch):
    fake_trainer(monkeypatch, lambda cfg, k: 0.5)
    spec, user = study_spec(sweeps_env, tmp_path, n=2, objectives="age/top1: maximize, age/mae: minimize")
    with pytest.raises(StudyStopped, match="all 2 trial"):  # a study in which every trial failed is no success
        run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert study.trials[0].user_attrs["fail_kind"] == "no_objective"
    assert "age/mae" in study.trials[0].user_attrs["fail_reason"]


def test_pruner_stops_hopeless_trials_after_a_fold(sweeps_env, tmp_path, monkeypatch):
    calls = []
    # trial quality = gamma; the median pruner compares running fold means at each fold
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma, n_folds=4, calls=calls)
    spec, user = study_spec(sweeps_env, tmp_path, n=8,
                            pruner="{name: median, n_startup_trials: 2, n_warmup_steps: 0}")
    assert spec.prunes
    run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "some trial below the median should have been pruned"
    for t in pruned:
        assert t.last_step is not None and t.last_step < 3  # stopped before its last fold
        assert t.intermediate_values[t.last_step] == pytest.approx(t.params["loss.gamma"])
    assert all(t.number >= 2 for t in pruned)  # n_startup_trials


def test_multi_objective_study_gives_a_pareto_set_and_never_prunes(sweeps_env, tmp_path, monkeypatch):
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)   # accuracy rises with gamma, and so does latency
    spec, user = study_spec(sweeps_env, tmp_path, n=6, objectives="age/top1: maximize, latency_ms: minimize",
                            pruner="{name: median, n_startup_trials: 0, n_warmup_steps: 0}")
    assert spec.multi_objective and not spec.prunes
    run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(study.best_trials) == 6  # a pure trade-off: every trial is Pareto-optimal
    lines = []
    run_action(spec, "status", user, echo=lines.append)
    assert "Pareto set (6)" in lines[0]


def test_stale_trials_of_dead_workers_are_failed_and_rerun(sweeps_env, tmp_path, monkeypatch):
    calls = []
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma, calls=calls)
    spec, user = study_spec(sweeps_env, tmp_path, n=3, extra=["sweep.heartbeat_s=0.1", "sweep.stale_after_s=1"])
    study, storage = open_study(spec)
    dead = study.ask()                      # a worker asked, sampled, then died without a word
    dead.suggest_float("loss.gamma", 0.0, 1.0)
    storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 60)
    run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    first = study.trials[0]
    assert first.state == TrialState.FAIL and first.user_attrs["fail_kind"] == "stale"
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == first.params
    counts = count_trials(study.trials)
    assert counts.by_state["COMPLETE"] == 3 and counts.budget_used == 3 and counts.retried == 1


# looks dead after 0.4 s, stale after 4 s: wide enough that a loaded CI machine still finishes the worker's
# other trials while the dead one looks dead but is not yet stale (the case where waiting matters)
WAIT = ["sweep.heartbeat_s=0.2", "sweep.stale_after_s=4"]


def _other_trial(spec, worker: str | None, beat: float | None):
    """A RUNNING trial of another worker, with its last heartbeat at `beat` (None: no heartbeat record)."""
    study, storage = open_study(spec)
    trial = study.ask()
    trial.suggest_float("loss.gamma", 0.0, 1.0)
    if worker is not None:
        storage.set_trial_user_attr(trial._trial_id, WORKER, worker)
    if beat is not None:
        storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, beat)
    return study, storage, trial


@pytest.mark.parametrize("beat", ["old", "none"])
def test_a_worker_waits_for_a_dead_workers_trial_instead_of_stopping_short(sweeps_env, tmp_path, monkeypatch,
                                                                          caplog, beat):
    """Another worker asks a trial and dies while this one runs its first; the budget is then spent but
    for that dead trial (heartbeat old but not yet stale, or no heartbeat at all, counted from its
    start): this worker waits for it to go stale and reruns it rather than stopping one trial short."""
    import agebench.training.experiment

    caplog.set_level(logging.INFO, logger="agebench.sweep")
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    spec, user = study_spec(sweeps_env, tmp_path, n=3, extra=WAIT)
    fake = agebench.training.experiment.run_experiment

    def first_trial_meets_a_dying_worker(cfg, output_dir, extra_record=None, **kwargs):
        if extra_record["trial"] == 0:
            _other_trial(spec, "deadhost:1", time.time() - 0.6 if beat == "old" else None)
            if beat == "none":
                time.sleep(0.6)  # older than 2 × heartbeat_s, younger than stale_after_s
        return fake(cfg, output_dir, extra_record=extra_record, **kwargs)

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", first_trial_meets_a_dying_worker)
    t0 = time.time()
    tally = run_action(spec, "run", user, echo=lambda s: None)
    assert time.time() - t0 < 15
    assert tally["complete"] == 3  # trials 0 and 2, then the dead trial's parameters
    study, _ = open_study(spec, create=False)
    counts = count_trials(study.trials)
    assert counts.by_state == {"FAIL": 1, "COMPLETE": 3} and counts.budget_used == 3 and counts.retried == 1
    assert study.trials[1].user_attrs["fail_kind"] == "stale"
    assert [t.user_attrs.get("retry_of") for t in study.trials] == [None, None, None, 1]
    assert "waiting for trial 1 (no heartbeat for" in caplog.text


def test_a_surplus_trial_of_another_worker_is_no_reason_to_fail(sweeps_env, tmp_path, monkeypatch):
    """Two workers ask for the last trial of the budget at once: the study gets one trial more than its budget.
    The worker that finishes first found its budget spent by finished trials, with the other's surplus trial
    still running (its heartbeat fresh, not yet seen beating again); it exited 4, "ends with trial(s) 5 not
    finished" (CI, tests/test_sweep.py::test_two_workers_share_one_study_budget[postgresql]). The surplus
    trial is no missing point: exit 0, and the other worker finishes it."""
    import agebench.training.experiment

    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    spec, user = study_spec(sweeps_env, tmp_path, n=2, extra=["sweep.heartbeat_s=5", "sweep.stale_after_s=30"])
    fake = agebench.training.experiment.run_experiment

    def last_trial_asked_twice(cfg, output_dir, extra_record=None, **kwargs):
        if extra_record["trial"] == 1:  # while this worker runs the budget's last trial, another asks one too
            _other_trial(spec, "otherhost:7", time.time())
        return fake(cfg, output_dir, extra_record=extra_record, **kwargs)

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", last_trial_asked_twice)
    t0 = time.time()
    tally = run_action(spec, "run", user, echo=lambda s: None)
    assert tally["complete"] == 2 and time.time() - t0 < 10  # no wait: the budget is spent without it
    study, _ = open_study(spec, create=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]


def test_a_worker_does_not_wait_for_live_or_own_trials(sweeps_env, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="agebench.sweep")
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    spec, user = study_spec(sweeps_env, tmp_path, n=3, extra=["sweep.heartbeat_s=0.2", "sweep.stale_after_s=30"])
    _, storage, live = _other_trial(spec, "livehost:2", None)
    _other_trial(spec, worker_id(), time.time() - 0.6)  # "this worker's" own (e.g. a crashed in-process run)
    t0 = time.time()
    with heartbeat(storage, live._trial_id, 0.2):  # a live worker beating in the background
        # issue 26: the worker does not wait for the live trial (seen beating again), but its own RUNNING trial
        # (a crashed in-process run) is unfinished and nobody runs it: one line, non-zero exit, never 0
        with pytest.raises(StudyStopped, match=r"ends with trial\(s\) 1 not finished: rerun the same command"):
            run_action(spec, "run", user, echo=lambda s: None)
        assert time.time() - t0 < 10  # exited without waiting (a wait would last until stale, 30 s)
    study, _ = open_study(spec, create=False)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.RUNNING, TrialState.COMPLETE]
    assert "waiting for trial" not in caplog.text


def test_the_wait_for_a_dead_trial_is_bounded(sweeps_env, tmp_path, monkeypatch, caplog):
    """Even if a dead-looking trial is never reaped, the worker stops waiting for it (safety net)."""
    import agebench.sweeps.driver as driver

    caplog.set_level(logging.INFO, logger="agebench.sweep")
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    monkeypatch.setattr(driver, "fail_stale_trials", lambda *args: [])
    spec, user = study_spec(sweeps_env, tmp_path, n=2, extra=WAIT)
    _other_trial(spec, "deadhost:1", time.time() - 0.6)
    t0 = time.time()
    # it gives up on the trial, and says so: the study still has an unfinished point, so no exit 0 (issue 26)
    with pytest.raises(StudyStopped, match=r"ends with trial\(s\) 0 not finished"):
        run_action(spec, "run", user, echo=lambda s: None)
    assert 4 <= time.time() - t0 < 15  # stale_after_s + 2 × heartbeat_s of waiting, then it gives up
    study, _ = open_study(spec, create=False)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 1
    assert "waiting for trial 0" in caplog.text and "not waiting longer" in caplog.text


def test_an_interrupted_worker_requeues_its_trial(sweeps_env, tmp_path, monkeypatch):
    import agebench.training.experiment

    def interrupted(cfg, output_dir, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", interrupted)
    spec, user = study_spec(sweeps_env, tmp_path, n=2)
    with pytest.raises(StudyStopped, match="queued again") as err:
        run_action(spec, "run", user, echo=lambda s: None)
    assert err.value.exit_code == 130
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    run_action(spec, "run", user, echo=lambda s: None)  # the next worker reruns the same parameters first
    study, _ = open_study(spec, create=False)
    first, rerun = study.trials[0], study.trials[1]
    assert first.user_attrs["fail_kind"] == "interrupted" and rerun.user_attrs["retry_of"] == 0
    assert rerun.params == first.params and rerun.state == TrialState.COMPLETE
    assert count_trials(study.trials).by_state == {"FAIL": 1, "COMPLETE": 2}


@pytest.mark.parametrize("signum, between_folds", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_signal_stops_a_worker_with_one_line(sweeps_env, tmp_path, monkeypatch, capsys, signum, between_folds):
    """A signal during a trial: the run inside says nothing (its "resume from last.ckpt" advice is wrong
    for a trial that is queued again as a new one), the worker says it once, and exits 128 + signal."""
    import agebench.training.experiment
    from agebench.training import signals
    def stopped(cfg, output_dir, **kwargs):
        with signals.stop_on_signals():
            if between_folds:
                raise signals.StopRequested(signum)
            raise signals.fold_stopped(signals.StopRequested(signum), 0, Path(output_dir) / "fold_0", 5)

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", stopped)
    spec, user = study_spec(sweeps_env, tmp_path, n=2)
    with pytest.raises(StudyStopped) as err:
        run_action(spec, "run", user, echo=lambda s: None)
    name = signals.NAMES[signum]
    assert capsys.readouterr().err == ""  # nothing from the run: the CLI prints the one line below
    assert str(err.value).startswith(f"interrupted ({name}); trial 0 is queued again for the next worker")
    assert err.value.exit_code == 128 + signum and err.value.interrupted
    study, _ = open_study(spec, create=False)
    assert not study.user_attrs.get("agebench:worker_errors")  # no error of the study's, for action=status


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_between_trials_ends_the_worker_with_one_line(sweeps_env, tmp_path, monkeypatch, signum):
    """Ctrl-C or SIGTERM while no trial runs (a storage call, a wait for a dead worker's trial): one line,
    128 + signal, no traceback — and no trial to requeue."""
    import agebench.sweeps.driver as driver

    if signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        pytest.skip("something else handles SIGTERM in this process; the worker leaves it alone")

    def interrupted(*args):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # through the worker's own SIGTERM handler
        time.sleep(5)

    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    monkeypatch.setattr(driver, "fail_stale_trials", interrupted)
    spec, user = study_spec(sweeps_env, tmp_path, n=2)
    with pytest.raises(StudyStopped) as err:
        run_action(spec, "run", user, echo=lambda s: None)
    assert str(err.value).startswith(f"interrupted ({signal.Signals(signum).name}); between trials, none was running")
    assert err.value.exit_code == 128 + signum and err.value.interrupted
    study, _ = open_study(spec, create=False)
    assert study.trials == []


def test_status_and_export_with_too_few_trials_for_importances(sweeps_env, tmp_path, monkeypatch):
    fake_trainer(monkeypatch, lambda cfg, k: cfg.loss.gamma)
    spec, user = study_spec(sweeps_env, tmp_path, n=1)
    with pytest.raises(UserError, match="no study"):
        run_action(spec, "status", user, echo=lambda s: None)
    run_action(spec, "run", user, echo=lambda s: None)
    lines = []
    run_action(spec, "status", user, echo=lines.append)
    text = "\n".join(lines)
    assert "COMPLETE 1" in text and "best trial" in text and "needs >= 2 complete trials (has 1)" in text
    files = run_action(spec, "export", user, echo=lambda s: None)
    assert {p.name for p in files} == {"trials.csv", "history.png", "index.html"}


def test_export_writes_pareto_and_importance_plots(sweeps_env, tmp_path, monkeypatch):
    import pandas as pd

    fake_trainer(monkeypatch, lambda cfg, k: math.sin(3 * cfg.loss.gamma))
    spec, user = study_spec(sweeps_env, tmp_path, n=5, objectives="age/top1: maximize, latency_ms: minimize")
    run_action(spec, "run", user, echo=lambda s: None)
    files = {p.name: p for p in run_action(spec, "export", user, echo=lambda s: None)}
    assert {"trials.csv", "pareto.png", "importance_age_top1.png", "importance_latency_ms.png", "index.html"} <= set(files)
    table = pd.read_csv(files["trials.csv"])
    assert list(table["number"]) == [0, 1, 2, 3, 4]
    assert {"age/top1", "latency_ms", "params.loss.gamma", "state"} <= set(table.columns)
    assert files["pareto.png"].stat().st_size > 1000
    lines = []
    run_action(spec, "status", user, echo=lines.append)
    assert "loss.gamma 1.00" in lines[0]


# ---------------------------------------------------------------------------------------------------
# real trials


def test_real_multi_objective_study_with_a_failing_trial(sweeps_env, tmp_path, cache_dir):
    """Grid over 2 widths × 2 bin schemes; `uniform:1` cannot build, so those trials fail and the
    study goes on: the Pareto set comes from the trials that trained."""
    (sweeps_env / "mo.yaml").write_text(
        "kind: grid\nbase: [model=lmtcnn, tasks=age_gender]\n"
        "params: {model.width.0: 'choice(0.5, 1)', tasks.age.bins: 'choice(uniform:3, uniform:1)'}\n"
        "objectives: {age/top1: maximize, latency_ms: minimize}\n")
    spec, user = load_spec("mo", [*FAST, f"cache_dir={cache_dir}", f"sweep.dir={tmp_path / 'mo'}"])
    assert spec.n_trials == 4
    # every point ran; two could not build: a grid with a failed point never exits 0 (issue 26), it says which
    with pytest.raises(StudyStopped, match=r"grid point trial\(s\) \d, \d failed: `agebench sweep .*action=retry_failed` reruns"):
        run_action(spec, "run", user, echo=lambda s: None)
    study, _ = open_study(spec, create=False)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert {t.params["tasks.age.bins"] for t in failed} == {"uniform:1"}
    assert all(t.user_attrs["fail_kind"] == "config" and "uniform" in t.user_attrs["fail_reason"] for t in failed)
    pareto = study.best_trials
    assert 1 <= len(pareto) <= 2 and all(t.params["tasks.age.bins"] == "uniform:3" for t in pareto)
    for t in study.trials:
        if t.state != TrialState.COMPLETE:
            continue
        records = [json.loads(line) for line in (tmp_path / "mo" / f"trial_{t.number:04d}" / "results.jsonl").open()]
        assert len(records) == 2 and all(r["status"] == "ok" for r in records)
        assert {r["study"] for r in records} == {"mo"} and {r["trial"] for r in records} == {t.number}
        assert records[0]["trial_params"] == t.params and records[0]["experiment"] == "mo"
        assert records[0]["config"]["model"]["width"][0] == t.params["model.width.0"]
        assert t.values[0] == pytest.approx(sum(r["metrics"]["age/top1"] for r in records) / 2)
        assert t.values[1] == pytest.approx(sum(r["latency_ms"] for r in records) / 2)


def test_wandb_runs_are_grouped_by_study(tmp_path):
    pytest.importorskip("wandb")
    from agebench.config.compose import compose_config
    from agebench.training.loggers import make_logger

    cfg = compose_config(["logger=wandb", "logger.mode=disabled"])
    record = {"study": "lmtcnn_width", "trial": 7, "fold": 1, "dataset": "synthetic", "model": "lmtcnn",
              "tasks": ["age", "gender"], "variant": None}
    logger = make_logger(cfg, {}, record, tmp_path / "fold_1")
    assert logger._wandb_init["group"] == "lmtcnn_width"
    assert logger._wandb_init["name"] == "lmtcnn_width-trial7-fold1"


def _worker(tmp_path: Path, name: str, overrides: list[str], log: str) -> subprocess.Popen:
    env = {**os.environ, "AGEBENCH_SWEEPS_DIR": str(tmp_path / "sweeps"), "OMP_NUM_THREADS": "1"}
    out = open(tmp_path / log, "w")
    return subprocess.Popen([*AGEBENCH, "sweep", f"sweep={name}", *overrides], cwd=tmp_path, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True)


POSTGRES_URL_ENV = "AGEBENCH_TEST_POSTGRES_URL"  # e.g. postgresql://agebench:agebench@localhost:5432/agebench_test


def _storage_or_skip(kind: str, tmp_path: Path) -> str:
    """The shared storage two workers use: a SQLite file, or (opt-in) a PostgreSQL server."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'pair' / 'study.db'}"
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_URL_ENV} to a PostgreSQL database to test sweeps on a server (docs/sweeps.md)")
    pytest.importorskip("psycopg", reason='pip install -e ".[postgres]"')
    return url


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_workers_share_one_study_budget(kind, tmp_path, cache_dir):
    url = _storage_or_skip(kind, tmp_path)
    name = "pair" if kind == "sqlite" else f"pair_{os.getpid()}_{tmp_path.name}"  # a server outlives test runs
    write_study(tmp_path, "pair", f"study_name: {name}\nbase: [tasks=age_gender, loss=gamma]\n"
                                  "params: {loss.gamma: 'interval(0, 1)'}\n"
                                  "objectives: {age/top1: maximize}\nsampler: {name: random, seed: 0}\n")
    overrides = [*FAST, "protocol.folds=[0]", f"cache_dir={cache_dir}", f"sweep.dir={tmp_path / 'pair'}",
                 "sweep.n_trials=6", f"sweep.storage={url}"]
    workers = [_worker(tmp_path, "pair", [*overrides, f"sweep.worker={i}"], f"worker{i}.log") for i in range(2)]
    for w in workers:
        assert w.wait(timeout=600) == 0, (tmp_path / "worker0.log").read_text()[-3000:] + (tmp_path / "worker1.log").read_text()[-3000:]
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 6 <= len(finished) <= 6 + 2 - 1
    assert all(t.state == TrialState.COMPLETE for t in finished)
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers took part
    for t in finished:
        records = [json.loads(line) for line in (tmp_path / "pair" / f"trial_{t.number:04d}" / "results.jsonl").open()]
        assert [(r["study"], r["trial"], r["fold"]) for r in records] == [(name, t.number, 0)]
    # status through the CLI
    env = {**os.environ, "AGEBENCH_SWEEPS_DIR": str(tmp_path / "sweeps")}
    proc = subprocess.run([*AGEBENCH, "sweep", "sweep=pair", f"sweep.dir={tmp_path / 'pair'}", f"sweep.storage={url}",
                           "action=status"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"COMPLETE {len(finished)}" in proc.stdout and "best trial" in proc.stdout and "loss.gamma" in proc.stdout
