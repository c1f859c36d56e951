"""One metric registry (agebench.results.metrics): every recorded metric is declared there and nowhere else spells
a direction or a percent unit; per-group error (agebench.results.breakdown) by hand; the breakdown report."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tasks_of
from fakes_records import make_record

from agebench.results import metrics as registry
from agebench.results.breakdown import compute_breakdown
from agebench.tasks import age_heads

AGEBENCH = Path(__file__).resolve().parent.parent / "agebench"

# ----------------------------------------------------------------------------- the registry itself


def test_declarations_read_as_researchers_expect():
    assert registry.direction("age/mae") == "lower" and registry.direction("test/age/top1") == "higher"
    assert registry.direction("age/bias") == "zero" and registry.direction("metrics.latency_ms") == "lower"
    assert registry.is_percent("age/cs7") and registry.is_percent("age/cs2.5") and not registry.is_percent("age/mae")
    assert registry.display("gender/acc") == ("gender/acc (%)", 100.0) and registry.display("age/mae") == ("age/mae", 1.0)
    assert registry.improves(-0.5, 1.0, "age/bias") and not registry.improves(1.5, -1.0, "age/bias")
    assert registry.goal("age/mae") == "minimize" and registry.goal("race/acc") == "maximize"
    assert registry.primary("age", ["age/mae", "age/top1"]) == "age/top1" and registry.primary("age", ["age/mae"]) == "age/mae"
    names = ["gender/acc", "age/cs5", "age/mae", "age/top1", "age/bias", "race/acc", "age/cs10", "age/cs3"]
    assert sorted(names, key=registry.sort_key) == ["age/top1", "age/mae", "age/cs3", "age/cs5", "age/cs10",
                                                    "age/bias", "gender/acc", "race/acc"]
    assert registry.default_columns(names) == ["age/top1", "age/mae", "gender/acc", "race/acc"]
    assert registry.spec("age/nonsense") is None


def test_every_metric_a_head_records_is_declared():
    g = torch.Generator().manual_seed(0)
    ages = torch.rand(12, generator=g) * 80
    for name in age_heads.ALL_HEADS:
        (task,) = tasks_of(["age"], age={"head": name, "bins": None, "range": [0, 80], "cs_thresholds": [3, 5]})
        target = torch.stack([torch.as_tensor(task.bins.assign(ages.numpy()), dtype=torch.float32), ages], 1)
        metrics = task.metrics(torch.randn(12, task.num_outputs, generator=g), target)
        undeclared = [m for m in metrics if not registry.is_declared(f"age/{m}")]
        assert not undeclared, (name, undeclared)
        assert {"mae", "bias", "cs3", "cs5"} <= set(metrics)


def test_a_trained_records_metrics_and_breakdown_are_all_declared(tiny_overrides, tmp_path, one_thread):
    from agebench.config.compose import compose_config
    from agebench.results.store import read_records
    from agebench.training.experiment import run_experiment

    out = tmp_path / "run"
    run_experiment(compose_config([*tiny_overrides, "tasks=age_gender_race", "protocol.folds=[0]",
                                   "tasks.age.cs_thresholds=[3,5]", f"output_dir={out}"]), str(out))
    (record,) = read_records(out / "results.jsonl")
    names = set(record["metrics"]) | set(record["val_metrics"])
    names |= {k for row in record["history"] for k in row if k != "epoch"}
    names |= {m for groups in record["breakdown"].values() for g in groups.values() for m in g if m not in ("n", "se")}
    errors = {m for groups in record["breakdown"].values() for g in groups.values() for m in g.get("se", {})}
    assert errors and errors <= names  # every group metric has its bootstrap standard error
    assert {"age/cs3", "age/cs5", "age/bias", "race/acc", "age/aurc", "age/ece", "gender/ece", "race/ece"} <= names
    assert set(record["breakdown"]) == {"age", "gender", "race"}  # gender×race cells of < 30 faces are left out
    assert set(record["calibration"]) == {"age", "gender", "race"}
    # the report draws them: a reliability diagram per classifier, the age risk–coverage curve
    from agebench.report import aggregate as agg
    from agebench.report.calibration_plots import pooled_reliability
    from agebench.report.plots import make_plots

    groups = agg.aggregate(agg.build_frame([record]))
    plots, _ = make_plots(groups, [], ["calibration"])
    assert sorted(p.name.split("_")[0] for p in plots) == ["reliability", "risk"]
    bins = pooled_reliability(groups[0], "gender")  # one fold pooled: its own bins, its own ECE
    ece = np.nansum(bins["count"] * np.abs(bins["accuracy"] - bins["confidence"])) / bins["count"].sum()
    assert ece == pytest.approx(record["metrics"]["gender/ece"])
    assert [n for n in names if not registry.is_declared(n)] == []


def _metric_leaves() -> set[str]:
    # task metrics only: cost fields are run-record field names, listed where records are read
    leaves = {m.pattern.split("/")[-1] for m in registry.METRICS if "/" in m.pattern and "{" not in m.pattern}
    return leaves | {"cs5", "rmse", "loss"}


def _stray_literals(tree) -> list[str]:
    """What a hard-coded direction, percent unit or column rule looks like: a tuple/list/set of ≥ 2 bare
    metric leaves ("mae", "/top1"), a dict keyed by them with constant values (an order, a unit), or
    `.endswith("/mae")` on a metric name. Full names in a list ("age/top1", "age/mae") only choose
    metrics and are allowed."""
    leaves = _metric_leaves()

    def leaf(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "/" not in node.value.lstrip("/"):
            text = node.value.lstrip("/")
            return text if text in leaves else None
        return None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            hits = [h for e in node.elts if (h := leaf(e))]
            if len(hits) >= 2:
                found.append(f"line {node.lineno}: {hits}")
        elif isinstance(node, ast.Dict):
            hits = [h for k, v in zip(node.keys, node.values) if (h := leaf(k)) and isinstance(v, ast.Constant)]
            if len(hits) >= 2:
                found.append(f"line {node.lineno}: {hits}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "endswith"
              and node.args and leaf(node.args[0])):
            found.append(f"line {node.lineno}: endswith({node.args[0].value!r})")
        elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            spec = "".join(v.value for v in node.format_spec.values if isinstance(v, ast.Constant))
            if spec.endswith("%"):  # f"{acc:.1%}": a percent format of its own
                found.append(f"line {node.lineno}: format {spec!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"\{[^{}]*:[^{}]*%\}", node.value):
            found.append(f"line {node.lineno}: format {node.value!r}")  # "{:.1%}".format(acc)
    return found


def test_no_direction_or_percent_literal_outside_the_registry():
    offenders = {}
    for path in sorted(AGEBENCH.rglob("*.py")):
        if path.name == "metrics.py" and path.parent == AGEBENCH:
            continue
        found = _stray_literals(ast.parse(path.read_text()))
        if found:
            offenders[str(path.relative_to(AGEBENCH))] = found
    assert offenders == {}
    # the detector does catch the lists the registry replaced
    assert _stray_literals(ast.parse('PERCENT_LEAVES = ("top1", "top2", "one_off", "acc")'))
    assert _stray_literals(ast.parse('leaf in ("mae", "rmse", "loss")'))
    assert _stray_literals(ast.parse('m.endswith(("/top1", "/one_off", "/acc", "/mae"))'))
    assert _stray_literals(ast.parse('lower = metric.endswith("/mae")'))
    assert _stray_literals(ast.parse('line = f"top-1 {acc:.1%}"'))
    assert _stray_literals(ast.parse('line = "top-1 {:.2%}".format(acc)'))
    assert not _stray_literals(ast.parse('ANSWER = ("age/top1", "age/mae")'))
    assert not _stray_literals(ast.parse('line = f"{value:.3f} ({share}%)"'))


def test_sweep_objectives_take_their_direction_from_the_registry():
    from omegaconf import OmegaConf

    from agebench.errors import UserError
    from agebench.sweeps.spec import SweepSpec

    def spec(objectives):
        return SweepSpec(OmegaConf.create({"name": "t", "study_name": "t", "dir": "/tmp/agebench-t", "n_trials": 4, "objectives": objectives,
                                           "params": {"tasks.age.head": "choice(classification, dldl, coral)"}}))

    assert spec(["age/mae", "latency_ms"]).directions == ["minimize", "minimize"]
    assert spec({"age/cs5": "auto"}).directions == ["maximize"]
    with pytest.raises(UserError, match="age/mae is lower-is-better"):
        spec({"age/mae": "maximize"})


# ----------------------------------------------------------------------------- per-group error by hand

# six faces: ages 5, 8, 15, 31, 38, NaN; gender m, f, f, m, -1 (unknown), f; race 0, 1, 1, 2, 0, 1
LABELS = {"age": np.array([5.0, 8.0, 15.0, 31.0, 38.0, np.nan]),
          "gender": np.array([0, 1, 1, 0, -1, 1]), "race": np.array([0, 1, 1, 2, 0, 1])}
PRED_AGE = np.array([7.0, 2.0, 15.5, 40.0, 36.0, 20.0])
OUTCOMES = {"age": (LABELS["age"], PRED_AGE),
            "gender": (LABELS["gender"], np.array([0, 0, 1, 0, 1, 1]))}


def test_per_group_metrics_equal_hand_computed_values():
    bd = compute_breakdown(LABELS, OUTCOMES, cs_thresholds=(5,), names={"race": ("a", "b", "c")})
    assert list(bd["age"]) == ["0-9", "10-19", "30-39"]  # the NaN age is in no decade
    kids = bd["age"]["0-9"]  # errors +2, −6
    assert kids == {"n": 2, "age/mae": 4.0, "age/bias": -2.0, "age/cs5": 0.5, "gender/acc": 0.5}
    assert bd["age"]["10-19"] == {"n": 1, "age/mae": 0.5, "age/bias": 0.5, "age/cs5": 1.0, "gender/acc": 1.0}
    assert bd["age"]["30-39"] == {"n": 2, "age/mae": 5.5, "age/bias": 3.5, "age/cs5": 0.5, "gender/acc": 1.0}
    # gender: male = faces 0, 3 (errors +2, +9); female = 1, 2, 5 (−6, +0.5, face 5 has no age)
    assert bd["gender"]["male"] == {"n": 2, "age/mae": 5.5, "age/bias": 5.5, "age/cs5": 0.5, "gender/acc": 1.0}
    assert bd["gender"]["female"]["n"] == 3 and bd["gender"]["female"]["age/mae"] == pytest.approx(3.25)
    assert bd["gender"]["female"]["gender/acc"] == pytest.approx(2 / 3)
    assert set(bd["race"]) == {"a", "b", "c"} and bd["race"]["c"]["age/mae"] == 9.0


def test_breakdown_groups_sum_to_the_whole():
    rng = np.random.default_rng(0)
    ages = rng.uniform(0, 80, 200)
    pred = ages + rng.normal(0, 6, 200)
    gender = rng.integers(0, 2, 200)
    bd = compute_breakdown({"age": ages, "gender": gender}, {"age": (ages, pred), "gender": (gender, gender)})
    whole_mae = np.abs(pred - ages).mean()
    for attribute in ("age", "gender"):
        groups = bd[attribute].values()
        assert sum(g["n"] for g in groups) == 200
        assert sum(g["n"] * g["age/mae"] for g in groups) / 200 == pytest.approx(whole_mae)
        assert sum(g["n"] * g["age/bias"] for g in groups) / 200 == pytest.approx((pred - ages).mean())


def _fold_records(tmp_path):
    """Three folds whose breakdowns are known: the decade 0-9 has bias −3, −1, −2 and the whole set MAE 4, 5, 6."""
    recs = []
    for fold, (b, whole) in enumerate(zip([-3.0, -1.0, -2.0], [4.0, 5.0, 6.0])):
        breakdown = {"age": {"0-9": {"n": 10, "age/mae": 3.0 + fold, "age/bias": b},
                             "70-79": {"n": 30, "age/mae": whole + (whole - 3.0 - fold) / 3, "age/bias": 2.0}}}
        recs.append(make_record(fold, {"age/mae": whole, "age/bias": 0.0}, tasks=("age",), n_folds=3, breakdown=breakdown))
    return recs


def test_report_breakdown_table_mean_std_over_folds_and_the_whole(tmp_path):
    from agebench.report import aggregate as agg
    from agebench.report.breakdown import breakdown_tables

    groups = agg.aggregate(agg.build_frame(_fold_records(tmp_path)))
    (table,) = breakdown_tables(groups, "age", agg.label_columns(groups), percent=True)
    rows = {r[0].text: r for r in table.rows}
    assert list(rows) == ["0-9", "70-79", "all"]
    bias_col = table.columns.index("age/bias")
    assert rows["0-9"][bias_col].mean == pytest.approx(-2.0) and rows["0-9"][bias_col].std == pytest.approx(1.0)
    n_col = table.columns.index("faces per fold")
    assert rows["0-9"][n_col].mean + rows["70-79"][n_col].mean == rows["all"][n_col].mean == 40
    mae_col = table.columns.index("age/mae")
    weighted = (10 * rows["0-9"][mae_col].mean + 30 * rows["70-79"][mae_col].mean) / 40
    assert weighted == pytest.approx(rows["all"][mae_col].mean)


def test_report_command_shows_a_breakdown_and_the_bias_plot(tmp_path, cli):
    import json

    run = tmp_path / "runs"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _fold_records(tmp_path)))
    result = cli("report", f"runs={run}", "breakdown=age", f"out={tmp_path / 'rep.md'}", "plots=true")
    assert result.returncode == 0, result.stderr[-2000:]
    text = (tmp_path / "rep.md").read_text()
    assert "Error by age" in text and "-2.00 ± 1.00" in text
    assert (tmp_path / "rep_plots" / "bias_vs_age.png").stat().st_size > 1000
    bad = cli("report", f"runs={run}", "breakdown=height")
    assert bad.returncode != 0 and "breakdown='height'; use one of age, gender, race" in bad.stderr


def test_regression_gate_checks_a_signed_error_on_both_sides():
    from agebench.report import aggregate as agg
    from agebench.report.regress import evaluate

    def gate(bias_per_fold):
        recs = [make_record(f, {"age/bias": b}, tasks=("age",), n_folds=3) for f, b in enumerate(bias_per_fold)]
        baseline = {"configurations": [{"name": "age", "where": {"tasks": "age"},
                                        "metrics": {"age/bias": {"expected": 0.0, "tolerance": 0.5}}}]}
        (check,) = evaluate(baseline, agg.build_frame(recs))
        return check.status

    assert gate([0.1, -0.2, 0.3]) == "PASS"
    assert gate([0.9, 0.8, 1.0]) == "FAIL"      # too high …
    assert gate([-0.9, -0.8, -1.0]) == "FAIL"   # … and too low both fail: best is zero, not "lower"
