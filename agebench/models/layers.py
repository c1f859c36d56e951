"""Small layers shared by the seed architectures."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClampedMaxPool2d(nn.MaxPool2d):
    """Max pooling with floor rounding ('VALID', as the seed papers' TensorFlow/Keras code) that also
    accepts a map smaller than its window: such a map is max-pooled whole (to 1×1) instead of failing.

    At the paper resolutions every map is larger than the window, so this is exactly `nn.MaxPool2d`
    and no shape or parameter count moves; it only lets the 227×227 architectures build at the small
    resolutions tests and quick synthetic runs use (e.g. LMTCNN or Levi–Hassner at 32×32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size if isinstance(self.kernel_size, int) else self.kernel_size[0]
        if x.shape[-1] < k or x.shape[-2] < k:
            return F.adaptive_max_pool2d(x, 1)
        return super().forward(x)


class SliceSumLRN(nn.LocalResponseNorm):
    """`nn.LocalResponseNorm` computed as a sum of `size` channel-shifted slices of x².

    Same formula and parameters (b = x / (k + α/n · Σ_window x²)^β); torch's version goes through
    avg_pool3d on a 5-D view, which was ~13% of an LMTCNN inference on CPU and does not keep
    channels_last. Values agree with torch's to float rounding (tests/test_models.py checks it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return super().forward(x)
        channels = x.shape[1]
        squared = nn.functional.pad(x * x, (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2))
        window = squared[:, 0:channels]
        for shift in range(1, self.size):
            window = window + squared[:, shift:shift + channels]
        return x / (window * (self.alpha / self.size) + self.k).pow(self.beta)


def lrn() -> nn.LocalResponseNorm:
    """Levi & Hassner's LRN: local_size 5, α = 10⁻⁴, β = 0.75, k = 1 (Caffe convention, α divided by the size)."""
    return SliceSumLRN(size=5, alpha=1e-4, beta=0.75, k=1.0)
