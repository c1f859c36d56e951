"""Side-by-side jobs split the cores: the thread choice follows the joblib launcher's n_jobs,
sweep.workers_per_node, the CPU affinity, the cgroup quota, SLURM_CPUS_PER_TASK, loader processes and
the agebench runs live on the machine; trainer.threads overrides all of it (agebench/runtime/threads.py)."""

import logging
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from agebench.config.compose import compose_config
from agebench.results.store import read_records
from agebench.runtime import threads
from agebench.runtime.process import set_threads as run_hook  # what a run calls at its start
from agebench.training.experiment import run_experiment

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
EIGHT = set(range(8))
cgroup_quota = threads.cgroup_quota  # the real reader (the fixture stubs the module's for the other tests)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """A private job registry, no Slurm/agebench variables, and torch's threads restored afterwards."""
    monkeypatch.setenv(threads.REGISTRY_ENV, str(tmp_path / "jobs"))
    for var in ("SLURM_CPUS_PER_TASK", "SLURM_JOB_ID", "SLURM_JOBID", threads.JOBS_ENV, threads.JOBS_FROM_ENV):
        monkeypatch.delenv(var, raising=False)
    for var in threads.THREAD_ENV_VARS:  # apply() sets them; monkeypatch puts the old values back
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    monkeypatch.setattr(threads, "cgroup_quota", lambda *a, **k: None)  # unlimited unless a test says otherwise
    monkeypatch.setattr(threads, "hydra_launcher", lambda: None)
    monkeypatch.setattr(threads, "_current", None)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def cpus(monkeypatch, n):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))


def joblib(monkeypatch, n_jobs):
    monkeypatch.setattr(threads, "hydra_launcher", lambda: {"_target_": JOBLIB, "n_jobs": n_jobs})


# ---------------------------------------------------------------------------------------------------
# the hook agebench.training.command calls: before issue 17 it left torch's default unless trainer.threads was set

@pytest.mark.parametrize("n_jobs, expected", [(1, 8), (2, 4), (3, 2), (8, 1), (16, 1), (-1, 1), (-5, 2)])
def test_threads_follow_the_joblib_launchers_n_jobs(monkeypatch, n_jobs, expected):
    cpus(monkeypatch, 8)
    joblib(monkeypatch, n_jobs)
    torch.set_num_threads(7)  # neither the answer nor torch's default here
    run_hook(OmegaConf.create({"threads": None}))
    assert torch.get_num_threads() == expected
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == str(expected)  # for child processes
    assert threads.current().reason.startswith(f"threads={expected} because ")
    assert f"hydra.launcher.n_jobs={n_jobs}" in threads.current().reason


@pytest.mark.parametrize("affinity, expected", [(1, 1), (3, 3), (6, 6)])
def test_one_job_alone_keeps_every_core_it_may_use(monkeypatch, affinity, expected):
    cpus(monkeypatch, affinity)
    torch.set_num_threads(7)
    run_hook(OmegaConf.create({"threads": None}))
    assert torch.get_num_threads() == expected
    assert f"affinity {affinity} of" in threads.current().reason


def test_affinity_is_split_between_declared_jobs(monkeypatch):
    cpus(monkeypatch, 6)
    joblib(monkeypatch, 4)
    run_hook(OmegaConf.create({"threads": None}))
    assert torch.get_num_threads() == 1  # 6 // 4
    cpus(monkeypatch, 4)
    monkeypatch.setenv(threads.JOBS_ENV, "2")  # stated per node: wins over n_jobs
    run_hook(OmegaConf.create({"threads": None}))
    assert torch.get_num_threads() == 2 and "AGEBENCH_JOBS_PER_NODE=2" in threads.current().reason


def test_trainer_threads_overrides_everything(monkeypatch):
    cpus(monkeypatch, 8)
    joblib(monkeypatch, 8)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    run_hook(OmegaConf.create({"threads": 3}))
    assert torch.get_num_threads() == 3
    assert "trainer.threads=3" in threads.current().reason
    # and it stays at every epoch start, whatever the node does
    assert threads.refresh(OmegaConf.create({"threads": 3})).threads == 3 and torch.get_num_threads() == 3


