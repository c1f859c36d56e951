"""Shared trunk → (optional shared FC stack) → one MLP head per task.

Both multi-task layouts of the seed papers are configurations of this one class:
- LMTCNN (seed 000): the trunk's FC 512×2 is shared (`shared_fc=[512, 512]`) and each task gets a
  linear softmax layer (`head.hidden=[]`);
- reduced Levi–Hassner multi-task (seed 001): no shared FC (`shared_fc=[]`) and each task gets its
  own FC branch (`head.hidden=[128, 128]`).
Per-task overrides go in `heads.<task>` (same keys as `head`).

What a model knows of a task is its `HeadSpec`: the name, the number of outputs, how those outputs
read (for ensembling) and, where the method needs one, its own last layer (CORAL's one shared weight
vector + K − 1 biases). The caller passes specs, or objects with a `head_spec()` method (the tasks of
`agebench.tasks.base` have one); `head_specs` turns either into specs, so no model imports the task code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

OUTPUT_KINDS = ("softmax", "sigmoid", "value")


@dataclass(frozen=True)
class HeadSpec:
    """One task's head as a model sees it.

    `outputs` says how the raw outputs read, so a model can average ensemble members in the right space:
    `softmax` (logits of one softmax), `sigmoid` (independent logits: a binary task's one logit, the K − 1
    rank logits of an ordinal head) or `value` (regressed numbers). `layer(in_features)` builds the
    method's own last layer; None means a plain Linear(in_features, num_outputs)."""

    name: str
    num_outputs: int
    outputs: str = "softmax"
    layer: Callable[[int], nn.Module] | None = None

    def __post_init__(self):
        if self.outputs not in OUTPUT_KINDS:
            raise ValueError(f"HeadSpec.outputs={self.outputs!r}; use one of {OUTPUT_KINDS}")

    def output_layer(self, in_features: int) -> nn.Module:
        return self.layer(in_features) if self.layer is not None else nn.Linear(in_features, self.num_outputs)


def head_specs(tasks: Iterable) -> list[HeadSpec]:
    """HeadSpecs from specs or from objects with a `head_spec()` method (e.g. agebench.tasks.base' tasks)."""
    specs = []
    for t in tasks:
        spec = t if isinstance(t, HeadSpec) else t.head_spec()
        if not isinstance(spec, HeadSpec):
            raise TypeError(f"{t!r}.head_spec() returned {type(spec).__name__}, not a HeadSpec")
        specs.append(spec)
    return specs


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
        for task in head_specs(tasks):
            spec = {**default_head, **dict(overrides.get(task.name, {}) or {})}
            body, out_width = mlp(width, spec.get("hidden", ()) or (), float(spec.get("dropout", 0.0)))
            self.heads[task.name] = nn.Sequential(body, task.output_layer(out_width))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.shared(self.trunk(x).flatten(1))
        return {name: head(features) for name, head in self.heads.items()}
