"""The results store: atomic appends keyed by fold, summaries, loading into pandas."""

import json
from pathlib import Path

import pytest

from agebench.errors import UserError
from agebench.results.store import RECORD_FIELDS, append_record, load_records, read_records, summarise


def record(fold, status="ok", **metrics):
    r = {f: None for f in RECORD_FIELDS}
    r.update(experiment="e", fold=fold, status=status, metrics=metrics or {"age/top1": 0.5})
    return r


def test_append_replaces_same_fold_and_keeps_others(tmp_path):
    path = tmp_path / "results.jsonl"
    append_record(path, record(0, **{"age/top1": 0.4}))
    append_record(path, record(1, status="failed"))
    first = path.read_text().splitlines()[0]
    append_record(path, record(1, **{"age/top1": 0.6}))  # the rerun of fold 1 replaces its failed record
    rows = read_records(path)
    assert [(r["fold"], r["status"]) for r in rows] == [(0, "ok"), (1, "ok")]
    assert path.read_text().splitlines()[0] == first  # fold 0's line untouched
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_append_refuses_incomplete_record(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        append_record(tmp_path / "r.jsonl", {"fold": 0})


def test_summary_mean_std_over_ok_folds():
    s = summarise([record(0, **{"age/top1": 0.5}), record(1, **{"age/top1": 0.7}), record(2, status="failed")])
    assert s["metrics"]["age/top1"]["mean"] == pytest.approx(0.6)
    assert s["metrics"]["age/top1"]["std"] == pytest.approx(0.1414213562, rel=1e-6)
    assert s["metrics"]["age/top1"]["n"] == 2
    assert s["folds_failed"] == [2]


def test_load_records_flattens_and_reports_empty(tmp_path):
    append_record(tmp_path / "a" / "results.jsonl", record(0, **{"age/top1": 0.5, "gender/acc": 0.9}))
    append_record(tmp_path / "b" / "results.jsonl", record(0, **{"age/top1": 0.6}))
    frame = load_records(tmp_path)
    assert len(frame) == 2
    assert sorted(frame["metrics.age/top1"].tolist()) == [0.5, 0.6]
    with pytest.raises(UserError, match="no results.jsonl"):
        load_records(tmp_path / "missing")


def test_corrupt_line_is_a_user_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record(0)) + "\n{not json\n")
    with pytest.raises(UserError, match="results.jsonl:2"):
        read_records(path)


def test_two_processes_appending_to_one_store_lose_no_record(tmp_path):
    """Issue 26 (5): eval appended to evals.jsonl without train's lock; two writers of 100 records each left 145.
    append_record now locks the store itself, whoever calls it."""
    import subprocess
    import sys

    target = tmp_path / "evals.jsonl"
    code = ("import sys; sys.path.insert(0, 'tests'); from fakes_records import make_record; "
            "from agebench.results.store import append_record; "
            "[append_record(sys.argv[1], {**make_record(int(sys.argv[2]) * 1000 + i), 'kind': 'eval', "
            "'trained_on': 'synthetic', 'tested_on': 'synthetic'}) for i in range(100)]")
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), str(k)], cwd=root) for k in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    from agebench.results.store import read_records

    assert sorted(r["fold"] for r in read_records(target)) == sorted(k * 1000 + i for k in (1, 2) for i in range(100))


def test_an_existing_directory_with_glob_characters_is_read_as_named(tmp_path):
    """Issue 26 (9): `report runs=…/run[1]` said the existing directory did not exist (read as a glob)."""
    from fakes_records import make_record, write_run

    from agebench.results.store import find_result_files

    write_run(tmp_path / "run[1]", [make_record(0, {"age/mae": 5.0})])
    write_run(tmp_path / "run1", [make_record(0, {"age/mae": 9.0})])  # what the glob class would match instead
    (found,) = find_result_files(tmp_path / "run[1]")
    assert found.parent.name == "run[1]"
    assert len(find_result_files(str(tmp_path / "run*"))) == 2  # a real glob still globs
