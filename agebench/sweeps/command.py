"""`agebench sweep sweep=<name> [action=run|status|export|check|command|dashboard] [overrides]`.

Runs, inspects or checks the Optuna study (or grid) declared in `sweeps/<name>.yaml`; see
conf/sweep.yaml for the keys and docs/sweeps.md for the guide (workers, storages, Slurm). The
machinery lives in the rest of `agebench.sweeps`; this module is the command and the functions tests
and notebooks call directly (`load_spec`, `run_action`, `check`, `multirun_command`).
"""

from __future__ import annotations

import logging
import shlex

from omegaconf import DictConfig

from agebench.config.validation import check_train_config
from agebench.errors import UserError
from agebench.runtime.threads import share_node
from agebench.sweeps.source import compose_sweep_config, forwarded_overrides, register
from agebench.sweeps.spec import SweepSpec

# The `sweep` config group and the `agebench.pid` resolver must exist before Hydra composes
# conf/sweep.yaml; the CLI imports this module first.
register()

log = logging.getLogger("agebench.sweep")

ACTIONS = ("run", "status", "export", "check", "command", "dashboard", "retry_failed")


def sweep_command(cfg: DictConfig):
    """Hydra task function behind `agebench sweep`."""
    from agebench.config.compose import hydra_task_overrides

    action = str(cfg.get("action", "run"))
    if action not in ACTIONS:
        raise UserError(f"action={action!r}: choose one of {', '.join(ACTIONS)}")
    try:
        check_train_config(cfg)  # every value (train's and sweep's own) valid before the spec is read or a trial runs
    except UserError as err:
        if action == "run":
            from agebench.sweeps import worker_errors

            worker_errors.record_for(cfg.sweep, str(err))  # action=status shows it
        raise
    spec = SweepSpec(cfg.sweep)
    share_node(cfg.sweep.get("workers_per_node"))  # its trials split the node's cores (agebench/runtime/threads.py)
    if action == "dashboard":
        from agebench.sweeps.dashboard import serve_dashboard

        return serve_dashboard(spec, port=int(cfg.get("port", 8080)))
    user = forwarded_overrides(hydra_task_overrides())
    return run_action(spec, action, user)


def run_action(spec: SweepSpec, action: str, user_overrides: list[str], echo=print):
    from agebench.sweeps import driver, status
    from agebench.sweeps.study import open_study

    if action == "run":
        try:
            return driver.run_worker(spec, user_overrides, echo=echo)
        except UserError as err:
            if not getattr(err, "interrupted", False):  # an interrupt is no error to report
                from agebench.sweeps import worker_errors

                worker_errors.record(spec, str(err))  # action=status shows it (agebench/sweeps/worker_errors.py)
            raise
    if action == "retry_failed":
        return driver.retry_failed(spec, user_overrides, echo=echo)
    if action == "check":
        for line in check(spec, user_overrides):
            echo(line)
        return None
    if action == "command":
        echo(multirun_command(spec, user_overrides))
        return None
    study, _ = open_study(spec, create=False)
    if action == "status":
        echo(status.status_text(study, spec))
        return None
    files = status.export(study, spec, spec.export_dir)
    echo(f"exported {len(files)} files to {spec.export_dir}: " + ", ".join(p.name for p in files))
    return files


def load_spec(name: str, overrides: list[str] | None = None) -> tuple[SweepSpec, list[str]]:
    """(spec, forwarded train overrides) of `agebench sweep sweep=<name> <overrides>`, without Hydra's CLI."""
    overrides = list(overrides or [])
    cfg = compose_sweep_config([f"sweep={name}", *overrides])
    return SweepSpec(cfg.sweep), forwarded_overrides(overrides)


def check(spec: SweepSpec, user_overrides: list[str]) -> list[str]:
    """Validate a study without running it: sampler and pruner build, the base config composes with
    every choice (and both ends of every range) of every parameter, and each objective's task is
    one the trial trains. Raises UserError on the first problem; returns a short report."""
    from agebench.config.compose import compose_checked
    from agebench.config.validation import validate_train_config
    from agebench.tasks.factory import build_tasks

    spec.make_sampler()
    spec.make_pruner()
    first = {p.key: p.values_for_check()[0] for p in spec.space.params}
    points = [dict(first)]
    for p in spec.space.params:
        for value in p.values_for_check()[1:]:
            points.append({**first, p.key: value})
    tasks_seen: set[str] = set()
    for values in points:
        overrides = spec.trial_overrides(user_overrides, values, None)
        swept = " ".join(spec.space.overrides(values))
        where = swept or "the base config"
        try:
            cfg = compose_checked(overrides)
        except UserError as err:
            raise UserError(f"sweep {spec.name}: {swept} does not compose: {err}") from None
        if cfg.get("variants"):
            raise UserError(f"sweep {spec.name}: the trial config declares `variants`; sweep over their overrides instead")
        problems = validate_train_config(cfg)
        if problems:
            raise UserError(f"sweep {spec.name}: {where}: " + "; ".join(problems))
        names = [str(n) for n in cfg.tasks.names]
        try:
            build_tasks(cfg.tasks, race_classes=None)  # bins, heads and losses parse
        except UserError as err:
            raise UserError(f"sweep {spec.name}: {where}: {err}") from None
        tasks_seen.update(names)
        for objective in spec.objectives:
            task = objective.metric.split("/", 1)[0]
            if "/" in objective.metric and task not in names:
                raise UserError(f"sweep {spec.name}: objective {objective.metric} needs the {task} task, but "
                                f"{where} trains {names}")
    size = f"{spec.space.grid_size()} grid points" if spec.is_grid else f"{spec.n_trials} trials"
    return [f"sweep {spec.name}: ok — {len(spec.space.params)} swept parameter(s) "
            f"({', '.join(p.key + '=' + p.spelling for p in spec.space.params) or 'none'}), "
            f"{len(points)} configs composed, objectives "
            + ", ".join(f"{o.direction} {o.metric}" for o in spec.objectives) + f", budget {size}"]


def multirun_command(spec: SweepSpec, user_overrides: list[str]) -> str:
    """The same grid as a Hydra multirun of `agebench train` (for its launchers: joblib, submitit)."""
    from agebench.sweeps.source import merge_overrides

    overrides = merge_overrides([f"experiment_name={spec.study_name}"], spec.base, user_overrides, ["variants=null"],
                                spec.space.as_multirun())
    return "agebench train -m " + " ".join(shlex.quote(o) for o in overrides)
