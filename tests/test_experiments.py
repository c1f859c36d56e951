"""Every experiment recipe (and each of its variants) composes into a config the code accepts."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from agebench.config.compose import compose_config
from agebench.data.sources import list_sources
from agebench.models import list_models
from agebench.paths import conf_dir
from agebench.tasks.factory import build_tasks
from agebench.training.module import loss_weights

RECIPES = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def variant_configs(name):
    base = [f"experiment={name}", "data.root=/somewhere"]
    cfg = compose_config(base)
    if not cfg.get("variants"):
        return [("", cfg)]
    return [(v, compose_config(base + list(o) + ["variants=null"])) for v, o in cfg.variants.items()]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes(name):
    for variant, cfg in variant_configs(name):
        assert cfg.experiment_name == name, variant
        assert cfg.model.name in list_models()
        assert cfg.data.name in list_sources()
        tasks = build_tasks(cfg.tasks, race_classes=7 if cfg.data.name == "fairface" else None)
        loss_weights([t.name for t in tasks], cfg.loss)
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def test_quickstart_compares_single_and_multi_task():
    names = {v: list(cfg.tasks.names) for v, cfg in variant_configs("quickstart")}
    assert names == {"age": ["age"], "age_gender": ["age", "gender"]}


def test_recipes_exist_for_every_seed_paper():
    for seed in ("seed000", "seed001", "seed002", "seed003", "seed004"):
        assert any(r.startswith(seed) for r in RECIPES), seed
    assert Path(conf_dir() / "experiment" / "quickstart.yaml").exists()


def test_profile_of_a_recipe_lists_its_variants():
    from agebench.evaluation.profile_models import profile_entries

    cfg = compose_config(["experiment=seed000_table3"], config_name="profile")
    name, _, entries = profile_entries(cfg)
    assert name == "seed000_table3"
    assert [e["label"] for e in entries] == ["lmtcnn_1_1", "lmtcnn_2_1", "levi_hassner"]
    assert entries[2]["overrides"] == ["experiment=seed000_table3", "model=levi_hassner", "model.separate=true", "variants=null"]
