"""The lightweight joint age/gender model of seed 003 (§3.1, Fig. 1), on 64×64 inputs.

    4 × [conv 3×3 (pad 1) → BN → ReLU → maxpool 2×2]   filters 64 / 128 / 256 / 512   64 → 32 → 16 → 8 → 4
    FC 512 → ReLU → dropout ½ → FC 512 → ReLU → dropout ½        (shared)
    one linear output per task

Parameter budget (§3.1: "only 6 × 10⁶ parameters"): convs 1,792 + 73,856 + 295,168 + 1,180,160 (+ BN
1,920) ≈ 1.55 M, FC 4·4·512 → 512 = 4.19 M, FC 512 → 512 = 0.26 M: ≈ 6.0 M in all. 'Same' padding is
what makes that budget come out (unpadded convs leave a 2×2 map and ≈ 2.9 M parameters). The pooling
window is unstated; 2×2/2 halves the map per stage, the usual choice for 3×3-conv stacks.

Joint regression (§3.2, Eq. 1–2): the network regresses one number per task with an L2 loss. That is a
task configuration, not a different network:
    tasks=age_gender tasks.age.head=regression tasks.age.loss=l2 tasks.gender.loss=mse
(each task then has one output, so the "2-dimension vector" is the concatenation of the two heads).
The classification-head variant is the same network with the default task options (softmax heads).

Table 3 ablation (`num_convs` 3…6): "single-3conv" keeps the first three stages (64/128/256); the
5- and 6-conv models add one / two "convolution + ReLU" layers with 512 filters of 512 × 3 × 3 after
the fourth stage. The paper names only conv + ReLU for them, so they have no BN and no pooling (the
map stays 4×4 and the FC layers keep their size); `extra_bn=true` adds BN if training needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn as nn

from agebench.models.heads import MultiTaskNet
from agebench.models.registry import register_model


def conv_stage(in_ch: int, out_ch: int) -> nn.Sequential:
    """Seed 003's "convolution operation": Conv → Spatial BN → ReLU → MaxPool."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
    )


def lightweight_trunk(num_convs: int = 4, filters: Sequence[int] = (64, 128, 256, 512), extra_filters: int = 512,
                      extra_bn: bool = False) -> nn.Sequential:
    num_convs = int(num_convs)
    if not 1 <= num_convs <= len(filters) + 8:
        raise ValueError(f"num_convs={num_convs}; seed 003 studies 3 to 6")
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch in list(filters)[:num_convs]:
        layers.append(conv_stage(in_ch, int(out_ch)))
        in_ch = int(out_ch)
    for _ in range(max(0, num_convs - len(filters))):  # Table 3's single-5conv / single-6conv
        extra: list[nn.Module] = [nn.Conv2d(in_ch, int(extra_filters), 3, padding=1)]
        if extra_bn:
            extra.append(nn.BatchNorm2d(int(extra_filters)))
        extra.append(nn.ReLU(inplace=True))
        layers.append(nn.Sequential(*extra))
        in_ch = int(extra_filters)
    return nn.Sequential(*layers)


@register_model
def lightweight_joint(tasks, input_size: int = 64, num_convs: int = 4, filters: Sequence[int] = (64, 128, 256, 512),
                      extra_filters: int = 512, extra_bn: bool = False, shared_fc: Sequence[int] = (512, 512),
                      dropout: float = 0.5, head: Mapping | None = None, heads: Mapping | None = None) -> MultiTaskNet:
    """Seed 003's model; `num_convs` 3–6 for the Table 3 ablation (see module docstring)."""
    trunk = lightweight_trunk(num_convs, filters, extra_filters, extra_bn)
    return MultiTaskNet(trunk, tasks, input_size, shared_fc=shared_fc, dropout=dropout, head=head, heads=heads)
