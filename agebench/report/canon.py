"""Canonical strings for run identity values, and small readers of nested config dicts.

Every identity value is held as a canonical string (`canon`) so that lists (`model.width=[2,1]`),
None and numbers group and filter the same way whether they come from JSON, YAML or the command line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

TASK_ORDER = ("age", "gender", "race")


def canon(value) -> str:
    """A canonical string for grouping and filtering: 1 == 1.0 == "1", [2, 1] → "[2,1]", None → "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "null"
        return f"{v:.10g}"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{canon(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canon(v) for v in value) + "]"
    if hasattr(value, "items"):  # OmegaConf DictConfig
        return canon(dict(value.items()))
    if hasattr(value, "__iter__") and not isinstance(value, str):  # ListConfig
        return canon(list(value))
    text = str(value).strip()
    try:  # numbers written as strings on the command line
        return canon(float(text)) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) else text
    except ValueError:  # pragma: no cover
        return text


def canon_tasks(value) -> str:
    """Task-set as "age+gender": from a list, "age_gender", "age+gender" or a single name."""
    if value is None:
        return "null"
    if isinstance(value, str):
        parts = re.split(r"[+_,\s]+", value.strip("[] "))
    else:
        parts = [str(v) for v in value]
    parts = [p for p in parts if p]
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    return "+".join(sorted(parts, key=lambda t: (order.get(t, len(order)), t)))


def flatten(obj, prefix: str, out: dict) -> dict:
    """{"a": {"b": 1}} → {"<prefix>.a.b": 1}, into `out`."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = obj
    return out


def get(d, dotted: str, default=None):
    """The value at a dotted path of nested mappings, or `default`."""
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def plain(value):
    """OmegaConf containers → plain Python."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return value
