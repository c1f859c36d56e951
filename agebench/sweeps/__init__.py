"""Sweeps: Optuna studies (and grids) over `agebench train` configs, declared in `sweeps/<name>.yaml`.

* `source`  — makes `sweeps/` the Hydra config group `sweep` (so `agebench sweep sweep=gamma
  sweep.n_trials=40` composes like any other group), and builds each trial's override list;
* `space`   — the search space in the Hydra Optuna sweeper's spelling (`choice`, `range`, `interval`,
  `tag(log, …)`, `int(…)`) → Optuna distributions and train overrides;
* `spec`    — a study yaml read and checked: objectives, sampler, pruner, budget, storage;
* `storage` — SQLite / journal file / PostgreSQL storages, worker heartbeats, stale-trial recovery;
* `study`   — open or create the study in its storage, check it against the spec, count its trials
  (what the budget and `sweep.max_failures` see);
* `driver`  — the ask/tell worker loop: budget, dead workers' trials, grid duplicates, interrupts;
* `trial`   — one trial: compose its config, run its folds, report per-fold values (pruning);
* `status`  — `action=status` (trials by state, best / Pareto set, importances) and `action=export`;
* `trial_lines` — one progress line per finished trial; `worker_errors` — why a worker stopped, kept in
  the study; `hints` — the follow-up commands a message suggests, with the user's own overrides;
  `dashboard` — `action=dashboard`, optuna-dashboard on the study's storage;
* `command` — the `agebench sweep` command (`sweep_command`) and the functions tests and notebooks
  call directly (`load_spec`, `run_action`, `check`, `multirun_command`).
"""
