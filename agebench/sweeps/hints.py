"""The `agebench sweep ...` commands a sweep's messages suggest, spelled with the user's own overrides.

A hint that drops `sweep.study_name`, `sweep.dir` or `sweep.storage` points at another (usually empty)
study, so every suggested command names the same study as the command that printed it.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def study_overrides(spec) -> list[str]:
    """The overrides that locate `spec`'s study: its name, dir and storage where they differ from the defaults."""
    out = []
    if spec.study_name != spec.name:
        out.append(f"sweep.study_name={spec.study_name}")
    if Path(spec.dir) != Path(f"outputs/sweeps/{spec.study_name}").expanduser().resolve():
        out.append(f"sweep.dir={spec.dir}")
    if spec.storage:
        from agebench.sweeps.storage import display_url

        out.append(f"sweep.storage={display_url(spec.storage)}")  # a password stays masked
    return out


def sweep_hint(spec, action: str | None = None, overrides=()) -> str:
    """`agebench sweep sweep=<name> <study overrides> [overrides] [action=...]`, shell-quoted."""
    parts = [f"sweep={spec.name}", *study_overrides(spec), *map(str, overrides)]
    if action and action != "run":
        parts.append(f"action={action}")
    return "agebench sweep " + " ".join(shlex.quote(p) for p in parts)
