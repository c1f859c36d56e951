"""One experiment over its protocol's folds, and one fold.

Members: `command` (`agebench train`), `variants` (an experiment's named variants, each its own
experiment), `experiment` (the fold loop: resume, locks, the results store), `fold_plan` (tasks, rows and
folds, checked before any fold), `fold_context` (one fold's facts, computed once per experiment), `fit` (one
fold: fit, test the best checkpoint, fill in the record), `builders` (input sizes, the model and trainer of
a config), `module` (the LightningModule: weighted multi-task loss, exact epoch metrics), `optim`
(optimizers and schedulers from `_target_` specs), `callbacks`, `loggers`, `fold_progress` (the per-epoch
progress lines), `checkpointing` (atomic, `weights_only` checkpoints), `signals` (stop at a safe point,
resumable), `locking` (one process per fold), `run_record` (the record's fields) and `summary_table`.
"""
