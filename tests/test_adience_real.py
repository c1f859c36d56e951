"""The Adience parser against the real metadata in ../shared/data/adience (no images needed).

Seed 000, Table 2: with tasks=age_gender and the default odd_labels=drop, the test folds hold
3,879 / 3,005 / 3,121 / 2,866 / 3,387 images, and the LMTCNN split lists give the train / validation
sizes of the same table. Skips cleanly when the shared data is absent (an installed copy of agebench).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from agebench.data.filtering import filter_for_tasks, rows_for_run
from agebench.data.sources import get_source
from agebench.data.sources.adience import read_split_lists

ADIENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "adience"
pytestmark = pytest.mark.skipif(not (ADIENCE / "folds" / "fold_0_data.txt").is_file(),
                                reason="real Adience metadata (../shared/data/adience) not present")

TABLE2 = {  # fold: (train, validation, test)
    0: (11136, 1242, 3879), 1: (11905, 1348, 3005), 2: (11814, 1323, 3121),
    3: (12056, 1335, 2866), 4: (11593, 1277, 3387),
}
ROWS_IN_FOLD_FILES = 19487


def _parsed(odd_labels="drop"):
    cfg = OmegaConf.create({"name": "adience", "root": str(ADIENCE), "odd_labels": odd_labels})
    return get_source("adience").parse(cfg)


@pytest.fixture(scope="module")
def parsed():
    return _parsed()


@pytest.fixture(scope="module")
def age_gender(parsed):
    # the rows `agebench train data=adience tasks=age_gender` trains on (agebench/training/fold_plan.py calls this)
    return rows_for_run(parsed.records, ["age", "gender"], OmegaConf.create({"allow_missing_labels": False}))[1]


def test_every_row_is_kept_or_skipped(parsed):
    assert len(parsed.records) + len(parsed.skipped) == ROWS_IN_FOLD_FILES
    assert parsed.skipped["reason"].str.startswith("no usable label").all()


def test_test_folds_equal_table2(age_gender):
    sizes = np.bincount(age_gender["fold"], minlength=5).tolist()
    assert sizes == [TABLE2[k][2] for k in range(5)]
    # the rule behind it: canonical age group and gender m/f
    assert (age_gender["age_group"] >= 0).all() and age_gender["gender"].isin([0, 1]).all()


def test_no_user_in_two_folds(parsed):
    assert parsed.records.groupby("subject")["fold"].nunique().max() == 1
    assert not any("more than one fold" in note for note in parsed.notes)


def test_lmtcnn_split_lists_equal_table2(age_gender):
    lists = read_split_lists(ADIENCE / "lmtcnn_agegender_splits", age_gender, strict=True)
    assert sorted(lists) == [0, 1, 2, 3, 4]
    group, gender = age_gender["age_group"].to_numpy(), age_gender["gender"].to_numpy()
    for k, split in lists.items():
        assert (len(split["train"]), len(split["val"]), len(split["test"])) == TABLE2[k]
        assert (age_gender["fold"].to_numpy()[split["test"]] == k).all()
        assert (age_gender["fold"].to_numpy()[np.concatenate([split["train"], split["val"]])] != k).all()
        rows = np.concatenate([split["train"], split["val"], split["test"]])
        assert len(np.unique(rows)) == len(rows)  # each listed duplicate takes its own row
        # the labels in the lists agree with the fold files
        for name in ("train", "val", "test"):
            lines = (ADIENCE / "lmtcnn_agegender_splits" / f"test_fold_is_{k}" / f"agegender_{name}.txt").read_text().split("\n")
            listed = np.array([[int(v) for v in line.split()[1:3]] for line in lines if line.strip()])
            assert (group[split[name]] == listed[:, 0]).all() and (gender[split[name]] == listed[:, 1]).all()
        # the test side never shares a user with training (the lists' validation is image-level)
        subjects = age_gender["subject"].to_numpy()
        assert not set(subjects[split["test"]]) & set(subjects[np.concatenate([split["train"], split["val"]])])


def test_remap_keeps_more_rows(age_gender):
    remapped = filter_for_tasks(_parsed("remap").records, ["age", "gender"])
    sizes = np.bincount(remapped["fold"], minlength=5)
    assert (sizes >= [TABLE2[k][2] for k in range(5)]).all() and sizes.sum() > len(age_gender)
