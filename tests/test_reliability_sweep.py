"""Issue 16, items 3 and 10 (sweeps): a restarted worker never repeats a parameter set; broken study
yamls and bad sweep values end in one line even with action=check; a study whose every trial failed
exits non-zero.

The worker tests replace `agebench.training.experiment.run_experiment` with a fake that writes a run record in
milliseconds (as tests/test_sweep.py does); the kill -9 test runs that fake in real worker processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from agebench.sweeps.command import load_spec, run_action
from agebench.sweeps.driver import StudyStopped
from agebench.sweeps.storage import RETRIED_KINDS
from agebench.sweeps.study import open_study

STUDY = """
base: [tasks=age_gender, loss=gamma]
params: {loss.gamma: 'interval(0, 1)'}
objectives: {age/top1: maximize}
sampler: {name: random, seed: 0}
n_trials: 6
"""

# tiny synthetic data: the worker's pre-flight loads the trial's dataset once
SMALL = ["data.n_subjects=36", "data.images_per_subject=2", "data.image_size=48", "data.load_size=52"]

# A worker process whose trials take milliseconds; HANG_AT_TRIAL=<n> makes trial n hang (to be killed).
WORKER = '''
import json, os, sys, time
from pathlib import Path

import agebench.training.experiment
from agebench.sweeps.command import load_spec, run_action


def run_experiment(cfg, output_dir, on_fold_end=None, extra_record=None, print_table=None):
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (Path(sys.argv[1]) / f"started_{extra_record['trial']}").touch()
    if os.environ.get("HANG_AT_TRIAL") == str(extra_record["trial"]):
        time.sleep(600)
    record = {"fold": 0, "status": "ok", "metrics": {"age/top1": float(cfg.loss.gamma)}, **extra_record}
    (out / "results.jsonl").write_text(json.dumps(record) + "\\n")
    on_fold_end(0, record)
    return {}


agebench.training.experiment.run_experiment = run_experiment
spec, user = load_spec("toy", sys.argv[2:])
run_action(spec, "run", user, echo=print)
'''


@pytest.fixture
def sweeps_env(tmp_path, monkeypatch):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "toy.yaml").write_text(STUDY)
    monkeypatch.setenv("AGEBENCH_SWEEPS_DIR", str(folder))
    return folder


def fake_trainer(monkeypatch, diverge=False):
    import agebench.training.experiment

    def run_experiment(cfg, output_dir, on_fold_end=None, extra_record=None, print_table=None):
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = {"fold": 0, "status": "diverged" if diverge else "ok", "error": "loss became nan at epoch 0",
                  "metrics": {} if diverge else {"age/top1": float(cfg.loss.gamma)}, **extra_record}
        (out / "results.jsonl").write_text(json.dumps(record) + "\n")
        on_fold_end(0, record)
        return {}

    monkeypatch.setattr(agebench.training.experiment, "run_experiment", run_experiment)


def sampled_params(study) -> list[float]:
    """γ of every trial that drew its own parameters (not the retries of a dead worker's trial)."""
    return [t.params["loss.gamma"] for t in study.get_trials(deepcopy=False)
            if not (t.state == TrialState.FAIL and t.user_attrs.get("fail_kind") in RETRIED_KINDS)
            and "retry_of" not in t.user_attrs]


def assert_no_repeats(study, at_least: int) -> None:
    finished = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    assert len(finished) >= at_least
    gammas = sampled_params(study)
    assert len(gammas) == len(set(gammas)), f"a parameter set ran twice: {sorted(gammas)}"


# ---------------------------------------------------------------------------------------------------
# item 3: a (re)started worker continues the study's random stream


def test_the_sampler_seed_follows_the_studys_trial_count(sweeps_env, tmp_path):
    spec, _ = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}", "sweep.worker=1"])
    assert spec.sampler_seed(0) == 1                      # a fresh study: seed + worker, as before
    seeds = {spec.sampler_seed(n) for n in range(1, 50)}
    assert len(seeds) == 49 and 1 not in seeds
    other, _ = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}", "sweep.worker=2"])
    assert other.sampler_seed(7) != spec.sampler_seed(7)  # workers joining at the same count differ


def test_a_worker_restarted_on_a_study_does_not_replay_its_draws(sweeps_env, tmp_path, monkeypatch):
    fake_trainer(monkeypatch)
    spec3, user = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}", "sweep.n_trials=3"])
    run_action(spec3, "run", user, echo=lambda s: None)
    spec6, user = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}"])   # the same worker, started again
    run_action(spec6, "run", user, echo=lambda s: None)
    study, _ = open_study(spec6, create=False)
    assert_no_repeats(study, at_least=6)


