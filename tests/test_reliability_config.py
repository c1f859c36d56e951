"""Issue 16, items 4, 7 (image cache, results.jsonl) and 10: bad values, damaged files and unclear messages.

Every probe ends in one line naming the problem and the fix, with a non-zero exit and no traceback —
or, for a damaged cache entry, in a rebuild with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from agebench.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY  # noqa: E402
from fakes import write_corrupt, write_image  # noqa: E402
from fakes_records import make_record, write_run  # noqa: E402


def assert_one_line(proc, code: int = 2) -> str:
    """The CLI ended with `code` and exactly one stderr line, no traceback; returns that line."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# item 4: values validated once, before any fold


BAD_VALUES = {  # override → what the error line must name
    "trainer.max_epochs=abc": "trainer.max_epochs='abc'",
    "trainer.max_epochs=0": "trainer.max_epochs=0",
    "data.batch_size=0": "data.batch_size=0",
    "data.batch_size=-1": "data.batch_size=-1",
    "optim.lr=-1": "optim.lr=-1",
    "protocol.n_folds=abc": "protocol.n_folds='abc'",
    "protocol.n_folds=1": "protocol.n_folds=1",
    "seed=abc": "seed='abc'",
    "loss.gamma=abc": "loss.gamma='abc'",
    "loss.gamma=1.5": "loss.gamma=1.5",
    "data.image_size=7": "data.image_size=7",
    "trainer.limit_train_batches=1.5": "trainer.limit_train_batches=1.5",
}


@pytest.mark.parametrize("override", list(BAD_VALUES))
def test_each_bad_value_is_one_line_naming_key_value_and_what_is_allowed(override):
    from agebench.config.compose import compose_config
    from agebench.config.validation import validate_train_config

    problems = validate_train_config(compose_config([*TINY, override]))
    assert len(problems) == 1, problems
    assert problems[0].startswith(BAD_VALUES[override]) and ("use " in problems[0] or "needs" in problems[0])


def test_sweep_values_are_checked_too():
    from agebench.config.validation import validate_train_config
    from agebench.sweeps.source import compose_sweep_config

    problems = validate_train_config(compose_sweep_config(["sweep=gamma", "sweep.n_trials=abc", "sweep.max_failures=0"]))
    assert [p.split(":")[0] for p in problems] == ["sweep.n_trials='abc'", "sweep.max_failures=0"]


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (Path(__file__).parent.parent / "conf" / "experiment").glob("*.yaml")))
def test_every_shipped_experiment_validates(experiment):
    from agebench.config.compose import compose_config
    from agebench.config.validation import validate_train_config

    assert validate_train_config(compose_config([f"experiment={experiment}"])) == []


def test_cli_reports_every_bad_value_in_one_line_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "run"
    bad = ["trainer.max_epochs=abc", "data.batch_size=0", "optim.lr=-1", "seed=abc", "loss.gamma=abc"]
    line = assert_one_line(cli("train", *TINY, *bad, f"output_dir={out}"))
    for override in bad:
        assert override.split("=")[0] in line
    assert "; " in line and not (out / "results.jsonl").exists()


@pytest.mark.slow
def test_a_run_that_failed_on_a_bad_value_does_not_poison_its_output_dir(cli, tmp_path):
    """Before: the bad run wrote a `failed` record, and the corrected command then refused the dir
    ('already holds results of a different config')."""
    out = tmp_path / "run"
    assert_one_line(cli("train", *TINY, "protocol.folds=[0]", "data.batch_size=0", f"output_dir={out}"))
    fixed = cli("train", *TINY, "protocol.folds=[0]", f"output_dir={out}")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["fold"], r["status"]) for r in records] == [(0, "ok")]


def test_failed_records_of_another_config_do_not_block_a_rerun(tmp_path, one_thread):
    """A dir an older run left with `failed` records of another config (no results in them)."""
    from agebench.config.compose import compose_config
    from agebench.training.experiment import run_experiment

    out = tmp_path / "run"
    stale = make_record(0, status="failed", config_hash="0123456789abcdef", error="ValueError: bad value")
    keep_other = make_record(1, status="failed", config_hash="0123456789abcdef", error="ValueError: bad value")
    write_run(out, [stale, keep_other])
    cfg = compose_config([*TINY, "protocol.folds=[0]", f"output_dir={out}"])
    summary = run_experiment(cfg, str(out))
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["fold"], r["status"]) for r in records] == [(0, "ok")]   # the other config's failures are gone
    assert summary["folds_ok"] == [0] and summary["folds_failed"] == []


# ---------------------------------------------------------------------------------------------------
# item 7: damaged image cache and results.jsonl


def _images(tmp_path, n=4) -> list[Path]:
    return [write_image(tmp_path / "imgs" / f"{i}.png", seed=i, size=(20, 20)) for i in range(n)]


