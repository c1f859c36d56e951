"""What every run record says about where it came from: git sha, config hash, versions, hardware."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from functools import lru_cache

from agebench.paths import PROJECT_ROOT
from agebench.results.run_identity import NEUTRAL_DEFAULTS, hash_excluded, hashed_target


def config_hash(cfg_dict: dict) -> str:
    """Hash of what determines a fold's numbers: the config less agebench.results.run_identity's hash_excluded()."""
    excluded = hash_excluded()
    top = {p for p in excluded if "." not in p}
    # a JSON round trip is a deep copy: the caller's dict stays untouched
    semantic = json.loads(json.dumps({k: v for k, v in cfg_dict.items() if k not in top}, default=str))
    for dotted in excluded:
        *parents, leaf = dotted.split(".")
        node = semantic
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    for dotted, neutral in NEUTRAL_DEFAULTS.items():  # a key at the value that behaves as before it existed
        *parents, leaf = dotted.split(".")
        node = semantic
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf) == neutral:
            node.pop(leaf)
    blob = json.dumps(_old_targets(semantic), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _old_targets(node):
    if isinstance(node, dict):
        return {k: _old_targets(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_old_targets(v) for v in node]
    return hashed_target(node)


@lru_cache(maxsize=1)
def git_sha() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    import lightning
    import numpy
    import torch

    import agebench

    out = {"python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__,
           "numpy": numpy.__version__, "agebench": agebench.__version__}
    try:
        import timm

        out["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def hardware() -> dict:
    import torch

    info = {"host": socket.gethostname(), "platform": platform.platform(), "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
