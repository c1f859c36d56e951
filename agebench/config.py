"""Composing configs outside the command line (experiment variants, sweep trials, tests)."""

from __future__ import annotations

from omegaconf import DictConfig


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose `conf/<config_name>.yaml` with Hydra overrides, inside or outside a running Hydra app."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from agebench.paths import conf_dir

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_checked(overrides: list[str], config_name: str = "train") -> DictConfig:
    """`compose_config`, with Hydra's composition errors turned into a one-line UserError."""
    from agebench.cli import hydra_error_line
    from agebench.errors import UserError

    try:
        return compose_config(overrides, config_name)
    except UserError:
        raise
    except Exception as err:
        line = hydra_error_line(err)
        if line is None:
            raise
        raise UserError(line) from None


def hydra_output_dir() -> str | None:
    """The running Hydra job's output directory, or None outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.output_dir
    return None


def hydra_task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []
