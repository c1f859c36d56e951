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
