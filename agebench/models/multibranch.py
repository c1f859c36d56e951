"""The ≈99.2K-parameter multi-branch ensemble of seed 004 (§3, Fig. 1), on 64×64 inputs.

What the paper states, and how each piece is built here (every block "cbl" = conv k×k, no bias → BN →
LeakyReLU(0.1)):

* **Three parallel stems** of conv + BN + LeakyReLU, "each describing the image differently": one cbl
  each with kernels 3×3, 5×5 and 7×7 (`stem_kernels`), `stem_channels`=12 filters each; their maps are
  concatenated (36 channels) and max-pooled 2×2 → 32×32.
* **Gender branch**: 2 cbl 3×3 (`gender_channels`=32), each followed by maxpool 2 → 8×8×32, and a
  **virtual gender output** (global average pool → linear) trained with its own small loss weight.
* **Age branch**, deeper "since age estimation is harder": 4 cbl 3×3 (`age_channels`=32), pooling after
  the 2nd and 4th → 8×8×32, and a **virtual age output** the same way.
* **Top**: the two branch maps are concatenated (64 channels) and combined by "a few simpler
  convolution layers, dropout and fully connected layers": cbl 3×3 → maxpool 2 → cbl 3×3
  (`top_channels`=28) → global average pool → dropout → FC `fc`=32 → LeakyReLU → one linear output per
  task — the **final outputs**.
* **Low-level branch** predicting both tasks "from low-level features with only 6 convolution layers
  followed by fully connected layers": from the stem maps, 6 cbl 3×3 (`lowlevel_channels`=14) with a
  maxpool 2 after every second one (32 → 4), global average pool → FC 14 → LeakyReLU → one output
  layer per task.
* **Ensemble** of the three output pairs (virtual, final, low-level) = the main output of each task:
  the mean for regression/mse outputs, the log of the mean probability for softmax heads, the logit of
  the mean probability for sigmoid outputs (a BCE logit, the rank logits of orcnn/coral/corn) — so every
  ensemble output is still a raw output the task's loss, metrics and `predict` understand. Each member's
  output layer is the one its head's method needs (`HeadSpec.output_layer`): a Linear, or for CORAL one
  shared weight vector + K − 1 biases.

The paper gives none of the widths, kernels or pool positions; the values above are our choice, made
to land on the stated budget: with an L1 age regressor and a BCE gender logit (the paper's losses,
`tasks.age.head=regression tasks.age.loss=l1 tasks.gender.loss=bce`) the model has 99,164 parameters
(seed 004 Tables 1–3, 5: "99.2K"). Other heads change it by a few hundred.

Outputs and losses. `forward` returns, per task `t`, the ensemble under `"t"` and the three members
under `"t:virtual"`, `"t:final"`, `"t:lowlevel"`; `aux_loss_weights` maps those keys to weights, which
agebench's LightningModule adds as `w · task.loss(output["t:…"], target)` to the main (ensemble) loss.
§4.2 puts "a small weight" on the two virtual outputs, "slightly larger" on the low-level ones and the
most on the final ones, without numbers: defaults `aux_weights={virtual: 0.2, lowlevel: 0.3, final: 1.0}`.
Task routing: the virtual output of `age` comes from the age branch; every other task (gender, race) is
an "easier" categorical attribute and takes its virtual output from the gender branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from agebench.models.heads import HeadSpec, head_specs
from agebench.models.registry import register_model

MEMBERS = ("virtual", "final", "lowlevel")
DEFAULT_AUX_WEIGHTS = {"virtual": 0.2, "lowlevel": 0.3, "final": 1.0}


def cbl(in_ch: int, out_ch: int, kernel: int = 3, slope: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(slope, inplace=True),
    )


def conv_stack(in_ch: int, width: int, n: int, pool_every: int, slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(cbl(in_ch if i == 0 else width, width, 3, slope))
        if (i + 1) % pool_every == 0:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def ensemble(outputs: Sequence[torch.Tensor], spec: HeadSpec) -> torch.Tensor:
    """Average ensemble members in probability space where the head is probabilistic."""
    stacked = torch.stack(list(outputs))
    if spec.outputs == "softmax":
        return stacked.softmax(-1).mean(0).clamp_min(1e-8).log()  # log of the mean probability
    if spec.outputs == "sigmoid":
        p = torch.sigmoid(stacked).mean(0).clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p)  # logit of the mean probability (per binary output)
    return stacked.mean(0)  # regression (l1/l2) or mse-regressed labels


class MultiBranchNet(nn.Module):
    def __init__(self, tasks, input_size: int = 64, stem_kernels: Sequence[int] = (3, 5, 7), stem_channels: int = 12,
                 gender_channels: int = 32, gender_convs: int = 2, age_channels: int = 32, age_convs: int = 4,
                 top_channels: int = 28, lowlevel_channels: int = 14, lowlevel_convs: int = 6, fc: int = 32,
                 dropout: float = 0.3, negative_slope: float = 0.1, aux_weights: Mapping | None = None):
        super().__init__()
        tasks = head_specs(tasks)
        self.tasks = {t.name: t for t in tasks}
        self.input_size = int(input_size)
        slope = float(negative_slope)
        self.stems = nn.ModuleList(cbl(3, int(stem_channels), int(k), slope) for k in stem_kernels)
        stem_out = int(stem_channels) * len(stem_kernels)
        self.stem_pool = nn.MaxPool2d(2)
        # both branches pool twice (32 → 8); the age branch is deeper
        self.gender_branch = conv_stack(stem_out, int(gender_channels), int(gender_convs), max(1, int(gender_convs) // 2), slope)
        self.age_branch = conv_stack(stem_out, int(age_channels), int(age_convs), max(1, int(age_convs) // 2), slope)
        self.top = nn.Sequential(
            cbl(int(gender_channels) + int(age_channels), int(top_channels), 3, slope),
            nn.MaxPool2d(2),
            cbl(int(top_channels), int(top_channels), 3, slope),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(float(dropout)),
            nn.Linear(int(top_channels), int(fc)), nn.LeakyReLU(slope, inplace=True),
        )
        self.lowlevel = nn.Sequential(
            conv_stack(stem_out, int(lowlevel_channels), int(lowlevel_convs), 2, slope),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(int(lowlevel_channels), int(lowlevel_channels)), nn.LeakyReLU(slope, inplace=True),
        )
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        # every member ends in the layer its head's method needs (a Linear, or CORAL's shared-weight layer)
        self.virtual_heads = nn.ModuleDict({
            t.name: t.output_layer(int(age_channels) if t.name == "age" else int(gender_channels)) for t in tasks
        })
        self.final_heads = nn.ModuleDict({t.name: t.output_layer(int(fc)) for t in tasks})
        self.lowlevel_heads = nn.ModuleDict({t.name: t.output_layer(int(lowlevel_channels)) for t in tasks})
        weights = {**DEFAULT_AUX_WEIGHTS, **dict(aux_weights or {})}
        unknown = set(weights) - set(MEMBERS)
        if unknown:
            raise ValueError(f"aux_weights takes {list(MEMBERS)}, not {sorted(unknown)}")
        self.aux_loss_weights = {f"{t.name}:{m}": float(weights[m]) for t in tasks for m in MEMBERS}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stem = self.stem_pool(torch.cat([stem(x) for stem in self.stems], dim=1))
        gender_map, age_map = self.gender_branch(stem), self.age_branch(stem)
        features = {
            "virtual": {"age": self.gap(age_map), "other": self.gap(gender_map)},
            "final": self.top(torch.cat([gender_map, age_map], dim=1)),
            "lowlevel": self.lowlevel(stem),
        }
        out: dict[str, torch.Tensor] = {}
        for name, task in self.tasks.items():
            members = {
                "virtual": self.virtual_heads[name](features["virtual"]["age" if name == "age" else "other"]),
                "final": self.final_heads[name](features["final"]),
                "lowlevel": self.lowlevel_heads[name](features["lowlevel"]),
            }
            out[name] = ensemble(list(members.values()), task)
            for member, value in members.items():
                out[f"{name}:{member}"] = value
        return out


@register_model
def multibranch(tasks, input_size: int = 64, **options) -> MultiBranchNet:
    """Seed 004's multi-branch ensemble (see module docstring for every option and its default)."""
    return MultiBranchNet(tasks, input_size, **options)
