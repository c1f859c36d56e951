"""Batch-level augmentation on the device: uint8 NHWC batches in, normalised float NCHW out.

The loader only slices uint8 arrays out of the cache; cropping, flipping and normalisation happen
here, per batch, on whatever device the model is on (no per-sample Python in the hot loop). Random
draws come from a `torch.Generator` seeded per epoch, so augmentation is reproducible.
"""

from __future__ import annotations

import torch

# ImageNet statistics: the timm backbones expect them and they are harmless for models trained from scratch.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_float_nchw(batch_u8: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float in [0, 1], normalised by MEAN/STD."""
    x = batch_u8.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def random_crop_flip(x: torch.Tensor, crop: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop (crop×crop) and horizontal flip with probability ½ of an NHWC batch
    (uint8 straight from the loader, so the gather moves bytes, not floats).

    Offsets and flips are drawn on the CPU from `generator` (so they do not depend on the device) and
    the crop is one gather: index grids built from the offsets select every image's window at once."""
    n, h, w, _ = x.shape
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} larger than image {h}x{w}")
    oy = torch.randint(0, h - crop + 1, (n,), generator=generator)
    ox = torch.randint(0, w - crop + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    ar = torch.arange(crop)
    rows = (oy[:, None] + ar[None, :])                      # (n, crop)
    cols = ox[:, None] + ar[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)   # mirrored window = reversed column order
    rows, cols = rows.to(x.device), cols.to(x.device)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    return x[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, crop, crop, C)


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Centre crop of an NHWC batch."""
    h, w = x.shape[1:3]
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[:, top:top + crop, left:left + crop]


def reference_crop_flip(x: torch.Tensor, crop: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample loop doing the same draws as `random_crop_flip`: the CPU reference the tests compare with."""
    n, h, w, _ = x.shape
    oy = torch.randint(0, h - crop + 1, (n,), generator=generator)
    ox = torch.randint(0, w - crop + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = []
    for i in range(n):
        patch = x[i, oy[i]:oy[i] + crop, ox[i]:ox[i] + crop, :]
        out.append(patch.flip(1) if flip[i] else patch)
    return torch.stack(out)
