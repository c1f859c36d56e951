"""Optimizers and learning-rate schedulers from config: `optim.name` and `optim.scheduler` pick an entry
of `optim.optimizers` / `optim.schedulers` (conf/train.yaml), each a Hydra `_target_` spec. A user adds
an optimizer or scheduler by adding an entry there (or with `+optim.optimizers.<name>={_target_: ...}`);
the names stay the run record's stable description (`config.optim.name`).

An optimizer entry is called with the parameters first; a scheduler entry with the optimizer first,
plus `max_epochs` when its target takes that argument (the run's length is known only at build time:
benchmarks train fewer epochs than their config's trainer.max_epochs).
"""

from __future__ import annotations

import inspect

from omegaconf import OmegaConf

from agebench.config.locate import locate
from agebench.errors import UserError


def _spec(catalogue, key: str, where: str, name: str) -> dict | None:
    """The entry `name` of the catalogue at config path `where`, chosen by config key `key`."""
    entries = OmegaConf.to_container(catalogue, resolve=True) if OmegaConf.is_config(catalogue) else dict(catalogue or {})
    if name not in entries:
        raise UserError(f"{key}={name!r}; use {', '.join(sorted(entries)) or 'an entry'} of {where} "
                        f"(or add one there with its _target_)")
    return entries[name]


def _call(spec: dict, first, **context):
    """`spec`'s `_target_` called with `first` and the spec's other keys, plus those `context` keys
    the target accepts."""
    options = {k: v for k, v in spec.items() if not k.startswith("_")}
    target = locate(str(spec["_target_"]), "an optim.optimizers/optim.schedulers entry", "torch.optim.NAdam")
    try:
        accepted = inspect.signature(target).parameters
    except (TypeError, ValueError):
        accepted = {}
    options.update({k: v for k, v in context.items() if k in accepted and k not in options})
    return target(first, **options)


def build_optimizer(optim_cfg, parameters):
    """The optimizer `optim.name` names, over `parameters` (a list: it is iterated more than once)."""
    name = str(optim_cfg.get("name", "adamw"))
    spec = dict(_spec(optim_cfg.get("optimizers"), "optim.name", "optim.optimizers", name))
    if spec.get("fused") == "auto":
        spec.pop("fused")
        spec.update(_fused_step(parameters))
    return _call(spec, parameters)


def build_scheduler(optim_cfg, optimizer, max_epochs: int):
    """The scheduler `optim.scheduler` names for `optimizer`, or None (`none`: constant learning rate)."""
    name = str(optim_cfg.get("scheduler", "cosine"))
    spec = _spec(optim_cfg.get("schedulers"), "optim.scheduler", "optim.schedulers", name)
    if spec is None:
        return None
    return _call(spec, optimizer, max_epochs=int(max_epochs))


def _fused_step(parameters) -> dict:
    """`fused: auto`: the fused (one-pass) step where PyTorch has it for these parameters (CPU and CUDA):
    for AdamW on CPU about 8× cheaper than the default per-tensor step, which is ~10% of an LMTCNN training
    step. Same update up to float rounding; `optim.fused=false` turns it off."""
    ok = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    return {"fused": True} if ok else {}


def cosine_annealing(optimizer, max_epochs: int, **options):
    """Cosine decay of the learning rate over the whole run (one scheduler step per epoch)."""
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(max_epochs)), **options)


def step_decay(optimizer, max_epochs: int, steps: int = 3, gamma: float = 0.1):
    """The learning rate times `gamma` after every `max_epochs // steps` epochs (seed 000's step schedule)."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, int(max_epochs) // int(steps)), gamma=float(gamma))
