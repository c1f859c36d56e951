"""LMTCNN (seed 000): a lightweight multi-task CNN with depthwise-separable convolutions.

Architecture (seed 000 §3.2 and Table 1), on 227×227 crops:
    conv 96·7×7/4 (valid) → ReLU → maxpool 3/2 → LRN                       227 → 56 → 27
    depthwise-separable block 1: dw 3×3×96,  stride s₁ → pw 1×1×96×(256·w₁)   at 27×27
    depthwise-separable block 2: dw 3×3×c₁, stride s₂ → pw 1×1×c₁×(384·w₂)   27 → 14
    maxpool 3/2                                                               14 → 6
    FC 512 → ReLU → dropout ½ → FC 512 → ReLU → dropout ½  (shared by every task)
    one linear (softmax) output layer per task
`width=[w₁, w₂]` are the per-block width multipliers: [1, 1] is LMTCNN-1-1, [2, 1] is LMTCNN-2-1; any
positive multipliers build (channel counts round to the nearest integer, at least 1).

Decisions where the paper is ambiguous:

* **Where 28→14 happens (`strides`, default [1, 2]).** Table 1 lists dw Conv1 and pw Conv1 at 28×28 and
  dw Conv2 at 14×14, so exactly one 2× reduction lies between the blocks and the paper names no pooling
  there. We put it in the second block's depthwise conv (stride 2, MobileNet style): a strided 1×1
  pointwise conv would throw away ¾ of pw Conv1's outputs unseen, and an extra max-pool is not in the
  text. This is also what the authors' released TensorFlow code does (`downsample=True` on the second
  block only), and with the first stage's floor pooling the map sizes are 27 (the paper's "28", a
  ceil-rounding leftover of the Caffe original) → 14 → 6 after the last pool. Table 1's "Input Size"
  column then reads as each layer's output size, the only reading consistent with the code.
  Caveat: seed 000 Table 4's model sizes do not come from one stride setting. LMTCNN-2-1's 30.0 MB
  matches strides [1, 2] (FC input 6·6·384, ≈7.6 M params = 30.5 MB), but LMTCNN-1-1's 8.7 MB matches
  strides [2, 2] (FC input 3·3·384, ≈2.18 M params = 8.7 MB; that line is commented out in the
  released code). `strides=[2, 2]` builds that variant; the seed-000 profile set lists both.
* **Batch norm in the separable blocks (`bn`, default true).** The paper is silent; MobileNet, which it
  follows, and the released code both put BN after the depthwise and after the pointwise conv. We use
  the MobileNet order conv → BN → ReLU (bias-free convs); `bn=false` gives plain conv(+bias) → ReLU.
* **Pooling rounding:** floor ('VALID'), as in the released code; see `levi_hassner` for why this also
  matches the Table 4 size of the Levi–Hassner baseline. Below the paper resolution a map smaller than
  the 3×3 window is pooled whole (`layers.ClampedMaxPool2d`), so LMTCNN builds down to 16×16 inputs.
* **LRN:** local_size 5, α = 10⁻⁴, β = 0.75 (Levi & Hassner's values, Caffe/torch convention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn as nn

from agebench.models.heads import MultiTaskNet
from agebench.models.layers import ClampedMaxPool2d, lrn
from agebench.models.registry import register_model


def depthwise_separable(in_ch: int, out_ch: int, stride: int = 1, bn: bool = True) -> nn.Sequential:
    """dw 3×3 (one filter per input channel) → pw 1×1, each followed by [BN →] ReLU."""
    def norm(ch: int) -> list[nn.Module]:
        return [nn.BatchNorm2d(ch)] if bn else []

    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=not bn),
        *norm(in_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_ch, out_ch, 1, bias=not bn),
        *norm(out_ch),
        nn.ReLU(inplace=True),
    )


def scaled(channels: int, multiplier: float) -> int:
    return max(1, int(round(channels * float(multiplier))))


def lmtcnn_trunk(width: Sequence[float] = (1.0, 1.0), strides: Sequence[int] = (1, 2), bn: bool = True) -> nn.Sequential:
    width = [float(w) for w in width]
    if len(width) != 2 or any(w <= 0 for w in width):
        raise ValueError(f"width must be two positive multipliers, got {width}")
    if len(strides) != 2 or any(int(s) not in (1, 2) for s in strides):
        raise ValueError(f"strides must be two values in {{1, 2}}, got {list(strides)}")
    c1, c2 = scaled(256, width[0]), scaled(384, width[1])
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, stride=4),
        nn.ReLU(inplace=True),
        ClampedMaxPool2d(3, 2),
        lrn(),
        depthwise_separable(96, c1, stride=int(strides[0]), bn=bn),   # Table 1 dw/pw Conv1
        depthwise_separable(c1, c2, stride=int(strides[1]), bn=bn),   # Table 1 dw/pw Conv2
        ClampedMaxPool2d(3, 2),
    )


@register_model
def lmtcnn(tasks, input_size: int = 227, width: Sequence[float] = (1.0, 1.0), strides: Sequence[int] = (1, 2),
           bn: bool = True, shared_fc: Sequence[int] = (512, 512), dropout: float = 0.5,
           head: Mapping | None = None, heads: Mapping | None = None) -> MultiTaskNet:
    """LMTCNN with width multipliers `width=[w1, w2]` (see module docstring for every option)."""
    return MultiTaskNet(lmtcnn_trunk(width, strides, bn), tasks, input_size, shared_fc=shared_fc, dropout=dropout,
                        head=head, heads=heads)


@register_model
def lmtcnn_1_1(tasks, input_size: int = 227, **options) -> MultiTaskNet:
    """LMTCNN-1-1 (seed 000 Tables 3–5)."""
    return lmtcnn(tasks, input_size, width=(1, 1), **options)


@register_model
def lmtcnn_2_1(tasks, input_size: int = 227, **options) -> MultiTaskNet:
    """LMTCNN-2-1 (seed 000 Tables 3–5), the paper's most accurate variant."""
    return lmtcnn(tasks, input_size, width=(2, 1), **options)
