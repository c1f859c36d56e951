"""Shared test setup: offline W&B, a per-session image cache, tiny-run overrides and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# A fold trains in about a second: tiny synthetic faces, one epoch of two batches, no logger.
TINY = [
    "trainer=debug",
    "logger=none",
    "data.n_subjects=36",
    "data.images_per_subject=3",
    "data.image_size=48",
    "data.load_size=52",
    "data.batch_size=16",
    "protocol.n_folds=3",
    "profile.latency_iters=1",
]


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("agebench-cache")
    os.environ["AGEBENCH_CACHE_DIR"] = str(cache)
    yield cache


@pytest.fixture
def tiny_overrides(tmp_path):
    return [*TINY, f"output_dir={tmp_path / 'run'}"]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`agebench <args>` in a subprocess (the real entry point, exit codes and stderr included)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "agebench.cli.main", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or PROJECT_ROOT, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def tasks_of(names, **options):
    """Task objects for `names` with `tasks` config options (tests build models without Hydra)."""
    from omegaconf import OmegaConf

    from agebench.tasks.factory import build_tasks

    return build_tasks(OmegaConf.create({"names": list(names), **options}))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread avoids OpenMP spin-waiting on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
