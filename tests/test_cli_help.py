"""`agebench <command> --help`: the command's own groups (with choices), keys with their yaml comments,
the studies for `sweep`; parsed from the config files, for every command in COMMANDS."""

import pytest
import yaml

from agebench.cli.commands import COMMANDS
from agebench.cli.help import command_help, parse_keys, purpose
from agebench.cli.main import main
from agebench.paths import conf_dir, sweeps_dir


def help_of(capsys, *argv):
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


@pytest.mark.parametrize("path", sorted(p.relative_to(conf_dir()).as_posix() for p in conf_dir().rglob("*.yaml")))
def test_every_key_of_every_config_file_is_parsed(path):
    data = yaml.safe_load((conf_dir() / path).read_text()) or {}
    want = {k for top, v in data.items() if top not in ("defaults", "hydra") for k in leaves({top: v})}
    got = {k.path for k in parse_keys(conf_dir() / path) if k.value != ""}
    # flow mappings written inline ({hidden: [], ...}) are one key in the help, several leaves in yaml
    assert want <= got | {w for w in want if any(w.startswith(g + ".") for g in got)}, path


def test_train_help_describes_groups_choices_and_keys(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")  # the help fits the terminal: a narrow one (xdist's 80) cuts descriptions
    out = help_of(capsys, "train")
    assert "== Config ==" not in out  # not Hydra's dump
    assert "\n  model\n" in out and "*lmtcnn" in out and "efficientnet_b4" in out  # a group, its default and choices
    assert "Seed 000: LMTCNN" in out  # an option's one-line purpose
    line = next(x for x in out.splitlines() if x.strip().startswith("early_stopping.monitor"))
    assert "any logged val metric" in line  # a key with its yaml comment
    assert any(x.strip().startswith("trainer.progress_bar") and "terminal" in x for x in out.splitlines())
    assert "seed002_granularity" in out  # recipes are choices of the experiment group


def test_help_follows_the_chosen_option(capsys):
    out = help_of(capsys, "train", "model=timm")
    assert "*timm" in out and "model.backbone" in out and "model.width" not in out


def test_sweep_help_lists_every_study_with_its_purpose(capsys):
    out = help_of(capsys, "sweep")
    studies = sorted(p.stem for p in sweeps_dir().glob("*.yaml"))
    assert studies
    listed = out.split("studies (sweep=<name>, in sweeps/):")[1].splitlines()
    for study in studies:
        line = next(x for x in listed if x.strip().startswith(study + " "))
        assert purpose(sweeps_dir() / f"{study}.yaml")[:40] in line
    assert "sweep.n_trials" in out


@pytest.mark.parametrize("command,own", [("report", ["runs", "table", "format"]), ("regress", ["baseline", "runs", "update"])])
def test_report_and_regress_list_only_their_own_keys(capsys, command, own):
    out = help_of(capsys, command)
    for key in own:
        assert any(x.strip().startswith(key + " ") for x in out.splitlines()), key
    assert "config groups" not in out  # neither uses a training group
    for training in ("lmtcnn", "early_stopping", "keys of model=", "keys of trainer="):
        assert training not in out, training


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    text = command_help(name)
    assert text.startswith(f"agebench {name}: {COMMANDS[name].summary}")
    root = conf_dir() / f"{COMMANDS[name].config_name}.yaml"
    for key in parse_keys(root):
        assert key.path in text


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"]])
def test_help_into_a_pipe_whose_reader_left_is_quiet(argv):
    """`agebench --help | head`: the reader exits before the help is written; no traceback, exit 0."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader has already left: every write raises BrokenPipeError
    try:
        result = subprocess.run([sys.executable, "-m", "agebench.cli.main", *argv], stdout=write,
                                stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write)
    assert result.returncode == 0 and result.stderr.decode() == ""
