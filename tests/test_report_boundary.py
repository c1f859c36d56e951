"""Report code reads run records only: it imports nothing from training or data, so `agebench report` and
`agebench regress` run where torch is not installed, and reads age bins as the record stores them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes_records import make_record

from agebench.report import aggregate as agg
from agebench.report.age_bins import record_bins
from agebench.report.plots import _bins_of

PACKAGE = Path(__file__).resolve().parents[1] / "agebench"
REPORT_FILES = sorted((PACKAGE / "report").glob("*.py"))
# report code may import only these (and itself): the allow-list tests/test_layers.py enforces import by import
ALLOWED = ("agebench.results", "agebench.errors", "agebench.paths", "agebench.files", "agebench.report")
FORBIDDEN = ("agebench.training", "agebench.data", "agebench.tasks", "agebench.models", "agebench.config",
             "agebench.evaluation", "agebench.sweeps", "agebench.runtime", "torch", "lightning", "timm")


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):  # function-level imports count too
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("path", REPORT_FILES, ids=lambda p: p.name)
def test_report_imports_only_its_allow_list(path):
    bad = [f"{path.name}:{line} imports {name}" for line, name in _imports(path)
           if name.startswith("agebench") and not any(name == a or name.startswith(a + ".") for a in ALLOWED)]
    assert not bad, "; ".join(bad) + " — move what the report needs into agebench.results (torch-free)"


def test_report_modules_load_without_torch():
    """The transitive check: importing every report module pulls in neither torch nor training code."""
    code = ("import importlib, pkgutil, sys; import agebench.report as r; "
            "[importlib.import_module('agebench.report.' + m.name) for m in pkgutil.iter_modules(r.__path__)]; "
            f"bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'lightning') or "
            f"any(k == f or k.startswith(f + '.') for f in {FORBIDDEN!r})); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


STRUCTURED = {"name": "thirds", "edges": [[0.0, 19.999999999], [20.0, 39.999999999], [40.0, 80.0]], "num_bins": 3}


def test_structured_age_bins_group_by_name_and_count_num_bins():
    new = make_record(0, {"age/top1": 0.5}, tasks=["age"], bins=STRUCTURED)
    legacy = make_record(1, {"age/top1": 0.5}, tasks=["age"], bins="uniform:5")
    frame = agg.build_frame([new, legacy])
    assert frame["age_bins"].tolist() == ["thirds", "uniform:5"]
    assert frame["age_classes"].tolist() == [3, 5]
    bins = record_bins(new)
    assert bins.labels == ["0-20", "20-40", "40-80"] and record_bins(legacy) is None
    assert bins.assign(np.array([5.0, 39.5, 90.0, np.nan])).tolist() == [0, 1, 2, -1]


def test_confusion_labels_come_from_the_records_edges():
    frame = agg.build_frame([make_record(f, {"age/top1": 0.5}, tasks=["age"], bins=STRUCTURED) for f in range(2)])
    (group,) = agg.aggregate(frame)
    assert _bins_of(group).num_bins == 3
    legacy = agg.aggregate(agg.build_frame([make_record(0, {"age/top1": 0.5}, tasks=["age"])]))[0]
    assert _bins_of(legacy) is None  # a name-only record: classes are labelled by index
