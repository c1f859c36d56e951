"""Every on-disk dataset format trains end to end from its tiny fake copy (the torchgeo way), and the
task check refuses a task the dataset has no labels for."""

import pytest
from fakes import adience, fairface, fgnet, imdb_wiki, megaage_asian, morph2, utkface

from agebench.config.compose import compose_config
from agebench.errors import UserError
from agebench.results.store import read_records
from agebench.training.experiment import run_experiment

FAST = ["trainer=debug", "logger=none", "data.image_size=48", "data.load_size=52", "data.batch_size=4",
        "data.num_workers=0", "profile.latency_iters=1", "protocol.folds=[0]"]

# dataset -> (builder returning data.root, task-set it carries, protocol overrides that fit a tiny copy)
CASES = {
    "adience": (lambda p: adience.make_adience(p), "age_gender", ["protocol=predefined"]),
    "utkface": (lambda p: utkface.make_utkface(p), "age_gender_race", ["protocol.n_folds=2", "protocol.stratify=[]", "protocol.val_fraction=0.5"]),
    "imdb_wiki": (lambda p: imdb_wiki.make_imdb_wiki(p), "age", ["protocol=lopo", "protocol.val_fraction=0.5"]),
    "morph2": (lambda p: morph2.make_morph2(p), "age_gender_race", ["protocol.n_folds=2", "protocol.stratify=[]", "protocol.val_fraction=0.5"]),
    "fgnet": (lambda p: fgnet.make_fgnet(p), "age", ["protocol=lopo"]),
    "megaage_asian": (lambda p: megaage_asian.make_megaage_asian(p), "age", ["protocol=predefined"]),
    "fairface": (lambda p: fairface.make_fairface(p), "age_gender_race", ["protocol=predefined", "tasks.age.bins=fairface9"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fake_dataset_trains_one_fold(name, tmp_path):
    build, tasks, protocol = CASES[name]
    root = build(tmp_path / "data")
    out = tmp_path / "run"
    cfg = compose_config([f"data={name}", f"data.root={root}", f"tasks={tasks}", *protocol, *FAST, f"output_dir={out}"])
    summary = run_experiment(cfg, str(out))
    (record,) = read_records(out / "results.jsonl")
    assert record["status"] == "ok" and record["dataset"] == name
    assert summary["folds_ok"] == [record["fold"]]
    expected = {"age": "age/mae", "gender": "gender/acc", "race": "race/acc"}
    assert {expected[t] for t in record["tasks"]} <= set(record["metrics"])


def test_task_without_labels_is_refused(tmp_path):
    root = fgnet.make_fgnet(tmp_path / "data")
    cfg = compose_config(["data=fgnet", f"data.root={root}", "tasks=age_gender", "protocol=lopo", *FAST,
                          f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(UserError, match="data=fgnet has no gender labels"):
        run_experiment(cfg, str(tmp_path / "run"))
