"""Shared trunk → (optional shared FC stack) → one MLP head per task.

Both multi-task layouts of the seed papers are configurations of this one class:
- LMTCNN (seed 000): the trunk's FC 512×2 is shared (`shared_fc=[512, 512]`) and each task gets a
  linear softmax layer (`head.hidden=[]`);
- reduced Levi–Hassner multi-task (seed 001): no shared FC (`shared_fc=[]`) and each task gets its
  own FC branch (`head.hidden=[128, 128]`).
Per-task overrides go in `heads.<task>` (same keys as `head`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn


def mlp(in_features: int, hidden: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear → ReLU → Dropout per hidden size; returns the stack and its output width."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, int(size)), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    return nn.Sequential(*layers), width


def output_layer(task, in_features: int) -> nn.Module:
    """The task's last layer: its own when it declares one (CORAL's shared-weight layer), else a Linear."""
    make = getattr(task, "output_layer", None)
    return make(in_features) if make is not None else nn.Linear(in_features, task.num_outputs)


@torch.no_grad()
def feature_dim(trunk: nn.Module, input_size: int) -> int:
    """Width of the trunk's flattened output at this input resolution (FC sizes follow from it)."""
    was_training = trunk.training
    trunk.eval()
    out = trunk(torch.zeros(1, 3, input_size, input_size))
    trunk.train(was_training)
    return int(out.flatten(1).shape[1])


class MultiTaskNet(nn.Module):
    def __init__(
        self,
        trunk: nn.Module,
        tasks,
        input_size: int,
        shared_fc: Sequence[int] = (),
        dropout: float = 0.0,
        head: Mapping | None = None,
        heads: Mapping | None = None,
    ):
        super().__init__()
        self.trunk = trunk
        self.input_size = int(input_size)
        self.shared, width = mlp(feature_dim(trunk, input_size), shared_fc, dropout)
        default_head = dict(head or {})
        overrides = dict(heads or {})
        self.heads = nn.ModuleDict()
        for task in tasks:
            spec = {**default_head, **dict(overrides.get(task.name, {}) or {})}
            body, out_width = mlp(width, spec.get("hidden", ()) or (), float(spec.get("dropout", 0.0)))
            self.heads[task.name] = nn.Sequential(body, output_layer(task, out_width))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.shared(self.trunk(x).flatten(1))
        return {name: head(features) for name, head in self.heads.items()}
