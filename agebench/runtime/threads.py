"""How many intra-op threads a training run gives torch, from what it knows about the node it shares.

Every intra-op thread pool spins for cores: two jobs that each take every core of a machine run ~5×
slower than one (issue 17), so side-by-side jobs must split the cores. A run's threads are

    trainer.threads, when set (it always wins), else
    max(1, cores // jobs), less one per loader process (never below half of that share),

where
- cores = the CPUs this process may use: its affinity mask (`os.sched_getaffinity`: taskset, Slurm's
  cpusets), the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`: containers) and, under Slurm,
  `SLURM_CPUS_PER_TASK` (so any launcher config's `cpus_per_task` flows through);
- jobs = the agebench jobs sharing those cores: `sweep.workers_per_node` (exported to the trials as
  AGEBENCH_JOBS_PER_NODE, which you may also set by hand), else the joblib launcher's `n_jobs`; with
  `trainer.deterministic=false` raised to the number of agebench runs live on these cores right now;
- loader processes (`data.num_workers`) take a core each, but mostly wait on a cached batch, so the
  model keeps at least half its share.

The live registry: every training process writes `<tmp>/agebench-jobs-<uid>/<pid>.json` (its CPUs and
Slurm job); a non-deterministic run counts the live entries whose CPUs overlap its own and whose Slurm
job is its own, at its start, at every epoch start and every 10 s within an epoch (a job started later
makes an earlier one give up cores within seconds; one that ends gives them back). AGEBENCH_JOBS_DIR
moves it (benchmarks use a private one); dead pids are ignored.

Decision — deterministic runs ignore the live registry. A run with `trainer.deterministic=true`
(trainer=cpu's default) takes its threads from its command and launcher only: trainer.threads,
sweep.workers_per_node / AGEBENCH_JOBS_PER_NODE, the joblib n_jobs, its affinity, cgroup quota and
SLURM_CPUS_PER_TASK — never from how many other agebench runs happen to be live. The thread count
changes float sums in their last bits, so a choice that followed the neighbours would make the same
config + seed give different numbers depending on what else ran; declared workers give the same
speed-up (docs/sweeps.md, "How many workers per machine") and stay reproducible. The thread count
stays out of the config hash: it changes how fast a run goes, and its numbers only in the last bits.

OMP_NUM_THREADS / MKL_NUM_THREADS are set to the choice too, for processes this one starts (torch
reads them at import; inside this process `torch.set_num_threads` is what takes effect).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("agebench.runtime.threads")

JOBS_ENV = "AGEBENCH_JOBS_PER_NODE"   # how many agebench jobs share this node (sweep.workers_per_node sets it)
JOBS_FROM_ENV = "AGEBENCH_JOBS_PER_NODE_FROM"  # who set it (named in the log line)
REGISTRY_ENV = "AGEBENCH_JOBS_DIR"    # where live jobs register (default: <tmp>/agebench-jobs-<uid>)
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str          # "threads=K because …", logged and kept in the run record
    cores: int | None = None
    jobs: int | None = None
    loader_workers: int = 0


# ---------------------------------------------------------------------------------------------------
# the rule (pure)

def choose_threads(requested, cores: int, cores_why: str, jobs: int, jobs_why: str,
                   loader_workers: int = 0) -> ThreadChoice:
    """The thread count for one job, and the one-line reason."""
    if requested:
        return ThreadChoice(int(requested), f"threads={int(requested)} because trainer.threads={int(requested)} "
                                            f"(set explicitly; it wins over the node's {cores} usable cores)",
                            cores, jobs, loader_workers)
    jobs = max(1, int(jobs))
    share = max(1, int(cores) // jobs)
    loader = max(0, int(loader_workers))
    threads = max(math.ceil(share / 2), share - loader) if loader else share
    parts = [f"{cores} usable cores ({cores_why})"]
    parts.append(f"shared by {jobs} agebench jobs ({jobs_why})" if jobs > 1 else f"1 agebench job ({jobs_why})")
    if loader:
        parts.append(f"{loader} loader process(es) take {share - threads} of the job's {share}")
    return ThreadChoice(threads, f"threads={threads} because " + ", ".join(parts), cores, jobs, loader)


# ---------------------------------------------------------------------------------------------------
# what the process may use

def usable_cores(env: Mapping[str, str] | None = None, affinity: set[int] | None = None,
                 cgroup_root: Path = Path("/sys/fs/cgroup"),
                 proc_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[int, str]:
    """(CPUs this process may use, which limit binds). Own readers rather than loky's cpu_count: the
    log line names the binding limit, and loky's per-limit helpers are private."""
    env = os.environ if env is None else env
    cpus = _affinity() if affinity is None else set(affinity)
    limits = [(len(cpus), "affinity")]
    quota = cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        limits.append((max(1, math.floor(quota)), f"cgroup quota {quota:g} CPUs"))
    slurm = _positive_int(env.get("SLURM_CPUS_PER_TASK"))
    if slurm:
        limits.append((slurm, f"SLURM_CPUS_PER_TASK={slurm}"))
    n, why = min(limits, key=lambda item: item[0])
    return n, why if why != "affinity" else f"affinity {len(cpus)} of {os.cpu_count() or len(cpus)}"


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS)
        return set(range(os.cpu_count() or 1))


