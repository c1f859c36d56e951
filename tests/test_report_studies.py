"""The coupling and leakage study reports (agebench/report/study_plots.py, reports/tables/coupling.yaml and
leakage.yaml) and the quickstart's closing lines (agebench/report/closing.py), on fabricated run records
with known per-fold numbers, checked against scipy computed independently here."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats as sps

from agebench.report import aggregate as agg
from agebench.report.closing import answer_sentence, closing_text
from agebench.report.document import build_document
from agebench.report.plots import make_plots
from agebench.report.stats import paired_test
from agebench.report.study_plots import coupling_points, leakage_points

sys.path.insert(0, str(Path(__file__).parent))
from fakes_records import make_record, write_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SINGLE = [0.40, 0.42, 0.38, 0.44, 0.41]
GAIN = {0.0: [0.01, -0.012, 0.004, -0.006, 0.002], 1.0: [0.05, 0.042, 0.061, 0.047, 0.055]}


def _coupling_runs(root: Path, seeds=(0, 1)) -> None:
    for seed in seeds:
        for g, gain in GAIN.items():
            for tasks, values in ((("age",), SINGLE), (("age", "gender"), [s + d for s, d in zip(SINGLE, gain)])):
                extra = {"data.gender_specific_aging": g, "data.seed": seed}
                records = [make_record(f, {"age/top1": v + 0.01 * seed, "age/mae": 10 - 10 * v}, experiment="coupling",
                                       tasks=tasks, extra_config=extra) for f, v in enumerate(values)]
                write_run(root / f"g{g}_s{seed}_{'_'.join(tasks)}", records)


def _groups(root: Path, recipe: str):
    cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "report.yaml"), {"runs": str(root), "table": recipe})
    cfg.pop("defaults", None)
    cfg.pop("hydra", None)
    doc, _, groups, _, kinds = build_document(cfg)
    return doc, groups, kinds


def test_coupling_points_are_the_paired_t_test_per_knob_value_and_seed(tmp_path):
    _coupling_runs(tmp_path)
    doc, groups, kinds = _groups(tmp_path, "coupling")
    assert kinds == ["coupling"]
    points = coupling_points(groups)
    assert len(points) == 4 and len({p.series for p in points}) == 2  # one series per dataset seed
    from statsmodels.stats.multitest import multipletests

    corrected = {}
    for p in points:  # the corrected resampled t-test (ρ = 1/4 over 5 folds): CI and p
        diff = np.array(GAIN[p.x])
        se = math.sqrt((1 / 5 + 1 / 4) * diff.var(ddof=1))
        half = sps.t.ppf(0.975, 4) * se
        assert p.mean == pytest.approx(diff.mean()) and p.n == 5
        assert (p.low, p.high) == (pytest.approx(diff.mean() - half), pytest.approx(diff.mean() + half))
        corrected[p.x] = 2 * sps.t.sf(abs(diff.mean()) / se, 4)
    # the study's four comparisons form one family: Holm over the corrected p
    holm = multipletests([corrected[p.x] for p in points], method="holm")[1]
    assert [p.p for p in points] == pytest.approx(list(holm))
    at0, at1 = [p for p in points if p.x == 0.0], [p for p in points if p.x == 1.0]
    assert all(p.low < 0 < p.high for p in at0) and all(p.low > 0 and p.p < 0.05 for p in at1)
    plots, notes = make_plots(groups, [], kinds)
    assert [p.name for p in plots] == ["coupling"] and plots[0].png.startswith(b"\x89PNG")
    assert any("age/mae" in n and "gender_specific_aging=1: -0.51 years" in n for n in notes)  # the study's MAE


def test_leakage_points_compare_leaky_with_exclusive_folds(tmp_path):
    exclusive = [0.40, 0.41, 0.39]
    for k, inflation in ((2, 0.03), (8, 0.12)):
        for flag, shift in ((True, 0.0), (False, inflation)):
            records = [make_record(f, {"age/top1": v + shift + 0.001 * f * (not flag)}, experiment="leakage", tasks=("age",),
                                   n_folds=3, extra_config={"protocol.subject_exclusive": flag,
                                                            "data.images_per_subject": k})
                       for f, v in enumerate(exclusive)]
            write_run(tmp_path / f"k{k}_{flag}", records)
    _, groups, kinds = _groups(tmp_path, "leakage")
    points = {p.x: p for p in leakage_points(groups)}
    assert sorted(points) == [2.0, 8.0]
    for k, inflation in ((2, 0.03), (8, 0.12)):
        leaky = np.array(exclusive) + inflation + 0.001 * np.arange(3)
        welch = sps.ttest_ind(leaky, exclusive, equal_var=False)
        assert points[k].mean == pytest.approx(leaky.mean() - np.mean(exclusive))
        assert points[k].p == pytest.approx(welch.pvalue)
        assert points[k].low < points[k].mean < points[k].high
    assert points[8.0].mean > points[2.0].mean > 0
    plots, notes = make_plots(groups, [], kinds)
    assert [p.name for p in plots] == ["leakage"] and len([n for n in notes if "leak inflation" in n]) == 2


def test_study_plot_is_skipped_with_a_note_when_the_knob_never_varies(tmp_path):
    write_run(tmp_path / "a", [make_record(f, {"age/top1": v}, experiment="coupling", tasks=("age",))
                               for f, v in enumerate(SINGLE)])
    _, groups, kinds = _groups(tmp_path, "coupling")
    plots, notes = make_plots(groups, [], kinds)
    assert plots == [] and any("coupling plot skipped" in n for n in notes)


def test_answer_sentence_reports_delta_ci_and_p_or_no_difference():
    better = paired_test(dict(enumerate(SINGLE)), dict(enumerate(np.add(SINGLE, GAIN[1.0]))), "age/top1")
    text = answer_sentence(better, "age+gender", "age")
    assert text.startswith("age+gender improves age top-1 by 5.10 points (95% CI ")
    assert f"{better.ci_low * 100:.2f}..{better.ci_high * 100:.2f}" in text and better.p < 0.05
    assert better.p_t < better.p < 0.001  # corrected is the more cautious p; both tiny for a +5-point gain
    assert "corrected resampled t-test p = <0.001 (5 folds; plain paired t-test p = <0.001)." in text
    v = better.bayes  # baycomp's posterior with the metric's 1-point ROPE
    assert text.endswith(f"P(better / equivalent within ±1.00 points / worse) = {v.p_multi_better:.2f} / "
                         f"{v.p_equivalent:.2f} / {v.p_single_better:.2f}.")
    same = paired_test(dict(enumerate(SINGLE)), dict(enumerate(np.add(SINGLE, GAIN[0.0]))), "age/top1")
    no = answer_sentence(same, "age+gender", "age")
    assert no.startswith("No significant difference: age+gender vs age")
    assert f"this run detects |Δ| ≥ {same.detectable * 100:.2f} points (power 0.8)" in no  # what it could have found
    mae = paired_test({0: 10.0, 1: 11.0, 2: 10.5}, {0: 9.0, 1: 10.1, 2: 9.4}, "age/mae")
    assert answer_sentence(mae, "age+gender", "age").startswith("age+gender improves age MAE by 1.00 years")


def test_closing_text_ends_with_the_answer_the_output_dir_and_the_report_command(tmp_path):
    for variant, tasks, values in (("age", ("age",), SINGLE),
                                   ("age_gender", ("age", "gender"), np.add(SINGLE, GAIN[1.0]))):
        write_run(tmp_path / variant, [make_record(f, {"age/top1": v, "age/mae": 10 - 10 * v}, experiment="quickstart",
                                                   tasks=tasks, variant=variant) for f, v in enumerate(values)])
    lines = closing_text(tmp_path, "quickstart").splitlines()
    assert any(line.startswith("| ") and "±" in line for line in lines)  # the report's mean ± std table
    assert lines[-3].startswith("Answer: age+gender improves age MAE by 0.51 years (95% CI ")  # the headline: MAE
    assert sum(line.startswith("Answer: ") for line in lines) == 1  # one sentence
    assert any(line.startswith("| ") and "age/mae" in line for line in lines)  # the paired table's MAE row
    assert lines[-2] == f"Output directory: {tmp_path}"
    assert lines[-1].endswith(f"agebench report runs={tmp_path} table=quickstart")


def test_coupling_and_leakage_recipes_parse():
    from agebench.report import recipes

    for name in ("coupling", "leakage"):
        recipe = recipes.load_recipe(name)
        assert recipe.plots == [name] and recipe.filters == {"experiment": name}
    assert agg.resolve_key("data.gender_specific_aging", agg.build_frame([make_record(
        0, {"age/top1": 0.4}, extra_config={"data.gender_specific_aging": 1.0})])) == "config.data.gender_specific_aging"


def test_power_says_how_many_repeats_a_target_difference_needs(tmp_path):
    from agebench.errors import UserError
    from agebench.report.significance import repeats_needed

    for variant, tasks, values in (("age", ("age",), SINGLE),
                                   ("age_gender", ("age", "gender"), np.add(SINGLE, GAIN[0.0]))):
        write_run(tmp_path / variant, [make_record(f, {"age/top1": v}, tasks=tasks, variant=variant)
                                       for f, v in enumerate(values)])
    cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "report.yaml"), {"runs": str(tmp_path), "power": 2.0})
    cfg.pop("defaults", None)
    cfg.pop("hydra", None)
    doc, *_ = build_document(cfg)
    (note,) = [n for n in doc.notes if n.startswith("power:")]
    spread = np.std(GAIN[0.0], ddof=1)
    r = repeats_needed(0.02, spread, 5, 1 / 4)
    assert r is not None and r > 1
    assert note.startswith(f"power: to detect Δ = 2 points on age/top1 (age+gender vs age): {r} × 5 folds "
                           f"(protocol.repeats={r}; this run detects |Δ| ≥ ")
    cfg.power = 1.0  # below the floor the training-set overlap sets: repeats cannot reach it, and it says so
    doc, *_ = build_document(cfg)
    assert any("out of reach by repeating these 5 folds" in n for n in doc.notes)
    cfg.power = "big"
    with pytest.raises(UserError, match="power='big'"):
        build_document(cfg)


def test_three_methods_over_settings_draw_a_critical_difference_diagram_and_comparisons_their_posterior(tmp_path):
    """Heads × task-sets × folds: Friedman + Nemenyi (autorank) ranks the heads; each single- vs multi-task pair
    gets baycomp's posterior plot; neither prints to stdout (the report's own output)."""
    import contextlib
    import io

    rng = np.random.default_rng(0)
    for head, shift in (("classification", 0.0), ("dldl", -0.3), ("sord", -0.5), ("regression", 0.6)):
        for tasks in (("age",), ("age", "gender")):
            write_run(tmp_path / f"{head}_{'_'.join(tasks)}",
                      [make_record(f, {"age/mae": 7 + shift + rng.normal(0, 0.1)}, tasks=tasks,
                                   extra_config={"tasks.age.head": head}) for f in range(5)])
    groups = agg.aggregate(agg.build_frame(agg.collect_records(str(tmp_path))))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        plots, notes = make_plots(groups, [], ["cd", "posterior"])
    assert out.getvalue() == ""
    names = [p.name for p in plots]
    assert names[0] == "cd_age_mae" and sum(n.startswith("posterior_") for n in names) == 4
    assert all(p.png.startswith(b"\x89PNG") for p in plots)
    (cd,) = [n for n in notes if n.startswith("critical-difference")]
    from autorank import autorank

    from agebench.report.significance_plots import method_column, rank_frame

    frame = rank_frame(groups, method_column(groups), "age/mae")
    assert frame.shape == (10, 4)  # 2 task-sets × 5 folds, 4 heads
    with contextlib.redirect_stdout(io.StringIO()):
        expected = autorank(frame, alpha=0.05, order="ascending", force_mode="nonparametric")
    assert f"Friedman p = {expected.pvalue:.3g}" in cd
    two = [g for g in groups if g.key.get("config.tasks.age.head") in ("dldl", "sord")]
    assert make_plots(two, [], ["cd"])[1][0].startswith("critical-difference diagram skipped: fewer than 3")
