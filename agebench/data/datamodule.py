"""The Lightning datamodule: uint8 batches sliced straight out of the cached image array.

Each loader item is a whole batch: the sampler yields a list of row indices and the dataset answers
with one fancy-indexing slice of the (memory-mapped) array, so there is no per-sample Python work and
no collate step. Augmentation happens later, on the device (agebench.data.augment).
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

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
        images = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        targets = {name: torch.from_numpy(t[idx]) for name, t in self.targets.items()}
        return images, targets


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
            generator = torch.Generator().manual_seed(self.seed)  # fixes the data order
            sampler = BatchSampler(RandomSampler(dataset, generator=generator), self.batch_size, drop_last=False)
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
