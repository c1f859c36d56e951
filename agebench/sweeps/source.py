"""`sweeps/` as the Hydra config group `sweep`, and the override lists a trial is composed from.

The study yamls live in the top-level `sweeps/` directory (one per study, next to `conf/`), but on
the command line they behave as a config group: `agebench sweep sweep=gamma` selects
`sweeps/gamma.yaml` and places it under the `sweep` key, so `sweep.n_trials=40` or
`sweep.storage=...` override it like any other option, `--cfg job` shows it, and an unknown name is
answered with the list of studies. A tiny Hydra config source (`agebench://`, named in
`conf/sweep.yaml`'s `hydra.searchpath`) maps the group `sweep` onto that directory; it is
registered when this module is imported (`agebench.sweeps.command` imports it before Hydra starts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

GROUP = "sweep"
SCHEME = "agebench"
# Keys of conf/sweep.yaml that belong to the sweep command itself; every other override a user gives
# `agebench sweep` is an `agebench train` override and is forwarded to each trial.
SWEEP_ONLY_KEYS = ("sweep", "action", "port")   # port: action=dashboard


def _sweeps_dir() -> Path:
    from agebench.paths import sweeps_dir

    return sweeps_dir()


def _make_source_class():
    from hydra.core.object_type import ObjectType
    from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource

    class SweepsConfigSource(ConfigSource):
        """Serves `sweep/<name>` from `sweeps/<name>.yaml` (or $AGEBENCH_SWEEPS_DIR); nothing else."""

        @staticmethod
        def scheme() -> str:
            return SCHEME

        def _file(self, config_path: str) -> Path | None:
            parts = config_path.strip("/").split("/", 1)
            if parts[0] != GROUP or len(parts) != 2 or not parts[1]:
                return None
            return _sweeps_dir() / self._normalize_file_name(parts[1])

        def load_config(self, config_path: str) -> ConfigResult:
            path = self._file(config_path)
            if path is None or not path.is_file():
                raise ConfigLoadError(f"Config not found: {config_path}")
            text = path.read_text(encoding="utf-8")
            cfg = OmegaConf.create(_load_study_yaml(path) or {})
            if not isinstance(cfg, DictConfig):
                raise ConfigLoadError(f"{path} must hold a mapping (the study's keys), not a list")
            if "name" not in cfg:  # the study is named after its file unless it says otherwise
                cfg.name = path.stem
            return ConfigResult(config=cfg, path=f"{SCHEME}://{path.parent}", provider=self.provider,
                                header=ConfigSource._get_header_dict(text[:512]))

        def available(self) -> bool:
            try:
                return _sweeps_dir().is_dir()
            except Exception:
                return False

        def is_group(self, config_path: str) -> bool:
            return config_path.strip("/") in ("", GROUP)

        def is_config(self, config_path: str) -> bool:
            path = self._file(config_path)
            return path is not None and path.is_file()

        def list(self, config_path: str, results_filter) -> list[str]:
            if config_path.strip("/") == "":
                return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
            if config_path.strip("/") != GROUP or results_filter == ObjectType.GROUP:
                return []
            return study_names()

    return SweepsConfigSource


def _load_study_yaml(path: Path):
    """The study yaml's content; malformed YAML is a one-line UserError naming the file and the line."""
    import yaml

    from agebench.errors import UserError

    try:
        return OmegaConf.load(path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where} is not valid YAML ({problem}); fix the study file (docs/sweeps.md "
                        f"shows the format)") from None


_REGISTERED = False


def study_names() -> list[str]:
    return sorted(p.stem for p in _sweeps_dir().glob("*.yaml") if not p.name.startswith("_"))


def _choose_study():
    """conf/sweep.yaml's `sweep.name` when no study was selected: say how to select one."""
    from agebench.errors import UserError

    raise UserError(f"choose a study: agebench sweep sweep=<name>, <name> one of {', '.join(study_names())} "
                    f"(yamls in {_sweeps_dir()})")


def register() -> None:
    """Register the `agebench://` config source and the `agebench.pid` resolver (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from hydra.core.plugins import Plugins

    Plugins.instance().register(_make_source_class())
    if not OmegaConf.has_resolver("agebench.pid"):
        OmegaConf.register_new_resolver("agebench.pid", lambda: os.getpid())
    if not OmegaConf.has_resolver("agebench.choose_study"):
        OmegaConf.register_new_resolver("agebench.choose_study", _choose_study)
    _REGISTERED = True


def compose_sweep_config(overrides: Iterable[str]) -> DictConfig:
    """Compose `conf/sweep.yaml` (with its `sweep=<name>` study) outside the command line."""
    from agebench.config.compose import compose_config

    register()
    return compose_config(list(overrides), config_name="sweep")


# ---------------------------------------------------------------------------------------------------
# override lists


def override_key(override: str) -> str:
    """The key an override sets (`+data.x=1` → `data.x`, `tasks@x=age` → `tasks@x`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(override)
    return parsed.get_key_element().lstrip("+~")


def forwarded_overrides(task_overrides: Iterable[str]) -> list[str]:
    """The user's `agebench sweep` overrides that are `agebench train` overrides (all but sweep's own)."""
    kept = []
    for override in task_overrides:
        key = override_key(override)
        root = key.split("@", 1)[0].split(".", 1)[0]
        if root in SWEEP_ONLY_KEYS or key in ("output_dir",):
            continue
        kept.append(override)
    return kept


def merge_overrides(*lists: Iterable[str]) -> list[str]:
    """Concatenate override lists; a later override of the same key replaces an earlier one."""
    merged: dict[str, str] = {}
    for overrides in lists:
        for override in overrides:
            key = override_key(override)
            merged.pop(key, None)
            merged[key] = override
    return list(merged.values())
