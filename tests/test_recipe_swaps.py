"""Recipes survive a model swap: `experiment=<recipe> model=<other>` composes with the other model's own
defaults (no key of the recipe's model left over), and runs."""

import json

import pytest
from conftest import TINY, run_cli

from agebench.config.compose import compose_config
from agebench.config.recipe_models import model_choice
from agebench.errors import UserError
from agebench.paths import conf_dir
from agebench.training.variants import run_variants

RECIPES = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def _other_model(cfg) -> str:
    return "levi_hassner" if cfg.model.name == "lmtcnn" else "lmtcnn"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_with_another_model(name):
    base = [f"experiment={name}", "data.root=/somewhere"]
    other = _other_model(compose_config(base))
    defaults = compose_config([f"model={other}"]).model
    swapped = compose_config([*base, f"model={other}"])
    assert dict(swapped.model) == dict(defaults), f"{name}: recipe keys leaked into model={other}"
    for variant, overrides in (swapped.get("variants") or {}).items():
        if model_choice(overrides) is not None:  # the variant names its own architecture (checked below)
            continue
        cfg = compose_config([*base, f"model={other}", *overrides, "variants=null"])
        assert dict(cfg.model) == dict(defaults), f"{name}/{variant}"


def test_recipe_model_keys_live_in_the_model_config():
    cfg = compose_config(["experiment=seed002_granularity", "data.root=/somewhere"])
    assert (cfg.model.name, cfg.model.backbone, cfg.model.input_size, cfg.data.image_size) == ("timm", "efficientnet_b4", 380, 380)


def test_variants_that_choose_their_model_refuse_a_swap_in_one_line(tmp_path):
    cfg = compose_config(["experiment=seed003_table3", "data.root=/somewhere", "model=lmtcnn"])
    with pytest.raises(UserError, match=r"variants choose their own model .*drop model=lmtcnn.*variants=null"):
        run_variants(cfg, str(tmp_path), base_overrides=["experiment=seed003_table3", "model=lmtcnn"])
    assert not any(tmp_path.iterdir())  # nothing trained


@pytest.mark.slow
def test_seed002_recipe_runs_with_lmtcnn(tmp_path):
    out = tmp_path / "run"
    tiny = [o for o in TINY if not o.startswith("protocol.")]  # the recipe's holdout split
    result = run_cli("train", "experiment=seed002_granularity", "model=lmtcnn", "data=synthetic", *tiny,
                     "trainer.max_epochs=1", f"output_dir={out}", env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    for variant in ("age", "age_gender", "age_gender_race"):
        record = json.loads((out / variant / "results.jsonl").read_text().splitlines()[0])
        assert record["status"] == "ok" and record["model"] == "lmtcnn", variant
        assert "backbone" not in record["config"]["model"]
