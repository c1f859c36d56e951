"""FaceDataModule: whole-batch slices of the (memory-mapped) cache, no per-sample work."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from agebench.data.datamodule import BatchSlices, FaceDataModule
from agebench.data.protocols import Fold


def _cache(tmp_path, n=50, size=8):
    """A memory-mapped uint8 array whose image i is filled with i, and targets that say i too."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 3)).copy()
    np.save(tmp_path / "images.npy", images)
    targets = {"age": np.stack([np.arange(n) % 8, np.arange(n) + 0.5], axis=1).astype(np.float32),
               "gender": (np.arange(n) % 2).astype(np.float32)[:, None]}
    return np.load(tmp_path / "images.npy", mmap_mode="r"), targets


def _fold(n=50):
    rows = np.random.default_rng(0).permutation(n)
    return Fold(0, train=rows[:30], val=rows[30:40], test=rows[40:])


def _rows_of(batch) -> np.ndarray:
    images, targets = batch
    ids = images[:, 0, 0, 0].long().numpy()
    np.testing.assert_array_equal(targets["age"][:, 1].numpy(), ids + 0.5)  # targets travel with their image
    np.testing.assert_array_equal(targets["gender"][:, 0].numpy(), ids % 2)
    return ids


def test_train_epoch_covers_each_row_once_in_whole_batches(tmp_path):
    images, targets = _cache(tmp_path)
    fold = _fold()
    dm = FaceDataModule(images, targets, fold, batch_size=8, seed=3)
    batches = list(dm.train_dataloader())
    assert [len(b[0]) for b in batches] == [8, 8, 8, 6]
    assert all(b[0].dtype == torch.uint8 and b[0].shape[1:] == (8, 8, 3) and b[0].is_contiguous() for b in batches)
    seen = np.concatenate([_rows_of(b) for b in batches])
    assert sorted(seen) == sorted(fold.train)


def test_order_is_fixed_by_seed(tmp_path):
    images, targets = _cache(tmp_path)

    def order(seed):
        dm = FaceDataModule(images, targets, _fold(), batch_size=8, seed=seed)
        return [tuple(_rows_of(b)) for b in dm.train_dataloader()]

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_order_is_a_function_of_seed_and_epoch(tmp_path):
    """Lightning calls set_epoch before each epoch: epoch k's order must not depend on the epochs before
    it, or a fold resumed from a checkpoint would see a different order than an uninterrupted one."""
    images, targets = _cache(tmp_path)

    def order(epoch, warm_up_epochs=0):
        loader = FaceDataModule(images, targets, _fold(), batch_size=8, seed=1).train_dataloader()
        for e in range(warm_up_epochs):  # iterate earlier epochs first, as an uninterrupted run does
            loader.sampler.set_epoch(e)
            list(loader)
        loader.sampler.set_epoch(epoch)
        return [tuple(_rows_of(b)) for b in loader]

    assert order(2) == order(2, warm_up_epochs=2)
    assert order(1) != order(2)
    assert sorted(sum(order(3), ())) == sorted(_fold().train)


def test_ddp_ranks_take_disjoint_equal_shares_of_each_epoch():
    from agebench.data.datamodule import EpochShuffledBatches

    n, batch = 50, 8  # 7 batches: 3 per rank, the 7th unused this epoch
    ranks = [list(EpochShuffledBatches(n, batch, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert [len(r) for r in ranks] == [3, 3] == [len(EpochShuffledBatches(n, batch, 1, r, 2)) for r in range(2)]
    rows = [i for r in ranks for b in r for i in b]
    assert len(rows) == len(set(rows))  # no image on two ranks
    whole = list(EpochShuffledBatches(n, batch, seed=1))
    assert ranks[0] == whole[0:6:2] and ranks[1] == whole[1:6:2]  # one permutation, dealt out


def test_eval_loaders_are_sequential(tmp_path):
    images, targets = _cache(tmp_path)
    fold = _fold()
    dm = FaceDataModule(images, targets, fold, batch_size=8, eval_batch_size=4)
    val = [_rows_of(b) for b in dm.val_dataloader()]
    assert [len(v) for v in val] == [4, 4, 2]
    # each batch holds the next rows of the split (sorted within the batch for front-to-back reads)
    np.testing.assert_array_equal(np.concatenate(val), np.concatenate([np.sort(c) for c in np.split(fold.val, [4, 8])]))
    assert sorted(np.concatenate([_rows_of(b) for b in dm.test_dataloader()])) == sorted(fold.test)


def test_memmap_pickles_as_a_file_reference(tmp_path):
    images, targets = _cache(tmp_path, n=200, size=16)
    dataset = BatchSlices(images, {}, np.arange(200))
    blob = pickle.dumps(dataset)
    assert len(blob) < 10_000 < images.nbytes  # the pixels stay in the file
    clone = pickle.loads(blob)
    assert isinstance(clone.images, np.memmap)
    assert torch.equal(clone[[5, 1, 9]][0], dataset[[5, 1, 9]][0])


def test_a_slice_of_a_memmap_is_pickled_by_value(tmp_path):
    """A view keeps the file name but not its true offset: it must not be re-mapped from the file start."""
    images, _ = _cache(tmp_path)
    dataset = BatchSlices(images[10:20], {}, np.arange(10))
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[[0, 9]][0], dataset[[0, 9]][0])
    assert clone[[0]][0][0, 0, 0, 0] == 10


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(tmp_path):
    images, targets = _cache(tmp_path)
    fold = _fold()

    def batches(workers):
        dm = FaceDataModule(images, targets, fold, batch_size=8, seed=5, num_workers=workers)
        return [tuple(_rows_of(b)) for b in dm.train_dataloader()]

    assert batches(2) == batches(0)
