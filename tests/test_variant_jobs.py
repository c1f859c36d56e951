"""`variant_jobs=2`: an experiment's variants side by side, each in its own process, with a serial run's
numbers, config hashes, closing answer, stop signals and resume."""

import signal
import subprocess
import sys
import time

import pytest
from conftest import PROJECT_ROOT, TINY

from agebench.results.store import read_records

QUICK = ["experiment=quickstart", *TINY, "trainer.threads=1"]


def _metrics(out):
    return {variant: [(r["fold"], r["config_hash"], r["metrics"]) for r in read_records(out / variant / "results.jsonl")]
            for variant in ("age", "age_gender")}


@pytest.mark.slow  # two tiny quickstarts
def test_side_by_side_variants_give_the_serial_runs_records(cli, tmp_path):
    serial = cli("train", *QUICK, f"output_dir={tmp_path / 'serial'}")
    assert serial.returncode == 0, serial.stderr[-3000:]
    both = cli("train", *QUICK, "variant_jobs=2", f"output_dir={tmp_path / 'both'}")
    assert both.returncode == 0, both.stderr[-3000:]
    first, second = _metrics(tmp_path / "serial"), _metrics(tmp_path / "both")
    assert first == second and all(len(rows) == 3 for rows in first.values())
    answer = [line for line in both.stdout.splitlines() if line.startswith("Answer: ")]
    assert answer == [line for line in serial.stdout.splitlines() if line.startswith("Answer: ")]
    for variant in ("age", "age_gender"):  # each child's progress lines reach the user
        assert any(line.startswith(f"[{variant}] fold 3/3 done in") for line in both.stdout.splitlines())


@pytest.mark.slow
def test_a_stop_signal_stops_every_variant_and_a_rerun_finishes_them(cli, tmp_path):
    out = tmp_path / "run"
    slow = [*QUICK, "trainer.max_epochs=40", "trainer.limit_train_batches=null", "variant_jobs=2", f"output_dir={out}"]
    process = subprocess.Popen([sys.executable, "-m", "agebench.cli.main", "train", *slow], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all((out / v / "fold_0").exists() for v in ("age", "age_gender")):
        time.sleep(0.2)  # both children are inside their first fold
    process.send_signal(signal.SIGTERM)  # to the parent only, as `kill` or Slurm would
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    for variant in ("age", "age_gender"):
        assert len(read_records(out / variant / "results.jsonl")) < 3  # stopped before its last fold
    rerun = cli("train", *slow)  # a child still running would hold its fold's lock, and the rerun would skip it
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert all(len(rows) == 3 for rows in _metrics(out).values())
