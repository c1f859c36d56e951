"""Progress output: fold and epoch lines on stdout without a TTY and in train.log, the output directory
first and last, metrics.csv current after every epoch, one line per finished sweep trial, counted data work."""

import csv
import re
from types import SimpleNamespace

import pytest
from conftest import TINY, run_cli

ENV = {"OMP_NUM_THREADS": "1"}


def test_train_prints_fold_and_epoch_lines_and_logs_them(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", *TINY, "trainer.max_epochs=2", "protocol.folds=[0,2]", f"output_dir={out}", env=ENV)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert str(out) in lines[0] and lines[0].startswith("agebench train: output in")
    assert lines[-1] == f"output: {out}"
    fold_starts = [line for line in lines if re.match(r"fold \d/2 \(fold_\d\) · train \d+ · val \d+ · test \d+ · lmtcnn \(", line)]
    assert [s.split()[1] for s in fold_starts] == ["1/2", "2/2"]
    assert all("params" in s for s in fold_starts)
    epochs = [line for line in lines if re.search(r"· epoch \d/2 · train/loss [\d.]+ · val/loss [\d.]+ \(best [\d.]+\) · [\d,]+ img/s · .* elapsed · ETA", line)]
    assert len(epochs) == 4, result.stdout  # 2 folds × 2 epochs
    log_text = (out / "train.log").read_text()
    for line in fold_starts + epochs + [lines[0], lines[-1]]:
        assert line in log_text, line


def test_metrics_csv_is_current_after_each_epoch(tmp_path):
    """A fold killed hard at the start of its 2nd epoch (no Lightning teardown) keeps epoch 1's row.
    Also: `trainer.progress_bar=true` is a known key (no `+`), and without a TTY the run still works."""
    out = tmp_path / "run"
    result = run_cli("train", *[o for o in TINY if o != "logger=none"], "logger=csv", "trainer.max_epochs=3",
                     "trainer.progress_bar=true",
                     "protocol.folds=[0]", f"output_dir={out}", env={**ENV, "AGEBENCH_TEST_KILL_AT": "fold=0,epoch=1"})
    assert result.returncode == 137
    with open(out / "fold_0" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("val/loss") not in (None, "") and r["epoch"] == "0" for r in rows), rows


def test_one_line_per_finished_trial_with_best_so_far(capsys):
    import optuna

    from agebench.sweeps.trial_lines import report_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    spec = SimpleNamespace(study_name="demo", n_trials=3, metric_names=["age/top1"], directions=["maximize"],
                           multi_objective=False,
                           space=SimpleNamespace(overrides=lambda p: [f"{k}={v}" for k, v in sorted(p.items())]))
    for gamma, value in ((0.3, 0.4), (0.7, 0.6), (0.5, 0.5)):
        study.enqueue_trial({"loss.gamma": gamma})
        trial = study.ask()
        trial.suggest_categorical("loss.gamma", [0.3, 0.5, 0.7])
        study.tell(trial, value)
        report_trial(spec, study, study._storage, trial, "COMPLETE")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert "trial 0 complete (1/3 finished) · loss.gamma=0.3 · age/top1=0.4 · best: trial 0 age/top1=0.4" in lines[0]
    assert lines[1].endswith("best: trial 1 age/top1=0.6")
    assert lines[2].endswith("best: trial 1 age/top1=0.6") and "loss.gamma=0.5" in lines[2]


def test_rendering_prints_counted_start_and_end_lines(capsys):
    from agebench.data.render import SyntheticSpec, generate

    generate(SyntheticSpec(n_subjects=2, images_per_subject=3, image_size=16))
    out = capsys.readouterr().out
    assert "rendering 6 synthetic faces (16×16)" in out
    assert re.search(r"rendered 6 synthetic faces \(16×16\) in [\d.]+ s", out)


@pytest.mark.slow
def test_live_bar_on_a_terminal_keeps_the_lines(tmp_path):
    """stdout a terminal (a pty): rich draws each epoch's batch bar, and the epoch lines still print."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    from conftest import PROJECT_ROOT

    master, slave = pty.openpty()
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.Popen([sys.executable, "-m", "agebench.cli.main", "train", *TINY, "protocol.folds=[0]",
                             f"output_dir={tmp_path / 'run'}"], stdout=slave, stderr=subprocess.PIPE,
                            cwd=PROJECT_ROOT, env={**os.environ, **ENV, "COLUMNS": "120"})
    os.close(slave)
    _, err = proc.communicate(timeout=600)
    reader.join(timeout=10)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert "\x1b[" in text  # terminal control sequences: a live display was drawn
    assert re.search(r"fold 1/1 epoch 1/1 .*\d+/2", text)  # the bar: description and batch counts
    assert re.search(r"fold 1/1 · epoch 1/1 · train/loss", text)  # the plain epoch line too