@pytest.mark.slow
def test_kill_9_during_a_trial_and_restart_repeats_no_parameter_set(sweeps_env, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    marks = tmp_path / "marks"
    marks.mkdir()
    args = [sys.executable, str(script), str(marks), *SMALL, f"sweep.dir={tmp_path / 'toy'}", "sweep.heartbeat_s=0.2",
            "sweep.stale_after_s=1.5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(args, env={**env, "HANG_AT_TRIAL": "1"}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while not (marks / "started_1").exists():
            assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
        first.kill()  # SIGKILL, mid-trial: no chance to requeue or say goodbye
        first.wait(timeout=30)
    restarted = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stdout[-3000:] + restarted.stderr[-3000:]
    spec, _ = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}"])
    study, _ = open_study(spec, create=False)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    killed = study.trials[1]
    assert killed.state == TrialState.FAIL and killed.user_attrs["fail_kind"] == "stale"
    assert any(t.user_attrs.get("retry_of") == 1 and t.state == TrialState.COMPLETE for t in study.trials)
    assert_no_repeats(study, at_least=6)


# ---------------------------------------------------------------------------------------------------
# item 10: sweep messages and exit codes


BROKEN_STUDIES = {
    "malformed_yaml": ("params: {loss.gamma: 'interval(0, 1)'\nobjectives: {age/top1: maximize}\n  bad: [\n",
                       "is not valid YAML"),
    "bad_sampler_target": ("params: {loss.gamma: 'interval(0, 1)'}\nobjectives: {age/top1: maximize}\n"
                           "sampler: {_target_: optuna.samplers.NoSuchSampler}\n", "sweep.sampler._target_="),
    "bad_pruner_target": ("params: {loss.gamma: 'interval(0, 1)'}\nobjectives: {age/top1: maximize}\n"
                          "pruner: {_target_: optuna.pruners.MedianPruner, no_such_arg: 1}\n", "sweep.pruner._target_="),
    "unparseable_base": ("base: ['model.width=[1,']\nparams: {loss.gamma: 'interval(0, 1)'}\n"
                         "objectives: {age/top1: maximize}\n", "sweep.base entry 'model.width=[1,'"),
    "bad_n_trials": (STUDY.replace("n_trials: 6", "n_trials: abc"), "sweep.n_trials='abc'"),
}


@pytest.mark.parametrize("name", list(BROKEN_STUDIES))
def test_broken_study_yamls_are_one_line_with_action_check(cli, tmp_path, name):
    text, message = BROKEN_STUDIES[name]
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / f"{name}.yaml").write_text(text)
    proc = cli("sweep", f"sweep={name}", "action=check", f"sweep.dir={tmp_path / 'out'}",
               env={"AGEBENCH_SWEEPS_DIR": str(tmp_path / "sweeps")})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    assert message in lines[0]


def test_a_study_in_which_every_trial_failed_exits_non_zero(sweeps_env, tmp_path, monkeypatch):
    fake_trainer(monkeypatch, diverge=True)
    spec, user = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}", "sweep.n_trials=3"])
    with pytest.raises(StudyStopped, match=r"all 3 trial\(s\) failed; the first \(diverged\): .*nan") as err:
        run_action(spec, "run", user, echo=lambda s: None)
    assert err.value.exit_code != 0
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'toy' / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3


def test_a_study_with_one_good_trial_still_exits_zero(sweeps_env, tmp_path, monkeypatch):
    import agebench.training.experiment

    fake_trainer(monkeypatch, diverge=True)
    failing = agebench.training.experiment.run_experiment
    fake_trainer(monkeypatch)
    working = agebench.training.experiment.run_experiment
    monkeypatch.setattr(agebench.training.experiment, "run_experiment",
                        lambda cfg, out, extra_record=None, **kw: (working if extra_record["trial"] == 1 else failing)(
                            cfg, out, extra_record=extra_record, **kw))
    spec, user = load_spec("toy", [*SMALL, f"sweep.dir={tmp_path / 'toy'}", "sweep.n_trials=3"])
    tally = run_action(spec, "run", user, echo=lambda s: None)
    assert tally == {"ran": 3, "complete": 1, "pruned": 0, "failed": 2}
