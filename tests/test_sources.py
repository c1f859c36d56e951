"""Every dataset parser against a tiny fake copy of its on-disk format (tests/fakes/), with exact counts,
malformed entries, bad metadata files (one-line errors) and multi-source label masking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

try:  # `tests` may or may not be a package, depending on how pytest was started
    from tests.fakes import adience as fake_adience
    from tests.fakes import fairface as fake_fairface
    from tests.fakes import fgnet as fake_fgnet
    from tests.fakes import imdb_wiki as fake_imdb
    from tests.fakes import megaage_asian as fake_megaage
    from tests.fakes import morph2 as fake_morph
    from tests.fakes import utkface as fake_utk
except ImportError:  # pragma: no cover
    from fakes import adience as fake_adience
    from fakes import fairface as fake_fairface
    from fakes import fgnet as fake_fgnet
    from fakes import imdb_wiki as fake_imdb
    from fakes import megaage_asian as fake_megaage
    from fakes import morph2 as fake_morph
    from fakes import utkface as fake_utk

from agebench.data.filtering import filter_for_tasks, label_mask
from agebench.data.sources import get_source, list_sources
from agebench.data.sources.adience import parse_age, read_split_lists
from agebench.data.sources.imdb_wiki import age_at_photo
from agebench.errors import UserError
from agebench.paths import conf_dir
from agebench.tasks.base import targets_for
from agebench.tasks.factory import build_tasks


def data_cfg(name: str, **overrides):
    """conf/data/<name>.yaml with overrides (image_size resolved without a model group)."""
    cfg = OmegaConf.load(conf_dir() / "data" / f"{name}.yaml")
    cfg.image_size = 32
    return OmegaConf.merge(cfg, overrides)


def parse(name: str, **overrides):
    return get_source(name).parse(data_cfg(name, **overrides))


def reasons(parsed) -> dict[str, int]:
    return {str(k): int(v) for k, v in parsed.skipped["reason"].value_counts().items()}


def assert_counts(parsed, exp: dict) -> None:
    """The fake dataset parsed into exactly the records, skipped rows (and subjects) its builder promises."""
    assert (len(parsed.records), len(parsed.skipped)) == (exp["records"], exp["skipped"])
    if "subjects" in exp:
        assert parsed.records["subject"].nunique() == exp["subjects"]


def one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message and message
    for needle in needles:
        assert needle in message, message
    return message


def test_every_format_is_registered():
    assert {"adience", "utkface", "imdb_wiki", "morph2", "fgnet", "megaage_asian", "fairface",
            "multisource", "synthetic"} <= set(list_sources())


# --- Adience ---------------------------------------------------------------------------------------

def test_adience_drop_policy_counts(tmp_path):
    root = fake_adience.make_adience(tmp_path / "adience")
    parsed = parse("adience", root=str(root))
    exp = fake_adience.EXPECTED["drop"]
    records = parsed.records
    assert_counts(parsed, exp)
    assert len(records) + len(parsed.skipped) == fake_adience.EXPECTED["rows"]
    assert reasons(parsed) == exp["skipped_reasons"]
    for tasks, key in ((["age", "gender"], "age_gender_per_fold"), (["age"], "age_per_fold"), (["gender"], "gender_per_fold")):
        kept = filter_for_tasks(records, tasks)
        assert np.bincount(kept["fold"], minlength=5).tolist() == exp[key], tasks
    # labels: gender u / empty -> missing; odd strings -> missing age; no exact years under drop
    row = records.set_index(records["image"].str.split(".").str[-2])
    assert row.loc["102_c_o", "age_group"] == -1 and row.loc["102_c_o", "gender"] == 1
    assert row.loc["106_g_o", "gender"] == -1 and row.loc["106_g_o", "age_group"] == 2
    assert records["age"].isna().all()
    assert records["image"].iloc[0] == "aligned/u0@N01/landmark_aligned_face.1.100_a_o.jpg"
    assert records.groupby("subject")["fold"].nunique().max() == 1
    assert get_source("adience").native_age_bins.name == "adience8"
    assert parsed.age_group_names[4] == "(25, 32)"
    assert any("listed more than once" in n for n in parsed.notes)


def test_adience_remap_policy(tmp_path):
    root = fake_adience.make_adience(tmp_path / "adience", images=False, split_lists=False)
    parsed = parse("adience", root=str(root), odd_labels="remap")
    exp = fake_adience.EXPECTED["remap"]
    records = parsed.records
    assert_counts(parsed, exp)
    assert np.bincount(filter_for_tasks(records, ["age", "gender"])["fold"], minlength=5).tolist() == exp["age_gender_per_fold"]
    assert np.bincount(filter_for_tasks(records, ["age"])["fold"], minlength=5).tolist() == exp["age_per_fold"]
    by_file = dict(zip(records["image"].str.split(".", n=2).str[-1], records["age_group"], strict=True))
    for name, group in exp["groups"].items():
        assert by_file[name] == group, name
    # exact ages keep their years; None is never remapped
    assert records.loc[records["image"].str.endswith("103_d_o.jpg"), "age"].item() == 35.0
    assert parse_age("None", "remap")[0] == -1


def test_adience_parse_age_rules():
    assert parse_age("(25, 32)")[:1] == (4,)
    assert parse_age("(25,32)")[0] == 4                  # spacing variants are canonical too
    assert parse_age("(38, 42)")[0] == -1                # drop
    assert parse_age("(38, 42)", "remap")[0] == 5
    assert parse_age("3", "remap")[0] == 0               # gap age, tie -> younger group
    assert parse_age("22", "remap")[0] == 3
    assert parse_age("23", "remap")[0] == 4
    assert parse_age("garbage", "remap")[2] == "unreadable"


def test_adience_folds_subdir_and_split_lists(tmp_path):
    root = fake_adience.make_adience(tmp_path / "adience", folds_subdir="folds", images=False)
    parsed = parse("adience", root=str(root))
    records = filter_for_tasks(parsed.records, ["age", "gender"])
    lists = read_split_lists(root / "lmtcnn_agegender_splits", records)
    assert sorted(lists) == [0, 1, 2, 3, 4]
    expected_test = fake_adience.EXPECTED["drop"]["age_gender_per_fold"]
    for k, split in lists.items():
        assert len(split["test"]) == expected_test[k]
        assert len(split["val"]) == 1
        assert len(split["train"]) == sum(expected_test) - expected_test[k] - 1
        assert (records["fold"].to_numpy()[split["test"]] == k).all()
        everything = np.concatenate([split["train"], split["val"], split["test"]])
        assert len(np.unique(everything)) == len(everything) == len(records)  # duplicates take distinct rows
    # data.images=faces (coarse_tilt_aligned_face.*) matches the same lists
    faces = filter_for_tasks(parse("adience", root=str(root), images="faces").records, ["age", "gender"])
    assert faces["image"].str.startswith("faces/").all()
    assert {k: len(v["test"]) for k, v in read_split_lists(root / "lmtcnn_agegender_splits", faces).items()} == dict(enumerate(expected_test))
    # lines whose record was filtered out are left out (warning), or fail with strict=True
    fewer = records[~records["image"].str.endswith("100_a_o.jpg")].reset_index(drop=True)
    lists = read_split_lists(root / "lmtcnn_agegender_splits", fewer)
    assert len(lists[0]["test"]) == expected_test[0] - 1
    with pytest.raises(UserError) as err:
        read_split_lists(root / "lmtcnn_agegender_splits", fewer, strict=True)
    one_line_error(err, "agegender_test.txt", "match no record")
    with pytest.raises(UserError) as err:
        read_split_lists(tmp_path / "nowhere", records)
    one_line_error(err, "protocol.split_lists")


def test_adience_bad_metadata_is_one_line(tmp_path):
    comma = fake_adience.make_adience(tmp_path / "comma", separator=",", images=False, split_lists=False)
    with pytest.raises(UserError) as err:
        parse("adience", root=str(comma))
    one_line_error(err, "fold_0_data.txt", "not tab-separated")
    no_gender = fake_adience.make_adience(tmp_path / "nogender", drop_column="gender", images=False, split_lists=False)
    with pytest.raises(UserError) as err:
        parse("adience", root=str(no_gender))
    one_line_error(err, "fold_0_data.txt", "gender")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as err:
        parse("adience", root=str(tmp_path / "empty"))
    one_line_error(err, "fold_0_data.txt", "not found")
    binary = fake_adience.make_adience(tmp_path / "binary", images=False, split_lists=False)
    (binary / "fold_3_data.txt").write_bytes(b"\xff\xfe\x00garbage\x9c\x80")
    with pytest.raises(UserError) as err:
        parse("adience", root=str(binary))
    one_line_error(err, "fold_3_data.txt")
    with pytest.raises(UserError) as err:
        parse("adience", root=str(binary), odd_labels="guess")
    one_line_error(err, "odd_labels")


def test_adience_missing_root_is_one_line(tmp_path):
    source = get_source("adience")
    with pytest.raises(UserError) as err:
        source.check_root(data_cfg("adience"))
    one_line_error(err, "data.root")
    with pytest.raises(UserError) as err:
        source.check_root(data_cfg("adience", root=str(tmp_path / "missing")))
    one_line_error(err, "does not exist")


# --- UTKFace ---------------------------------------------------------------------------------------

def test_utkface_names_and_malformed(tmp_path):
    root = fake_utk.make_utkface(tmp_path / "UTKFace")
    parsed = parse("utkface", root=str(root))
    exp = fake_utk.EXPECTED
    assert_counts(parsed, exp)
    assert dict(zip(parsed.skipped["detail"], parsed.skipped["reason"], strict=True)) == fake_utk.MALFORMED
    records = parsed.records
    assert np.bincount(records["race"], minlength=5).tolist() == exp["races"]
    assert np.bincount(records["gender"], minlength=2).tolist() == exp["genders"]
    assert (records["subject"] == records["image"]).all()   # no subject ids: split by image
    assert any(n.startswith("no subject ids: splitting by image") for n in parsed.notes)
    assert parsed.race_names == ("White", "Black", "Asian", "Indian", "Others")
    row = records.set_index("image").loc["26_1_1_20170116165020563.jpg.chip.jpg"]
    assert (row["age"], row["gender"], row["race"]) == (26.0, 1, 1)
    assert "part2/33_1_0_20170117135555218.jpg" in set(records["image"])
    # issue 27: a space or a missing dot before the extension loses no label: kept, and the note counts them
    for name, labels in zip(fake_utk.REPAIRED, [(24.0, 0, 1), (55.0, 0, 0)], strict=True):
        row = records.set_index("image").loc[name]
        assert (row["age"], row["gender"], row["race"]) == labels
    (note,) = [n for n in parsed.notes if "repaired" in n]
    assert note.startswith("2 file name(s) repaired (space or missing dot before the extension), kept")


def test_utkface_names_reject_unicode_digits_and_newlines():
    from agebench.data.sources.utkface import parse_name

    assert parse_name("２4_0_1_20170116174525125.jpg")[0] is None   # fullwidth 2
    assert parse_name("24_0_1_2017011617452512５.jpg")[0] is None   # fullwidth 5 in the date
    assert parse_name("24_0_1_20170116174525125\n.jpg")[0] is None
    assert parse_name("24_0_1_20170116174525125.jpg") == ({"age": 24.0, "gender": 0, "race": 1}, "")


def test_utkface_empty_root(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError) as err:
        parse("utkface", root=str(tmp_path / "x"))
    one_line_error(err, "no images")


# --- IMDB-WIKI -------------------------------------------------------------------------------------

def test_imdb_age_rule():
    from datetime import date

    def dn(d):
        return d.toordinal() + 366

    assert age_at_photo(dn(date(1980, 6, 30)), 2010) == 30
    assert age_at_photo(dn(date(1980, 7, 1)), 2010) == 29
    assert age_at_photo(dn(date(1980, 7, 1)) + 0.25, 2010) == 29    # fractional datenums
    assert np.isnan(age_at_photo(0.0, 2010)) and np.isnan(age_at_photo(float("nan"), 2010))


@pytest.mark.parametrize("layout", ["crop_dir", "parent"])
def test_imdb_wiki_mat(tmp_path, layout):
    crop = fake_imdb.make_imdb_wiki(tmp_path / "imdb")
    root = crop if layout == "crop_dir" else crop.parent
    parsed = parse("imdb_wiki", root=str(root))
    exp = fake_imdb.EXPECTED
    records = parsed.records
    assert_counts(parsed, exp)
    assert reasons(parsed) == exp["skipped_reasons"]
    prefix = "" if layout == "crop_dir" else "imdb_crop/"
    ages = dict(zip(records["image"], records["age"], strict=True))
    for path, age in exp["ages"].items():
        assert ages[prefix + path] == age
    assert np.isnan(ages[prefix + "07/nm0000007_rm7_1800-1-1_2010.jpg"])
    assert len(filter_for_tasks(records, ["age", "gender"])) == exp["age_gender"]
    assert len(filter_for_tasks(records, ["age"])) == exp["age"]
    assert len(filter_for_tasks(records, ["gender"])) == exp["gender"]
    genders = dict(zip(records["image"], records["gender"], strict=True))
    assert genders[prefix + "01/nm0000001_rm1_1980-3-15_2010.jpg"] == 0      # mat 1 = male -> 0
    assert genders[prefix + "02/nm0000002_rm2_1980-9-1_2010.jpg"] == 1
    assert all((root / p).is_file() for p in records["image"])


def test_imdb_wiki_cleaning_is_configurable(tmp_path):
    crop = fake_imdb.make_imdb_wiki(tmp_path / "imdb", images=False)
    loose = parse("imdb_wiki", root=str(crop), min_face_score=0.0, drop_second_face=False, age_range=[0, 300])
    # now only "no face" (-Inf) and the no-label row are skipped; age 210 is kept
    assert len(loose.skipped) == 2 and len(loose.records) == 7
    assert 210.0 in set(loose.records["age"])


def test_wiki_variant_subjects_from_file_names(tmp_path):
    crop = fake_imdb.make_imdb_wiki(tmp_path / "wiki", variant="wiki", images=False)
    parsed = parse("imdb_wiki", root=str(crop), variant="wiki")
    assert len(parsed.records) == fake_imdb.EXPECTED["records"]
    assert set(parsed.records["subject"]) == {"nm0000001", "nm0000002", "nm0000006", "nm0000007"}


def test_imdb_wiki_bad_mat_files(tmp_path):
    crop = fake_imdb.make_imdb_wiki(tmp_path / "a", drop_field="face_score", images=False)
    with pytest.raises(UserError) as err:
        parse("imdb_wiki", root=str(crop))
    one_line_error(err, "imdb.mat", "face_score")
    garbage = tmp_path / "b" / "imdb.mat"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(UserError) as err:
        parse("imdb_wiki", root=str(garbage.parent))
    one_line_error(err, "imdb.mat", "cannot read")
    with pytest.raises(UserError) as err:
        parse("imdb_wiki", root=str(tmp_path))
    one_line_error(err, "not found")


# --- MORPH-II --------------------------------------------------------------------------------------

def test_morph2_csv(tmp_path):
    root = fake_morph.make_morph2(tmp_path / "morph")
    parsed = parse("morph2", root=str(root))
    exp = fake_morph.EXPECTED
    records = parsed.records
    assert_counts(parsed, exp)
    assert len(filter_for_tasks(records, ["age", "gender", "race"])) == exp["age_gender_race"]
    assert exp["derived_photo"] in set(records["image"])
    assert all((root / p).is_file() for p in records["image"])
    row = records.set_index("image").loc["Album2/014223_00F19.JPG"]
    assert (row["age"], row["gender"], row["race"]) == (19.0, 1, 1)
    assert parsed.race_names[0] == "Black"


def test_morph2_bad_csv(tmp_path):
    semi = fake_morph.make_morph2(tmp_path / "semi", separator=";", images=False)
    with pytest.raises(UserError) as err:
        parse("morph2", root=str(semi))
    one_line_error(err, "morph_2008_nonCommercial.csv", "not comma-separated")
    no_age = fake_morph.make_morph2(tmp_path / "noage", drop_column="age", images=False)
    with pytest.raises(UserError) as err:
        parse("morph2", root=str(no_age))
    one_line_error(err, "lacks column(s) age")
    (tmp_path / "none").mkdir()
    with pytest.raises(UserError) as err:
        parse("morph2", root=str(tmp_path / "none"))
    one_line_error(err, "data.csv_file")


# --- FG-NET ----------------------------------------------------------------------------------------

def test_fgnet_names(tmp_path):
    root = fake_fgnet.make_fgnet(tmp_path / "FGNET")
    parsed = parse("fgnet", root=str(root))
    exp = fake_fgnet.EXPECTED
    records = parsed.records
    assert_counts(parsed, exp)
    got = {r.image.split("/")[-1]: (r.subject, r.age) for r in records.itertuples()}
    assert got == {k: (s, float(a)) for k, (s, a) in fake_fgnet.GOOD.items()}
    assert (records["gender"] == -1).all() and (records["race"] == -1).all()
    assert any("protocol=lopo" in n for n in parsed.notes)
    assert get_source("fgnet").tasks == ("age",)


# --- MegaAge-Asian ---------------------------------------------------------------------------------

def test_megaage_asian_lists(tmp_path):
    root = fake_megaage.make_megaage_asian(tmp_path / "megaage")
    parsed = parse("megaage_asian", root=str(root))
    exp = fake_megaage.EXPECTED
    records = parsed.records
    assert_counts(parsed, exp)
    assert records["split"].value_counts().to_dict() == {"train": exp["train"], "test": exp["test"]}
    assert records.set_index("image").loc["test/2.jpg", "age"] == 33.0
    assert all((root / p).is_file() for p in records["image"])
    assert any("CA(n)" in n for n in parsed.notes)


def test_megaage_asian_misaligned_lists(tmp_path):
    root = fake_megaage.make_megaage_asian(tmp_path / "megaage", misaligned=True, images=False)
    with pytest.raises(UserError) as err:
        parse("megaage_asian", root=str(root))
    one_line_error(err, "train_name.txt", "train_age.txt")


# --- FairFace --------------------------------------------------------------------------------------

def test_fairface_csvs(tmp_path):
    root = fake_fairface.make_fairface(tmp_path / "fairface")
    parsed = parse("fairface", root=str(root))
    exp = fake_fairface.EXPECTED
    records = parsed.records.set_index("image")
    assert_counts(parsed, exp)
    assert records["split"].value_counts().to_dict() == {"train": exp["train"], "test": exp["test"]}
    for image, group in exp["groups"].items():
        assert records.loc[image, "age_group"] == group
    for image, race in exp["races"].items():
        assert records.loc[image, "race"] == race
    assert records.loc["train/4.jpg", "race"] == -1
    assert len(filter_for_tasks(parsed.records, ["age", "gender", "race"])) == exp["age_gender_race"]
    assert len(parsed.race_names) == 7 and parsed.age_group_names[-1] == "more than 70"
    assert get_source("fairface").native_age_bins.name == "fairface9"
    assert any("split=test" in n for n in parsed.notes)
    # age groups become targets in the native scheme
    tasks = build_tasks(OmegaConf.create({"names": ["age"], "age": {"bins": "fairface9"}}))
    targets = targets_for(tasks, parsed.records, get_source("fairface").native_age_bins)
    assert targets["age"][:, 0].tolist() == parsed.records["age_group"].astype(float).tolist()


def test_fairface_bad_csv(tmp_path):
    root = fake_fairface.make_fairface(tmp_path / "ff", drop_column="race", images=False)
    with pytest.raises(UserError) as err:
        parse("fairface", root=str(root))
    one_line_error(err, "fairface_label_train.csv", "race")
    tabs = fake_fairface.make_fairface(tmp_path / "tabs", separator="\t", images=False)
    with pytest.raises(UserError) as err:
        parse("fairface", root=str(tabs))
    one_line_error(err, "not comma-separated")


# --- multi-source: missing labels stay missing and are masked -----------------------------------

def _multisource(tmp_path):
    imdb = fake_imdb.make_imdb_wiki(tmp_path / "imdb", images=True)
    utk = fake_utk.make_utkface(tmp_path / "utk")
    cfg = data_cfg("multisource", sources=[{"name": "imdb_wiki", "root": str(imdb)},
                                          {"name": "utkface", "root": str(utk)}])
    return cfg, get_source("multisource")


def test_multisource_concatenates_with_missing_labels(tmp_path):
    cfg, source = _multisource(tmp_path)
    source.check_root(cfg)
    parsed = source.parse(cfg)
    records = parsed.records
    n_imdb, n_utk = fake_imdb.EXPECTED["records"], fake_utk.EXPECTED["records"]
    assert records["source"].value_counts().to_dict() == {"imdb_wiki": n_imdb, "utkface": n_utk}
    assert records["subject"].str.startswith(("imdb_wiki:", "utkface:")).all()
    assert (records.loc[records["source"] == "imdb_wiki", "race"] == -1).all()       # never filled
    assert (records.loc[records["source"] == "utkface", "race"] >= 0).all()
    assert len(parsed.skipped) == fake_imdb.EXPECTED["skipped"] + fake_utk.EXPECTED["skipped"]
    assert parsed.skipped["reason"].str.startswith(("imdb_wiki: ", "utkface: ")).all()
    paths = source.image_paths(records, cfg)
    assert all(p.is_absolute() and p.is_file() for p in paths)
    assert parsed.race_names == ("White", "Black", "Asian", "Indian", "Others")
    # allow_missing_labels: a row needs one of the run's labels
    names = ["age", "gender", "race"]
    assert label_mask(records, names, "any").sum() == n_imdb + n_utk
    assert label_mask(records, names, "all").sum() == n_utk


def test_multisource_masked_loss(tmp_path):
    cfg, source = _multisource(tmp_path)
    records = source.parse(cfg).records
    tasks = build_tasks(OmegaConf.create({"names": ["age", "gender", "race"],
                                          "age": {"head": "regression", "range": [0, 100], "bins": "uniform:5"}}),
                        race_classes=5)
    targets = targets_for(tasks, records, source.native_age_bins)
    imdb = (records["source"] == "imdb_wiki").to_numpy()
    assert (targets["race"][imdb, 0] == -1).all() and (targets["race"][~imdb, 0] >= 0).all()
    no_gender = (records["gender"] < 0).to_numpy()
    assert no_gender.any() and (targets["gender"][no_gender, 0] == -1).all()
    assert np.isnan(targets["age"][records["age"].isna().to_numpy(), 1]).all()

    race = next(t for t in tasks if t.name == "race")
    torch.manual_seed(0)
    logits = torch.randn(len(records), 5, requires_grad=True)
    target = torch.as_tensor(targets["race"])
    # a batch with no race label at all: zero loss, still differentiable
    only_imdb = torch.as_tensor(np.flatnonzero(imdb))
    loss = race.loss(logits[only_imdb], target[only_imdb])
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0
    # a mixed batch: the loss over the labelled rows only
    mixed = race.loss(logits, target)
    labelled = torch.as_tensor(np.flatnonzero(~imdb))
    expected = F.cross_entropy(logits[labelled], target[labelled, 0].long())
    assert torch.allclose(mixed, expected)
    gender = next(t for t in tasks if t.name == "gender")
    g_target = torch.as_tensor(targets["gender"])
    has = torch.as_tensor(np.flatnonzero(~no_gender))
    g_logits = torch.randn(len(records), 2)
    assert torch.allclose(gender.loss(g_logits, g_target), F.cross_entropy(g_logits[has], g_target[has, 0].long()))


def test_multisource_batch_trains_one_step(tmp_path):
    """A tiny shared trunk + three heads: one optimiser step on a batch with missing labels is finite,
    moves the weights, and leaves the race head untouched when no row carries race."""
    cfg, source = _multisource(tmp_path)
    records = source.parse(cfg).records
    tasks = build_tasks(OmegaConf.create({"names": ["age", "gender", "race"],
                                          "age": {"head": "regression", "range": [0, 100], "bins": "uniform:5"}}),
                        race_classes=5)
    targets = {k: torch.as_tensor(v) for k, v in targets_for(tasks, records, source.native_age_bins).items()}
    torch.manual_seed(0)
    trunk = torch.nn.Linear(8, 16)
    heads = torch.nn.ModuleDict({t.name: torch.nn.Linear(16, t.num_outputs) for t in tasks})
    params = [*trunk.parameters(), *heads.parameters()]
    x = torch.randn(len(records), 8)

    def step(rows):  # plain SGD (torch.optim's first use imports the compiler stack: seconds)
        for p in params:
            p.grad = None
        features = torch.relu(trunk(x[rows]))
        losses = {t.name: t.loss(heads[t.name](features), targets[t.name][rows]) for t in tasks}
        total = sum(losses.values())
        total.backward()
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= 0.1 * p.grad
        return losses

    imdb_rows = torch.as_tensor(np.flatnonzero((records["source"] == "imdb_wiki").to_numpy()))
    before = heads["race"].weight.detach().clone()
    trunk_before = trunk.weight.detach().clone()
    losses = step(imdb_rows)
    assert losses["race"].item() == 0.0 and all(torch.isfinite(v) for v in losses.values())
    assert torch.equal(heads["race"].weight, before)            # masked task: no update
    assert not torch.equal(trunk.weight, trunk_before)          # the labelled tasks trained
    losses = step(torch.arange(len(records)))                   # the mixed batch trains race too
    assert losses["race"].item() > 0 and not torch.equal(heads["race"].weight, before)


def test_multisource_config_errors(tmp_path):
    source = get_source("multisource")
    with pytest.raises(UserError) as err:
        source.parse(data_cfg("multisource"))
    one_line_error(err, "data.sources")
    ff = fake_fairface.make_fairface(tmp_path / "ff", images=False)
    utk = fake_utk.make_utkface(tmp_path / "utk")
    cfg = data_cfg("multisource", sources=[{"name": "fairface", "root": str(ff)}, {"name": "utkface", "root": str(utk)}])
    with pytest.raises(UserError) as err:
        source.parse(cfg)
    one_line_error(err, "race classes")
    cfg = data_cfg("multisource", sources=[{"name": "utkface", "root": str(utk)}, {"name": "utkface", "root": str(utk)}])
    with pytest.raises(UserError) as err:
        source.parse(cfg)
    one_line_error(err, "twice")
    cfg = data_cfg("multisource", sources=[{"name": "utkface", "root": str(tmp_path / "nope")}])
    with pytest.raises(UserError) as err:
        source.check_root(cfg)
    one_line_error(err, "does not exist")


def test_filter_for_tasks_rejects_tasks_without_labels(tmp_path):
    root = fake_fgnet.make_fgnet(tmp_path / "fg")
    records = parse("fgnet", root=str(root)).records
    with pytest.raises(UserError) as err:
        filter_for_tasks(records, ["age", "gender"])
    one_line_error(err, "gender", "tasks=age")
    assert len(filter_for_tasks(records, ["age", "gender"], require="any")) == len(records)


def test_data_configs_compose_with_train_config():
    """Every conf/data yaml composes in the train config (image_size follows the model input)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for name in ("adience", "utkface", "imdb_wiki", "morph2", "fgnet", "megaage_asian", "fairface", "multisource"):
            cfg = compose(config_name="data_summary", overrides=[f"data={name}"])
            assert cfg.data.name == name and int(cfg.data.image_size) == 227
            assert cfg.data.on_bad_image in ("skip", "fail")
            json.dumps(OmegaConf.to_container(cfg.data, resolve=True))


def test_configured_paths_are_relative_to_the_root(tmp_path):
    from agebench.data.sources._common import configured_path

    cfg = {"root": str(tmp_path / "data"), "csv_file": "meta/morph.csv", "folds_dir": str(tmp_path / "folds")}
    assert configured_path(cfg, "csv_file") == tmp_path / "data" / "meta" / "morph.csv"
    assert configured_path(cfg, "folds_dir") == tmp_path / "folds"  # absolute: as given
    assert configured_path(cfg, "mat_file") is None
