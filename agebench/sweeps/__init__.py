"""Sweeps: Optuna studies (and grids) over `agebench train` configs, declared in `sweeps/<name>.yaml`.

* `source`  — makes `sweeps/` the Hydra config group `sweep` (so `agebench sweep sweep=gamma
  sweep.n_trials=40` composes like any other group), and builds each trial's override list;
* `space`   — the search space in the Hydra Optuna sweeper's spelling (`choice`, `range`, `interval`,
  `tag(log, …)`, `int(…)`) → Optuna distributions and train overrides;
* `spec`    — a study yaml read and checked: objectives, sampler, pruner, budget, storage;
* `storage` — SQLite / journal file / PostgreSQL storages, worker heartbeats, stale-trial recovery;
* `driver`  — the ask/tell worker loop: run a trial's folds, report per-fold values, tell the result;
* `status`  — `action=status` (trials by state, best / Pareto set, importances) and `action=export`.

The `agebench sweep` command itself lives in `agebench.sweep`.
"""
