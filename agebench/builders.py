"""Building the objects a run config describes, in one place (train, profile, eval, export, benchmarks).

`build_model(cfg, tasks)` is the network `agebench train` trains for `cfg`: the `model` group's entry
point with its options, at the network input size `cfg.data.image_size`. Everything that needs "the
model of this config" (profiling it, rebuilding it from a run's saved config.yaml to evaluate or
export a checkpoint) calls this, so a change to how models are built reaches all of them at once.
"""

from __future__ import annotations

from omegaconf import OmegaConf

# keys of the `model` group that are not options of the model's entry point: `name` picks the entry
# point, `input_size` is the paper resolution that `data.image_size` defaults to (the data side owns it)
_NOT_OPTIONS = ("name", "input_size")


def model_options(model_cfg) -> dict:
    """The `model` group's keyword options for its entry point (plain Python values)."""
    options = OmegaConf.to_container(model_cfg, resolve=True) if OmegaConf.is_config(model_cfg) else dict(model_cfg)
    return {k: v for k, v in options.items() if k not in _NOT_OPTIONS}


def input_size(cfg) -> int:
    """The network input resolution of a run config (square images of this many pixels)."""
    return int(cfg.data.image_size)


def build_model(cfg, tasks, image_size: int | None = None):
    """The untrained network of run config `cfg` for `tasks` (from `agebench.tasks.build_tasks`);
    `image_size` overrides the config's input size (benchmarks sweep it)."""
    from agebench.models import create_model

    size = int(image_size) if image_size is not None else input_size(cfg)
    return create_model(str(cfg.model.name), tasks, input_size=size, **model_options(cfg.model))


def build_trained_model(cfg, tasks):
    """The network of a run config whose weights will come from its checkpoint (eval, export): built
    without downloading or reading initial weights (`model.pretrained`, `model.checkpoint`), which the
    checkpoint replaces anyway and which may not be reachable where the model is evaluated."""
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    for key, off in (("pretrained", False), ("checkpoint", None)):
        if key in model_cfg:
            model_cfg[key] = off
    return build_model(OmegaConf.create({"model": model_cfg, "data": {"image_size": input_size(cfg)}}), tasks)
