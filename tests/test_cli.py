"""The CLI: help, and user errors as one line with a non-zero exit (no stack trace)."""

import pytest
from conftest import TINY


def one_line_error(result):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("train", "profile", "data summary", "sweep", "report", "regress"):
        assert command in result.stdout


def test_unknown_command(cli):
    assert "unknown command 'trian'" in one_line_error(cli("trian"))


@pytest.mark.parametrize("override,expected", [
    ("model=nope", "unknown model 'nope'; choose one of"),
    ("data=nope", "unknown data 'nope'"),
    ("no_such_option=1", "unknown config option 'no_such_option'"),
])
def test_bad_config_is_one_line(cli, tmp_path, override, expected):
    result = cli("train", *TINY, f"output_dir={tmp_path}", override)
    assert expected in one_line_error(result)


def test_missing_dataset_root_is_one_line(cli, tmp_path):
    line = one_line_error(cli("train", "data=adience", "data.root=/nonexistent", f"output_dir={tmp_path}"))
    assert "data.root=/nonexistent" in line


def test_leakage_is_one_line(cli, tmp_path):
    line = one_line_error(cli("train", *TINY, f"output_dir={tmp_path}", "protocol.leak_subjects_for_testing=0.3"))
    assert "subject-exclusive" in line


def test_bad_monitor_metric_is_one_line(cli, tmp_path):
    line = one_line_error(cli("train", *TINY, f"output_dir={tmp_path}", "early_stopping.monitor=val/race/acc"))
    assert "early_stopping.monitor" in line


@pytest.mark.parametrize("command, target", [("report", "agebench.report.command:report_command"),
                                             ("eval", "agebench.evaluation.command:eval_command"),
                                             ("export", "agebench.evaluation.command:export_command")])
def test_ctrl_c_outside_train_is_one_line_and_exit_130(command, target, monkeypatch, capsys):
    """Issue 26 (8): Ctrl-C during eval, export or report printed a 44-116-line KeyboardInterrupt trace."""
    import importlib

    from agebench.cli.main import main

    module, name = target.split(":")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), name, interrupted)
    code = main([command, "ckpt=x"] if command != "report" else [command, "runs=x"])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip().splitlines() == [f"agebench: interrupted (Ctrl-C) during {command}; finished outputs are "
                                        f"kept, rerun the command to complete it"]


@pytest.mark.parametrize("command", ["train", "train_cache", "report"])
def test_an_unwritable_output_place_is_one_line(cli, tmp_path, command):
    """Issue 26 (8): a read-only output_dir / out= gave an OSError traceback. A regular file where a directory
    must be fails for root too (ENOTDIR), so the test does not depend on who runs it."""
    from fakes_records import make_record, write_run

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    if command == "train":
        result = cli("train", *TINY, "protocol.folds=[0]", f"output_dir={blocker / 'run'}")
    elif command == "train_cache":
        result = cli("train", *TINY, "protocol.folds=[0]", f"output_dir={tmp_path / 'run'}",
                     f"cache_dir={blocker / 'cache'}")
    else:
        write_run(tmp_path / "runs" / "a", [make_record(0, {"age/mae": 5.0})])
        result = cli("report", f"runs={tmp_path / 'runs'}", f"out={blocker / 'sub' / 't.md'}")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agebench: error: cannot write ") and "a_file" in lines[0], lines
    assert "Traceback" not in result.stderr
