"""Any timm backbone as the shared trunk (seeds 001 and 002), registered as the model `timm`.

    timm backbone (classifier removed) → [flatten] → shared FC stack → one MLP head per task

Options (conf/model/timm.yaml):
* `backbone` — any `timm.list_models()` name (efficientnet_b0…b7, xception41/65/71, legacy_xception,
  mobilenetv3_small_100, resnet50, …). An unknown name is a one-line user error.
* `pretrained` — timm's ImageNet weights (needs network, or a filled HF/torch cache).
* `checkpoint` — a local weights file for the backbone (torch `.pth/.pt/.bin` or `.safetensors`, a raw
  state dict or one wrapped as {"state_dict": …} / {"model": …}; keys may carry a `module.`, `trunk.`,
  `model.trunk.` or `backbone.` prefix, so an agebench checkpoint's trunk also loads). Classifier weights
  in the file are ignored. A missing file, an unreadable one, or keys/shapes that do not fit the
  backbone are one-line user errors. Overrides `pretrained`.
* `global_pool` — timm's pooling ('avg' default). `''` keeps the feature map and the FC input becomes
  C·H·W, which is what seed 001 does (Keras `include_top=False` + Flatten).
* Freezing, as seed 001 does for Xception ("the last 10 layers remain trainable"):
  - `train_last_n=N`: only the last N parameterised layers (modules owning weights directly — conv,
    BN, linear) of the backbone train, counted in *execution order*, which is how Keras counts layers.
    Keras also counts parameter-free layers (activations, add, pooling) and treats a separable conv as
    one layer; seed 001's "last 10" Keras layers of Xception are the 8 weighted torch modules
    block12.skip, block12.skipbn, conv3.conv1, conv3.pointwise, bn3, conv4.conv1, conv4.pointwise, bn4
    of timm's `legacy_xception` (the Keras port): `train_last_n=8` leaves exactly the 5,496,320
    backbone parameters trainable that seed 001 Table 2 implies (31,220,873 trainable − 25,724,553 in
    the two FC branches), see conf/model/xception_transfer.yaml.
  - `freeze_until=<name>`: freeze every backbone parameter registered before the first one whose
    module path is `<name>` or starts with `<name>.` (e.g. `blocks.5`, `conv_head`); the rest trains.
  Both may be given; a parameter trains if either rule lets it. Task heads always train. Frozen batch
  norm layers stay in eval mode (running statistics fixed), as Keras does for non-trainable BN.

Inputs are expected normalised with the ImageNet mean/std (agebench's augmentation does that), the
statistics almost every timm checkpoint was trained with.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn

from agebench.errors import UserError
from agebench.models.heads import MultiTaskNet
from agebench.models.registry import register_model

_PREFIXES = ("", "module.", "trunk.", "model.trunk.", "model.model.trunk.", "backbone.", "model.")
_LIST_HINT = "list names with: python -c \"import timm; print(timm.list_models('*effic*'))\""


def check_backbone_name(name: str) -> None:
    import timm as timm_lib

    if timm_lib.is_model(name):
        return
    close = difflib.get_close_matches(name, timm_lib.list_models(), n=3, cutoff=0.6)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise UserError(f"unknown timm backbone {name!r}{hint}; {_LIST_HINT}")


def create_backbone(name: str, pretrained: bool = False, global_pool: str | None = "avg", drop_rate: float = 0.0) -> nn.Module:
    """The timm model without its classifier (num_classes=0)."""
    import timm as timm_lib

    check_backbone_name(name)
    kwargs: dict = {"num_classes": 0}
    if global_pool is not None:  # None: the model's own default pooling
        kwargs["global_pool"] = str(global_pool)
    if drop_rate:  # only when asked: a few timm families take no drop_rate
        kwargs["drop_rate"] = float(drop_rate)
    try:
        return timm_lib.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as err:  # noqa: BLE001  (download failures come in many types)
        if not pretrained:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not get pretrained weights for {name!r} ({first}); without network pass "
                        f"model.checkpoint=<local file> and model.pretrained=false") from None


def _classifier_keys(backbone: nn.Module) -> tuple[str, ...]:
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    from timm.models import load_state_dict as timm_load_state_dict

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"model.checkpoint={str(path)!r}: no such file; give a local weights file (.pth/.safetensors)")
    try:
        # timm unwraps {"state_dict"/"model"/"state_dict_ema": …}, strips "module." and reads safetensors
        state = timm_load_state_dict(str(path), weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"model.checkpoint={str(path)!r} is not a readable weights file ({type(err).__name__}: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a Lightning checkpoint
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_backbone_checkpoint(backbone: nn.Module, path: str | Path, name: str = "backbone") -> None:
    """Load a local weights file into `backbone`; anything that does not fit is a one-line UserError."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    # pick the key prefix under which the file's tensors line up with the backbone's
    best = max(_PREFIXES, key=lambda p: sum(1 for k in state if k.startswith(p) and k[len(p):] in own))
    state = {k[len(best):]: v for k, v in state.items() if k.startswith(best)}
    heads = _classifier_keys(backbone)
    state = {k: v for k, v in state.items() if not any(k == h or k.startswith(h + ".") for h in heads)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with another shape (e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)})")
        raise UserError(f"model.checkpoint={str(path)!r} does not fit timm backbone {name!r}: {'; '.join(parts)}; "
                        f"save it from timm.create_model({name!r}).state_dict() or pick the matching model.backbone")
    backbone.load_state_dict(state, strict=True)


