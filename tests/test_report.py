"""`agebench report`: aggregation, incomplete groups, paired tests, the four formats, recipes, plots, W&B."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats as sps

from agebench.errors import UserError
from agebench.report import aggregate as agg
from agebench.report import recipes
from agebench.report.canon import flatten
from agebench.report.command import report_command
from agebench.report.document import build_document
from agebench.report.plots import make_plots, pareto_front
from agebench.report.stats import compare_single_multi, paired_test
from agebench.report.tables import to_csv, to_html, to_latex, to_markdown

sys.path.insert(0, str(Path(__file__).parent))
from fakes_records import COSTS, VALUES, fake_study, make_record, write_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p.stem for p in (ROOT / "reports" / "tables").glob("*.yaml"))


def report_cfg(**kw):
    base = OmegaConf.load(ROOT / "conf" / "report.yaml")
    base.pop("defaults", None)
    base.pop("hydra", None)
    for k, v in kw.items():
        base[k] = v
    return base


@pytest.fixture()
def study(tmp_path):
    return fake_study(tmp_path / "runs", with_predictions=True)


@pytest.fixture()
def groups(study):
    frame = agg.build_frame(agg.collect_records(study))
    return frame, agg.aggregate(frame)


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """The fabricated study's plots, made once (matplotlib is slow on 2 cores)."""
    study = fake_study(tmp_path_factory.mktemp("plotted"), with_predictions=True)
    frame = agg.build_frame(agg.collect_records(study))
    gs = agg.aggregate(frame)
    plots, skipped = make_plots(gs, agg.shown_columns(frame))
    return study, gs, plots, skipped


def _find(groups, tasks, width):
    hits = [g for g in groups if g.key["tasks"] == tasks and g.key["config.model.width"] == agg.canon(list(width))]
    assert len(hits) == 1, [g.key for g in groups]
    return hits[0]


# --------------------------------------------------------------------------- aggregation


def test_mean_and_sample_std_are_exact(groups):
    _, gs = groups
    assert len(gs) == 4
    for (tasks, width), values in VALUES.items():
        g = _find(gs, tasks, width)
        for metric, vals in values.items():
            s = g.metrics[metric]
            assert s.n == len(vals)
            assert s.mean == pytest.approx(statistics.fmean(vals), abs=1e-15)
            assert s.std == pytest.approx(statistics.stdev(vals), abs=1e-15)
            assert list(s.values.values()) == vals
        assert g.costs["params"] == COSTS[width]["params"]
        assert g.costs["gmacs"] == COSTS[width]["gmacs"]


def test_incomplete_group_is_marked_never_silently_averaged(groups):
    frame, gs = groups
    g = _find(gs, "age+gender", (2, 1))
    assert not g.complete
    assert g.folds_ok == [0, 1, 2] and g.folds_bad == {3: "diverged"} and g.folds_missing == [4]
    assert g.folds_text == "3/5"
    assert g.problems() == "fold 3 diverged, fold 4 missing"
    tables, _, _ = recipes.default_tables(frame, recipes.Options())
    md = to_markdown_doc(tables)
    row = next(line for line in md.splitlines() if "[2,1]" in line and line.startswith("| synthetic"))
    assert "3/5 †" in row
    assert "45.33 ± 1.53 †" in row  # numbers of the 3 finished folds, marked
    assert "fold 3 diverged, fold 4 missing" in md
    # drop mode shows no numbers for it
    tables, _, _ = recipes.default_tables(frame, recipes.Options(incomplete="drop"))
    row = next(line for line in to_markdown_doc(tables).splitlines() if "[2,1]" in line and line.startswith("| synthetic"))
    assert "45.33" not in row and "incomplete (3/5)" in row
    complete = _find(gs, "age+gender", (1, 1))
    assert complete.complete and complete.folds_text == "5/5"


def test_missing_folds_of_a_requested_subset_and_duplicates(tmp_path):
    # protocol.folds=[0, 2] requested: fold 1 is not missing; a rerun of fold 0 is de-duplicated
    recs = [make_record(0, {"age/top1": 0.1}, tasks=["age"], folds=[0, 2]),
            make_record(0, {"age/top1": 0.3}, tasks=["age"], folds=[0, 2], started_at="2024-02-01T00:00:00"),
            make_record(2, {"age/top1": 0.5}, tasks=["age"], folds=[0, 2])]
    write_run(tmp_path / "a", recs[:2])
    write_run(tmp_path / "b", recs[2:])
    frame = agg.build_frame(agg.collect_records(tmp_path))
    (g,) = agg.aggregate(frame)
    assert g.complete and g.folds_ok == [0, 2] and g.duplicates == [0]
    assert g.metrics["age/top1"].mean == pytest.approx(0.4)  # the later record of fold 0 (0.3) and fold 2


def test_single_task_runs_ignore_loss_weighting(tmp_path):
    # a single-task run with loss=gamma must pair with and group like any other single-task run
    write_run(tmp_path / "a", [make_record(f, {"age/top1": 0.4}, tasks=["age"], gamma=0.5) for f in range(5)])
    write_run(tmp_path / "b", [make_record(f, {"age/top1": 0.4}, tasks=["age"], gamma=None) for f in range(5)])
    frame = agg.build_frame(agg.collect_records(tmp_path))
    assert len(agg.aggregate(frame)) == 1


