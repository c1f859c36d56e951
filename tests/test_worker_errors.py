"""A sweep worker that stops on an error leaves that error in the study, and `action=status` shows it
(on a cluster the worker's stderr is a log file nobody watches)."""

from __future__ import annotations

from conftest import run_cli

STUDY = ("base: [tasks=age_gender, loss=gamma]\nparams: {loss.gamma: 'interval(0, 1)'}\n"
         "objectives: {age/top1: maximize}\nsampler: {name: random, seed: 0}\n")
FAST = ["trainer=debug", "logger=none", "data.n_subjects=36", "data.images_per_subject=2", "data.image_size=48",
        "data.load_size=52", "protocol.n_folds=2"]


def test_a_stopped_workers_error_shows_in_status(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "pair.yaml").write_text(STUDY)
    env = {"AGEBENCH_SWEEPS_DIR": str(tmp_path / "sweeps")}
    study = ["sweep=pair", f"sweep.dir={tmp_path / 'pair'}", f"sweep.storage=journal:{tmp_path / 'pair.journal'}"]
    worker = run_cli("sweep", *study, *FAST, "optim.name=nadam", env=env, cwd=tmp_path)
    assert worker.returncode != 0
    (line,) = worker.stderr.strip().splitlines()[-1:]
    assert line.startswith("agebench: error:") and "optim.name='nadam'" in line, worker.stderr[-2000:]
    status = run_cli("sweep", *study, "action=status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "workers that stopped on an error" in status.stdout
    assert line[len("agebench: error: "):] in status.stdout
    assert "trials by state: none yet" in status.stdout  # the pre-flight ran no trial
