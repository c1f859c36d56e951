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

_AFFINE: dict = {}  # (device, dtype) -> (scale, shift): built once, so no host-to-device copy per batch


def _normalise_affine(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) as (1, 3, 1, 1) tensors with x·scale + shift == (x / 255 − MEAN) / STD."""
    key = (torch.device(device), dtype)
    if key not in _AFFINE:
        mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
        std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
        scale, shift = 1.0 / (255.0 * std), -mean / std
        _AFFINE[key] = (scale.to(device=device, dtype=dtype), shift.to(device=device, dtype=dtype))
    return _AFFINE[key]


def to_float_nchw(batch_u8: torch.Tensor, channels_last: bool = False, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float, normalised: (x / 255 − MEAN) / STD.

    One fused pass (uint8 → float, scale, shift) written straight into the requested layout: the NHWC
    input viewed as NCHW already has channels_last strides, so a channels_last result costs no copy
    and a contiguous NCHW result is transposed within the same pass."""
    x = batch_u8.permute(0, 3, 1, 2)
    scale, shift = _normalise_affine(x.device, dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(tuple(x.shape), dtype=dtype, device=x.device, memory_format=fmt)
    return torch.addcmul(shift, x, scale, out=out)


def random_crop_flip(x: torch.Tensor, crop: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop (crop×crop) and horizontal flip with probability ½ of an NHWC batch
    (uint8 straight from the loader, so the copies move bytes, not floats).

    Offsets and flips are drawn on the CPU from `generator` (so they do not depend on the device) and
    reach the device in one small non-blocking copy (no host sync). The crop is two batched copies:
    an `index_select` of every image's `crop` rows (whole rows: contiguous bytes), then one `gather`
    of every image's columns, in reverse order for the mirrored ones."""
    n, h, w, c = x.shape
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} larger than image {h}x{w}")
    oy = torch.randint(0, h - crop + 1, (n,), generator=generator)
    ox = torch.randint(0, w - crop + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    draws = torch.stack([oy, ox, flip.long()])  # (3, n) int64
    if x.device.type != "cpu":
        if x.device.type == "cuda":
            draws = draws.pin_memory()
        draws = draws.to(x.device, non_blocking=True)
    oy, ox, flip = draws[0], draws[1], draws[2].bool()
    ar = torch.arange(crop, device=x.device)
    rows = (torch.arange(n, device=x.device)[:, None] * h + oy[:, None] + ar).reshape(-1)  # (n·crop,)
    cols = ox[:, None] + torch.where(flip[:, None], ar.flip(0), ar)  # mirrored window = reversed columns
    band = x.reshape(n * h, w, c).index_select(0, rows).view(n, crop, w, c)
    return band.gather(2, cols[:, None, :, None].expand(n, crop, crop, c))  # (n, crop, crop, C)


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


def ten_crop(images: torch.Tensor, crop: int) -> torch.Tensor:
    """Seed 000's oversampling: per image the four corner crops and the centre crop (crop×crop), then the
    same five mirrored horizontally, as one (N·10, C, crop, crop) batch of an NCHW batch.

    Order per image: top-left, top-right, bottom-left, bottom-right, centre, then their mirrors in the
    same order; `out.view(N, 10, C, crop, crop)[i]` are image i's ten views, so scores average with
    `.view(N, 10, -1).mean(1)`. The centre crop uses the same offsets as `center_crop`."""
    n, c, h, w = images.shape
    crop = int(crop)
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} larger than image {h}x{w}")
    top, left = (h - crop) // 2, (w - crop) // 2
    offsets = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left)]
    five = torch.stack([images[:, :, y:y + crop, x:x + crop] for y, x in offsets], dim=1)  # (N, 5, C, crop, crop)
    out = torch.cat([five, five.flip(-1)], dim=1).reshape(n * 10, c, crop, crop)
    if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out
