"""The README's main job learns: `agebench train experiment=quickstart` (one fold per variant here;
.ci/run trains all folds and gates them against reports/baselines/quickstart.yaml)."""

import pytest

from agebench.results import read_records


@pytest.mark.slow
def test_quickstart_learns_age_and_gender(cli, tmp_path):
    result = cli("train", "experiment=quickstart", "protocol.folds=[0]", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "age_gender" in result.stdout and "±" in result.stdout  # the closing mean ± std table
    (age,) = read_records(tmp_path / "age" / "results.jsonl")
    (both,) = read_records(tmp_path / "age_gender" / "results.jsonl")
    chance = 1 / 8  # adience8 bins
    assert age["metrics"]["age/top1"] > 2.5 * chance
    assert both["metrics"]["age/top1"] > 2.5 * chance
    assert both["metrics"]["gender/acc"] > 0.7
    assert age["config"]["data"]["n_subjects"] == both["config"]["data"]["n_subjects"]  # same data and folds
    assert age["fold_sizes"] == both["fold_sizes"]