def test_slurm_cpus_per_task_bounds_the_cores(monkeypatch):
    cpus(monkeypatch, 8)  # a cluster without cpusets: the mask shows the whole node
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    run_hook(OmegaConf.create({"threads": None}))
    assert torch.get_num_threads() == 3 and "SLURM_CPUS_PER_TASK=3" in threads.current().reason
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "16")  # more than the mask: the mask binds
    assert threads.decide().threads == 8


@pytest.mark.parametrize("launcher, loaders", [("slurm_cpu", 0), ("slurm_gpu", 2)])
def test_slurm_launcher_cpus_per_task_sets_the_threads(monkeypatch, launcher, loaders):
    """conf/hydra/launcher/slurm_*.yaml → submitit's `#SBATCH --cpus-per-task` → SLURM_CPUS_PER_TASK in
    the job (Slurm sets it from that option) → the job's threads, on a node whose mask shows 64 cores."""
    from hydra import compose, initialize_config_dir

    from agebench.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    per_task = int(cfg.hydra.launcher.cpus_per_task)
    assert per_task >= 1
    cpus(monkeypatch, 64)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(per_task))
    choice = threads.decide(loader_workers=loaders)
    share_after_loaders = max(-(-per_task // 2), per_task - loaders)  # the model keeps half its share
    assert choice.threads == share_after_loaders and choice.cores == per_task
    assert f"SLURM_CPUS_PER_TASK={per_task}" in choice.reason


def test_sweep_workers_per_node_reaches_the_trials(monkeypatch):
    cpus(monkeypatch, 8)
    threads.share_node(None)  # null: nothing declared
    assert threads.decide().threads == 8
    threads.share_node(4)
    choice = threads.decide()
    assert choice.threads == 2 and "from sweep.workers_per_node" in choice.reason


def test_sweep_yaml_declares_workers_per_node():
    from agebench.config.validation import validate_train_config
    from agebench.sweeps.source import compose_sweep_config

    cfg = compose_sweep_config(["sweep=gamma", "sweep.workers_per_node=3"])
    assert cfg.sweep.workers_per_node == 3 and validate_train_config(cfg) == []
    bad = validate_train_config(compose_sweep_config(["sweep=gamma", "sweep.workers_per_node=0"]))
    assert bad == ["sweep.workers_per_node=0: use an integer ≥ 1 (workers side by side on one machine), or null"]


def test_loader_processes_take_cores_but_the_model_keeps_half_its_share():
    assert threads.choose_threads(None, 8, "mask", 1, "alone", loader_workers=2).threads == 6
    assert threads.choose_threads(None, 8, "mask", 1, "alone", loader_workers=6).threads == 4
    assert threads.choose_threads(None, 8, "mask", 2, "n_jobs", loader_workers=2).threads == 2
    assert threads.choose_threads(None, 2, "mask", 2, "n_jobs", loader_workers=2).threads == 1
    assert "2 loader process(es)" in threads.choose_threads(None, 8, "mask", 1, "alone", loader_workers=2).reason


# ---------------------------------------------------------------------------------------------------
# cgroup quotas (fake /sys/fs/cgroup trees)

def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_cpu_max_and_its_ancestors(tmp_path):
    root, proc = tmp_path / "cg", tmp_path / "cgroup"
    _write(proc, "0::/user.slice/job\n")
    _write(root / "user.slice" / "job" / "cpu.max", "max 100000\n")
    _write(root / "user.slice" / "cpu.max", "250000 100000\n")  # the parent's 2.5 CPUs limit the child too
    assert cgroup_quota(root, proc) == pytest.approx(2.5)
    _write(root / "user.slice" / "job" / "cpu.max", "150000 100000\n")
    assert cgroup_quota(root, proc) == pytest.approx(1.5)
    _write(root / "user.slice" / "job" / "cpu.max", "max 100000\n")
    _write(root / "user.slice" / "cpu.max", "max 100000\n")
    assert cgroup_quota(root, proc) is None


def test_cgroup_v1_cfs_quota_in_a_container(tmp_path):
    root, proc = tmp_path / "cg", tmp_path / "cgroup"
    # the host path is not mounted inside the container: the mount root is the container's cgroup
    _write(proc, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "300000\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_quota(root, proc) == pytest.approx(3.0)
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_quota(root, proc) is None


def test_a_cgroup_quota_below_the_mask_sets_the_threads(monkeypatch):
    cpus(monkeypatch, 8)
    monkeypatch.setattr(threads, "cgroup_quota", lambda *a, **k: 2.5)
    run_hook(OmegaConf.create({"threads": None}))
    assert torch.get_num_threads() == 2 and "cgroup quota 2.5 CPUs" in threads.current().reason


# ---------------------------------------------------------------------------------------------------
# agebench runs live on this machine (separate shells, plain `agebench sweep … &` workers)

def test_live_runs_on_the_same_cores_are_counted(monkeypatch, tmp_path):
    cpus(monkeypatch, 8)
    registry = tmp_path / "jobs"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        threads.register(registry, pid=other.pid, cpus={0, 1, 2, 3})
        threads.register(registry, pid=dead.pid, cpus=EIGHT)                 # exited: ignored, entry removed
        threads.register(registry, pid=os.getpid() + 10**6, cpus={9, 10})    # other cores: not a competitor
        run_hook(OmegaConf.create({"threads": None}))                    # registers this process
        assert threads.live_jobs(registry, cpus=EIGHT) == 2
        assert torch.get_num_threads() == 4 and "2 agebench runs live" in threads.current().reason
        assert not (registry / f"{dead.pid}.json").exists()
        other.kill()
        other.wait()
        assert threads.refresh(OmegaConf.create({"threads": None})).threads == 8  # the next epoch takes them back
        assert torch.get_num_threads() == 8
    finally:
        other.kill()
        other.wait()


def test_other_slurm_jobs_are_not_counted(monkeypatch, tmp_path):
    registry = tmp_path / "jobs"
    threads.register(registry, cpus=EIGHT, env={"SLURM_JOB_ID": "41"})
    assert threads.live_jobs(registry, cpus=EIGHT, env={"SLURM_JOB_ID": "42"}) == 0
    assert threads.live_jobs(registry, cpus=EIGHT, env={"SLURM_JOB_ID": "41"}) == 1
    assert threads.live_jobs(registry, cpus=EIGHT, env={}) == 0


# ---------------------------------------------------------------------------------------------------
# a real run: one line logged at the start, the choice and its reason in every run record

def test_run_logs_and_records_the_choice(monkeypatch, tiny_overrides, tmp_path, caplog):
    cores, _ = threads.usable_cores()
    monkeypatch.setenv(threads.JOBS_ENV, "2")
    expected = max(1, cores // 2)
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="agebench.runtime.threads"):
        run_experiment(compose_config([*tiny_overrides, "protocol.folds=[0]", f"output_dir={out}"]), str(out))
    lines = [r.getMessage() for r in caplog.records if r.name == "agebench.runtime.threads"]
    assert lines and lines[0].startswith(f"threads={expected} because ") and "AGEBENCH_JOBS_PER_NODE=2" in lines[0]
    (record,) = read_records(out / "results.jsonl")
    assert record["trainer"]["threads"] == expected
    assert record["trainer"]["threads_reason"] == lines[0]



def test_deterministic_runs_ignore_live_neighbours(monkeypatch, tmp_path):
    """The thread count changes float sums in the last bits, so trainer.deterministic=true (trainer=cpu's
    default) takes its threads from the command and environment only: the same command gives the same
    threads, and so the same numbers, whatever else runs on the machine."""
    cpus(monkeypatch, 8)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        threads.register(tmp_path / "jobs", pid=other.pid, cpus=EIGHT)
        run_hook(OmegaConf.create({"threads": None, "deterministic": True}))
        assert torch.get_num_threads() == 8 and "live runs not counted" in threads.current().reason
        assert threads.refresh(OmegaConf.create({"threads": None, "deterministic": True})).threads == 8
        monkeypatch.setenv(threads.JOBS_ENV, "2")  # declared: counted, deterministic or not
        run_hook(OmegaConf.create({"threads": None, "deterministic": True}))
        assert torch.get_num_threads() == 4
        monkeypatch.delenv(threads.JOBS_ENV)
        run_hook(OmegaConf.create({"threads": None, "deterministic": False}))
        assert torch.get_num_threads() == 4 and "2 agebench runs live" in threads.current().reason
    finally:
        other.kill()
        other.wait()
