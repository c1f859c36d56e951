#!/usr/bin/env bash
# Run the benchmarks in sequence; extra arguments (e.g. --quick, --threads 2) go to each script.
#   bash benchmarks/run_all.sh [--quick]
# Each script prints its ratio on its last line and appends a JSON line to benchmarks/results/<name>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
for bench in train_overhead fold_overhead data_path roofline latency parallel_jobs; do
    echo
    "$PY" "benchmarks/${bench}.py" "$@"
done
