"""Issue 11, training side: one place for each decision — input sizes (agebench.training.builders.resolve_sizes),
optimizers/schedulers/callbacks/loggers from `_target_` config, the one label rule."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from agebench.config.compose import compose_config
from agebench.errors import UserError
from agebench.tasks.factory import build_tasks
from agebench.training.builders import build_model, resolve_sizes, sized_config


def test_the_data_side_sets_the_size_and_the_config_states_the_size_built():
    cfg = compose_config(["model=timm"])  # data=synthetic renders at 56 px whatever the model's 224
    sizes = resolve_sizes(cfg)
    assert (sizes.image_size, sizes.load_size) == (56, 64)
    sized = sized_config(cfg)
    assert sized.data.image_size == sized.model.input_size == 56 and cfg.model.input_size == 224  # a copy
    on_disk = compose_config(["data=utkface", "model=lightweight_joint"])  # image_size defaults to the model's
    assert (resolve_sizes(on_disk).image_size, resolve_sizes(on_disk).load_size) == (64, 72)
    assert resolve_sizes(OmegaConf.create({"data": {"image_size": None}, "model": {"input_size": 40}})).image_size == 40


def test_build_model_builds_at_the_resolved_size():
    cfg = compose_config(["model=lightweight_joint", "tasks=age", "data.image_size=32"])
    model = build_model(cfg, build_tasks(cfg.tasks))
    assert model(torch.zeros(1, 3, 32, 32))["age"].shape[-1] == 8


def test_optimizers_and_schedulers_come_from_target_entries():
    from agebench.training.optim import build_optimizer, build_scheduler

    params = [torch.nn.Parameter(torch.zeros(3))]
    cfg = compose_config(["optim.name=sgd", "optim.scheduler=step", "optim.lr=0.05",
                          "+optim.optimizers.nadam={_target_: torch.optim.NAdam, lr: 0.01}"])
    opt = build_optimizer(cfg.optim, params)
    sched = build_scheduler(cfg.optim, opt, max_epochs=9)
    assert type(opt) is torch.optim.SGD and opt.defaults["lr"] == 0.05 and opt.defaults["momentum"] == 0.9
    assert type(sched) is torch.optim.lr_scheduler.StepLR and (sched.step_size, sched.gamma) == (3, 0.1)
    cfg.optim.name, cfg.optim.scheduler = "nadam", "none"
    assert type(build_optimizer(cfg.optim, params)) is torch.optim.NAdam and build_scheduler(cfg.optim, opt, 9) is None
    cfg.optim.name = "adamw"
    assert build_optimizer(cfg.optim, params).defaults["fused"] is True  # fused: auto on CPU parameters
    cfg.optim.name = "adagrad"
    with pytest.raises(UserError, match=r"optim.name='adagrad'; use adamw, nadam, sgd of optim.optimizers"):
        build_optimizer(cfg.optim, params)


def test_a_target_that_does_not_import_is_one_user_error():
    from agebench.training.optim import build_optimizer, build_scheduler

    params = [torch.nn.Parameter(torch.zeros(3))]
    cfg = compose_config(["+optim.optimizers.typo={_target_: torch.optim.NAdamm}", "optim.name=typo",
                          "+optim.schedulers.nomod={_target_: no_such_module.sched}", "optim.scheduler=nomod"])
    with pytest.raises(UserError, match=r"_target_ 'torch.optim.NAdamm' .* cannot be imported; give the full import path"):
        build_optimizer(cfg.optim, params)
    with pytest.raises(UserError, match=r"_target_ 'no_such_module.sched' .* cannot be imported"):
        build_scheduler(cfg.optim, torch.optim.SGD(params, lr=0.1), max_epochs=3)


def test_callbacks_group_instantiates_entries_and_names_a_bad_one():
    from agebench.training.callbacks import configured_callbacks

    cfg = compose_config(["early_stopping.patience=2",
                          "+callbacks.lr_monitor={_target_: lightning.pytorch.callbacks.LearningRateMonitor}"])
    early, monitor = configured_callbacks(cfg)
    assert type(early).__name__ == "EarlyStopping" and early.patience == 2
    assert type(monitor).__name__ == "LearningRateMonitor"
    assert configured_callbacks(compose_config(["callbacks=none"])) == []
    with pytest.raises(UserError, match=r"callbacks.bad: cannot build nope.Nope"):
        configured_callbacks(compose_config(["+callbacks.bad={_target_: nope.Nope}"]))


@pytest.mark.parametrize("name, cls", [("csv", "CSVLogger"), ("tensorboard", "TensorBoardLogger"), ("none", None)])
def test_loggers_come_from_the_logger_group(tmp_path, name, cls):
    from agebench.training.loggers import make_logger

    logger = make_logger(compose_config([f"logger={name}"]), {}, {}, tmp_path / "fold_0")
    if cls is None:
        assert logger is False
    else:
        assert type(logger).__name__ == cls and logger.log_dir == str(tmp_path / "fold_0" / name)


def test_one_label_rule_for_training_rows_and_missing_tasks():
    from agebench.data.filtering import carried_tasks, rows_for_run
    from agebench.tasks.base import missing_tasks

    records = pd.DataFrame({"age": [30.0, None, None, 12.0], "age_group": [-1, 2, -1, -1],
                            "gender": [0, 1, -1, -1], "race": [-1, -1, -1, -1], "image": list("abcd")})
    rows, kept = rows_for_run(records, ["age", "gender"], OmegaConf.create({"allow_missing_labels": False}))
    assert rows.tolist() == [0, 1] and kept.index.tolist() == [0, 1]
    rows, _ = rows_for_run(records, ["age", "gender"], OmegaConf.create({"allow_missing_labels": True}))
    assert rows.tolist() == [0, 1, 3]
    assert carried_tasks(records) == ["age", "gender"]
    tasks = build_tasks(OmegaConf.create({"names": ["age", "race"], "age": {}, "race": {"classes": 5}}))
    assert missing_tasks(tasks, records) == ["race"]


def test_nothing_outside_the_cli_imports_it():  # cli.py and its --help (cli_help.py) are the CLI
    import re
    from pathlib import Path

    import agebench

    root = Path(agebench.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if not p.name.startswith("cli")
                 and re.search(r"^\s*(from agebench\.cli import|import agebench\.cli\b|from agebench import cli\b)",
                               p.read_text(), flags=re.M)]
    assert offenders == []