@pytest.mark.parametrize("damage", ["truncate", "empty", "header"])
def test_a_damaged_image_cache_entry_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    from agebench.data.decode import decode_images

    paths, cache = _images(tmp_path), tmp_path / "cache"
    first = decode_images(paths, size=16, cache_dir=cache)
    expected = np.array(first.images)
    (entry,) = cache.glob("images-*.npy")
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "header": data[:40]}[damage])
    caplog.set_level(logging.WARNING, logger="agebench.data.cache")
    again = decode_images(paths, size=16, cache_dir=cache)
    assert not again.cache_hit and np.array_equal(np.asarray(again.images), expected)
    assert f"image cache {entry} is damaged" in caplog.text and "rebuilding" in caplog.text
    third = decode_images(paths, size=16, cache_dir=cache)   # healed: a plain hit from now on
    assert third.cache_hit and np.array_equal(np.asarray(third.images), expected)


def test_a_cache_entry_of_the_wrong_shape_is_rebuilt(tmp_path, caplog):
    from agebench.data.cache import cached_array

    cached_array(tmp_path, {"k": 1}, lambda: np.zeros((3, 2), np.uint8), prefix="x")
    (entry,) = tmp_path.glob("x-*.npy")
    np.save(entry, np.zeros((2, 2), np.uint8))  # a whole .npy, but not what this description holds
    caplog.set_level(logging.WARNING, logger="agebench.data.cache")
    array, hit = cached_array(tmp_path, {"k": 1}, lambda: np.ones((3, 2), np.uint8), prefix="x", shape=(3, 2))
    assert not hit and array.shape == (3, 2) and array.min() == 1 and "shape (2, 2)" in caplog.text


