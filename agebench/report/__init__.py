"""Run records → paper-style tables and plots; the accuracy gate. Reads run records only: it imports
`agebench.results`, the ground modules and itself, never training or data code (tests/test_layers.py), so
`agebench report` and `agebench regress` run where torch is not installed.

Members: `command` (`agebench report`, `agebench regress`), `document` (which records, which tables),
`aggregate` (records → configurations; with `canon` identity values, `age_bins` a record's bins, `frame`
records → rows, `filters`, `groups` mean ± std and incomplete folds), `stats` (paired single- vs
multi-task tests), `recipes` + `recipe_schema` (default and paper-table recipes), `tables` (Markdown /
LaTeX / CSV / HTML), `plots`, `study_plots`, `figures` (Pareto, granularity, learning curves, confusion,
planted effects), `breakdown` (per-group tables), `closing` (the quickstart's answer), `cross_dataset`,
`regress` (the gate's checks), `significance` (the corrected resampled t-test, Bayesian verdict, Holm, power) and `significance_plots`
(critical-difference diagram, Bayesian posteriors), `calibration_plots` (reliability diagrams, risk–coverage),
`pages` (results pages whose tables are regenerated from committed records), `wandb_source` / `wandb_push` (the same records from and to W&B).
"""
