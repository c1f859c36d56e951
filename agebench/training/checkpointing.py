"""How a fold's checkpoints reach the disk: straight to a temporary file, then an atomic rename.

Lightning's default writer serialises the whole checkpoint into an in-memory buffer first and then
copies it to the file inside an fsspec transaction; for LMTCNN with its AdamW state (90 MB) that is
two extra copies per save, and a fold saves every epoch (`last.ckpt`, for resume). Writing with
`torch.save` into `<name>.tmp` and `os.replace`-ing it keeps the save atomic (a kill leaves the previous
file intact) at about half the cost (benchmarks/fold_overhead.py). Fold directories are local paths.

`trainer.async_checkpoint=true` (on in trainer=gpu) wraps the writer in Lightning's AsyncCheckpointIO:
the checkpoint is snapshotted with a device-side clone and written by a background thread, so the
next epoch does not wait for the disk; `fit()` waits for the last write before it returns.

Checkpoints are read back with `torch.load(weights_only=True)` only (Lightning's resume and test loads
included): a fold directory in a shared sweep may hold a file planted by someone else, and a full
unpickle would run whatever code it names. A `last.ckpt` that does not load that way (truncated by a
full disk, or not a checkpoint) is moved aside and its fold restarts from scratch.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from agebench.errors import UserError
from agebench.files import replacing

log = logging.getLogger("agebench.training.checkpointing")


class AtomicFileCheckpointIO(TorchCheckpointIO):
    """`torch.save` to a uniquely named `.<name>.*.tmp`, then `os.replace` onto `path` (local file
    systems); loads are always `weights_only=True`."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicFileCheckpointIO takes no storage_options")
        with replacing(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None) -> dict:
        # whatever the caller (Lightning's resume/test passes None, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
        # turns into a full unpickle): tensors and plain data only, never code
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents: tensors and plain Python data only (`weights_only=True`)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_or_move_aside(path: Path, what: str) -> dict | None:
    """`path`'s checkpoint, or None after moving an unreadable one to `<name>.corrupt-<time>`
    (with a one-line warning naming both files) so that `what` restarts from scratch."""
    try:
        return read_checkpoint(path)
    except OSError as err:  # unreadable is not corrupt: keep the file, say why
        raise UserError(f"cannot read {path} ({err.strerror or err}); fix its permissions or the file system, "
                        f"or delete it to restart that fold from scratch") from None
    except Exception as err:  # truncated zip, empty file, pickled objects weights_only refuses, …
        refused = re.search(r"GLOBAL (\S+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if refused:  # weights_only met a class or function to call: what a planted file would use
            reason = f"it names {refused.group(1)}, not only tensors and plain data; loading it could run code"
        elif isinstance(err, pickle.UnpicklingError):  # torch's own text would advise weights_only=False
            reason = "truncated or corrupt: not a checkpoint torch can unpickle"
        else:
            reason = f"truncated or corrupt: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        if aside.exists():
            aside = aside.with_name(f"{aside.name}-{os.getpid()}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another rank of this DDP run moved it first
            return None
        log.warning("%s: %s is not a loadable checkpoint (%s); moved it to %s and restarting %s from scratch",
                    what, path, reason, aside.name, what)
        return None


def checkpoint_plugins(trainer_cfg) -> list:
    """The checkpoint writer for a fold's `pl.Trainer(plugins=...)`."""
    writer = AtomicFileCheckpointIO()
    if trainer_cfg.get("async_checkpoint"):
        from lightning.pytorch.plugins.io import AsyncCheckpointIO

        return [AsyncCheckpointIO(writer)]
    return [writer]
