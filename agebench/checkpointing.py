"""How a fold's checkpoints reach the disk: straight to a temporary file, then an atomic rename.

Lightning's default writer serialises the whole checkpoint into an in-memory buffer first and then
copies it to the file inside an fsspec transaction; for LMTCNN with its AdamW state (90 MB) that is
two extra copies per save, and a fold saves every epoch (`last.ckpt`, for resume). Writing with
`torch.save` into `<name>.tmp` and `os.replace`-ing it keeps the save atomic (a kill leaves the previous
file intact) at about half the cost (benchmarks/fold_overhead.py). Fold directories are local paths.

`trainer.async_checkpoint=true` (on in trainer=gpu) wraps the writer in Lightning's AsyncCheckpointIO:
the checkpoint is snapshotted with a device-side clone and written by a background thread, so the
next epoch does not wait for the disk; `fit()` waits for the last write before it returns.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicFileCheckpointIO(TorchCheckpointIO):
    """`torch.save` to `<path>.tmp`, then `os.replace` onto `path` (local file systems)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicFileCheckpointIO takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)


def checkpoint_plugins(trainer_cfg) -> list:
    """The checkpoint writer for a fold's `pl.Trainer(plugins=...)`."""
    writer = AtomicFileCheckpointIO()
    if trainer_cfg.get("async_checkpoint"):
        from lightning.pytorch.plugins.io import AsyncCheckpointIO

        return [AsyncCheckpointIO(writer)]
    return [writer]
