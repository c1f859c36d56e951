"""Training-side reliability (issue 16): planted checkpoints run no code, stop signals exit non-zero and
resume to the uninterrupted record, one process per fold, corrupt last.ckpt heals, a full disk is one
line, files honour the umask."""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agebench.config.compose import compose_config
from agebench.errors import DiskFullError
from agebench.results.store import read_records
from agebench.training.experiment import run_experiment

# what may differ between two runs of one config: when, where and how fast they ran, and whether one resumed
VOLATILE = {"train_seconds", "latency_ms", "started_at", "host", "hardware", "resumed_from_epoch"}


def run(overrides, out):
    cfg = compose_config([*overrides, f"output_dir={out}"])
    return run_experiment(cfg, str(out))


class _Payload:
    """Unpickling this runs `touch <marker>`: what a planted checkpoint could do to whoever loads it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": _Payload(marker), "state_dict": {}}, path)


def stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in VOLATILE}


# ---------------------------------------------------------------------------------------------------
# 1. no code from checkpoints

def test_planted_last_ckpt_runs_no_code_and_the_fold_restarts(tiny_overrides, tmp_path, caplog, monkeypatch):
    # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns every torch.load that does not say weights_only into a full
    # unpickle (Lightning's resume passes None): only explicit weights_only=True everywhere is safe
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    last = out / "fold_0" / "checkpoints" / "last.ckpt"
    plant(last, marker)
    with caplog.at_level(logging.WARNING, logger="agebench"):
        run([*tiny_overrides, "protocol.folds=[0]"], out)
    assert not marker.exists(), "the planted checkpoint ran code"
    (record,) = read_records(out / "results.jsonl")
    assert record["status"] == "ok" and record["resumed_from_epoch"] is None  # restarted from scratch
    aside = list(last.parent.glob("last.ckpt.corrupt-*"))
    assert len(aside) == 1
    warning = [r.getMessage() for r in caplog.records if "not a loadable checkpoint" in r.getMessage()]
    assert len(warning) == 1 and str(last) in warning[0] and aside[0].name in warning[0]
    assert "names posix.system" in warning[0] and "could run code" in warning[0]


def test_lightning_loads_and_eval_refuse_a_planted_checkpoint(tmp_path, monkeypatch):
    """The loads a fold does through Lightning (resume from last.ckpt, test from best.ckpt, Slurm's
    hpc_ckpt) all go through AtomicFileCheckpointIO, and `agebench eval` reads best.ckpt itself."""
    import pickle

    from agebench.errors import UserError
    from agebench.evaluation.evaluate import load_weights
    from agebench.training.checkpointing import AtomicFileCheckpointIO

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker, planted = tmp_path / "PWNED", tmp_path / "best.ckpt"
    plant(planted, marker)
    for weights_only in (None, False):  # what Lightning passes by default, and an explicit "trust it"
        with pytest.raises(pickle.UnpicklingError):
            AtomicFileCheckpointIO().load_checkpoint(planted, weights_only=weights_only)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_weights(torch.nn.Linear(1, 1), planted)
    assert not marker.exists()


def test_report_runs_no_code_from_planted_predictions(tiny_overrides, tmp_path, cli):
    import numpy as np

    out, marker = tmp_path / "run", tmp_path / "PWNED"
    run([*tiny_overrides, "protocol.folds=[0]"], out)
    (record,) = read_records(out / "results.jsonl")
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    np.savez(out / record["predictions"], age_pred=payload, age_true=payload)  # pickled object arrays
    cli("report", f"runs={out}", f"out={tmp_path / 'report.md'}", "plots=true")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------
# 2 + 5. stop signals: non-zero exit, one line, and the rerun ends with the uninterrupted record

def _train_args(out: Path) -> list[str]:
    from conftest import TINY

    return ["train", *TINY, "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.threads=1",
            "protocol.folds=[1]", f"output_dir={out}"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AGEBENCH_TEST_KILL_AT"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.slow  # a CLI subprocess per run
def test_sigterm_stops_with_143_and_the_rerun_equals_an_uninterrupted_run(cli, tmp_path):
    out = tmp_path / "run"
    clean = cli(*_train_args(out), env=_env())
    assert clean.returncode == 0, clean.stderr[-2000:]
    uninterrupted = read_records(out / "results.jsonl")[0]
    out.rename(tmp_path / "clean")  # the same output_dir again: the records' config is identical

    stopped = cli(*_train_args(out), env=_env(AGEBENCH_TEST_KILL_AT="fold=1,epoch=1,signal=TERM"))
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("agebench:")]
    assert len(lines) == 1, stopped.stderr[-2000:]
    assert "SIGTERM" in lines[0] and "fold 1" in lines[0] and "unfinished" in lines[0]
    assert "resume" in lines[0] and "epoch 1 of 2 done" in lines[0]
    assert not (out / "results.jsonl").exists() or read_records(out / "results.jsonl") == []
    assert (out / "fold_1" / "checkpoints" / "last.ckpt").exists()

    resumed = cli(*_train_args(out), env=_env())
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (record,) = read_records(out / "results.jsonl")
    assert record["resumed_from_epoch"] == 0
    assert len(record["history"]) == 2 and record["best_epoch"] == uninterrupted["best_epoch"]
    assert stable(record) == stable(uninterrupted)


@pytest.mark.slow  # a CLI subprocess per run
def test_sigint_stops_with_130_at_a_safe_point(cli, tmp_path):
    out = tmp_path / "run"
    stopped = cli(*_train_args(out), env=_env(AGEBENCH_TEST_KILL_AT="fold=1,epoch=1,signal=INT"))
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr and "stopped by SIGINT: fold 1" in stopped.stderr
    last = torch.load(out / "fold_1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0  # the last whole epoch; the one the signal interrupted is redone on resume


@pytest.mark.slow  # a CLI subprocess per run
def test_sigusr1_on_slurm_requeues_the_job(cli, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    scontrol.chmod(0o755)
    env = _env(AGEBENCH_TEST_KILL_AT="fold=1,epoch=1,signal=USR1", PATH=f"{fake_bin}:{os.environ['PATH']}",
               SLURM_NTASKS="1", SLURM_JOB_ID="4242", SLURM_JOB_NAME="agebench-test")
    env.pop("SLURM_ARRAY_JOB_ID", None)
    stopped = cli(*_train_args(tmp_path / "run"), env=env)
    assert stopped.returncode == 128 + signal.SIGUSR1, stopped.stderr[-2000:]
    assert calls.read_text().split() == ["requeue", "4242"]
    assert "requeued Slurm job 4242" in stopped.stderr
    assert not list((tmp_path / "run" / "fold_1").glob("hpc_ckpt_*.ckpt"))  # no mid-epoch checkpoint


def test_a_signal_between_folds_stops_before_the_next_fold(tiny_overrides, tmp_path, capsys):
    from agebench.training.signals import StopRequested

    out = tmp_path / "run"
    cfg = compose_config([*tiny_overrides, "protocol.folds=[0,1]", f"output_dir={out}"])
    with pytest.raises(StopRequested) as stop:
        run_experiment(cfg, str(out), on_fold_end=lambda fold, record: os.kill(os.getpid(), signal.SIGTERM))
    assert stop.value.code == 143
    assert [r["fold"] for r in read_records(out / "results.jsonl")] == [0]
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("agebench:")]
    assert lines == ["agebench: stopped by SIGTERM between folds; rerun the same command to run the remaining folds"]
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # handlers restored after the run


def test_last_ckpt_carries_the_history(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    run([*tiny_overrides, "protocol.folds=[0]", "trainer.max_epochs=2"], out)
    (record,) = read_records(out / "results.jsonl")
    last = torch.load(out / "fold_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (state,) = [v for k, v in last["callbacks"].items() if "History" in k]
    assert state["history"] == record["history"] and len(record["history"]) == 2


def test_a_fold_killed_after_its_last_epoch_resumes_to_the_same_record(tiny_overrides, tmp_path):
    """Killed between the last epoch's checkpoint and its run record: the rerun trains nothing more and
    writes the record the first run would have written."""
    out = tmp_path / "run"
    overrides = [*tiny_overrides, "protocol.folds=[0]", "trainer.max_epochs=2", "trainer.threads=1"]
    run(overrides, out)
    (first,) = read_records(out / "results.jsonl")
    (out / "results.jsonl").unlink()
    run(overrides, out)
    (again,) = read_records(out / "results.jsonl")
    assert again["resumed_from_epoch"] == 1
    assert stable(again) == stable(first)


# ---------------------------------------------------------------------------------------------------
# 6. one process per fold

def test_a_fold_another_process_holds_is_skipped_not_trained_twice(tiny_overrides, tmp_path, caplog):
    from agebench.training.locking import claim_fold

    out = tmp_path / "run"
    held = claim_fold(out / "fold_0")  # as another `agebench train` on this dir would hold it
    assert held is not None
    with caplog.at_level(logging.WARNING, logger="agebench"):
        run([*tiny_overrides, "protocol.folds=[0,1]"], out)
    assert [r["fold"] for r in read_records(out / "results.jsonl")] == [1]
    assert any("fold 0 is being trained by another process" in r.getMessage() for r in caplog.records)
    assert not (out / "fold_0" / "checkpoints").exists()
    held.release()
    run([*tiny_overrides, "protocol.folds=[0,1]"], out)
    assert sorted(r["fold"] for r in read_records(out / "results.jsonl")) == [0, 1]


@pytest.mark.slow  # two CLI subprocesses
def test_two_commands_on_one_output_dir_train_each_fold_once(tmp_path):
    import re

    from conftest import PROJECT_ROOT, TINY

    out = tmp_path / "run"
    args = [sys.executable, "-m", "agebench.cli.main", "train", *TINY, "trainer.max_epochs=2", "trainer.threads=1",
            f"output_dir={out}"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
                              env=_env()) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outputs]
    started = [int(k) for stdout, _ in outputs for k in re.findall(r"\(fold_(\d+)\) ·", stdout)]
    assert sorted(started) == [0, 1, 2], outputs  # every fold trained by exactly one of the two
    records = read_records(out / "results.jsonl")
    assert sorted((r["fold"], r["status"]) for r in records) == [(0, "ok"), (1, "ok"), (2, "ok")]


def test_a_fold_finished_meanwhile_by_another_process_is_not_retrained(tmp_path):
    import numpy as np
    from fakes_records import make_record

    from agebench.data.protocols import Fold
    from agebench.results.store import append_record
    from agebench.training.experiment import claim_fold as _claim_fold

    def fold(k, repeat=0):
        return Fold(k, np.arange(0), np.arange(0), np.arange(0), repeat=repeat)

    out = tmp_path / "run"
    append_record(out / "results.jsonl", make_record(fold=0))
    assert _claim_fold(out, fold(0), out / "results.jsonl", None) is None
    other_repeat = _claim_fold(out, fold(0, repeat=1), out / "results.jsonl", None)  # (repeat, fold) is the key
    assert other_repeat is not None and (out / "repeat_1" / "fold_0").is_dir()
    other_repeat.release()
    claim = _claim_fold(out, fold(1), out / "results.jsonl", None)
    assert claim is not None
    claim.release()


def test_a_lock_of_a_killed_process_does_not_block(tmp_path):
    from agebench.training.locking import claim_fold

    fold_dir = tmp_path / "fold_0"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from agebench.training.locking import claim_fold; "
                               f"c = claim_fold({str(fold_dir)!r}); print('held' if c else 'busy', flush=True); "
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert claim_fold(fold_dir) is None
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait()
    claim = claim_fold(fold_dir)
    assert claim is not None  # the kernel dropped the dead holder's lock
    claim.release()


def test_checkpoint_temp_files_are_unique_per_write(tmp_path, monkeypatch):
    import agebench.training.checkpointing as checkpointing

    temps = []
    real_save = torch.save
    monkeypatch.setattr(checkpointing.torch, "save", lambda obj, f: (temps.append(Path(f).name), real_save(obj, f)))
    io = checkpointing.AtomicFileCheckpointIO()
    io.save_checkpoint({"epoch": 0}, tmp_path / "last.ckpt")
    io.save_checkpoint({"epoch": 1}, tmp_path / "last.ckpt")
    assert len(set(temps)) == 2 and all(t.startswith(".last.ckpt.") and t.endswith(".tmp") for t in temps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# ---------------------------------------------------------------------------------------------------
# 7. a truncated last.ckpt is moved aside and its fold restarts

@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_truncated_last_ckpt_is_moved_aside_and_the_fold_restarts(tiny_overrides, tmp_path, caplog, damage):
    out = tmp_path / "run"
    last = out / "fold_0" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"epoch": 0, "state_dict": {"w": torch.zeros(1000)}}, last)
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with caplog.at_level(logging.WARNING, logger="agebench"):
        run([*tiny_overrides, "protocol.folds=[0]"], out)
    (record,) = read_records(out / "results.jsonl")
    assert record["status"] == "ok" and record["resumed_from_epoch"] is None
    assert len(list(last.parent.glob("last.ckpt.corrupt-*"))) == 1
    warnings = [r.getMessage() for r in caplog.records if "not a loadable checkpoint" in r.getMessage()]
    assert len(warnings) == 1 and str(last) in warnings[0] and "restarting fold 0 from scratch" in warnings[0]


def test_an_unreadable_last_ckpt_is_kept_and_named(tmp_path):
    """Cannot be read (permissions, a directory, I/O) is not "corrupt": one line, and the file stays."""
    from agebench.errors import UserError
    from agebench.training.checkpointing import read_or_move_aside

    last = tmp_path / "last.ckpt"
    last.mkdir()  # reading it fails with an OSError, as a chmod 000 file does for a non-root user
    with pytest.raises(UserError, match=r"cannot read .*last\.ckpt"):
        read_or_move_aside(last, "fold 0")
    assert last.exists() and not list(tmp_path.glob("*.corrupt-*"))


# ---------------------------------------------------------------------------------------------------
# 8. a full disk: one line, no partial temp file, results.jsonl intact

class _FullDiskTorch:
    """`torch` as agebench.training.checkpointing sees it, with a save that fills the disk part-way (profiling
    and the rest of the run keep the real one)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_writing_a_checkpoint_is_one_error_and_leaves_no_temp_file(tiny_overrides, tmp_path, monkeypatch):
    import agebench.training.checkpointing as checkpointing

    out = tmp_path / "run"
    run([*tiny_overrides, "protocol.folds=[0]"], out)
    before = (out / "results.jsonl").read_bytes()
    monkeypatch.setattr(checkpointing, "torch", _FullDiskTorch())
    with pytest.raises(DiskFullError, match=r"no space left on device writing .*fold_1/checkpoints/\w+\.ckpt") as err:
        run([*tiny_overrides, "protocol.folds=[1]"], out)
    assert "MiB free there" in str(err.value) and "\n" not in str(err.value)
    assert not [p.name for p in (out / "fold_1" / "checkpoints").iterdir() if p.suffix == ".tmp"]
    assert (out / "results.jsonl").read_bytes() == before  # no `failed` record: the rerun resumes the fold


