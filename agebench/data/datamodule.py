"""The Lightning datamodule: uint8 batches sliced straight out of the cached image array.

Each loader item is a whole batch: the sampler yields a list of row indices and the dataset answers
with one fancy-indexing slice of the (memory-mapped) array, so there is no per-sample Python work and
no collate step. Augmentation happens later, on the device (agebench.data.augment).

Loader workers (`data.num_workers`) receive the dataset by pickling: a memory-mapped cache array
travels as its file name and is mapped again in the worker, never copied (spawn/forkserver included).
On a GPU the trainer asks for pinned batches (`pin_memory`) so the host-to-device copy is
non-blocking.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from agebench.data.protocols import Fold


class BatchSlices(Dataset):
    """`dataset[list_of_positions]` → (uint8 images (B, H, W, 3), {task: float32 targets (B, k)})."""

    def __init__(self, images: np.ndarray, targets: dict[str, np.ndarray], rows: np.ndarray):
        self.images = images
        self.targets = targets
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions):
        # sorted row order reads the memmap front to back; the batch's order does not matter to SGD
        idx = np.sort(self.rows[np.asarray(positions)])
        images = torch.from_numpy(np.take(self.images, idx, axis=0))  # one gather into a fresh C-contiguous array
        targets = {name: torch.from_numpy(t[idx]) for name, t in self.targets.items()}
        return images, targets

    def __getstate__(self):
        state = dict(self.__dict__)
        if _whole_file_memmap(self.images):
            # a worker maps the cache file itself instead of receiving a pickled copy of every image
            m = self.images
            state["images"] = ("memmap", str(m.filename), m.dtype.str, tuple(m.shape), int(m.offset))
        return state

    def __setstate__(self, state):
        images = state["images"]
        if isinstance(images, tuple) and images and images[0] == "memmap":
            _, filename, dtype, shape, offset = images
            state["images"] = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset)
        self.__dict__.update(state)


def _whole_file_memmap(array) -> bool:
    """A C-ordered memmap that runs from its header offset to the end of its file (what `np.load(...,
    mmap_mode="r")` returns); a slice of one keeps the file name but not its true offset, so it does not count."""
    if not isinstance(array, np.memmap) or not array.filename or not array.flags.c_contiguous:
        return False
    try:
        return int(array.offset) + array.nbytes == os.path.getsize(array.filename)
    except OSError:
        return False


class EpochShuffledBatches(Sampler):
    """Shuffled batches whose order is a function of (seed, epoch) alone. Lightning calls `set_epoch`
    before each epoch, so a fold resumed from epoch k's checkpoint sees the same order in epoch k+1 as
    an uninterrupted run (a generator seeded once would restart from epoch 0's order).

    Under DDP (`world_size` > 1) every rank draws the same permutation and takes every world_size-th
    batch, the same number on each rank (the few left over go unused this epoch; the next epoch's
    shuffle uses them), so no DistributedSampler is needed and evaluation stays whole on every rank."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.epoch = int(n), int(batch_size), int(seed), 0
        self.rank, self.world_size = int(rank), int(world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        batches = [order[start:start + self.batch_size] for start in range(0, self.n, self.batch_size)]
        yield from batches[self.rank::self.world_size][:len(self)]

    def __len__(self) -> int:
        return ((self.n + self.batch_size - 1) // self.batch_size) // self.world_size


class FaceDataModule(pl.LightningDataModule):
    def __init__(self, images: np.ndarray, targets: dict[str, np.ndarray], fold: Fold, batch_size: int,
                 num_workers: int = 0, seed: int = 0, pin_memory: bool = False, eval_batch_size: int | None = None):
        super().__init__()
        self.images, self.targets, self.fold = images, targets, fold
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.pin_memory = pin_memory

    def _loader(self, rows: np.ndarray, train: bool) -> DataLoader:
        dataset = BatchSlices(self.images, self.targets, rows)
        if train:
            trainer = self.trainer  # set once the datamodule is attached to a trainer
            rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
            sampler = EpochShuffledBatches(len(dataset), self.batch_size, self.seed, rank, world)
        else:
            sampler = BatchSampler(SequentialSampler(dataset), self.eval_batch_size, drop_last=False)
        return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        return self._loader(self.fold.train, train=True)

    def val_dataloader(self):
        return self._loader(self.fold.val, train=False)

    def test_dataloader(self):
        return self._loader(self.fold.test, train=False)
