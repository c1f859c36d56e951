"""Pre-flight checks: what a run or a sweep needs, checked before any fold trains or any trial starts.

A missing GPU, a launcher whose backend is not installed, a dataset that does not load or lacks a
task's labels, a sweep point that does not compose: each would otherwise fail every fold (writing
"failed" records) or every trial (burning the study's failure budget) one by one. Each check raises a
one-line UserError naming the problem and the fix.

* `check_launcher(overrides)` — the CLI calls it before Hydra starts a multirun: `hydra/launcher=...`'s
  backend exists (Slurm's `sbatch`/`srun` on PATH; joblib and the submitit plugin importable).
* `check_device(trainer_cfg)` — `agebench train` calls it before loading data: the accelerator the
  trainer asks for exists here, with enough devices.
* `check_run(cfg)` — one run's config: its values (agebench.config.validation), its device, and that its
  dataset is where data.root says and its metadata parses into records with the labels of its tasks.
* `check_sweep(spec, overrides)` — a sweep worker calls it before opening the study: the base config
  passes `check_run`, a sample of the space composes with a device and data that exist, so a sweep
  whose pre-flight fails runs no trial.
"""

from __future__ import annotations

import importlib.util
import shutil

from agebench.errors import UserError

_DATA_OK: set[str] = set()  # data + tasks configs that passed check_data in this process
SLURM_LAUNCHERS = ("slurm_gpu", "slurm_cpu", "submitit_slurm")


def launcher_choice(overrides: list[str]) -> str | None:
    """The `hydra/launcher=<name>` of a command line (None when it picks none)."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key == "hydra/launcher" and value:
            return value.strip()
    return None


def check_launcher(overrides: list[str]) -> None:
    """The launcher's backend is here (see module docstring); a no-op without hydra/launcher=...."""
    name = launcher_choice(overrides)
    if name is None or name == "basic":
        return
    if name in SLURM_LAUNCHERS or name.startswith("slurm"):
        if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
            raise UserError(f"hydra/launcher={name} needs the submitit launcher plugin; "
                            f"pip install hydra-submitit-launcher")
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise UserError(f"hydra/launcher={name} submits Slurm jobs, but {' and '.join(f'`{t}`' for t in missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not on PATH here; run it on a Slurm login node, "
                            f"or start local workers with hydra/launcher=joblib")
        return
    if name == "joblib":
        for module, package in (("joblib", "joblib"), ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher")):
            if importlib.util.find_spec(module) is None:
                raise UserError(f"hydra/launcher=joblib needs {package}; pip install {package} (or drop hydra/launcher=joblib)")
        return
    if name == "submitit_local" and importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        raise UserError("hydra/launcher=submitit_local needs the submitit launcher plugin; pip install hydra-submitit-launcher")


def check_device(trainer_cfg) -> None:
    """The accelerator `trainer_cfg` asks for exists on this machine, with as many devices as it asks for."""
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "torch sees no CUDA GPU on this machine")
            raise UserError(f"trainer.accelerator={accelerator} asks for a GPU, but {why}; use trainer=cpu "
                            f"(or run on a GPU machine)")
        wanted, have = trainer_cfg.get("devices", 1), torch.cuda.device_count()
        if isinstance(wanted, int) and wanted > have:
            raise UserError(f"trainer.devices={wanted} asks for {wanted} GPUs, but this machine has {have}; "
                            f"use trainer.devices={have} (or -1 for all)")
    elif accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("trainer.accelerator=mps asks for Apple's Metal GPU, which is not available here; use trainer=cpu")


def check_run(cfg, load_data: bool = True) -> None:
    """Everything one run needs before its first fold: valid values, its device, its dataset and labels."""
    from agebench.config.validation import check_train_config

    check_train_config(cfg)
    check_device(cfg.trainer)
    if load_data:
        check_data(cfg)


def check_data(cfg) -> None:
    """The run's dataset is where data.root says and its metadata parses into records that carry a label
    for each of its tasks. Images are not decoded here (that is the run's first step, and a bad image
    is skipped, not fatal): the check stays seconds long even for a dataset not cached yet."""
    from omegaconf import OmegaConf

    from agebench.data.filtering import has_label
    from agebench.data.sources import get_source

    key = OmegaConf.to_yaml(cfg.data, resolve=True) + ",".join(map(str, cfg.tasks.names))
    if key in _DATA_OK:  # this process checked it already (a sweep worker restarting, a test suite)
        return
    source = get_source(str(cfg.data.name))
    if source.name != "synthetic":
        source.check_root(cfg.data)
    parsed = source.parse(cfg.data)
    if parsed.records.empty:
        raise UserError(f"data={source.name}: no usable records under data.root={cfg.data.get('root')}; run "
                        f"`agebench data summary data={source.name} data.root=...` to see why")
    # by task name, the rule training filters rows by (a bad bin scheme is the task's problem, not the data's)
    missing = [str(n) for n in cfg.tasks.names if not has_label(parsed.records, str(n)).any()]
    if missing:
        raise UserError(f"data={source.name} has no {' or '.join(missing)} labels; choose tasks it carries "
                        f"(drop {'/'.join(missing)} from tasks=)")
    _DATA_OK.add(key)


def sample_points(spec) -> list[dict]:
    """The space's first point, then each parameter's other check values (every choice, both ends of a
    range) with the rest at their first: what `agebench sweep action=check` composes too."""
    first = {p.key: p.values_for_check()[0] for p in spec.space.params}
    points = [dict(first)]
    for p in spec.space.params:
        points += [{**first, p.key: value} for value in p.values_for_check()[1:]]
    return points


def check_sweep(spec, user_overrides: list[str]) -> None:
    """A sweep's pre-flight: the base config (sweep.base + your overrides, nothing sampled) passes
    `check_run`; each sampled point composes, and its device and dataset exist and carry its tasks'
    labels. What fails for every trial fails here, once, and the worker runs no trial. A value that only
    some points have wrong (a bin scheme that does not parse, say) is left to fail those trials alone,
    as `agebench sweep action=check` would report it."""
    from agebench.config.compose import compose_checked

    def checked(values: dict, check) -> None:
        where = " ".join(spec.space.overrides(values)) or "the base config"
        try:
            check(compose_checked(spec.trial_overrides(user_overrides, values, None)))
        except UserError as err:
            raise UserError(f"sweep {spec.name} pre-flight failed, no trial ran: {where}: {err}") from None

    checked({}, check_run)
    for values in sample_points(spec):
        checked(values, lambda cfg: (check_device(cfg.trainer), check_data(cfg)))
