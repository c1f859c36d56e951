"""The README's main job learns: `agebench train experiment=quickstart` (one fold per variant here;
.ci/run trains all folds and gates them against reports/baselines/quickstart.yaml)."""

import pytest

from agebench.results.store import read_records


@pytest.mark.slow
def test_quickstart_learns_age_and_gender(cli, tmp_path):
    result = cli("train", "experiment=quickstart", "protocol.folds=[0]", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "age_gender" in result.stdout and "±" in result.stdout  # the closing mean ± std table
    (age,) = read_records(tmp_path / "age" / "results.jsonl")
    (both,) = read_records(tmp_path / "age_gender" / "results.jsonl")
    median_answer = 15.0  # adult ages uniform over 20..80: always answering 50 is 15 years off on average
    assert age["metrics"]["age/mae"] < 0.75 * median_answer  # 9.6 / 9.0 measured on fold 0 at coupling 1
    assert both["metrics"]["age/mae"] < 0.75 * median_answer
    assert both["metrics"]["gender/acc"] > 0.8
    assert age["config"]["data"]["n_subjects"] == both["config"]["data"]["n_subjects"]  # same data and folds
    assert age["fold_sizes"] == both["fold_sizes"]


def test_quickstart_ends_with_the_paired_answer_and_where_to_look(cli, tmp_path):
    """A tiny quickstart (3 folds of a few faces): the closing lines are the report's table, one answer
    with Δ, its CI and the corrected t-test p (the plain one beside it), the output directory and the `agebench report` command."""
    import re

    from conftest import TINY

    out = tmp_path / "qs"
    result = cli("train", "experiment=quickstart", *TINY, f"output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    answer = next(i for i, line in enumerate(lines) if line.startswith("Answer: "))
    assert len(lines) - answer <= 5, lines[answer:]  # the answer sits at the very end
    p = r"(<0\.001|\d\.\d{3})"
    test = rf"corrected resampled t-test p = {p} \(3 folds; plain paired t-test p = {p}\)"
    bayes = r"( P\(better / equivalent within ±\d\.\d\d years / worse\) = \d\.\d\d / \d\.\d\d / \d\.\d\d\.)?"
    ci = r"95% CI -?\d+\.\d\d\.\.-?\d+\.\d\d"
    assert re.fullmatch(rf"Answer: (age\+gender (improves|worsens) age MAE by \d+\.\d\d years \({ci}\), {test}\."
                        rf"|No significant difference: age\+gender vs age on age MAE \(Δ = [+-]\d+\.\d\d years, {ci}\), "
                        rf"{test}(; this run detects \|Δ\| ≥ \d+\.\d\d years \(power 0\.8\))?\.){bayes}",
                        lines[answer]), lines[answer]
    assert f"Output directory: {out}" in lines[answer:]
    assert any(line.endswith(f"agebench report runs={out} table=quickstart") for line in lines[answer:])
    table = [line for line in lines[:answer] if line.startswith("| ")]
    assert any("Age MAE (years)" in line for line in table) and any("p=" in line for line in table)  # Δ, CI, p cells


def test_readme_and_the_quickstart_config_quote_the_same_measured_time():
    """The quickstart's time is measured (benchmarks/quickstart_time.py) and quoted in two places that
    users read: the README's first screen and conf/experiment/quickstart.yaml. They must say the same."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    quoted = re.compile(r"Time: measured (\d+(?:\.\d+)?) min wall for all (\d+) folds")

    def claim(path: str) -> tuple[str, str]:
        text = " ".join(line.lstrip("# ").strip() for line in (root / path).read_text().splitlines())
        found = quoted.findall(text)
        assert len(found) == 1, f"{path}: expected one 'Time: measured … min wall for all … folds', found {found}"
        return found[0]

    assert claim("README.md") == claim("conf/experiment/quickstart.yaml")


def test_the_quickstart_is_the_coupling_studys_g1_seed0_point():
    """README and baseline say the quickstart's folds are the coupling study's g = 1, data.seed 0 points
    (sweeps/coupling.yaml): both configs set the same regime in two files, so a knob changed in one only
    would silently break that claim."""
    from pathlib import Path

    import yaml

    from agebench.config.compose import compose_config

    study = yaml.safe_load((Path(__file__).resolve().parents[1] / "sweeps" / "coupling.yaml").read_text())
    point = compose_config([*study["base"], "data.gender_specific_aging=1.0", "data.seed=0", "tasks=age_gender"])
    quickstart = compose_config(["experiment=quickstart", "tasks=age_gender"])
    for group in ("data", "model", "protocol", "optim", "trainer", "early_stopping", "tasks", "loss"):
        assert point[group] == quickstart[group], group
