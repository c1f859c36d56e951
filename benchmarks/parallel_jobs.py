"""parallel_jobs: N agebench jobs side by side on one machine ÷ the same N jobs run one after another.

A job is one `agebench train` process (the quickstart's age variant, fold 0, 4 epochs; --quick: a
smaller set, 2 epochs), timed from start to exit. For each N (1, 2, and 4 when the machine has ≥ 4
usable cores) the N jobs start at the same moment, and

    ratio = N × (one job alone, seconds) ÷ (N jobs side by side, seconds to the last exit)

i.e. side-by-side throughput ÷ serial throughput: 1.0 = no better or worse than one after another,
> 1 = running side by side paid off, < 1 = the jobs fought over the cores. Ways of running the N:

- torch's defaults: `trainer.threads=<torch's default thread count>` for every job (what agebench did
  before issue 17 when nothing set trainer.threads);
- agebench, declared: AGEBENCH_JOBS_PER_NODE=N, as `hydra.launcher.n_jobs=N` (joblib) or
  `sweep.workers_per_node=N` give the trials (agebench/runtime/threads.py);
- agebench, live count: nothing declared, `trainer.deterministic=false`: each job counts the agebench
  runs live on its cores and re-splits them at every epoch start and every 10 s (deterministic runs,
  trainer=cpu's default, do not: their threads come from the command alone).

The jobs use a private job registry (AGEBENCH_JOBS_DIR) so that other users' runs on a shared machine
do not change their choice mid-benchmark, and OMP_NUM_THREADS/MKL_NUM_THREADS are removed from their
environment. Every side-by-side measurement runs between two alone runs (alone, default, alone,
declared, alone, live count, alone, …) and its ratio uses their mean, so the load of a shared
machine drifting over the run is not taken for a ratio; an untimed warm-up job (one batch per loop)
renders and caches the dataset first. The last line is the N=2 ratio of
"agebench, declared" (target ≥ 0.9: no worse than serial), the median of `--reps` (default 5) bracketed
measurements with their range; the table also shows the other ways (`--ways`: by default torch's
defaults and agebench declared; `--ways all` adds the live count).

    python benchmarks/parallel_jobs.py [--quick] [--reps 5] [--jobs 1,2,4] [--epochs 4] [--ways all]

On a busy machine a 4-epoch job can take minutes alone and the oversubscribed pair five times that;
`--epochs 2` halves the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

TARGET = 0.9
WAYS = ("torch's defaults", "agebench, declared", "agebench, live count")
WARM_UP = ["trainer.max_epochs=1", "trainer.min_epochs=1", "trainer.limit_train_batches=1",
           "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--jobs", default=None, help="comma-separated N to measure (default: 1,2 and 4 if ≥ 4 cores)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per job (default 4; 2 with --quick)")
    p.add_argument("--override", action="append", default=[], help="extra `agebench train` override (repeatable)")
    p.add_argument("--ways", default="defaults,declared", help="comma-separated: defaults, declared, live (or all)")
    args = p.parse_args()
    device, _, meta = common.start(args, "parallel_jobs: N agebench jobs side by side vs one after another")
    print(f"   results: {(common.RESULTS_DIR / 'parallel_jobs.jsonl').relative_to(common.ROOT)}")
    if device.type != "cpu":
        print("   note: jobs train on CPU (trainer=cpu); this benchmark is about sharing CPU cores")

    from agebench.runtime.threads import usable_cores

    cores, cores_why = usable_cores()
    ns = [int(n) for n in args.jobs.split(",")] if args.jobs else [1, 2] + ([4] if cores >= 4 else [])
    epochs = int(args.epochs or (2 if args.quick else 4))
    reps = int(args.reps or common.MIN_REPS)
    short = dict(zip(("defaults", "declared", "live"), WAYS))
    unknown = [w for w in args.ways.split(",") if w.strip() not in (*short, "all")]
    if unknown:
        p.error(f"--ways {','.join(unknown)}: unknown; choose from defaults, declared, live or all")
    ways = list(WAYS) if args.ways == "all" else [short[w.strip()] for w in args.ways.split(",") if w.strip()]
    default_threads = torch_default_threads()
    overrides = job_overrides(args.quick, epochs, args.override)
    print(f"   {cores} usable cores ({cores_why}); torch's default: {default_threads} threads; "
          f"load {os.getloadavg()[0]:.2f}; job: agebench train {' '.join(overrides)}")

    with tempfile.TemporaryDirectory(prefix="agebench-parallel-") as tmp:
        tmp = Path(tmp)
        # untimed: renders + caches the set and warms the imports (one batch of each loop is enough)
        run_jobs(tmp / "warm", 1, overrides + WARM_UP, {}, tmp / "registry")
        # every side-by-side measurement sits between two alone runs: its ratio uses their mean, so a
        # shared machine's load drifting over the minutes of the run does not pass for a ratio
        alone, side, ratio_parts = [], {(way, n): [] for way in ways for n in ns if n > 1}, {}
        alone.append(run_jobs(tmp / "alone", 1, overrides, {}, tmp / "registry"))
        print(f"   1 job alone {alone[-1]:.1f} s")
        for rep in range(reps):
            for n in [n for n in ns if n > 1]:
                for way in ways:
                    extra, env = way_settings(way, n, default_threads)
                    wall = run_jobs(tmp / f"way{WAYS.index(way)}_n{n}_rep{rep}", n, overrides + extra, env, tmp / "registry")
                    alone.append(run_jobs(tmp / f"alone{len(alone)}", 1, overrides, {}, tmp / "registry"))
                    bracket = (alone[-2] + alone[-1]) / 2
                    side[(way, n)].append(wall)
                    ratio_parts.setdefault((way, n), []).append(n * bracket / wall)
                    print(f"   rep {rep}: {n} jobs at once, {way}: {wall:.1f} s; alone before/after "
                          f"{alone[-2]:.1f}/{alone[-1]:.1f} s; ratio {n * bracket / wall:.2f}")

    t1 = common.median(alone)
    rows = [["one job alone (every core)", f"{t1:.1f} s (median of {len(alone)})", "1", "—"]]
    ratios = {}
    for (way, n), walls in side.items():
        wall = common.median(walls)
        ratios[f"{way} N={n}"] = common.median(ratio_parts[(way, n)])
        rows.append([f"{n} jobs at once, {way}", f"{wall:.1f} s", str(n), f"{ratios[f'{way} N={n}']:.2f}"])
    print()
    print(common.table(["how", "wall time (to the last exit)", "jobs", "ratio = N × alone ÷ wall (alone: the runs either side)"], rows))
    headline_n = 2 if 2 in ns else max(ns)
    ratio = ratios.get(f"{WAYS[1]} N={headline_n}", float("nan"))
    default = ratios.get(f"{WAYS[0]} N={headline_n}", float("nan"))
    payload = {"target": TARGET, "ratio": ratio, "ratios": ratios, "alone_s": alone,
               "bracketed_ratios": {f"{way} N={n}": r for (way, n), r in ratio_parts.items()},
               "side_by_side_s": {f"{way} N={n}": walls for (way, n), walls in side.items()},
               "jobs": ns, "epochs": epochs, "reps": reps, "cores": cores, "cores_why": cores_why,
               "torch_default_threads": default_threads, "overrides": overrides,
               "load_avg_1_5_15_end": [round(x, 2) for x in os.getloadavg()]}
    common.record_result("parallel_jobs", args, meta, payload)
    print(common.ratio_line(f"parallel_jobs ratio ({headline_n} jobs side by side ÷ serial, agebench's threads, N "
                            f"declared; torch's defaults {default:.2f})", ratio_parts.get((WAYS[1], headline_n), []),
                            TARGET, fmt=".2f"))


def job_overrides(quick: bool, epochs: int, extra: list[str]) -> list[str]:
    """The quickstart's age variant, fold 0 (quick: 120 of its 1,600 subjects)."""
    size = ["data.n_subjects=120"] if quick else []
    return ["experiment=quickstart", "variants=null", "tasks=age", "protocol.folds=[0]", "logger=none",
            "summary_table=false", f"trainer.max_epochs={epochs}", f"trainer.min_epochs={epochs}",
            f"early_stopping.patience={epochs + 1}", "profile.latency_iters=2", *size, *extra]


