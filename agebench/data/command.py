"""The command of this package: `agebench data summary` (conf/data_summary.yaml), a dataset's metadata
parsed and counted by agebench.data.summary."""

from __future__ import annotations

import json

from agebench.data.summary import format_summary, summarise_dataset
from agebench.errors import UserError


def summary_command(cfg) -> None:
    """Hydra task function of `agebench data summary` (root config conf/data_summary.yaml)."""
    fmt = str(cfg.get("format", "table"))
    if fmt not in ("table", "json"):
        raise UserError(f"format={fmt!r}; use table or json")
    result = summarise_dataset(cfg.data, list(cfg.tasks.names), plot=cfg.get("plot"),
                               check_images=bool(cfg.get("check_images", True)))
    if fmt == "json":
        print(json.dumps(result, indent=2))
    else:
        print(format_summary(result))
