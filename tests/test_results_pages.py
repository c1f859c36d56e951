"""Results pages on real data (docs/results/*.md): every table is regenerated from the run records committed
beside them, so a page can never drift from its data, and no image or image cache is ever committed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agebench.errors import UserError
from agebench.report.pages import REGION, budget_line, compute_line, render_page, write_page

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "results").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_results_page_is_what_its_committed_records_render(page):
    text = page.read_text(encoding="utf-8")
    assert REGION.search(text), f"{page} has no generated region"
    assert render_page(text) == text, (f"{page.relative_to(ROOT)} differs from its records: run "
                                       f"`agebench report page={page.relative_to(ROOT)}`")


def test_a_changed_record_changes_the_page_only_through_the_command(tmp_path):
    page = ROOT / "docs" / "results" / "utkface.md"
    shutil.copytree(ROOT / "reports" / "results", tmp_path / "reports" / "results")
    copy = tmp_path / "page.md"
    copy.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    before = copy.read_text(encoding="utf-8")
    assert render_page(before, root=tmp_path) == before
    results = sorted((tmp_path / "reports" / "results" / "utkface").rglob("results.jsonl"))[0]  # one of its records
    records = [json.loads(line) for line in results.read_text().splitlines()]
    ok = next(r for r in records if r.get("status") == "ok")
    ok["metrics"]["age/mae"] += 1.0
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert copy.read_text(encoding="utf-8") == before  # the record alone changes nothing
    after = render_page(before, root=tmp_path)
    assert after != before  # the command does


def test_a_page_without_regions_or_missing_is_one_line(tmp_path):
    plain = tmp_path / "plain.md"
    plain.write_text("# nothing generated here\n")
    with pytest.raises(UserError, match="no `<!-- agebench report"):
        write_page(plain)
    with pytest.raises(UserError, match="is not a file"):
        write_page(tmp_path / "missing.md")


def test_no_image_or_image_cache_is_committed():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bad = [f for f in files if f.lower().endswith((".jpg", ".jpeg", ".npy", ".npz", ".ckpt", ".bmp"))]
    assert not bad, bad
    under_results = [f for f in files if f.startswith("reports/results/") and not f.endswith("results.jsonl")]
    assert not under_results, under_results  # records only


def _fold(history: list[float], *, scheduler: str, mode: str = "min") -> dict:
    """A finished fold's record as the budget line reads it: schedule, early-stopping metric, its history."""
    best = (min if mode == "min" else max)(range(len(history)), key=lambda i: history[i])
    return {"status": "ok", "epochs": len(history), "best_epoch": best,
            "config": {"optim": {"scheduler": scheduler},
                       "callbacks": {"early_stopping": {"monitor": "val/age/mae", "mode": mode}}},
            "history": [{"epoch": i, "val/age/mae": v} for i, v in enumerate(history)]}


def _frame(records: list[dict]):
    import pandas as pd

    return pd.DataFrame({"_record": records})


def test_the_budget_line_does_not_read_an_annealed_last_epoch_as_still_learning():
    folds = [_fold([9.0, 8.0, 7.5, 7.4, 7.3, 7.0], scheduler="cosine"),  # best last; tail gain 7.5 - 7.0
             _fold([9.0, 8.0, 7.0, 7.2, 7.1, 7.05], scheduler="cosine")]  # best before the tail: gain 0
    line = budget_line(_frame(folds))
    assert "cosine schedule" in line and "last one in 1 of 2 finished folds" in line
    assert "median of 0.25 (largest 0.5)" in line
    assert "still" not in line and "does not show that more epochs would help" in line


def test_the_budget_line_flags_a_last_epoch_best_without_annealing():
    line = budget_line(_frame([_fold([0.50, 0.55, 0.60, 0.61, 0.64], scheduler="none", mode="max")]))
    assert "none schedule" in line and "last one in 1 of 1" in line
    assert "median of 0.09 (largest 0.09)" in line  # max mode: 0.64 over the best before the tail, 0.55
    assert "may still have been learning" in line


def test_the_budget_line_without_a_last_epoch_best_claims_nothing():
    line = budget_line(_frame([_fold([9.0, 8.0, 7.0, 7.5, 7.6, 7.7], scheduler="none")]))
    assert "last one in 0 of 1" in line and "learning" not in line and "more epochs" not in line


def test_the_compute_line_sums_the_training_time_of_finished_folds():
    folds = [_fold([9.0, 8.0, 7.0, 7.5, 7.6, 7.7], scheduler="none") | {"train_seconds": 1800.0,
                                                                         "hardware": {"cpu": "AMD EPYC", "torch_threads": 1}}
             for _ in range(3)]
    failed = {"status": "failed", "train_seconds": 99999.0}
    line = compute_line(_frame(folds + [failed]))
    assert line == "_Compute: 1.5 hours of wall-clock training over 3 finished folds (30.0 min per fold; AMD EPYC, 1 thread(s))._"
