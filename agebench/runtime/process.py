"""Process-level setup shared by the commands that run Lightning (train, eval, benchmarks): quiet
Lightning's banners, split the CPU cores, find the decoded-image cache, know this process's rank."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def quiet_lightning() -> None:
    """Keep Lightning's per-fold banners (GPU available, tips) out of the output; warnings stay."""
    import warnings

    import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO; lower them after)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")  # DDP: every rank evaluates the whole set


def set_threads(trainer_cfg, num_workers: int = 0) -> None:
    """torch's thread count (trainer.threads, else this job's share of the node: agebench/runtime/threads.py)
    and float32 matmul precision (trainer.matmul_precision)."""
    import torch

    from agebench.runtime.threads import set_threads as split_cores

    split_cores(trainer_cfg, num_workers)
    if trainer_cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(str(trainer_cfg.matmul_precision))


def cache_dir(cfg) -> Path:
    """The decoded-image cache of a run config: `cache_dir`, else ~/.cache/agebench (or $AGEBENCH_CACHE_DIR)."""
    from agebench.paths import cache_dir as default_cache_dir

    return Path(cfg.cache_dir) if cfg.get("cache_dir") else default_cache_dir()


def global_rank() -> int:
    """This process's rank under torchrun (RANK), else 0."""
    return int(os.environ.get("RANK", "0"))