def cgroup_quota(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota (in CPUs) of this process's cgroup and its ancestors, v2 or v1; None = unlimited."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: cpu.max = "<quota|max> <period>"
            quotas += [_v2(d / "cpu.max") for d in _dirs_up(cgroup_root, path)]
        elif "cpu" in controllers.split(","):  # v1: cfs_quota_us / cfs_period_us (-1 = unlimited)
            for mount in (cgroup_root / controllers, cgroup_root / "cpu,cpuacct", cgroup_root / "cpu"):
                if mount.is_dir():
                    quotas += [_v1(d) for d in _dirs_up(mount, path)]
                    break
    quotas = [q for q in quotas if q]
    return min(quotas) if quotas else None


def _dirs_up(root: Path, path: str) -> list[Path]:
    """root/path and each parent up to root (a quota anywhere above limits this process too); in a
    container the host path is often absent, and root itself is this container's cgroup."""
    parts = [p for p in path.strip().split("/") if p]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _v2(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def _positive_int(value) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


# ---------------------------------------------------------------------------------------------------
# who shares it

def declared_jobs(env: Mapping[str, str] | None = None, launcher: Mapping | None = None,
                  cores: int | None = None) -> tuple[int, str] | None:
    """Jobs per node as configured: AGEBENCH_JOBS_PER_NODE (sweep.workers_per_node), else the joblib
    launcher's n_jobs (joblib's meaning: -1 = one per CPU, -2 = all but one, …); None = not said."""
    env = os.environ if env is None else env
    stated = _positive_int(env.get(JOBS_ENV))
    if stated:
        return stated, f"{JOBS_ENV}={stated}" + (" from sweep.workers_per_node" if env.get(JOBS_FROM_ENV) else "")
    launcher = hydra_launcher() if launcher is None else launcher
    if launcher and "joblib" in str(launcher.get("_target_", "")):
        n_jobs = int(launcher.get("n_jobs") or 1)
        if n_jobs < 0:  # joblib: cpu_count + 1 + n_jobs
            n_jobs = max(1, (cores or os.cpu_count() or 1) + 1 + n_jobs)
        return n_jobs, f"hydra.launcher.n_jobs={launcher.get('n_jobs')}"
    return None


def share_node(workers_per_node) -> None:
    """`agebench sweep`: export sweep.workers_per_node to this worker's trials (null: leave as is)."""
    n = _positive_int(workers_per_node)
    if n:
        os.environ[JOBS_ENV] = str(n)
        os.environ[JOBS_FROM_ENV] = "sweep.workers_per_node"


def hydra_launcher() -> Mapping | None:
    """The running Hydra job's `hydra.launcher` config (joblib's n_jobs), or None outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return HydraConfig.get().launcher
    except Exception:  # outside Hydra (library use, tests): nothing declared
        return None
    return None


def registry_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(REGISTRY_ENV) or Path(tempfile.gettempdir()) / f"agebench-jobs-{os.getuid()}")


def register(directory: Path | None = None, pid: int | None = None, cpus: set[int] | None = None,
             env: Mapping[str, str] | None = None) -> Path:
    """Write this process's entry (atomically); it counts while the pid lives."""
    env = os.environ if env is None else env
    directory = registry_dir(env) if directory is None else Path(directory)
    pid = os.getpid() if pid is None else int(pid)
    directory.mkdir(parents=True, exist_ok=True)
    entry = {"pid": pid, "cpus": sorted(_affinity() if cpus is None else cpus), "slurm_job": _slurm_job(env)}
    path = directory / f"{pid}.json"
    tmp = directory / f".{pid}.json.tmp"
    tmp.write_text(json.dumps(entry))
    os.replace(tmp, path)
    return path


def live_jobs(directory: Path | None = None, cpus: set[int] | None = None, env: Mapping[str, str] | None = None,
              alive=None) -> int:
    """Registered live jobs whose CPUs overlap this process's and that belong to this Slurm job (or,
    outside Slurm, to none): the jobs competing for these cores."""
    env = os.environ if env is None else env
    directory = registry_dir(env) if directory is None else Path(directory)
    cpus = _affinity() if cpus is None else set(cpus)
    alive = _alive if alive is None else alive
    mine = _slurm_job(env)
    count = 0
    for path in directory.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced or removed right now
        if entry.get("slurm_job") != mine or not cpus & set(entry.get("cpus") or ()):
            continue
        if alive(int(entry.get("pid", -1))):
            count += 1
        else:
            path.unlink(missing_ok=True)  # a dead job's leftover
    return count


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _slurm_job(env: Mapping[str, str]) -> str | None:
    return env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or None


# ---------------------------------------------------------------------------------------------------
# deciding and applying, for a run

_current: ThreadChoice | None = None


def decide(requested=None, loader_workers: int = 0, env: Mapping[str, str] | None = None,
           launcher: Mapping | None = None, count_live: bool = True) -> ThreadChoice:
    """Gather cores and jobs from the environment and apply the rule (nothing is changed)."""
    env = os.environ if env is None else env
    cores, cores_why = usable_cores(env)
    declared = declared_jobs(env, launcher, cores)
    jobs, jobs_why = declared or (1, "no other agebench job declared" + ("" if count_live else
                                                                         "; live runs not counted: trainer.deterministic"))
    if count_live and not requested:
        live = live_jobs(env=env)
        if live > jobs:
            jobs, jobs_why = live, f"{live} agebench runs live on these cores now" + (f"; declared: {jobs_why}" if declared else "")
    return choose_threads(requested, cores, cores_why, jobs, jobs_why, loader_workers)


def set_threads(trainer_cfg, loader_workers: int = 0) -> ThreadChoice:
    """The hook at the start of a run: register, decide, apply, log one line."""
    global _current
    requested = trainer_cfg.get("threads") if trainer_cfg is not None else None
    try:  # explicit threads or not, this job takes cores: the others count it
        register()
    except OSError as err:  # an unwritable tmp dir only costs the live count
        log.debug("agebench job registry unavailable: %s", err)
    choice = decide(requested, loader_workers, count_live=counts_live_jobs(trainer_cfg))
    apply(choice)
    _current = choice
    log.info("%s", choice.reason)
    return choice


def refresh(trainer_cfg, loader_workers: int = 0) -> ThreadChoice | None:
    """Re-decide (epoch start): jobs that started or ended since change the share. Explicit threads stay."""
    global _current
    if trainer_cfg is not None and trainer_cfg.get("threads"):
        return _current
    choice = decide(None, loader_workers, count_live=counts_live_jobs(trainer_cfg))
    if _current is None or choice.threads != _current.threads:
        apply(choice)
        log.info("%s (was %s)", choice.reason, _current.threads if _current else "torch's default")
    _current = choice
    return choice


def counts_live_jobs(trainer_cfg) -> bool:
    """The live count only for `trainer.deterministic=false`: the thread count changes float sums in
    the last bits (a tiny fold's age/mae 25.787367 with 1 thread, 25.787369 with 2), so a deterministic
    run takes its threads from what its command and environment say, never from its neighbours."""
    return not bool(trainer_cfg.get("deterministic")) if trainer_cfg is not None else True


def current() -> ThreadChoice | None:
    """The choice in effect (None before the first run of this process)."""
    return _current


def apply(choice: ThreadChoice) -> None:
    import torch

    torch.set_num_threads(int(choice.threads))
    try:  # allowed once, before any inter-op work; later calls raise and the pool stays as it is
        torch.set_num_interop_threads(int(choice.threads))
    except RuntimeError:
        pass
    for var in THREAD_ENV_VARS:  # for processes this one starts
        os.environ[var] = str(int(choice.threads))


REFRESH_S = 10.0  # within an epoch, look again this often (a directory listing: microseconds)


def epoch_callback(trainer_cfg, loader_workers: int = 0):
    """A Lightning callback that re-decides the threads at every training epoch start, and every
    REFRESH_S seconds within an epoch (long CPU epochs would otherwise fight a newcomer for minutes)."""
    import time

    from lightning.pytorch.callbacks import Callback

    class FollowNodeThreads(Callback):
        last = 0.0

        def _refresh(self):
            self.last = time.monotonic()
            refresh(trainer_cfg, loader_workers)

        def on_train_epoch_start(self, trainer, pl_module):
            self._refresh()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if time.monotonic() - self.last >= REFRESH_S:
                self._refresh()

    return FollowNodeThreads()


def as_record(choice: ThreadChoice | None) -> dict | None:
    return None if choice is None else asdict(choice)


__all__ = ["ThreadChoice", "choose_threads", "usable_cores", "cgroup_quota", "declared_jobs", "share_node",
           "register", "live_jobs", "decide", "set_threads", "refresh", "current", "apply", "epoch_callback"]
