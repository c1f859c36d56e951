"""Building the objects a run config describes, in one place (train, profile, eval, export, benchmarks).

* `resolve_sizes(cfg)` decides the network input size and the cached image size of a run config: the
  one place that does. `data.image_size` is the network input (conf/data/_base.yaml defaults it to the
  model's paper resolution `model.input_size`; a dataset rendered at a fixed size, such as synthetic,
  or a user override sets it); `model.input_size` is read only when `data.image_size` is unset.
* `build_model(cfg, tasks)` is the network `agebench train` trains for `cfg`: the `model` group's entry
  point with its options, at `resolve_sizes(cfg).image_size`.
* `build_trainer(cfg, **overrides)` is the `pl.Trainer` of a fold, from `cfg.trainer`.

Everything that needs "the model (or trainer) of this config" calls these, so a change to how they are
built reaches train, profile, eval, export and the benchmarks at once.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

from omegaconf import OmegaConf

from agebench.errors import UserError

# keys of the `model` group that are not options of the model's entry point: `name` picks the entry
# point, `input_size` is the paper resolution `data.image_size` defaults to (resolve_sizes reads it)
_NOT_OPTIONS = ("name", "input_size")


@dataclass(frozen=True)
class Sizes:
    image_size: int  # network input: square crops of this many pixels
    load_size: int   # images are decoded (or rendered) and cached at this size; crops come from it


def resolve_sizes(cfg) -> Sizes:
    """The input and cache sizes of run config `cfg` (see the module docstring for the rule)."""
    from agebench.data.loading import load_size

    data = cfg.get("data") or {}
    image = data.get("image_size")
    if image is None:
        model = cfg.get("model") or {}
        image = model.get("input_size")
    if image is None:
        raise UserError("no input size: set data.image_size=<pixels> (or model.input_size in the model config)")
    image = int(image)
    return Sizes(image, load_size({"image_size": image, "load_size": data.get("load_size")}))


def sized_config(cfg, sizes: Sizes | None = None):
    """A copy of `cfg` whose `data.image_size` and `model.input_size` both state the size the network
    is built at, so a run record's config never names a size it did not use (data=synthetic renders
    at 56 px whatever the model's paper resolution). `sizes`: the experiment's, when already resolved."""
    size = (sizes or resolve_sizes(cfg)).image_size
    out = copy.deepcopy(cfg)  # the caller's config (a sweep's, a variant's) stays as composed
    out.data.image_size = size
    if out.get("model") is not None and "input_size" in out.model:
        out.model.input_size = size
    return out


def model_options(model_cfg) -> dict:
    """The `model` group's keyword options for its entry point (plain Python values)."""
    options = OmegaConf.to_container(model_cfg, resolve=True) if OmegaConf.is_config(model_cfg) else dict(model_cfg)
    return {k: v for k, v in options.items() if k not in _NOT_OPTIONS}


def input_size(cfg) -> int:
    """The network input resolution of a run config (square images of this many pixels)."""
    return resolve_sizes(cfg).image_size


def build_model(cfg, tasks, image_size: int | None = None):
    """The untrained network of run config `cfg` for `tasks` (from `agebench.tasks.factory.build_tasks`);
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


def build_trainer(cfg, **overrides):
    """The `pl.Trainer` of a fold, from `cfg.trainer` (eval and benchmarks/ build the same one). Lean by
    design for many small runs: no progress bar, model summary or sanity validation; `overrides` win."""
    import lightning.pytorch as pl

    from agebench.training import signals
    from agebench.training.checkpointing import checkpoint_plugins

    t = cfg.trainer
    check_ddp_launch(t)
    options = dict(
        accelerator=str(t.accelerator), devices=t.devices, strategy=str(t.strategy), precision=str(t.precision),
        max_epochs=int(t.max_epochs), min_epochs=int(t.get("min_epochs") or 1),
        enable_progress_bar=False,  # agebench.training.fold_progress prints epoch lines / draws the bar (trainer.progress_bar)
        enable_model_summary=False, num_sanity_val_steps=0, deterministic=bool(t.deterministic),
        benchmark=cudnn_benchmark(t),
        log_every_n_steps=int(t.log_every_n_steps), gradient_clip_val=t.get("gradient_clip_val"),
        limit_train_batches=t.get("limit_train_batches"), limit_val_batches=t.get("limit_val_batches"),
        limit_test_batches=t.get("limit_test_batches"),
        # DDP: EpochShuffledBatches splits training batches across ranks itself, and every rank evaluates the
        # whole validation/test set (exact metrics, identical on all ranks, so early stopping agrees)
        use_distributed_sampler=False,
    )
    options["plugins"] = checkpoint_plugins(t)  # direct atomic writes; background ones with async_checkpoint
    options["plugins"] += signals.cluster_plugins()  # on Slurm: no mid-epoch hpc checkpoints (agebench/training/signals.py)
    options.update(overrides)
    return pl.Trainer(**options)


def check_ddp_launch(t) -> None:
    """Lightning would re-run `sys.argv` to start the other DDP processes, which a console script plus
    Hydra cannot survive; under torchrun every process starts itself."""
    if str(t.strategy).startswith("ddp") and "LOCAL_RANK" not in os.environ and t.devices not in (1, "1"):
        raise UserError("trainer=ddp needs one process per device: launch with `torchrun --nproc_per_node=<devices> "
                        "-m agebench.cli.main train trainer=ddp …` (or use one device: trainer=gpu)")


def cudnn_benchmark(t) -> bool:
    """cudnn.benchmark (autotuned conv algorithms; fixed batch shapes make it pay off): `trainer.benchmark`
    when set, else on for GPU runs that need not be bit-deterministic."""
    if t.get("benchmark") is not None:
        return bool(t.benchmark)
    return str(t.accelerator) in ("gpu", "cuda") and not bool(t.deterministic)
