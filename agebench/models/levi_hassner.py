"""Levi & Hassner (CVPR-W 2015) and the ¼-width reduction of seed 001.

`levi_hassner` — the baseline that seeds 000, 001 and 003 compare against:
    conv 96·7×7/4 (valid) → ReLU → maxpool 3/2 → LRN
    conv 256·5×5 (pad 2)  → ReLU → maxpool 3/2 → LRN
    conv 384·3×3 (pad 1)  → ReLU → maxpool 3/2
    FC 512 → ReLU → dropout ½ → FC 512 → ReLU → dropout ½ → one linear output layer per task
  on 227×227 crops. Pooling rounds down (`ceil_mode=false`), as in the TensorFlow port seed 000 used
  (rude-carnie, 'VALID' pooling): 227 → 56 → 27 → 27 → 13 → 13 → 6, so FC 512 sees 6·6·384 = 13,824
  inputs and an age model has 8,859,144 parameters. Two such single-task models (age 8-way, gender
  2-way) hold 17,715,210 fp32 parameters = 70.86 MB, seed 000 Table 4's "70.8 MB" for Levi_Hassner.
  The original Caffe model pooled with ceil rounding (28/14/7, FC input 18,816); `ceil_mode=true`
  builds that one.
  Levi & Hassner trained one network per task; `separate=true` builds exactly that (one independent
  network per task inside one module, so a multi-task run, the profiler and the tables see the pair
  that seed 000 compares with); `separate=false` (default) shares the convolutions and the FC stack
  and gives each task its own output layer, the multi-task comparison point.

`levi_hassner_reduced` — seed 001 Table 1, exactly: ¼ of the filters (24/64/96) and FC 128, every
  convolution stride 1 with 'valid' padding, every pooling 3×3 stride 2 'valid', LRN after all three
  pools:
    227 → conv 24·7×7 → 221 → pool → 110 → LRN → conv 64·5×5 → 106 → pool → 52 → LRN
        → conv 96·3×3 → 50 → pool → 24 → LRN → flatten 24·24·96 = 55,296
  (Table 1 prints the pooling window as "1×1"; only a 3×3 window reproduces its output sizes
  110/52/24 — a 2×2 window gives 110/53/25 — so 3×3/2 it is, the Levi–Hassner pooling.)
  Parameters (Table 1 / Table 2): convolutions 3,552 + 38,464 + 55,392 = 97,408 ("functional layer");
  FC 55,296→128 = 7,078,016; FC 128→128 = 16,512; a sigmoid gender output 129 (gender model
  7,192,065) or an 8-way age output 1,032 (age model 7,192,968). The multi-task model branches into
  two separate FC 128-128 stacks after the convolutions — `shared_fc=[]`, `head.hidden=[128, 128]` —
  97,408 + 2·(7,078,016 + 16,512) + 129 + 1,032 = 14,287,625. The one-logit sigmoid gender output is
  the task option `tasks.gender.loss=bce` (the paper trains it with binary cross-entropy); with the
  default 2-way softmax gender head each count grows by 129 (2·129 − 129).
  Seed 001's Keras model also rescaled pixels by 1/255 (a parameter-free layer); agebench's
  augmentation already hands the model normalised floats, so no rescaling layer here.

LRN: Caffe's definition with local_size 5, α = 10⁻⁴, β = 0.75, k = 1 (Levi & Hassner's values;
torch's `LocalResponseNorm` uses the same α/n convention). It has no parameters, so it does not move
any count above. Below the paper resolution a map smaller than a 3×3 pooling window is pooled whole
(`layers.ClampedMaxPool2d`) so the models also build at small test resolutions (≥ 16 px for
`levi_hassner`, ≥ 32 px for the unpadded `levi_hassner_reduced`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from agebench.models.heads import MultiTaskNet
from agebench.models.layers import ClampedMaxPool2d, lrn
from agebench.models.registry import register_model


def levi_hassner_trunk(
    filters: Sequence[int] = (96, 256, 384),
    kernels: Sequence[int] = (7, 5, 3),
    strides: Sequence[int] = (4, 1, 1),
    paddings: Sequence[int] = (0, 2, 1),
    lrn_after: Sequence[bool] = (True, True, False),
    ceil_mode: bool = False,
) -> nn.Sequential:
    """Three conv → ReLU → maxpool 3/2 (→ LRN) stages; the FC layers live in `MultiTaskNet`."""
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch, k, s, p, norm in zip(filters, kernels, strides, paddings, lrn_after, strict=True):
        layers += [
            nn.Conv2d(in_ch, int(out_ch), int(k), stride=int(s), padding=int(p)),
            nn.ReLU(inplace=True),
            ClampedMaxPool2d(3, 2, ceil_mode=ceil_mode),
        ]
        if norm:
            layers.append(lrn())
        in_ch = int(out_ch)
    return nn.Sequential(*layers)


class PerTaskNets(nn.Module):
    """One independent network per task (no shared weights), answering like a multi-task model.

    This is how Levi & Hassner (and seed 000's "Levi_Hassner CNN" row) run age and gender: two models.
    Summing the per-task losses trains each network exactly as if it were trained alone."""

    def __init__(self, nets: Mapping[str, nn.Module]):
        super().__init__()
        self.nets = nn.ModuleDict(dict(nets))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for net in self.nets.values():
            out.update(net(x))
        return out


def _build(trunk_fn, tasks, input_size: int, separate: bool, shared_fc, dropout, head, heads) -> nn.Module:
    if separate:
        return PerTaskNets({
            task.name: MultiTaskNet(trunk_fn(), [task], input_size, shared_fc=shared_fc, dropout=dropout,
                                    head=head, heads=heads)
            for task in tasks
        })
    return MultiTaskNet(trunk_fn(), tasks, input_size, shared_fc=shared_fc, dropout=dropout, head=head, heads=heads)


@register_model
def levi_hassner(tasks, input_size: int = 227, filters: Sequence[int] = (96, 256, 384), ceil_mode: bool = False,
                 separate: bool = False, shared_fc: Sequence[int] = (512, 512), dropout: float = 0.5,
                 head: Mapping | None = None, heads: Mapping | None = None) -> nn.Module:
    """Levi & Hassner 2015 (see module docstring). `filters` scales the three conv widths."""
    return _build(lambda: levi_hassner_trunk(filters, ceil_mode=ceil_mode), tasks, input_size, separate,
                  shared_fc, dropout, head, heads)


@register_model
def levi_hassner_reduced(tasks, input_size: int = 227, filters: Sequence[int] = (24, 64, 96), separate: bool = False,
                         shared_fc: Sequence[int] = (), dropout: float = 0.0,
                         head: Mapping | None = None, heads: Mapping | None = None) -> nn.Module:
    """Seed 001 Table 1: stride-1 'valid' convs 24·7×7 / 64·5×5 / 96·3×3, pool 3/2 + LRN after each,
    then per task FC 128 → dropout ½ → FC 128 → dropout ½ → output (the default `head`)."""
    head = dict(head) if head is not None else {"hidden": [128, 128], "dropout": 0.5}
    trunk = lambda: levi_hassner_trunk(filters, strides=(1, 1, 1), paddings=(0, 0, 0),  # noqa: E731
                                       lrn_after=(True, True, True))
    return _build(trunk, tasks, input_size, separate, shared_fc, dropout, head, heads)
