"""Results pages on real data (docs/results/*.md): every table is regenerated from the run records committed
beside them, so a page can never drift from its data, and no image or image cache is ever committed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agebench.errors import UserError
from agebench.report.pages import REGION, render_page, write_page

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
