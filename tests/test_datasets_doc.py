"""docs/datasets.md stays true: a section per dataset in conf/data/, its `agebench data summary` commands
parse a fake copy laid out as the doc says, and its `agebench train` commands compose."""

import re
import shlex
import sys
from pathlib import Path

import pytest

from agebench.config.compose import compose_config
from agebench.paths import conf_dir

sys.path.insert(0, str(Path(__file__).parent))
from fakes import adience, fairface, fgnet, imdb_wiki, megaage_asian, morph2, utkface  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "datasets.md"
FAKES = {"adience": adience.make_adience, "utkface": utkface.make_utkface, "fairface": fairface.make_fairface,
         "fgnet": fgnet.make_fgnet, "imdb_wiki": imdb_wiki.make_imdb_wiki, "megaage_asian": megaage_asian.make_megaage_asian,
         "morph2": morph2.make_morph2}


def doc_commands(command: str) -> list[list[str]]:
    text = DOC.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = " ".join(blocks).replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = line.split("  #")[0].strip()
        if line.startswith(f"agebench {command} "):
            out.append(shlex.split(line)[1 + len(command.split()):])
    return out


def test_every_dataset_has_a_section_and_a_table_row():
    text = DOC.read_text()
    # conf/data/_base.yaml holds the keys the datasets share: a base, not a dataset (as tasks/_options.yaml)
    for name in sorted(p.stem for p in (conf_dir() / "data").glob("*.yaml") if not p.stem.startswith("_")):
        assert f"`data={name}`" in text or f"| `{name}` |" in text, name
    summaries = {next(a.split("=", 1)[1] for a in args if a.startswith("data=")) for args in doc_commands("data summary")}
    assert summaries == set(FAKES)


@pytest.mark.parametrize("args", doc_commands("data summary"), ids=lambda a: a[0])
def test_summary_commands_parse_a_fake_copy(args, tmp_path, capsys):
    from agebench.data.command import summary_command

    name = next(a.split("=", 1)[1] for a in args if a.startswith("data="))
    root = FAKES[name](tmp_path / name)
    if name == "imdb_wiki":  # the doc points data.root at imdb_crop/ (its .mat inside)
        assert root.name == "imdb_crop" and (root / "imdb.mat").is_file()
    overrides = [f"data.root={root}" if a.startswith("data.root=") else a for a in args]
    summary_command(compose_config(overrides, config_name="data_summary"))
    out = capsys.readouterr().out
    assert f"dataset {name}" in out and "parsed" in out


@pytest.mark.parametrize("args", doc_commands("train"), ids=lambda a: " ".join(a)[:40])
def test_train_commands_compose(args):
    cfg = compose_config(args)
    assert cfg.data.name in FAKES or cfg.data.name == "multisource"