def test_filters_match_config_values(groups):
    frame, _ = groups
    assert set(agg.apply_filters(frame, {"width": [2, 1]})["config.model.width"]) == {"[2,1]"}
    assert set(agg.apply_filters(frame, {"config.model.width": [1, 1]})["config.model.width"]) == {"[1,1]"}
    assert set(agg.apply_filters(frame, {"tasks": "age_gender"})["tasks"]) == {"age+gender"}
    assert set(agg.apply_filters(frame, {"tasks": ["gender", "age"]})["tasks"]) == {"age+gender"}
    assert set(agg.apply_filters(frame, {"single_task": True})["tasks"]) == {"age", "gender"}
    assert set(agg.apply_filters(frame, {"model": {"in": ["lmtcnn", "x"]}})["model"]) == {"lmtcnn"}
    assert agg.apply_filters(frame, {"model": {"not": "lmtcnn"}}).empty
    assert agg.apply_filters(frame, {"config.model.backbone": "x"}).empty  # absent key
    assert len(agg.apply_filters(frame, {"model": {"width": [2, 1]}})) == 4  # nested, as +filters.model.width builds


def test_canonical_values():
    assert agg.canon(1) == agg.canon(1.0) == agg.canon("1") == "1"
    assert agg.canon([2, 1]) == agg.canon((2.0, 1)) == "[2,1]"
    assert agg.canon(None) == agg.canon(float("nan")) == "null"
    assert agg.canon_tasks("age_gender_race") == agg.canon_tasks(["race", "age", "gender"]) == "age+gender+race"
    assert agg.age_classes("adience8") == 8 and agg.age_classes("uniform:5") == 5
    assert agg.age_classes("edges:1,27,53,81") == 3 and agg.age_classes([1, 12, 24, 40, 56, 81]) == 5


# --------------------------------------------------------------------------- paired test


def test_paired_test_matches_scipy(groups):
    _, gs = groups
    comparisons = compare_single_multi(gs)
    got = {(c.result.metric, c.multi.key["config.model.width"]): c for c in comparisons}
    # the [2,1] multi-task run has no single-task partner with that trunk
    assert set(got) == {("age/top1", "[1,1]"), ("age/top2", "[1,1]"), ("gender/acc", "[1,1]")}
    for metric, single_key in (("age/top1", "age"), ("age/top2", "age"), ("gender/acc", "gender")):
        c = got[(metric, "[1,1]")]
        single = np.array(VALUES[(single_key, (1, 1))][metric])
        multi = np.array(VALUES[("age+gender", (1, 1))][metric])
        r = c.result
        assert c.single.tasks == [single_key]
        assert r.n == 5
        assert r.p_t == sps.ttest_rel(multi, single).pvalue
        assert r.t_stat == sps.ttest_rel(multi, single).statistic
        assert r.p_w == sps.wilcoxon(multi, single).pvalue
        d = multi - single
        # the verdict: the corrected resampled t-test, ρ = 1/(k − 1) for records without fold sizes
        se = math.sqrt((1 / 5 + 1 / 4) * d.var(ddof=1))
        half = sps.t.ppf(0.975, 4) * se
        assert r.mean_diff == pytest.approx(d.mean(), abs=1e-15)
        assert (r.ci_low, r.ci_high) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-12)
        assert r.p_corrected == pytest.approx(2 * sps.t.sf(abs(d.mean() / se), 4), rel=1e-12)
        assert r.p_corrected > r.p_t  # the corrected test is the cautious one
    # three comparisons in one table: the verdict reads Holm's adjustment of the corrected p (statsmodels)
    from statsmodels.stats.multitest import multipletests

    order = [("age/top1", "[1,1]"), ("age/top2", "[1,1]"), ("gender/acc", "[1,1]")]
    holm = multipletests([got[k].result.p_corrected for k in order], method="holm")[1]
    assert [got[k].result.p for k in order] == list(holm) and {got[k].result.family for k in order} == {3}


def test_a_ci_excluding_zero_that_fails_holm_says_so(tmp_path):
    """The table's CI is per comparison, its verdict Holm-adjusted over the table: CI [-1.08, -0.23] beside
    "no significant difference" (the CI gate's quickstart table) read as a contradiction. The verdict now
    names both: significant alone, not after Holm over the family."""
    single = [10.0, 10.2, 9.9, 10.1, 10.05]
    diffs = {"age/mae": [-0.25, -0.75, -0.35, -0.65, -0.5],  # one real gain, three metrics with none
             "age/top1": [0.01, -0.02, 0.015, -0.01, 0.0], "age/top2": [0.0, 0.01, -0.01, 0.02, -0.02],
             "age/cs5": [0.02, -0.01, 0.0, -0.02, 0.01]}
    for variant, tasks in (("age", ["age"]), ("age_gender", ["age", "gender"])):
        records = [make_record(f, {m: single[f] * (m == "age/mae") + 0.5 * (m != "age/mae")
                                   + (d[f] if variant == "age_gender" else 0.0) for m, d in diffs.items()}
                               | ({"gender/acc": 0.9} if variant == "age_gender" else {}),
                               experiment="q", tasks=tasks, n_folds=5, variant=variant,
                               extra_config={"variant": variant, "variants": None}) for f in range(5)]
        write_run(tmp_path / variant, records)
    gs = agg.aggregate(agg.build_frame(agg.collect_records(tmp_path)))
    comparisons = compare_single_multi(gs)
    (mae,) = [c for c in comparisons if c.result.metric == "age/mae"]
    r = mae.result
    assert r.family == 4 and r.p_corrected < 0.05 <= r.p and r.ci_high < 0  # the situation under test
    table = recipes.comparison_table(comparisons, [], recipes.Options())
    row = next(row for row in table.rows if row[1].text == "age/mae")
    assert row[-1].text == f"better alone (p = {recipes.format_p(r.p_corrected)}), not significant after Holm over 4"
    assert "a CI that excludes 0 can still fall short after Holm" in table.caption


