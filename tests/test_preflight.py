"""Pre-flight checks end in one line before any fold or trial; action=retry_failed reruns failed grid points."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, run_cli
from optuna.trial import TrialState

from agebench.config.preflight import check_device, check_launcher
from agebench.errors import UserError


def _one_line_error(result) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("agebench: error:"), result.stderr
    return lines[0]


def test_trainer_gpu_without_a_gpu_is_one_line_and_writes_no_record(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    line = _one_line_error(run_cli("train", *TINY, "trainer=gpu", f"output_dir={out}"))
    assert "trainer=cpu" in line
    assert not (out / "results.jsonl").exists()


def test_device_check_counts_gpus(monkeypatch):
    import torch
    from omegaconf import OmegaConf

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device(OmegaConf.create({"accelerator": "gpu", "devices": 2}))
    with pytest.raises(UserError, match="trainer.devices=4 asks for 4 GPUs, but this machine has 2"):
        check_device(OmegaConf.create({"accelerator": "gpu", "devices": 4}))
    check_device(OmegaConf.create({"accelerator": "cpu", "devices": 1}))


def test_slurm_launcher_without_slurm_is_one_line_before_hydra_launches(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = run_cli("sweep", "-m", "sweep=gamma", "sweep.worker=range(2)", "hydra/launcher=slurm_gpu",
                     f"sweep.dir={tmp_path / 'sw'}", env={"PATH": str(empty_path)})
    line = _one_line_error(result)
    assert "`sbatch`" in line and "hydra/launcher=joblib" in line
    assert not (tmp_path / "sw").exists()  # Hydra never started: no job dirs, no study


def test_launcher_check_knows_joblib_and_ignores_plain_runs(monkeypatch):
    import importlib.util

    check_launcher(["tasks=age"])
    check_launcher(["hydra/launcher=joblib"])  # installed with agebench
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if "joblib" in name else real(name))
    with pytest.raises(UserError, match="pip install"):
        check_launcher(["hydra/launcher=joblib"])


def test_sweep_with_a_missing_data_root_runs_zero_trials(tmp_path):
    import optuna

    sweep_dir = tmp_path / "granularity"
    result = run_cli("sweep", "sweep=age_granularity", "experiment=seed002_granularity", "data.root=/nonexistent",
                     f"sweep.dir={sweep_dir}")
    line = _one_line_error(result)
    assert "no trial ran" in line and "data.root=/nonexistent" in line
    db = sweep_dir / "study.db"
    if db.exists():  # the storage, if created at all, holds no trial
        storage = f"sqlite:///{db}"
        assert all(len(s.trials) == 0 for s in (optuna.load_study(study_name=n, storage=storage)
                                                 for n in optuna.study.get_all_study_names(storage)))


@pytest.mark.slow  # four real tiny trials (~10 s of CPU)
def test_retry_failed_reruns_failed_grid_points_with_their_params(tmp_path, monkeypatch):
    from agebench.sweeps import driver
    from agebench.sweeps.command import load_spec, run_action
    from agebench.sweeps.driver import StudyStopped
    from agebench.sweeps.storage import RETRY_OF
    from agebench.sweeps.study import open_study
    from agebench.sweeps.trial import TrialFailed

    overrides = [*TINY, "protocol.folds=[0]", f"sweep.dir={tmp_path / 'grid'}", "sweep.study_name=retry_me",
                 "sweep.n_trials=4", "sweep.max_failures=3"]
    spec, user = load_spec("age_granularity", overrides)
    real_run_trial = driver.run_trial

    def broken(*args, **kwargs):  # e.g. a node that lost its GPU mid-study
        raise TrialFailed("error", "RuntimeError: CUDA error: device lost")

    monkeypatch.setattr(driver, "run_trial", broken)
    with pytest.raises(StudyStopped) as stopped:
        run_action(spec, "run", user, echo=lambda s: None)
    hint = str(stopped.value)
    # the hints name this study (its study_name and dir) and the overrides its trials run with
    assert "sweep.study_name=retry_me" in hint and f"sweep.dir={tmp_path / 'grid'}" in hint
    assert "action=retry_failed" in hint and "data.n_subjects=36" in hint
    study, _ = open_study(spec, create=False)
    failed = {t.number: t.params for t in study.trials}
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3

    # a plain rerun still refuses (max_failures), retry_failed reruns exactly the failed points
    with pytest.raises(StudyStopped):
        run_action(spec, "run", user, echo=lambda s: None)
    monkeypatch.setattr(driver, "run_trial", real_run_trial)
    lines = []
    tally = run_action(spec, "retry_failed", user, echo=lines.append)
    assert "3 failed trial(s)" in lines[0]
    study, _ = open_study(spec, create=False)
    retries = [t for t in study.trials if t.user_attrs.get(RETRY_OF) is not None]
    assert sorted(t.user_attrs[RETRY_OF] for t in retries) == sorted(failed)
    assert all(t.state == TrialState.COMPLETE and t.params == failed[t.user_attrs[RETRY_OF]] for t in retries)
    fresh = [t for t in study.trials if t.number not in failed and t.user_attrs.get(RETRY_OF) is None]
    assert len(fresh) == 1 and fresh[0].params not in failed.values()  # the budget's 4th point, a new one
    assert tally["complete"] == 4
    records = json.loads((tmp_path / "grid" / f"trial_{retries[0].number:04d}" / "results.jsonl").read_text().splitlines()[0])
    assert records["trial_params"] == failed[retries[0].user_attrs[RETRY_OF]]
    # nothing left to retry: a second retry_failed queues nothing and runs nothing
    assert run_action(spec, "retry_failed", user, echo=lines.append)["ran"] == 0
    assert any("nothing to retry" in line for line in lines)