BAD_LINES = {
    "not_a_record": (b'[1, 2]\n', "valid JSON but not a run record"),
    "an_object_without_fold": (b'{"metrics": {}}\n', "valid JSON but not a run record"),
    "not_utf8": (b'{"fold": 1, "status": "ok", "note": "\xff\xfe"}\n', "not UTF-8"),
    # issue 26 (8): hostile records the report used to meet with a traceback
    "a_5001_digit_integer": (b'{"fold": 1, "status": "ok", "metrics": {"age/mae": ' + b"9" * 5001 + b'}}\n',
                             "not a JSON run record .*4300 digits"),
    "metrics_as_a_list": (b'{"fold": 1, "status": "ok", "metrics": [1, 2]}\n', "metrics is a JSON list"),
    "a_string_metric": (b'{"fold": 1, "status": "ok", "metrics": {"age/mae": "7.1"}}\n', "metric 'age/mae' is \"7.1\""),
    "fold_as_a_list": (b'{"fold": [1], "status": "ok", "metrics": {}}\n', "fold is \\[1\\], not a fold number"),
    "tasks_as_a_string": (b'{"fold": 1, "status": "ok", "tasks": "age"}\n', "tasks is \"age\", not a list"),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_a_bad_results_line_names_file_and_line(tmp_path, kind):
    from agebench.results.store import read_records

    path = write_run(tmp_path / "r", [make_record(0, {"age/top1": 0.5})])
    path.write_bytes(path.read_bytes() + BAD_LINES[kind][0])
    with pytest.raises(UserError, match=f"results.jsonl:2 .*{BAD_LINES[kind][1]}.*remove or repair"):
        read_records(path)


EVAL_LINES = {
    "no_tested_on": ({"trained_on": "synthetic"}, "tested_on is null, not a dataset name"),
    "tested_on_a_list": ({"trained_on": "synthetic", "tested_on": ["utkface"]}, "tested_on is \\[\"utkface\"\\]"),
    "no_trained_on": ({"tested_on": "utkface"}, "trained_on is null, not a dataset name"),
}


@pytest.mark.parametrize("kind", list(EVAL_LINES))
def test_a_bad_evals_line_names_file_and_line(tmp_path, kind):
    """Issue 26 (8): an evals.jsonl record without `tested_on` was a KeyError traceback in the report's
    cross-dataset table; the datasets that place a record in that table are checked as it is read."""
    import json

    from agebench.report.cross_dataset import cross_dataset_tables
    from agebench.report.recipes import Options

    run = tmp_path / "r"
    write_run(run, [make_record(0, {"age/mae": 5.0})])
    good = {**make_record(0, {"age/mae": 4.0}), "kind": "eval", "trained_on": "synthetic", "tested_on": "utkface",
            "split": "all"}
    bad = {k: v for k, v in good.items() if k not in ("trained_on", "tested_on")} | EVAL_LINES[kind][0]
    (run / "evals.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError, match=f"evals.jsonl:2 is not a valid run record \\({EVAL_LINES[kind][1]}.*remove or repair"):
        cross_dataset_tables([str(run)], None, Options())


@pytest.mark.slow
def test_report_and_train_stop_in_one_line_on_a_bad_results_line(cli, tmp_path):
    runs = tmp_path / "runs"
    path = write_run(runs / "a", [make_record(0, {"age/top1": 0.5})])
    path.write_bytes(path.read_bytes() + b'"just a string"\n')
    line = assert_one_line(cli("report", f"runs={runs}"))
    assert f"{path}:2" in line
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.jsonl").write_bytes(b'{"fold": 0, "status": "failed", "x": "\xc3\x28"}\n')
    line = assert_one_line(cli("train", *TINY, "protocol.folds=[0]", f"output_dir={out}"))
    assert f"{out / 'results.jsonl'}:1 is not UTF-8" in line


# ---------------------------------------------------------------------------------------------------
# item 10: messages


def test_an_unreadable_data_root_says_permission_denied(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from agebench.data.sources import get_source
    from agebench.data.summary import summarise_dataset

    root = tmp_path / "utk"
    write_image(root / "26_1_1_20170116165020563.jpg.chip.jpg")
    root.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads through chmod 000: make the listing fail as it does for a user
            real = os.scandir

            def scandir(path="."):
                if Path(path) == root:
                    raise PermissionError(13, "Permission denied", str(path))
                return real(path)

            monkeypatch.setattr(os, "scandir", scandir)
        cfg = OmegaConf.create({"name": "utkface", "root": str(root), "image_size": 32})
        with pytest.raises(UserError, match="permission denied reading data.root=.*chmod"):
            get_source("utkface").check_root(cfg)
        with pytest.raises(UserError, match="permission denied"):
            summarise_dataset(cfg, ["age"])
    finally:
        root.chmod(0o755)


def test_an_unquoted_unicode_path_says_to_quote_it(cli, tmp_path):
    root = tmp_path / "données"
    root.mkdir()
    line = assert_one_line(cli("data", "summary", "data=utkface", f"data.root={root}"))
    assert "LexerNoViableAltException" not in line.split("(")[0] and "quote the value" in line
    assert f"data.root='{root}'" in line
    # the quoted form it suggests is accepted (and then reports what is really wrong: no images)
    line = assert_one_line(cli("data", "summary", "data=utkface", f"data.root='{root}'"))
    assert "no images" in line


def test_data_summary_counts_empty_and_corrupt_images_as_bad(tmp_path):
    from omegaconf import OmegaConf

    from agebench.data.summary import format_summary, summarise_dataset

    root = tmp_path / "utk"
    good = ["1_0_0_20161219140623097.jpg.chip.jpg", "26_1_1_20170116165020563.jpg.chip.jpg"]
    for i, name in enumerate(good):
        write_image(root / name, seed=i)
    (root / "45_0_2_20170104201724588.jpg.chip.jpg").write_bytes(b"")        # zero bytes
    write_corrupt(root / "80_1_3_20170110121508133.jpg.chip.jpg")             # not decodable
    cfg = OmegaConf.create({"name": "utkface", "root": str(root), "image_size": 32})
    result = summarise_dataset(cfg, ["age"])
    images = result["images"]
    assert (images["checked"], images["bad"], images["missing"], images["empty"], images["corrupt"]) == (4, 2, 0, 1, 1)
    assert images["first_empty"][0].endswith("45_0_2_20170104201724588.jpg.chip.jpg")
    assert "4 checked, 2 bad (1 empty (0 bytes), 1 corrupt" in format_summary(result)


def _baseline(tmp_path, metric: str, expected) -> Path:
    write_run(tmp_path / "runs" / "a", [make_record(f, {"age/top1": v}, experiment="q", tasks=["age"], n_folds=3)
                                        for f, v in enumerate([0.5, 0.52, 0.51])])
    path = tmp_path / "baseline.yaml"
    path.write_text(yaml.safe_dump({"configurations": [
        {"name": "age", "where": {"experiment": "q"}, "metrics": {metric: {"expected": expected, "tolerance": 0.05}}}]}))
    return path


def test_regress_a_non_number_expected_is_a_one_line_user_error(cli, tmp_path):
    path = _baseline(tmp_path, "age/top1", "abc")
    line = assert_one_line(cli("regress", f"baseline={path}", f"runs={tmp_path / 'runs'}"), code=2)
    assert "expected: 'abc' is not a number" in line


def test_regress_a_misspelt_metric_is_a_user_error_not_a_regression(cli, tmp_path):
    path = _baseline(tmp_path, "age/topp1", 0.5)
    line = assert_one_line(cli("regress", f"baseline={path}", f"runs={tmp_path / 'runs'}"), code=2)
    assert "age/topp1" in line and "did you mean age/top1" in line