def test_a_recipes_holm_family_is_the_comparisons_it_shows(tmp_path):
    """The quickstart recipe shows Δ on age MAE and CS@5; its records hold more age metrics (top-1, top-2).
    Holm's family is the two comparisons the reader sees, not the metrics the table leaves out: the CI gate's
    table once said "not significant after Holm over 7" beside two rows."""
    single = [10.0, 10.2, 9.9, 10.1, 10.05]
    gain = [-0.6, -0.9, -0.5, -0.8, -0.7]
    for variant, tasks in (("age", ["age"]), ("age_gender", ["age", "gender"])):
        records = [make_record(f, {"age/mae": single[f] + (gain[f] if variant == "age_gender" else 0.0),
                                   "age/cs5": 0.4 + 0.01 * f + (0.002 * f * f if variant == "age_gender" else 0.0),
                                   "age/top1": 0.05 + (0.003 * (f % 2) if variant == "age_gender" else 0.0),
                                   "age/top2": 0.1 + (0.002 * (f % 3) if variant == "age_gender" else 0.0)}
                               | ({"gender/acc": 0.9} if variant == "age_gender" else {}),
                               experiment="quickstart", tasks=tasks, n_folds=5, variant=variant,
                               extra_config={"variant": variant, "variants": None}) for f in range(5)]
        write_run(tmp_path / variant, records)
    frame = agg.build_frame(agg.collect_records(tmp_path))
    _, _, comparisons, _ = recipes.recipe_tables(recipes.load_recipe("quickstart"), frame, recipes.Options())
    assert sorted(c.result.metric for c in comparisons) == ["age/cs5", "age/mae"]
    assert {c.result.family for c in comparisons} == {2}
    text = to_markdown(build_document(report_cfg(runs=str(tmp_path), table="quickstart"))[0])
    assert "over the table's 2 comparisons" in text and "Holm over 4" not in text


def test_variants_of_one_experiment_pair(tmp_path):
    # the quickstart runs its single- and multi-task variants as one experiment: config.variant differs
    age, multi = [9.5, 9.8, 9.2], [9.0, 9.1, 8.8]  # age MAE: the quickstart table's headline column
    for variant, tasks, vals in (("age", ["age"], age), ("age_gender", ["age", "gender"], multi)):
        write_run(tmp_path / variant, [make_record(f, {"age/mae": v}, experiment="quickstart", tasks=tasks, n_folds=3,
                                                   variant=variant, extra_config={"variant": variant, "variants": None})
                                       for f, v in enumerate(vals)])
    gs = agg.aggregate(agg.build_frame(agg.collect_records(tmp_path)))
    (c,) = compare_single_multi(gs)
    assert c.result.p_t == sps.ttest_rel(multi, age).pvalue
    doc, *_ = build_document(report_cfg(runs=str(tmp_path), table="quickstart"))
    assert "p=" in to_markdown(doc)


def test_a_shown_p_never_rounds_onto_the_threshold_it_is_below():
    # Table B's unimodal contrast: p = 0.049976 after Holm, "compared row worse" beside "0.05"
    from agebench.report.stats import format_p

    assert format_p(0.0499756848) == "0.04998" and format_p(0.00999991) == "0.0099999"
    assert format_p(0.05) == "0.05" and format_p(0.0500004) == "0.05" and format_p(0.0123456) == "0.0123"
    assert format_p(0.0004) == "<0.001" and format_p(float("nan")) == "n/a"


def test_paired_test_uses_common_folds_only():
    r = paired_test({0: 0.4, 1: 0.5, 2: 0.45, 3: 0.5}, {1: 0.55, 2: 0.47, 3: 0.56, 4: 0.9})
    assert r.folds == [1, 2, 3]
    assert r.p_t == sps.ttest_rel([0.55, 0.47, 0.56], [0.5, 0.45, 0.5]).pvalue
    one = paired_test({0: 0.4}, {0: 0.5})
    assert one.n == 1 and math.isnan(one.p_t)
    same = paired_test({0: 0.4, 1: 0.5}, {0: 0.4, 1: 0.5})
    assert same.mean_diff == 0 and same.p_w == 1.0


