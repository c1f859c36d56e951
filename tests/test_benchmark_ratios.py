"""Issue 27 (4): a benchmark's ratio is the median of ≥ 5 interleaved repetitions, printed with its range, and
its verdict is read off that median (never off one repetition, and not given at all below five)."""

import sys

from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import common  # noqa: E402


def test_the_verdict_is_the_medians_and_the_range_is_printed():
    # one lucky repetition (1.2) and one unlucky one (0.5) must not decide: the median 0.97 passes ≥ 0.95
    line = common.ratio_line("r", [0.5, 0.96, 0.97, 0.98, 1.2], 0.95)
    assert line == "r: 0.970 [0.500–1.200], median of 5 interleaved repetitions, target ≥ 0.950 PASS"
    assert common.ratio_line("r", [0.99, 0.2, 0.93, 0.94, 0.9], 0.95).endswith("MISS")  # best rep passes, median not
    assert common.ratio_line("r", [9.0, 8.0, 1.0, 7.0, 2.0], 5.0, higher_is_better=False).endswith("target ≤ 5.000 MISS")


def test_fewer_than_five_repetitions_get_no_verdict():
    line = common.ratio_line("r", [1.0, 1.1, 1.2, 1.3], 0.95)
    assert "median of 4 interleaved repetitions" in line and line.endswith("no verdict (fewer than 5 repetitions)")
    assert common.ratio_line("r", [float("nan")], 0.95) == "r: n/a (no finished repetition)"


def test_every_benchmark_defaults_to_at_least_five_repetitions():
    for name in ("train_overhead", "fold_overhead", "data_path", "roofline", "latency", "parallel_jobs"):
        source = (PROJECT_ROOT / "benchmarks" / f"{name}.py").read_text()
        assert "args.reps or common.MIN_REPS" in source and "common.ratio_line(" in source, name
    assert common.MIN_REPS >= 5
