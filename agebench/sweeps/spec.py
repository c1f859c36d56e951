"""A study yaml, read and checked: objectives, search space, sampler, pruner, budget and storage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agebench.config.compose import quote
from agebench.errors import UserError
from agebench.results import metrics as metric_registry
from agebench.sweeps.source import merge_overrides
from agebench.sweeps.space import SearchSpace, parse_space

DIRECTIONS = {"maximize": "maximize", "max": "maximize", "minimize": "minimize", "min": "minimize"}
# Run-record fields an objective may name (the same for every fold of a trial but the train time).
RECORD_OBJECTIVES = ("latency_ms", "gmacs", "params", "size_mb", "train_seconds", "epochs")
TASK_METRIC = re.compile(r"^(age|gender|race)/[A-Za-z0-9_]+$")

SAMPLERS = {
    "tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler", "nsgaii": "NSGAIISampler",
    "nsgaiii": "NSGAIIISampler", "gp": "GPSampler", "qmc": "QMCSampler", "cmaes": "CmaEsSampler",
    "bruteforce": "BruteForceSampler",
}
PRUNERS = {
    "none": "NopPruner", "nop": "NopPruner", "median": "MedianPruner", "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner", "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner", "wilcoxon": "WilcoxonPruner",
}


@dataclass
class Objective:
    metric: str
    direction: str  # maximize | minimize

    def fold_value(self, record: dict) -> float | None:
        """This objective on one fold's run record (None when the record does not carry it)."""
        name = self.metric.removeprefix("metrics.")
        value = (record.get("metrics") or {}).get(name)
        if value is None and name in RECORD_OBJECTIVES:
            value = record.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class SweepSpec:
    """`cfg.sweep` of a composed `conf/sweep.yaml`, checked; raises UserError naming the bad key."""

    def __init__(self, sweep_cfg: DictConfig):
        self.cfg = sweep_cfg
        s = sweep_cfg
        self.name = str(s.name)
        self.study_name = str(s.study_name)
        self.kind = str(s.get("kind", "study"))
        if self.kind not in ("study", "grid"):
            raise UserError(f"sweep.kind={self.kind!r}: use study (an Optuna study) or grid (every point once)")
        self.dir = Path(str(s.dir)).expanduser().resolve()
        self.export_dir = Path(str(s.get("export_dir") or self.dir / "export")).expanduser().resolve()
        self.space: SearchSpace = parse_space(OmegaConf.to_container(s.get("params") or {}, resolve=True))
        self.base = [str(o) for o in (s.get("base") or [])]
        _check_overrides(self.base, "sweep.base")
        self.objectives = self._objectives(s.get("objectives"))
        self.sampler_cfg = _plain(s.get("sampler")) or {"name": "tpe"}
        self.pruner_cfg = _plain(s.get("pruner")) or {"name": "none"}
        if self.kind == "grid":
            self.sampler_cfg = {"name": "grid", "seed": self.sampler_cfg.get("seed")}
        self.is_grid = str(self.sampler_cfg.get("name", "")).lower() == "grid"
        if self.is_grid and not self.space.params:
            raise UserError(f"sweep {self.name}: a grid needs at least one choice(...) or range(...) in sweep.params")
        self.n_trials = self._n_trials(s.get("n_trials"))
        self.max_failures = None if s.get("max_failures") is None else int(s.max_failures)
        self.worker = int(s.get("worker") or 0)
        self.heartbeat_s = float(s.get("heartbeat_s") or 30)
        self.stale_after_s = float(s.get("stale_after_s") or 600)
        if self.stale_after_s <= 2 * self.heartbeat_s:
            raise UserError(f"sweep.stale_after_s={self.stale_after_s:g} must exceed twice sweep.heartbeat_s="
                            f"{self.heartbeat_s:g}, or live trials would be taken for dead ones")
        self.storage = None if s.get("storage") in (None, "") else str(s.storage)

    # -- parsing ----------------------------------------------------------------------------------------

    def _objectives(self, spec) -> list[Objective]:
        spec = _plain(spec)
        if not spec:
            raise UserError(f"sweep {self.name} declares no objectives; add e.g. `objectives: {{age/top1: maximize}}`")
        if isinstance(spec, (list, tuple)):  # [age/mae, latency_ms]: each metric's direction from the registry
            spec = {m: "auto" for m in spec}
        if not isinstance(spec, dict):
            raise UserError(f"sweep.objectives must map a metric to maximize|minimize|auto, got {spec!r}")
        out = []
        for metric, direction in spec.items():
            name = str(metric).removeprefix("metrics.")
            # auto (or null): the direction agebench.results.metrics declares for this metric
            d = metric_registry.goal(name) if direction in (None, "auto") else DIRECTIONS.get(str(direction).lower())
            if d is None:
                raise UserError(f"sweep.objectives.{metric}={direction!r}: use maximize, minimize or auto")
            declared = metric_registry.spec(name)
            if declared is not None and declared.direction != metric_registry.ZERO and d != metric_registry.goal(name):
                raise UserError(f"sweep.objectives.{metric}={direction}: {name} is {declared.direction}-is-better "
                                f"(agebench.results.metrics); use {metric_registry.goal(name)} or auto")
            if not (TASK_METRIC.match(name) or name in RECORD_OBJECTIVES):
                raise UserError(f"sweep.objectives: {metric!r} is neither a task metric (age/top1, gender/acc, "
                                f"race/acc, age/mae, ...) nor a run-record field ({', '.join(RECORD_OBJECTIVES)})")
            out.append(Objective(name, d))
        return out

    def _n_trials(self, n) -> int:
        if self.is_grid:
            size = self.space.grid_size()
            if n is None or int(n) > size:
                return size
        if n is None or int(n) < 1:
            raise UserError(f"sweep.n_trials={n!r}: set the study's total budget, a positive integer")
        return int(n)

    # -- derived ----------------------------------------------------------------------------------------

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.dir / 'study.db'}"

    def trial_dir(self, number: int) -> Path:
        return self.dir / f"trial_{number:04d}"

    def trial_overrides(self, user: list[str], values: dict[str, Any], output_dir: Path | None) -> list[str]:
        """The train overrides of one trial (see conf/sweep.yaml): a later key wins, swept params last."""
        out = [] if output_dir is None else [f"output_dir={quote(str(output_dir))}"]
        # a trial is one experiment: an experiment's `variants` are dropped (sweep over their overrides)
        return merge_overrides([f"experiment_name={self.study_name}"], self.base, user, ["variants=null"],
                               self.space.fixed, self.space.overrides(values), out)

    def sampler_seed(self, trials_before: int = 0) -> int | None:
        """The seed of this worker's sampler when the study already holds `trials_before` trials.

        A fresh study: sweep.sampler.seed + sweep.worker (what it always was). A worker that joins or
        restarts a study with trials derives its seed from (seed, worker, trials_before): a restarted
        worker must not replay the random stream it drew before it died — its first draws would repeat
        parameter sets that already ran. The trial count differs on every (re)start that drew anything."""
        seed = self.sampler_cfg.get("seed")
        if seed is None:
            return None
        if trials_before == 0:
            return int(seed) + self.worker
        import numpy as np

        return int(np.random.SeedSequence([int(seed), self.worker, int(trials_before)]).generate_state(1)[0])

    def make_sampler(self, trials_before: int = 0):
        import optuna

        cfg = dict(self.sampler_cfg)
        cfg.pop("seed", None)
        seed = self.sampler_seed(trials_before)
        if "_target_" in cfg:
            return _instantiate("sweep.sampler", {**cfg, **({"seed": seed} if seed is not None else {})})
        name = str(cfg.pop("name", "tpe")).lower()
        if name not in SAMPLERS:
            raise UserError(f"sweep.sampler.name={name!r}: choose one of {', '.join(SAMPLERS)} (or give a _target_)")
        if name == "grid":
            return make_grid_sampler(self.space.grid(), seed)
        cls = getattr(optuna.samplers, SAMPLERS[name])
        try:
            return cls(seed=seed, **cfg)
        except (TypeError, ValueError, ImportError, ModuleNotFoundError) as err:
            raise UserError(f"sweep.sampler ({name}): {err}") from None

    def make_pruner(self):
        import optuna

        cfg = dict(self.pruner_cfg)
        if "_target_" in cfg:
            return _instantiate("sweep.pruner", cfg)
        name = str(cfg.pop("name", "none")).lower()
        if name not in PRUNERS:
            raise UserError(f"sweep.pruner.name={name!r}: choose one of {', '.join(PRUNERS)} (or give a _target_)")
        if PRUNERS[name] == "NopPruner":
            return optuna.pruners.NopPruner()
        try:
            return getattr(optuna.pruners, PRUNERS[name])(**cfg)
        except (TypeError, ValueError) as err:
            raise UserError(f"sweep.pruner ({name}): {err}") from None

    @property
    def prunes(self) -> bool:
        name = str(self.pruner_cfg.get("name", "")).lower()
        return not self.multi_objective and ("_target_" in self.pruner_cfg or PRUNERS.get(name, "NopPruner") != "NopPruner")

    def describe(self) -> dict:
        """What the study was created from (kept in the study's user attrs; shown by action=status)."""
        return {"sweep": self.name, "kind": self.kind, "base": self.base, "fixed": self.space.fixed,
                "params": {p.key: p.spelling for p in self.space.params},
                "objectives": {o.metric: o.direction for o in self.objectives},
                "sampler": self.sampler_cfg, "pruner": self.pruner_cfg, "n_trials": self.n_trials}


