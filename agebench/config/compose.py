"""Composing configs outside the command line (experiment variants, sweep trials, tests), and the one
readable line for Hydra's composition errors (the CLI and `compose_checked` both print it)."""

from __future__ import annotations

import re

from omegaconf import DictConfig

from agebench.errors import UserError


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


def hydra_error_line(err: Exception) -> str | None:
    """One readable line for Hydra's config errors, or None when `err` is not one."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    cause = err
    while cause is not None:  # a UserError raised inside config resolution keeps its own message
        if isinstance(cause, UserError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(err)
    if isinstance(err, OverrideParseException) and getattr(err, "override", None):
        return override_parse_line(str(err.override), text)
    if isinstance(err, MissingConfigException):
        found = re.search(r"Could not find '([^/']+)/([^']+)'", text)
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        if found:
            group, choice = found.groups()
            where = "sweeps/" if group == "sweep" else f"conf/{group}/"
            choices = ", ".join(o for o in options if not o.startswith("_")) or "see " + where
            return f"unknown {group} {choice!r}; choose one of {choices} ({where})"
        return text.splitlines()[0]
    if isinstance(err, (ConfigCompositionException, OverrideParseException)):
        cause = err.__cause__ or err
        key = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", str(cause))
        if key and ("not in struct" in str(cause) or "not in struct" in text):
            return (f"unknown config option {key.group(1)!r}; check its spelling with `--cfg job`, "
                    f"or add it with +{key.group(1)}=... if it is really new")
        first = next((line for line in text.splitlines() if line.strip()), text)
        return first.strip()
    if isinstance(err, OmegaConfBaseException):
        return text.splitlines()[0]
    return None


def override_parse_line(override: str, text: str) -> str:
    """An override Hydra's grammar rejects: most often an unquoted value with spaces, non-ASCII
    letters, quotes or parentheses (a path), which must be quoted; say so and show the quoted form."""
    problem = next((line.strip() for line in text.splitlines() if line.strip()), text)
    key, sep, value = override.partition("=")
    if not sep or value.startswith(("[", "{")):
        return (f"cannot parse the override {override!r} ({problem}); check its brackets and commas, and quote "
                f"values with spaces or special characters")
    return (f"cannot parse the override {override!r} ({problem}); quote the value: {key}={quote(value)} (values with "
            f"spaces, non-ASCII letters, quotes or parentheses need quotes; in the shell wrap the whole override "
            f"in double quotes)")


def quote(value: str) -> str:
    """A string as a quoted Hydra override value (paths with spaces, colons, equals signs...)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