def test_delta_column_in_default_table(groups):
    frame, _ = groups
    tables, _, comps = recipes.default_tables(frame, recipes.Options())
    md = to_markdown_doc(tables)
    assert "Δ vs single-task, p" in tables[0].columns
    top1 = next(c for c in comps if c.result.metric == "age/top1" and c.multi.key["config.model.width"] == "[1,1]")
    assert f"p={top1.result.p:.3g}" in md and top1.result.p != top1.result.p_t  # the verdict's p, not the plain t
    assert tables[1].title.startswith("Single- vs multi-task")


# --------------------------------------------------------------------------- formats parse back


def to_markdown_doc(tables):
    from agebench.report.tables import Document

    return to_markdown(Document(title="t", tables=tables))


def _md_rows(md: str, first_col: str):
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and cells[0] == first_col:
            rows.append(dict(zip(header, cells, strict=False)))
    return header, rows


PM_RE = re.compile(r"^([-\d.]+) (?:±|\$\\pm\$) ([-\d.]+)")


def _expected_display(vals, scale=100.0):
    return round(statistics.fmean(vals) * scale, 2), round(statistics.stdev(vals) * scale, 2)


def test_markdown_parses_back(groups):
    frame, _ = groups
    tables, _, _ = recipes.default_tables(frame, recipes.Options())
    md = to_markdown_doc(tables[:1])
    _, rows = _md_rows(md, "synthetic")
    assert len(rows) == 4
    for row in rows:
        key = (row["tasks"], tuple(json.loads(row["model.width"])))
        for metric, vals in VALUES[key].items():
            m = PM_RE.match(row[f"{metric} (%)"])
            assert m, row
            assert (float(m.group(1)), float(m.group(2))) == pytest.approx(_expected_display(vals), abs=1e-9)


def test_latex_parses_back(groups):
    frame, _ = groups
    tables, _, _ = recipes.default_tables(frame, recipes.Options())
    from agebench.report.tables import Document

    tex = to_latex(Document(title="t", tables=tables[:1]))
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert r"\toprule" in tex and r"\bottomrule" in tex
    lines = tex.splitlines()
    header = [c.strip() for c in lines[lines.index(r"\toprule") + 1].removesuffix(r"\\").split(" & ")]
    body = [ln for ln in lines if ln.startswith("synthetic &")]
    assert len(body) == 4
    for line in body:
        cells = dict(zip(header, [c.strip() for c in line.removesuffix(r"\\").split(" & ")], strict=False))
        key = (cells["tasks"], tuple(json.loads(cells["model.width"])))
        for metric, vals in VALUES[key].items():
            label = metric.replace("_", r"\_") + r" (\%)"
            m = PM_RE.match(cells[label])
            assert m, cells
            assert (float(m.group(1)), float(m.group(2))) == pytest.approx(_expected_display(vals), abs=1e-9)
        assert cells["params"] == f"{COSTS[key[1]]['params']:,}"


def test_csv_parses_back_full_precision(groups):
    frame, gs = groups
    tables, _, _ = recipes.default_tables(frame, recipes.Options())
    from agebench.report.tables import Document

    rows = list(csv.DictReader(io.StringIO(to_csv(Document(title="t", tables=tables)))))
    assert len(rows) == 4
    for row in rows:
        key = (row["tasks"], tuple(json.loads(row["model.width"])))
        g = _find(gs, *key)
        for metric in VALUES[key]:
            assert float(row[f"{metric} (%) mean"]) == g.metrics[metric].mean * 100
            assert float(row[f"{metric} (%) std"]) == g.metrics[metric].std * 100
        assert float(row["params"]) == COSTS[key[1]]["params"]
        assert row["folds"] in ("5/5", "3/5 †")


class WellFormed(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.seen, self.images, self.doctype = [], [], [], [], False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(text: str) -> WellFormed:
    p = WellFormed()
    p.feed(text)
    p.close()
    assert p.doctype, "missing <!DOCTYPE html>"
    assert not p.errors, p.errors
    assert not p.stack, f"unclosed {p.stack}"
    for tag in ("html", "head", "title", "body", "table", "thead", "tbody"):
        assert tag in p.seen
    assert p.seen.count("html") == p.seen.count("body") == 1
    return p


def test_html_is_well_formed_with_embedded_pngs(plotted):
    import base64

    study, gs, plots, _ = plotted
    doc, *_ = build_document(report_cfg(runs=str(study)))
    doc.plots = plots
    text = to_html(doc)
    p = check_html(text)
    assert len(p.images) == len(plots) >= 4
    for img in p.images:
        assert img["alt"]
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # table cells survive escaping: the paper-row marker class and the ± text
    assert "43.40 ± 2.30" in text


# --------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_renders_paper_rows_with_sources(name):
    recipe = recipes.load_recipe(name)
    tables, *_ = recipes.recipe_tables(recipe, None, recipes.Options())
    table = tables[0]
    paper = [r for r, k in zip(table.rows, table.row_kinds, strict=False) if k == "paper"]
    # the synthetic studies have no paper to quote, and no seed reports its architectures on UTKFace (only seed
    # 002, an EfficientNet, uses UTKFace: Table C's question)
    if name not in ("quickstart", "coupling", "leakage", "utkface_architectures"):
        assert paper, f"{name} has no paper rows"
        for row in paper:
            # every paper number cites its seed (or, for age_heads, the benchmark it comes from)
            assert re.match(r"seed 00\d|Paplham & Franc 2024", row[1].text), row[1].text
    from agebench.report.tables import Document

    doc = Document(title=recipe.title, tables=tables)
    check_html(to_html(doc))
    assert to_latex(doc).count(r"\begin{table}") == len(tables)
    to_csv(doc)


def test_recipe_paper_numbers_are_typed_from_the_seeds():
    def paper(name, label):
        r = recipes.load_recipe(name)
        return next(row.paper for row in r.rows if row.label == label)

    assert paper("seed000_table3", "LMTCNN-2-1") == {"age_top1": 44.26, "age_top2": 70.78, "gender": 85.16}
    assert paper("seed000_table4", "LMTCNN-1-1") == {"size_mb": 8.7}
    assert paper("seed000_table5", "LMTCNN-2-1") == {"zenbo": 297.6, "zenfone": 367.2}
    assert paper("seed001_table2", "multi-task")["total"] == 14287625
    assert paper("seed001_table3", "Multitask Classification") == {"gender": "84.0 ± 1.4", "age": "47.3 ± 4.9", "epochs": 26.0}
    assert paper("seed003_table3", "Ours (single-3conv)") == {"gender": "83.7 ± 0.7", "age": "47.6 ± 0.8"}
    assert paper("seed004_table5", "Ours (seed 004 multi-branch)") == {"params": "99.2K", "ca3": 0.585, "ca5": 0.788}


def test_recipe_puts_our_runs_beside_the_paper(tmp_path):
    rng = np.random.default_rng(0)
    runs = tmp_path / "runs"
    folds = {}
    for name, model, tasks, width in (("lh_age", "levi_hassner", ["age"], (1, 1)),
                                      ("lh_gender", "levi_hassner", ["gender"], (1, 1)),
                                      ("lm21", "lmtcnn", ["age", "gender"], (2, 1)),
                                      ("lm21_age", "lmtcnn", ["age"], (2, 1))):
        recs = []
        for f in range(5):
            m = {}
            if "age" in tasks:
                m.update({"age/top1": 0.4 + rng.normal(0, 0.02), "age/top2": 0.7 + rng.normal(0, 0.02)})
            if "gender" in tasks:
                m["gender/acc"] = 0.85 + rng.normal(0, 0.01)
            recs.append(make_record(f, m, dataset="adience", model=model, tasks=tasks, width=width))
        folds[name] = recs
        write_run(runs / name, recs)
    doc, *_ = build_document(report_cfg(runs=str(runs), table="seed000_table3"))
    table = doc.tables[0]
    by = {(r[0].text, k): r for r, k in zip(table.rows, table.row_kinds, strict=False)}
    ours = by[("LMTCNN-2-1", "ours")]
    paper = by[("LMTCNN-2-1", "paper")]
    col = table.columns.index("Age top-1 (%)")
    assert paper[col].text == "44.26" and paper[1].text == "seed 000 Table 3"
    vals = [r["metrics"]["age/top1"] * 100 for r in folds["lm21"]]
    assert ours[col].mean == pytest.approx(statistics.fmean(vals)) and ours[col].std == pytest.approx(statistics.stdev(vals))
    # Levi_Hassner is one model per task: age from the age model, gender from the gender model
    levi = by[("Levi_Hassner CNN [8]", "ours")]
    g = table.columns.index("Gender top-1 (%)")
    assert levi[g].mean == pytest.approx(statistics.fmean(r["metrics"]["gender/acc"] * 100 for r in folds["lh_gender"]))
    # Δ column: LMTCNN-2-1 multi-task vs its single-task age model on the same folds
    d = table.columns.index("Δ age top-1 vs single-task, p")
    single = [r["metrics"]["age/top1"] for r in folds["lm21_age"]]
    multi = [r["metrics"]["age/top1"] for r in folds["lm21"]]
    diff = np.subtract(multi, single)  # the verdict's p: corrected resampled t (ρ = 1/4), Holm can only raise it
    corrected = 2 * sps.t.sf(abs(diff.mean()) / math.sqrt((1 / len(diff) + 1 / 4) * diff.var(ddof=1)), len(diff) - 1)
    shown = float(ours[d].text.rsplit("p=", 1)[1])
    assert shown >= float(f"{corrected:.3g}") and shown != float(f"{sps.ttest_rel(multi, single).pvalue:.3g}")
    assert by[("LMTCNN-1-1", "ours")][-1].text == "no runs"
    assert len(doc.tables) == 2  # + the paired comparison


def test_recipe_granularity_columns_and_variants(tmp_path):
    runs = tmp_path / "runs"
    for k, acc in ((3, 0.8), (5, 0.6), (10, 0.4)):
        for tasks in (["age"], ["age", "gender", "race"]):
            for backbone in ("efficientnet_b4", "efficientnet_b5"):
                recs = [make_record(f, {"age/top1": acc + 0.01 * f + (0.02 if len(tasks) > 1 else 0)}, dataset="utkface",
                                    model="timm", tasks=tasks, bins=f"uniform:{k}",
                                    extra_config={"model.backbone": backbone}) for f in range(3)]
                write_run(runs / f"{k}_{len(tasks)}_{backbone}", recs)
    doc, _, groups, frame, _ = build_document(report_cfg(runs=str(runs), table="seed002_granularity"))
    table = doc.tables[0]
    rows = [r for r, kind in zip(table.rows, table.row_kinds, strict=False) if kind == "ours" and r[0].text == "UTKFace, age"]
    assert [r[2].text for r in rows] == ["model.backbone=efficientnet_b4", "model.backbone=efficientnet_b5"]
    k3, k5, k10 = (table.columns.index(c) for c in ("3 classes (%)", "5 classes (%)", "10 classes (%)"))
    assert (rows[0][k3].mean, rows[0][k5].mean, rows[0][k10].mean) == pytest.approx((81.0, 61.0, 41.0))
    plots, _ = make_plots(groups, agg.shown_columns(frame), ["granularity"])
    assert [p.name for p in plots] == ["granularity"]


def _granularity_runs(runs: Path, sizes_of=lambda k, tasks, f: {"train": 90, "val": 10, "test": 25}) -> dict:
    """Table C's grid of fake records (K × task-set, 5 folds): top-1 falls with K, MAE improves with K."""
    values = {}
    for k, top1, mae in ((3, 0.70, 9.0), (5, 0.52, 8.0), (10, 0.30, 7.5)):
        for tasks in (["age"], ["age", "gender"], ["age", "gender", "race"]):
            vals = {f: {"age/top1": top1 + 0.01 * f + 0.003 * len(tasks) * ((f * k) % 3),
                        "age/mae": mae - 0.05 * f + 0.02 * len(tasks) * ((f + k) % 3)} for f in range(5)}
            values[(k, len(tasks))] = vals
            write_run(runs / f"k{k}_{len(tasks)}", [
                make_record(f, vals[f] | {"gender/acc": 0.9, "race/acc": 0.8}, experiment="utkface_granularity",
                            dataset="utkface", tasks=tasks, bins=f"uniform:{k}", n_folds=5,
                            fold_sizes=sizes_of(k, tasks, f), records_fingerprint="table-1") for f in range(5)])
    return values


def test_recipe_contrasts_pair_rows_across_folds(tmp_path):
    """Seed 002's first claim needs row against row (K = 5 vs K = 3, same task-set and folds), with the same
    paired test and Holm family rules as single vs multi-task."""
    values = _granularity_runs(tmp_path)
    doc, *_ = build_document(report_cfg(runs=str(tmp_path), table="utkface_granularity"))
    (table,) = [t for t in doc.tables if t.name == "contrasts"]
    assert len(table.rows) == 12 and table.columns[0].startswith("contrast")
    row = next(r for r in table.rows if r[0].text == "K = 10, age+gender vs K = 5, age+gender" and r[1].text == "age/mae")
    base = [values[(5, 2)][f]["age/mae"] for f in range(5)]
    other = [values[(10, 2)][f]["age/mae"] for f in range(5)]
    assert row[5].mean == pytest.approx(statistics.mean(other) - statistics.mean(base))
    assert row[8].mean == pytest.approx(sps.ttest_rel(other, base).pvalue)  # the plain t-test column
    assert "Holm-adjusted over the table's 12 comparisons" in table.caption
    assert row[-1].text == "compared row better"  # MAE fell by ~0.5 years on every fold
    top1 = next(r for r in table.rows if r[0].text == "K = 5, age vs K = 3, age" and r[1].text == "age/top1")
    assert top1[-1].text == "compared row worse"


def test_recipe_contrasts_refuse_rows_from_different_folds(tmp_path):
    _granularity_runs(tmp_path / "folds_subset")  # a row trained fold by fold (protocol.folds) still pairs
    path = tmp_path / "folds_subset" / "k5_1" / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["config"]["protocol"]["folds"] = [record["fold"]]
    write_run(path.parent, records)
    doc, *_ = build_document(report_cfg(runs=str(tmp_path / "folds_subset"), table="utkface_granularity"))
    assert len([t for t in doc.tables if t.name == "contrasts"][0].rows) == 12
    _granularity_runs(tmp_path / "resized", sizes_of=lambda k, tasks, f: {"train": 90 + (k == 10), "val": 10, "test": 25})
    with pytest.raises(UserError, match="contrast 'K = 10, age' vs 'K = 5, age' pairs folds that are not the same "
                                        "split \\(fold 0: fold sizes"):
        build_document(report_cfg(runs=str(tmp_path / "resized"), table="utkface_granularity"))
    with pytest.raises(UserError, match="names \\['K = 4'\\], not a row label with `where`"):
        recipes.parse_recipe({"title": "t", "columns": [{"metric": "age/mae"}],
                              "rows": [{"label": "K = 3", "where": {}}],
                              "contrasts": {"metrics": ["age/mae"], "pairs": [["K = 3", "K = 4"]]}})


def test_recipe_ambiguous_cell_is_a_clear_error(tmp_path):
    for model in ("a", "b"):
        write_run(tmp_path / model, [make_record(f, {"age/top1": 0.5}, model=model, tasks=["age"]) for f in range(2)])
    recipe = recipes.parse_recipe({"title": "t", "merge": ["model"],
                                   "columns": [{"metric": "age/top1"}], "rows": [{"label": "x", "where": {}}]})
    frame = agg.build_frame(agg.collect_records(tmp_path))
    with pytest.raises(UserError, match="matches 2 configurations that differ in model"):
        recipes.recipe_tables(recipe, frame, recipes.Options())


def test_bad_recipes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown table recipe"):
        recipes.load_recipe("no_such_table")
    with pytest.raises(UserError, match="unknown key"):
        recipes.parse_recipe({"title": "t", "columns": [{"metric": "a"}], "colums": []})
    with pytest.raises(UserError, match="unknown column key"):
        recipes.parse_recipe({"title": "t", "columns": [{"key": "a", "metric": "a"}],
                              "rows": [{"label": "r", "paper": {"b": 1}}]})
    with pytest.raises(UserError, match="neither"):
        recipes.parse_recipe({"title": "t", "columns": [{"metric": "a"}], "rows": [{"label": "r"}]})


# --------------------------------------------------------------------------- plots


def test_plots(plotted):
    _, gs, plots, skipped = plotted
    names = [p.name for p in plots]
    assert "pareto_age_top1" in names and "pareto_gender_acc" in names
    assert sum(n.startswith("curves_") for n in names) == 4
    assert sum(n.startswith("confusion_") for n in names) == 3  # every config with age predictions
    assert all(p.png[:4] == b"\x89PNG" for p in plots)
    assert any("granularity" in s for s in skipped)


def test_report_to_a_full_disk_leaves_no_partial_plots_dir(study, tmp_path, monkeypatch):
    """Issue 26 (8): a plot write on a full disk left a partial `*_plots/`; the OSError names the file (the CLI
    turns it into one line: tests/test_cli.py)."""
    from agebench import files
    from agebench.errors import DiskFullError

    written, write_synced = [], files.write_synced

    def full_after_one(fh, data):  # the first PNG fits, the second meets the kernel's own ENOSPC
        written.append(fh.name)
        write_synced(fh if len(written) == 1 else open("/dev/full", "wb"), data)

    monkeypatch.setattr(files, "write_synced", full_after_one)
    out = tmp_path / "rep" / "t.md"
    with pytest.raises(DiskFullError, match=r"no space left on device writing .*t_plots.*\.png .*choose another out="):
        report_command(report_cfg(runs=str(study), format="md", out=str(out), filters={"tasks": "age"}))
    assert len(written) >= 2
    assert not (tmp_path / "rep").exists() or list((tmp_path / "rep").iterdir()) == []  # no plots dir, no staging


def test_cost_ticks_use_the_fewest_digits_that_tell_them_apart():
    from agebench.report.plots import tick_digits

    assert tick_digits([0.0016, 0.0018, 0.002]) == 2
    assert tick_digits([0.00162, 0.00163, 0.00164]) == 3  # never seven digits for three ticks
    assert tick_digits([1.0, 2.0, 3.0]) == 2


def test_a_metric_missing_on_one_finished_fold_says_over_how_many_folds(tmp_path):
    """Issue 26 (9): one fold's NaN metric showed the other fold's value, unmarked, beside "2/2" folds."""
    write_run(tmp_path / "a", [make_record(0, {"age/mae": 5.0, "age/top1": 0.5}, n_folds=2),
                               make_record(1, {"age/mae": float("nan"), "age/top1": 0.6}, n_folds=2)])
    frame = agg.build_frame(agg.collect_records(tmp_path))
    tables, _, _ = recipes.default_tables(frame, recipes.Options())
    row = next(line for line in to_markdown_doc(tables).splitlines() if line.startswith("| synthetic"))
    assert "5.00 (1/2 folds)" in row  # the MAE cell: one of the two finished folds
    assert "55.00 ± 7.07 |" in row and "2/2" in row  # top-1 has both folds: no mark


def test_pareto_front():
    pts = [(1.0, 40.0), (2.0, 45.0), (3.0, 44.0), (0.5, 30.0), (4.0, 50.0)]
    assert pareto_front(pts) == [3, 0, 1, 4]
    assert pareto_front([(1.0, 3.0), (2.0, 2.0), (3.0, 2.5)], higher_is_better=False) == [0, 1]


def test_report_writes_files_and_plots(study, tmp_path, capsys):
    one = {"tasks": "age"}  # one configuration: three plots (pareto, curves, confusion) keep this quick
    out = tmp_path / "rep" / "table.html"
    report_command(report_cfg(runs=str(study), format="html", out=str(out), filters=one))
    check_html(out.read_text())
    pngs = sorted(p.name for p in (tmp_path / "rep" / "table_plots").glob("*.png"))
    assert pngs == ["confusion_tasks_age.png", "cost_age_top1.png", "curves_tasks_age.png"]  # one: no front
    assert "wrote" in capsys.readouterr().err
    md = tmp_path / "rep" / "t.md"
    report_command(report_cfg(runs=str(study), format="md", out=str(md), filters=one, plots_dir=str(tmp_path / "rep" / "p")))
    assert "](p/cost_age_top1.png)" in md.read_text()
    csv_out = tmp_path / "rep" / "t.csv"
    report_command(report_cfg(runs=str(study), format="csv", out=str(csv_out), plots=False))
    assert (tmp_path / "rep" / "t_paired.csv").is_file()


# --------------------------------------------------------------------------- W&B source


class FakeRun:
    def __init__(self, config, summary, state="finished", group="fake", job_type="fold 0", run_id="r"):
        self.config, self.summary, self.state, self.group, self.job_type, self.id = config, summary, state, group, job_type, run_id
        self.path = ["ent", "proj", run_id]


class FakeApi:
    instances = []

    def __init__(self, *args, **kwargs):
        self.calls = []
        FakeApi.instances.append(self)

    def runs(self, path, filters=None, **kwargs):
        self.calls.append((path, filters))
        out = []
        for (tasks, width), values in VALUES.items():
            n = len(next(iter(values.values())))
            for fold in range(n):
                cfg = make_record(fold, tasks=tasks.split("+"), width=width)["config"]
                flat = {}
                flatten(cfg, "", flat)  # W&B may return dotted keys
                summary = {f"test/{m}": v[fold] for m, v in values.items()}
                summary.update({f"val/{m}": 0.0 for m in values})  # must not win over test/
                summary.update({"params": COSTS[width]["params"], "gmacs": COSTS[width]["gmacs"], "_step": 3})
                out.append(FakeRun(flat if fold % 2 else cfg, summary, job_type=f"fold {fold}", run_id=f"{tasks}{width}{fold}"))
        out.append(FakeRun({"data": {"name": "synthetic"}}, {}, state="running", run_id="live"))
        return out


def test_wandb_source_gives_the_same_numbers(monkeypatch, study):
    import wandb

    monkeypatch.setattr(wandb, "Api", FakeApi)
    doc_w, summary_w, groups_w, *_ = build_document(report_cfg(source="wandb", project="ent/proj", runs=None,
                                                               wandb_filters={"group": "fake"}))
    assert FakeApi.instances[-1].calls == [("ent/proj", {"group": "fake"})]
    doc_l, _, groups_l, *_ = build_document(report_cfg(runs=str(study)))
    assert len(groups_w) == len(groups_l) == 4
    w21 = next(g for g in groups_w if g.key["config.model.width"] == "[2,1]")
    assert w21.folds_missing == [3, 4] and not w21.complete  # W&B holds only its 3 finished folds
    for g in groups_w:
        width = tuple(json.loads(g.key["config.model.width"]))
        for metric, vals in VALUES[(g.key["tasks"], width)].items():
            assert g.metrics[metric].mean == pytest.approx(statistics.fmean(vals))
            assert g.metrics[metric].std == pytest.approx(statistics.stdev(vals))
        assert g.costs["params"] == COSTS[width]["params"]
    assert "Δ vs single-task, p" in doc_w.tables[0].columns


def test_wandb_source_errors(monkeypatch):
    import wandb

    class NoLogin:
        def __init__(self, *a, **k):
            raise RuntimeError("api_key not configured (no-tty)")

    monkeypatch.setattr(wandb, "Api", NoLogin)
    with pytest.raises(UserError, match="wandb login"):
        build_document(report_cfg(source="wandb", project="ent/proj"))
    with pytest.raises(UserError, match="project=<entity>/<project>"):
        build_document(report_cfg(source="wandb", project="nope"))


# --------------------------------------------------------------------------- CLI


def agebench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "agebench.cli.main", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_cli_report_prints_table_and_litters_nothing(study, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    res = agebench("report", f"runs={study}", cwd=work)
    assert res.returncode == 0, res.stderr
    assert "| synthetic | lmtcnn | age+gender | [2,1] | 3/5 † |" in res.stdout
    assert list(work.iterdir()) == []  # no outputs/, .hydra/ or log files


@pytest.mark.parametrize("runs", ["empty", "missing"])
def test_cli_report_on_empty_or_wrong_dir_is_one_line(tmp_path, runs):
    (tmp_path / "empty").mkdir()
    res = agebench("report", f"runs={tmp_path / runs}", cwd=tmp_path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("agebench: error: ") and str(tmp_path / runs) in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


@pytest.mark.slow
def test_report_and_gate_on_real_training_output(tmp_path, tiny_overrides):
    """The run records `agebench train` really writes feed report and regress (tiny quickstart, 2 folds)."""
    from conftest import run_cli

    res = run_cli("train", "experiment=quickstart", *tiny_overrides, "protocol.n_folds=2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    runs = tmp_path / "run"
    res = run_cli("report", f"runs={runs}", "table=quickstart", "format=html", f"out={tmp_path / 'q.html'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "q.html").read_text()
    check_html(html)
    assert "Quickstart — single-" in html and "no runs" not in html
    assert html.count("2/2") >= 2  # both variants, all folds
    assert "paired across folds" in html  # age+gender paired with single-task age on the same folds
    assert any(p.name.startswith("cost_") for p in (tmp_path / "q_plots").iterdir())  # two models: no front
    assert not any(p.name.startswith("pareto_") for p in (tmp_path / "q_plots").iterdir())
    assert any(p.name.startswith("curves_") for p in (tmp_path / "q_plots").iterdir())
    baseline = tmp_path / "b.yaml"
    baseline.write_text((ROOT / "reports" / "baselines" / "quickstart.yaml").read_text())
    assert run_cli("regress", f"baseline={baseline}", f"runs={runs}", "update=true", cwd=tmp_path).returncode == 0
    assert run_cli("regress", f"baseline={baseline}", f"runs={runs}", cwd=tmp_path).returncode == 0
