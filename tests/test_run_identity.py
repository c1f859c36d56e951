"""One run identity (agebench/results/run_identity.py): the config hash, the report's grouping and pairing, and the
Hydra multirun directory names all follow it."""

from __future__ import annotations

import copy

import yaml
from fakes_records import make_record
from omegaconf import OmegaConf

from agebench.config.compose import compose_config
from agebench.paths import conf_dir
from agebench.report import aggregate as agg
from agebench.report.canon import get
from agebench.report.stats import pair_key
from agebench.results import run_identity
from agebench.results.provenance import config_hash

# A config holding every operational key; its hash was computed by the code before run_identity existed.
LEGACY = {"experiment_name": "x", "seed": 1, "output_dir": "/o", "cache_dir": None, "logger": {"name": "csv"},
          "hydra": {"a": 1}, "summary_table": False, "closing_report": None, "variants": None, "sweep_context": None,
          "profile": {"latency_iters": 10},
          "data": {"name": "synthetic", "root": None, "num_workers": 0, "render_workers": None, "image_size": 32},
          "protocol": {"name": "kfold", "folds": [0, 1], "n_folds": 5},
          "trainer": {"threads": None, "async_checkpoint": False, "log_every_n_steps": 50, "progress_bar": "auto",
                      "slurm_requeue": True, "compile": False, "accelerator": "cpu", "max_epochs": 3,
                      "limit_train_batches": None},
          "optim": {"lr": 0.001}}


def test_config_hash_of_existing_configs_is_unchanged():
    """Resumable runs compare hashes: the hash of a config written before the identity module stays."""
    assert config_hash(LEGACY) == "03eec6758083"


def test_hydra_exclude_keys_agree_with_the_identity_module():
    train = yaml.safe_load((conf_dir() / "train.yaml").read_text())
    keys = train["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"]
    assert sorted(keys) == run_identity.dirname_exclude_keys(), (
        "conf/train.yaml's hydra.job.config.override_dirname.exclude_keys must equal "
        "agebench.results.run_identity.dirname_exclude_keys()")
    # the extra override keys only spell out leaves of operational subtrees: no identity decision of their own
    assert all(run_identity.covers(run_identity.OPERATIONAL, k) for k in run_identity.OPERATIONAL_OVERRIDES)


def test_declared_keys_exist_in_the_train_config():
    """A renamed key would silently drop out of every list: each declared path is in the composed config."""
    cfg = OmegaConf.to_container(compose_config([]), resolve=False)
    absent_by_design = {"hydra", "sweep_context", "trial_params", "sweep"}  # added by Hydra or sweeps, not train.yaml
    for path in run_identity.OPERATIONAL + run_identity.ENVIRONMENT:
        if path in absent_by_design:
            continue
        assert get(cfg, path, MISSING) is not MISSING, f"{path} (agebench/results/run_identity.py) is not a train config key"


MISSING = object()


def test_hash_grouping_and_pairing_follow_the_kinds():
    base = make_record(0, {"age/top1": 0.5}, tasks=["age"])
    compiled = make_record(0, {"age/top1": 0.5}, tasks=["age"], extra_config={"trainer.compile": True})
    requeue = make_record(0, {"age/top1": 0.5}, tasks=["age"], extra_config={"trainer.slurm_requeue": False})
    lr = make_record(0, {"age/top1": 0.5}, tasks=["age"], extra_config={"optim.lr": 0.5})
    # environment: in the hash, not a separate configuration
    assert config_hash(base["config"]) != config_hash(compiled["config"])
    # operational: neither
    assert config_hash(base["config"]) == config_hash(requeue["config"])
    # identity: both
    assert config_hash(base["config"]) != config_hash(lr["config"])
    frame = agg.build_frame([base, compiled, requeue, lr])
    assert "config.trainer.compile" not in frame.columns and "config.trainer.slurm_requeue" not in frame.columns
    assert len(agg.aggregate(frame)) == 2  # base = compiled = requeue; lr apart
    # every key the hash leaves out, the grouping leaves out too
    assert set(run_identity.hash_excluded()) <= set(run_identity.grouping_excluded())


def test_pairs_differ_only_in_labels_and_task_set():
    single = make_record(0, {"age/top1": 0.5}, tasks=["age"], experiment="a")
    multi = make_record(0, {"age/top1": 0.5}, tasks=["age", "gender"], gamma=0.3, experiment="b")
    other_seed = make_record(0, {"age/top1": 0.5}, tasks=["age", "gender"], seed=1, experiment="b")
    g_single, g_multi, g_seed = agg.aggregate(agg.build_frame([single, multi, other_seed]))
    assert pair_key(g_single) == pair_key(g_multi)
    assert pair_key(g_single) != pair_key(g_seed)


def test_config_hash_leaves_the_callers_dict_alone():
    cfg = copy.deepcopy(LEGACY)
    config_hash(cfg)
    assert cfg == LEGACY
