"""`agebench data summary`: counts from metadata alone, skipped rows by reason, JSON on stdout only."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

try:
    from tests.fakes import adience as fake_adience
    from tests.fakes import fairface as fake_fairface
    from tests.fakes import utkface as fake_utk
except ImportError:  # pragma: no cover
    from fakes import adience as fake_adience
    from fakes import fairface as fake_fairface
    from fakes import utkface as fake_utk

from agebench.data.summary import format_summary, summarise_dataset
from agebench.paths import conf_dir


def data_cfg(name, **overrides):
    cfg = OmegaConf.load(conf_dir() / "data" / f"{name}.yaml")
    cfg.image_size = 32
    return OmegaConf.merge(cfg, overrides)


def test_summary_from_metadata_alone(tmp_path):
    root = fake_adience.make_adience(tmp_path / "adience", images=False, split_lists=False)
    result = summarise_dataset(data_cfg("adience", root=str(root)), ["age", "gender"])
    exp = fake_adience.EXPECTED["drop"]
    assert result["rows_read"] == fake_adience.EXPECTED["rows"]
    assert result["records_parsed"] == exp["records"]
    assert result["records_kept"] == sum(exp["age_gender_per_fold"])
    assert result["folds"] == {str(k): n for k, n in enumerate(exp["age_gender_per_fold"])}
    assert result["subjects"] == fake_adience.EXPECTED["users"]
    assert result["images"]["missing"] == result["records_kept"]          # no images on disk: counted
    assert {k: v["count"] for k, v in result["skipped"].items()} == exp["skipped_reasons"]
    assert result["dropped_for_tasks_total"] == exp["records"] - result["records_kept"]
    assert result["dropped_for_tasks"]["no age label (tasks=age_gender)"]["count"] == 6
    assert result["dropped_for_tasks"]["no gender label (tasks=age_gender)"]["count"] == 2
    hist = result["histograms"]
    assert hist["all"]["gender"] == {"male": 4, "female": 5, "missing": 0}
    assert hist["fold 2"]["age_group"]["(48, 53)"] == 2
    assert result["native_age_bins"] == "adience8"
    text = format_summary(result)
    assert "folds: 0=2  1=2  2=3  3=1  4=1" in text and "no usable label (age None, gender empty)" in text
    json.dumps(result)


def test_summary_per_split_and_plot(tmp_path):
    root = fake_fairface.make_fairface(tmp_path / "ff")
    png = tmp_path / "plots" / "ages.png"
    result = summarise_dataset(data_cfg("fairface", root=str(root)), ["age", "gender", "race"], plot=png)
    assert result["splits"] == {"test": 3, "train": 3}
    assert result["images"]["missing"] == 0
    assert set(result["histograms"]) == {"all", "split test", "split train"}
    assert len(result["histograms"]["all"]["race"]) == 8                   # 7 classes + missing
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_json_only_on_stdout(tmp_path, cli):
    root = fake_utk.make_utkface(tmp_path / "utk")
    (root / "26_1_1_20170116165020563.jpg.chip.jpg").unlink()              # a missing-image case is fine too
    done = cli("data", "summary", "data=utkface", f"data.root={root}", "tasks=age_gender_race", "format=json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["records_kept"] == fake_utk.EXPECTED["records"] - 1
    assert result["skipped_total"] == fake_utk.EXPECTED["skipped"]
    assert any(n.startswith("no subject ids") for n in result["notes"])
    assert not list(tmp_path.glob("**/.hydra")) and not (tmp_path / "outputs").exists()


def test_cli_bad_metadata_one_line(tmp_path, cli):
    root = fake_adience.make_adience(tmp_path / "adience", separator=",", images=False, split_lists=False)
    done = cli("data", "summary", "data=adience", f"data.root={root}")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("agebench: error:") and "not tab-separated" in last and "Traceback" not in done.stderr