def weighted_leaves_in_execution_order(module: nn.Module, input_size: int) -> list[str]:
    """Names of the modules that own parameters directly ("layers"), in the order a forward pass runs them."""
    order: list[str] = []
    hooks = []
    for name, sub in module.named_modules():
        if any(True for _ in sub.parameters(recurse=False)):  # owns weights (BatchNormAct2d has children too)
            hooks.append(sub.register_forward_pre_hook(lambda _m, _inp, name=name: order.append(name)))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, 3, input_size, input_size))
    finally:
        module.train(was_training)
        for h in hooks:
            h.remove()
    seen: dict[str, None] = {}
    for n in order:  # a module called twice counts at its first use
        seen.setdefault(n, None)
    return list(seen)


def select_trainable(backbone: nn.Module, input_size: int, freeze_until: str | None = None,
                     train_last_n: int | None = None) -> set[str]:
    """Backbone parameter names left trainable by `freeze_until` / `train_last_n` (see module docstring)."""
    params = [n for n, _ in backbone.named_parameters()]
    keep: set[str] = set()
    if freeze_until:
        prefix = str(freeze_until)
        start = next((i for i, n in enumerate(params) if n == prefix or n.startswith(prefix + ".")), None)
        if start is None:
            tops = ", ".join(n for n, _ in backbone.named_children())
            raise UserError(f"model.freeze_until={prefix!r} names no module of this backbone; use a module path "
                            f"such as one of: {tops}")
        keep.update(params[start:])
    if train_last_n is not None:
        n = int(train_last_n)
        if n < 0:
            raise UserError(f"model.train_last_n={n}; give the number of last layers to train (>= 0)")
        leaves = weighted_leaves_in_execution_order(backbone, input_size)
        chosen = leaves[len(leaves) - n:] if n else []
        for leaf in chosen:
            keep.update(f"{leaf}.{p}" if leaf else p for p, _ in backbone.get_submodule(leaf).named_parameters(recurse=False))
    return keep


class TimmNet(MultiTaskNet):
    """`MultiTaskNet` over a timm trunk that keeps frozen BN layers in eval mode during training."""

    def __init__(self, *args, frozen_bn: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self._frozen_bn = tuple(frozen_bn)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self._frozen_bn:
            self.trunk.get_submodule(name).eval()
        return self


@register_model
def timm(tasks, input_size: int = 224, backbone: str = "efficientnet_b0", pretrained: bool = False,
         checkpoint: str | None = None, freeze_until: str | None = None, train_last_n: int | None = None,
         global_pool: str | None = "avg", drop_rate: float = 0.0, shared_fc: Sequence[int] = (), dropout: float = 0.0,
         head: Mapping | None = None, heads: Mapping | None = None) -> TimmNet:
    """A timm backbone as shared trunk + per-task MLP heads (see module docstring)."""
    name = str(backbone)
    trunk = create_backbone(name, pretrained=bool(pretrained) and not checkpoint, global_pool=global_pool,
                            drop_rate=float(drop_rate))
    if checkpoint:
        load_backbone_checkpoint(trunk, checkpoint, name)
    frozen_bn: list[str] = []
    if freeze_until or train_last_n is not None:
        keep = select_trainable(trunk, int(input_size), freeze_until, train_last_n)
        for pname, param in trunk.named_parameters():
            param.requires_grad_(pname in keep)
        for mname, module in trunk.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in module.parameters(recurse=False)):
                frozen_bn.append(mname)
    return TimmNet(trunk, tasks, input_size, shared_fc=shared_fc, dropout=dropout, head=head, heads=heads,
                   frozen_bn=frozen_bn)
