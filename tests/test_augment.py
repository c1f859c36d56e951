"""Device-side augmentation (agebench.data.augment) against per-sample CPU references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agebench.data.augment import (
    MEAN,
    STD,
    center_crop,
    random_crop_flip,
    reference_crop_flip,
    to_float_nchw,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(n=6, h=40, w=36, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("crop", [32, 36, 1])
def test_random_crop_flip_matches_reference(device, crop):
    x = _batch()
    got = random_crop_flip(x.to(device), crop, torch.Generator().manual_seed(1234)).cpu()
    want = reference_crop_flip(x, crop, torch.Generator().manual_seed(1234))
    assert got.dtype == torch.uint8 and got.shape == (6, crop, crop, 3)
    assert torch.equal(got, want)


def test_reference_is_the_crop_and_mirror_it_says():
    """The reference itself, checked against numpy slicing with the same draws (oy, ox, flip in that order)."""
    x = _batch(n=16, h=20, w=24, seed=3)
    crop = 17
    g = torch.Generator().manual_seed(7)
    oy = torch.randint(0, 20 - crop + 1, (16,), generator=g).numpy()
    ox = torch.randint(0, 24 - crop + 1, (16,), generator=g).numpy()
    flip = (torch.rand(16, generator=g) < 0.5).numpy()
    assert 0 < flip.sum() < 16  # the fixed seed exercises both branches
    got = random_crop_flip(x, crop, torch.Generator().manual_seed(7)).numpy()
    for i in range(16):
        patch = x.numpy()[i, oy[i]:oy[i] + crop, ox[i]:ox[i] + crop]
        np.testing.assert_array_equal(got[i], patch[:, ::-1] if flip[i] else patch)


def test_same_seed_same_crops_and_other_seed_differs():
    x = _batch(n=32, h=64, w=64)
    a = random_crop_flip(x, 48, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, 48, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, 48, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_generator_advances_between_batches():
    """One generator seeded per epoch gives a different draw to every batch of the epoch, reproducibly."""
    x = _batch(n=8, h=50, w=50)
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    first, second = random_crop_flip(x, 40, g1), random_crop_flip(x, 40, g1)
    assert not torch.equal(first, second)
    assert torch.equal(first, random_crop_flip(x, 40, g2)) and torch.equal(second, random_crop_flip(x, 40, g2))


def test_crop_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match="larger than image"):
        random_crop_flip(_batch(h=20, w=20), 21)


@pytest.mark.parametrize("h,w,crop", [(40, 36, 32), (33, 33, 32), (32, 32, 32)])
def test_center_crop(h, w, crop):
    x = _batch(h=h, w=w)
    top, left = (h - crop) // 2, (w - crop) // 2
    assert torch.equal(center_crop(x, crop), x[:, top:top + crop, left:left + crop])


def _reference_normalise(x_u8: torch.Tensor) -> torch.Tensor:
    """(x / 255 − mean) / std in float64, channels moved first, one image at a time."""
    mean = torch.tensor(MEAN, dtype=torch.float64)
    std = torch.tensor(STD, dtype=torch.float64)
    return torch.stack([((img.double() / 255.0 - mean) / std).permute(2, 0, 1) for img in x_u8])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_to_float_nchw_normalises(device, channels_last):
    x = _batch(n=4, h=9, w=7)
    x[0, 0, 0] = torch.tensor([0, 255, 128], dtype=torch.uint8)
    got = to_float_nchw(x.to(device), channels_last=channels_last)
    assert got.dtype == torch.float32 and got.shape == (4, 3, 9, 7) and got.device.type == device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert got.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(got.cpu().double(), _reference_normalise(x), rtol=0, atol=2e-6)


def test_to_float_nchw_of_a_strided_view():
    """Evaluation normalises a centre-crop view (not contiguous) straight from the batch."""
    x = _batch(n=3, h=40, w=36)
    view = center_crop(x, 30)
    assert not view.is_contiguous()
    torch.testing.assert_close(to_float_nchw(view).double(), _reference_normalise(view.contiguous()), rtol=0, atol=2e-6)


def test_training_pipeline_matches_per_sample_reference():
    """Crop + flip + normalise of a batch == the per-sample CPU pipeline with the same seed."""
    x = _batch(n=10, h=64, w=64, seed=9)
    got = to_float_nchw(random_crop_flip(x, 56, torch.Generator().manual_seed(42)), channels_last=True)
    want = _reference_normalise(reference_crop_flip(x, 56, torch.Generator().manual_seed(42)))
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6)