def way_settings(way: str, n: int, default_threads: int) -> tuple[list[str], dict]:
    if way == WAYS[0]:
        return [f"trainer.threads={default_threads}"], {}
    if way == WAYS[1]:
        return [], {"AGEBENCH_JOBS_PER_NODE": str(n)}
    return ["trainer.deterministic=false"], {}


def job_env(extra: dict, registry: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                               "AGEBENCH_JOBS_PER_NODE")}
    env["AGEBENCH_JOBS_DIR"] = str(registry)
    env.setdefault("PYTHONPATH", str(common.ROOT))
    return {**env, **extra}


def run_jobs(out: Path, n: int, overrides: list[str], extra_env: dict, registry: Path) -> float:
    """Start n identical jobs at once; seconds until the last one exits (each must succeed)."""
    env = job_env(extra_env, registry)
    logs = [open(out.with_name(f"{out.name}_{i}.log"), "w") for i in range(n)]  # noqa: SIM115
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "agebench.cli.main", "train", *overrides,
                               f"output_dir={out / str(i)}"],
                              env=env, cwd=common.ROOT, stdout=log, stderr=subprocess.STDOUT) for i, log in enumerate(logs)]
    codes = [proc.wait() for proc in procs]
    wall = time.perf_counter() - start
    for log in logs:
        log.close()
    if any(codes):
        bad = next(i for i, c in enumerate(codes) if c)
        tail = Path(logs[bad].name).read_text()[-2000:]
        sys.exit(f"job {bad} of {n} exited {codes[bad]}:\n{tail}")
    return wall


def torch_default_threads() -> int:
    """torch's thread count in a fresh process with no OMP/MKL variables (its default on this machine)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


if __name__ == "__main__":
    main()