def _instantiate(key: str, cfg: dict):
    """A sampler / pruner from its `_target_`; one line naming the key when it cannot be built."""
    from hydra.utils import instantiate

    try:
        return instantiate(cfg)
    except Exception as err:  # a misspelt class, a wrong argument: InstantiationException and its causes
        inner = err
        while inner.__cause__ is not None:
            inner = inner.__cause__
        reason = " ".join(str(inner).replace(", set env var HYDRA_FULL_ERROR=1 to see chained exception", "").split())[:200]
        raise UserError(f"{key}._target_={cfg['_target_']!r} cannot be built ({reason}); give an importable "
                        f"optuna class and its arguments, or a name: {key}.name=...") from None


def _check_overrides(overrides: list[str], key: str) -> None:
    """Each entry parses as a Hydra override (key=value), or a one-line UserError naming it."""
    from agebench.sweeps.source import override_key

    for override in overrides:
        try:
            override_key(override)
        except Exception as err:  # Hydra's OverrideParseException / HydraException from its lexer
            raise UserError(f"{key} entry {override!r} is not a valid override ({str(err).splitlines()[0]}); write "
                            f"key=value and quote values with brackets, spaces or commas, e.g. 'model.width=[1,1]'") from None


def _plain(node):
    if node is None:
        return None
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def make_grid_sampler(grid: dict, seed):
    """Optuna's GridSampler without its `study.stop()` (which only works inside study.optimize): the
    driver stops on its own budget, which for a grid is the number of grid points."""
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            return None

    return AskTellGridSampler(grid, seed=seed)
