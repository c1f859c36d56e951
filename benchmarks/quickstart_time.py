"""quickstart_time: how long the README's `agebench train experiment=quickstart` takes, from a cold cache.

Runs exactly the README's command (`python -m agebench.cli.main train experiment=quickstart`, in a fresh
output directory and a fresh image cache, so rendering is included) as a subprocess, and reports its
wall-clock time and the CPU time of the process and its children. On a machine that runs other work the
wall time grows with the load, so the load average at start and end is printed and recorded too: quote
the wall time of a run at low load (README, conf/experiment/quickstart.yaml).

    python benchmarks/quickstart_time.py                 # the quickstart as shipped
    python benchmarks/quickstart_time.py --quick         # one fold of each variant (a smoke test of this script)
    python benchmarks/quickstart_time.py --override trainer.threads=2
    python benchmarks/quickstart_time.py --keep outputs/quickstart_baseline   # keep the runs (e.g. for regress update=true)
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

import common


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--override", action="append", default=[], help="extra agebench override (repeatable)")
    p.add_argument("--keep", default=None, help="write the runs here and keep them (default: a temporary dir)")
    args = p.parse_args()
    _, threads, meta = common.start(args, "quickstart_time: the README's quickstart, timed from a cold cache")
    overrides = ["experiment=quickstart", *(["protocol.folds=[0]"] if args.quick else []), *args.override]
    if args.threads:
        overrides.append(f"trainer.threads={threads}")
    with tempfile.TemporaryDirectory(prefix="agebench-quickstart-") as tmp:
        env = {**os.environ, "AGEBENCH_CACHE_DIR": os.path.join(tmp, "cache")}
        run_dir = os.path.abspath(args.keep) if args.keep else os.path.join(tmp, "run")
        command = [sys.executable, "-m", "agebench.cli.main", "train", *overrides, f"output_dir={run_dir}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"the quickstart failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load_end = round(os.getloadavg()[0], 2)
    print("\n".join(result.stdout.rstrip().splitlines()[-8:]))
    print(f"\n   command: agebench train {' '.join(overrides)}")
    print(f"   wall {wall / 60:.2f} min · CPU {cpu / 60:.2f} min · load avg {meta['load_avg_start']} → {load_end} "
          f"on {common.available_cores()} cores")
    common.record_result("quickstart_time", args, meta, {"overrides": overrides, "wall_s": round(wall, 1),
                                                          "cpu_s": round(cpu, 1)})
    print(f"{wall / 60:.2f} min")


if __name__ == "__main__":
    main()
