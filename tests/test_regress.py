"""`agebench regress`: the accuracy gate passes on the measured baseline, fails (exit 1) on a raised one."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agebench.errors import RegressionError, UserError
from agebench.report import aggregate as agg
from agebench.report.regress import evaluate, load_baseline, validate_baseline

sys.path.insert(0, str(Path(__file__).parent))
from fakes_records import make_record, write_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "reports" / "baselines" / "quickstart.yaml"

AGE = [9.5, 9.8, 9.2]      # age MAE (years): the quickstart's headline, lower is better
AGE_MT = [9.0, 9.1, 8.8]
GENDER = [0.91, 0.93, 0.92]


def quickstart_runs(root: Path, age_mt=AGE_MT, folds=3) -> Path:
    """Fabricated quickstart: single-task age and age+gender on LMTCNN, 3 folds."""
    write_run(root / "age", [make_record(f, {"age/mae": AGE[f]}, experiment="quickstart", tasks=["age"], n_folds=3)
                             for f in range(folds)])
    write_run(root / "age_gender", [make_record(f, {"age/mae": age_mt[f], "gender/acc": GENDER[f]},
                                                experiment="quickstart", tasks=["age", "gender"], n_folds=3)
                                    for f in range(folds)])
    # a run of another experiment must not be picked up
    write_run(root / "other", [make_record(f, {"age/mae": 30.0}, experiment="other", tasks=["age"], n_folds=3)
                               for f in range(3)])
    return root


def agebench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "agebench.cli.main", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture()
def measured(tmp_path):
    """The shipped template, filled by `agebench regress … update=true` from fabricated runs (through the CLI)."""
    runs = quickstart_runs(tmp_path / "runs")
    baseline = tmp_path / "quickstart.yaml"
    baseline.write_text(SHIPPED.read_text())
    res = agebench("regress", f"baseline={baseline}", f"runs={runs}", "update=true", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    return runs, baseline


def test_shipped_baseline_is_a_valid_template():
    path, data = load_baseline(SHIPPED)
    names = [c["name"] for c in data["configurations"]]
    assert names == ["age (single-task)", "age+gender"]
    assert set(data["configurations"][1]["metrics"]) == {"age/mae", "gender/acc"}
    assert "update=true" in SHIPPED.read_text()  # says how its numbers are measured


def test_update_writes_measured_values(measured):
    runs, baseline = measured
    data = yaml.safe_load(baseline.read_text())
    age = data["configurations"][0]["metrics"]["age/mae"]
    assert age["expected"] == pytest.approx(statistics.fmean(AGE), abs=1e-6)
    assert age["std"] == pytest.approx(statistics.stdev(AGE), abs=1e-6) and age["n"] == 3
    gender = data["configurations"][1]["metrics"]["gender/acc"]
    assert gender["expected"] == pytest.approx(statistics.fmean(GENDER), abs=1e-6)
    assert data["measured"]["runs"] == str(runs) and data["measured"]["folds"] == 3
    assert baseline.read_text().startswith("# Accuracy baseline")  # the header comment survives


def test_regress_passes_on_the_measured_baseline(measured, tmp_path):
    runs, baseline = measured
    res = agebench("regress", f"baseline={baseline}", f"runs={runs}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("| PASS |") == 3
    assert "3 of 3 checks pass" in res.stdout


def test_regress_fails_with_exit_1_on_a_raised_baseline(measured, tmp_path):
    runs, baseline = measured
    data = yaml.safe_load(baseline.read_text())
    spec = data["configurations"][1]["metrics"]["age/mae"]
    spec["expected"] = spec["expected"] - 2.0  # far better (lower) than what the runs measure
    baseline.write_text(yaml.safe_dump(data, sort_keys=False))
    res = agebench("regress", f"baseline={baseline}", f"runs={runs}", cwd=tmp_path)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "| FAIL |" in res.stdout and res.stdout.count("| PASS |") == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agebench: error: accuracy gate failed: 1 of 3 checks")
    assert "age+gender age/mae" in lines[0]


def test_regress_fails_when_accuracy_drops(measured, tmp_path):
    _, baseline = measured
    worse = quickstart_runs(tmp_path / "worse", age_mt=[11.5, 11.6, 11.4])  # MAE up by 2.5 years
    res = agebench("regress", f"baseline={baseline}", f"runs={worse}", cwd=tmp_path)
    assert res.returncode == 1
    assert "| age+gender | age/mae |" in res.stdout and "| FAIL |" in res.stdout


def test_regress_fails_on_missing_runs_and_folds(measured, tmp_path):
    _, baseline = measured
    partial = quickstart_runs(tmp_path / "partial", folds=2)  # fold 2 of 3 never ran
    res = agebench("regress", f"baseline={baseline}", f"runs={partial}", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout.count("| INCOMPLETE |") == 3
    only_other = tmp_path / "only_other"
    write_run(only_other / "x", [make_record(0, {"age/mae": 5.0}, experiment="other", tasks=["age"])])
    res = agebench("regress", f"baseline={baseline}", f"runs={only_other}", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout.count("| MISSING |") == 3


def test_template_without_values_and_bad_paths_are_one_line_errors(tmp_path):
    runs = quickstart_runs(tmp_path / "runs")

    template = yaml.safe_load(Path(SHIPPED).read_text())  # the shipped baseline with its values removed
    for conf in template["configurations"]:
        for spec in conf["metrics"].values():
            spec.update(expected=None, std=None)
    (tmp_path / "runs" / "template.yaml").write_text(yaml.safe_dump(template))
    res = agebench("regress", f"baseline={tmp_path / 'runs' / 'template.yaml'}", f"runs={runs}", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "has no expected value" in res.stderr and "update=true" in res.stderr
    res = agebench("regress", f"baseline={tmp_path / 'nope.yaml'}", f"runs={runs}", cwd=tmp_path)
    assert res.returncode == 2 and "baseline file" in res.stderr and res.stderr.strip().count("\n") == 0
    res = agebench("regress", f"baseline={SHIPPED}", f"runs={tmp_path / 'empty'}", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert list(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written into cwd


def _frame(tmp_path, values, metric="age/top1", tasks=("age",)):
    write_run(tmp_path / "r", [make_record(f, {metric: v}, tasks=list(tasks), n_folds=len(values))
                               for f, v in enumerate(values)])
    return agg.build_frame(agg.collect_records(tmp_path))


def _baseline(metric="age/top1", **spec):
    data = {"configurations": [{"name": "c", "where": {"tasks": "age"}, "metrics": {metric: spec}}]}
    validate_baseline(data, "b.yaml")
    return data


def test_tolerance_absolute_and_k_std(tmp_path):
    frame = _frame(tmp_path, [0.50, 0.52, 0.54])  # mean 0.52, std 0.02
    (c,) = evaluate(_baseline(expected=0.55, tolerance=0.031), frame)
    assert c.ok and c.tolerance == 0.031
    (c,) = evaluate(_baseline(expected=0.55, tolerance=0.029), frame)
    assert c.status == "FAIL"
    (c,) = evaluate(_baseline(expected=0.55, k=2, std=0.01), frame)  # baseline std: tolerance 0.02
    assert c.status == "FAIL" and c.tolerance == pytest.approx(0.02)
    (c,) = evaluate(_baseline(expected=0.55, k=2), frame)  # no baseline std: the runs' std (0.02) → 0.04
    assert c.ok and c.tolerance == pytest.approx(0.04)
    (c,) = evaluate(_baseline(expected=0.40, tolerance=0.01), frame)
    assert c.ok and "improved" in c.reason


def test_lower_is_better_metrics(tmp_path):
    frame = _frame(tmp_path, [5.0, 5.2, 5.4], metric="age/mae")
    (c,) = evaluate(_baseline("age/mae", expected=5.0, tolerance=0.1), frame)
    assert c.status == "FAIL" and not c.higher and c.bound == pytest.approx(5.1)
    (c,) = evaluate(_baseline("age/mae", expected=5.3, tolerance=0.1), frame)
    assert c.ok


def test_bad_baselines(tmp_path):
    frame = _frame(tmp_path, [0.5, 0.5])
    with pytest.raises(UserError, match="needs a tolerance"):
        evaluate(_baseline(expected=0.5), frame)
    with pytest.raises(UserError, match="configurations"):
        validate_baseline({"configurations": []}, "b.yaml")
    with pytest.raises(UserError, match="direction"):
        _baseline(expected=0.5, tolerance=0.1, direction="up")
    assert issubclass(RegressionError, UserError) and RegressionError.exit_code == 1



def test_a_baseline_cannot_contradict_the_metric_registry(tmp_path):
    """age/mae is lower-is-better in agebench/results/metrics.py: a baseline may restate that, not contradict it."""
    frame = _frame(tmp_path, [5.0, 5.2, 5.4], metric="age/mae")
    (c,) = evaluate(_baseline("age/mae", expected=5.3, tolerance=0.1, direction="lower"), frame)
    assert c.ok and not c.higher
    with pytest.raises(UserError, match=r"contradicts agebench/results/metrics.py .*lower-is-better.*drop `direction:`"):
        evaluate(_baseline("age/mae", expected=5.3, tolerance=0.1, direction="higher"), frame)


def test_an_infinite_metric_fails_the_gate_and_is_never_measured(measured, tmp_path):
    """Issue 26 (4): `Infinity` in results.jsonl used to PASS (inf ≥ any bound) and update=true wrote `.inf`."""
    _, baseline = measured
    for name, value in (("inf", float("inf")), ("neg", float("-inf"))):
        runs = quickstart_runs(tmp_path / name, age_mt=[AGE_MT[0], value, AGE_MT[2]])
        gate = agebench("regress", f"baseline={baseline}", f"runs={runs}", cwd=tmp_path)
        assert gate.returncode == 1, gate.stdout + gate.stderr
        assert "not a finite number in fold(s) 1" in gate.stdout
        template = tmp_path / f"{name}.yaml"
        template.write_text(SHIPPED.read_text())
        update = agebench("regress", f"baseline={template}", f"runs={runs}", "update=true", cwd=tmp_path)
        assert update.returncode == 2 and "non-finite value" in update.stderr and update.stderr.count("\n") == 1
        assert ".inf" not in template.read_text()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["configurations"][0]["metrics"]["age/mae"].update(expected=True), r"expected: True is not a number"),
    (lambda d: d["configurations"][0].update(min_folds="abc"), r"min_folds: 'abc' must be a whole number"),
    (lambda d: d["configurations"][0].update(name=["a", "b"]), r"name: \['a', 'b'\] must be a non-empty string"),
    (lambda d: d.update(defaults=[1, 2]), r"defaults: \[1, 2\] must map k and/or tolerance"),
])
def test_a_baseline_value_of_the_wrong_type_is_one_line(measured, tmp_path, edit, message):
    """Issue 26 (8, 9): `expected: yes` was read as 1.0, and wrong types gave tracebacks."""
    runs, baseline = measured
    data = yaml.safe_load(baseline.read_text())
    edit(data)
    baseline.write_text(yaml.safe_dump(data, sort_keys=False))
    res = agebench("regress", f"baseline={baseline}", f"runs={runs}", cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
