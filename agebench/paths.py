"""Where agebench finds its config tree, sweeps and report recipes."""

from __future__ import annotations

import os
from pathlib import Path

from agebench.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _resource_dir(name: str, env: str) -> Path:
    override = os.environ.get(env)
    path = Path(override) if override else PROJECT_ROOT / name
    if not path.is_dir():
        raise UserError(
            f"agebench's {name}/ directory was not found at {path}; install agebench from a checkout "
            f"with `pip install -e .` or set {env}"
        )
    return path


def conf_dir() -> Path:
    return _resource_dir("conf", "AGEBENCH_CONF_DIR")


def sweeps_dir() -> Path:
    return _resource_dir("sweeps", "AGEBENCH_SWEEPS_DIR")


def reports_dir() -> Path:
    return _resource_dir("reports", "AGEBENCH_REPORTS_DIR")


def cache_dir() -> Path:
    """Decoded-image cache shared by every fold, run and sweep on this machine."""
    return Path(os.environ.get("AGEBENCH_CACHE_DIR", Path.home() / ".cache" / "agebench"))
