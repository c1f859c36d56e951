"""The real-data accuracy gate: experiment=utkface_gate trained on the full UTKFace set and checked against
reports/baselines/utkface.yaml. Runs when AGEBENCH_UTKFACE_ROOT points at the images (docs/results/utkface.md
says how to get them); elsewhere it skips with that one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT_ENV = "AGEBENCH_UTKFACE_ROOT"
HOW = (f"set {ROOT_ENV}=<dir of the UTKFace images> to run the real-data gate (get them: docs/results/utkface.md, "
       f"'Data and protocol')")


@pytest.mark.realdata
@pytest.mark.slow
def test_utkface_gate_meets_its_measured_baseline(cli, tmp_path):
    root = os.environ.get(ROOT_ENV)
    if not root:
        pytest.skip(HOW)
    if not Path(root).is_dir():
        pytest.fail(f"{ROOT_ENV}={root} is not a directory; {HOW}")
    out = tmp_path / "gate"
    trained = cli("train", "experiment=utkface_gate", f"data.root={root}", f"output_dir={out}", timeout=1800)
    assert trained.returncode == 0, trained.stderr[-3000:]
    gate = cli("regress", "baseline=reports/baselines/utkface.yaml", f"runs={out}")
    assert gate.returncode == 0, gate.stdout[-3000:] + gate.stderr[-2000:]