@pytest.mark.slow  # a CLI subprocess per run
def test_disk_full_on_the_command_line_is_one_line_without_traceback(tmp_path):
    from conftest import PROJECT_ROOT, TINY

    out = tmp_path / "run"
    script = ("import sys\n"
              "sys.path.insert(0, 'tests')\n"
              "import agebench.training.checkpointing, test_reliability_train as t\n"
              "agebench.training.checkpointing.torch = t._FullDiskTorch()\n"
              "from agebench.cli.main import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", script, "train", *TINY, "protocol.folds=[0]", f"output_dir={out}"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=_env(), timeout=600)
    assert proc.returncode == DiskFullError.exit_code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("agebench: error:")]
    assert len(errors) == 1 and "no space left on device writing" in errors[0], proc.stderr[-2000:]
    assert not list(out.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------------
# 9. files honour the umask

@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_written_files_honour_the_umask(tiny_overrides, tmp_path, mask):
    out = tmp_path / "run"
    before = os.umask(mask)
    try:
        run([*tiny_overrides, "protocol.folds=[0]"], out)
    finally:
        os.umask(before)
    want = 0o666 & ~mask
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"results.jsonl", "summary.json", "config.yaml", "best.ckpt", "last.ckpt", ".lock"} <= names
    modes = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {oct(want)}, modes


def test_image_cache_files_honour_the_umask(tmp_path):
    """The decoded-image cache is shared between users of a machine: mkstemp's 0600 would lock them out."""
    import numpy as np

    from agebench.data.cache import cached_array

    before = os.umask(0o022)
    try:
        array, hit = cached_array(tmp_path / "cache", {"what": "umask test"}, lambda: np.zeros((2, 3), np.uint8))
    finally:
        os.umask(before)
    assert not hit and array.shape == (2, 3)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (tmp_path / "cache").iterdir()}
    assert modes and set(modes.values()) == {oct(0o644)}, modes


def test_umask_is_read_without_changing_it():
    from agebench.files import current_umask, default_file_mode

    before = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and default_file_mode() == 0o640
        assert os.umask(0o027) == 0o027  # still what the test set
    finally:
        os.umask(before)

