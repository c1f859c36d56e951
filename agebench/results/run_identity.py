"""What identifies a run: the one list that the config hash, the report's grouping and pairing, and the
Hydra multirun directory names all read.

Every key of the resolved train config falls in one of three kinds (dotted paths; a path covers its subtree):

- OPERATIONAL: where a run writes, how it logs, how fast it runs, which folds one command runs. These never
  change a fold's numbers, so they are out of the config hash (a run resumes with more loader workers or
  another fold subset), out of the report's grouping and out of multirun directory names.
- ENVIRONMENT: the machine and numerics a run used (device, compile, determinism, precision of matmuls, where
  the data was read from). They may move the last digits of a result, or point at other data, so they stay
  in the hash (a resumed run must not mix them into one results file), but a table compares one experiment
  across machines: out of the grouping and of directory names.
- everything else is identity: in the hash, in the grouping, in directory names.

A single- vs multi-task pair (agebench.report.stats) shares every identity value except LABELS (names given to
a run) and TASK_SET (the task-set and what only weighs it). This module is pure data: no torch, no Hydra, so
the report can read it.
"""

from __future__ import annotations

# Edit with care: config_hash leaves out exactly these paths, so adding or removing one changes the hash
# of every existing config that holds the key (resumable runs compare hashes).
OPERATIONAL = (
    "output_dir", "cache_dir", "logger", "hydra", "summary_table", "closing_report", "variants", "variant_jobs",
    "sweep_context",
    "protocol.folds", "data.num_workers", "data.render_workers", "trainer.threads", "trainer.async_checkpoint",
    "trainer.log_every_n_steps", "trainer.progress_bar", "profile", "trainer.slurm_requeue",
    # sweep bookkeeping: the record's study/trial fields say which trial a run is (absent from train configs)
    "trial_params", "sweep",
)

ENVIRONMENT = (
    "data.root", "trainer.accelerator", "trainer.devices", "trainer.strategy", "trainer.deterministic",
    "trainer.compile", "trainer.channels_last", "trainer.matmul_precision",
)

# Leaves of OPERATIONAL subtrees that users pass as overrides: Hydra's exclude_keys match whole keys, not prefixes.
OPERATIONAL_OVERRIDES = ("hydra.launcher.n_jobs", "profile.latency_iters")

# `_target_` addresses that moved when the package was split into layers (issue 22): old prefix → new prefix.
# The config hash reads each moved address by its old name, so every config keeps the hash it had before
# the move (records and resumable runs stay valid); agebench.config.locate still resolves an old address
# written in a user's own config.
MOVED_TARGETS = {"agebench.optim.": "agebench.training.optim.", "agebench.loggers.": "agebench.training.loggers."}

# Keys added after records existed, at the value that reproduces the behaviour before them: the config hash
# leaves such a key out at that value, so older configs keep their hash (and their runs resume).
NEUTRAL_DEFAULTS = {"protocol.repeats": 1}

# Top-level run-record fields that identify a run, in display order, each with the config path it repeats
# (None: the record alone carries it). The report shows them under the short name, once.
RECORD_FIELDS = {
    "experiment": "experiment_name",
    "dataset": "data.name",
    "model": "model.name",
    "tasks": "tasks.names",
    "age_bins": "tasks.age.bins",
    "gamma": "loss.gamma",
    "weighting": "loss.weighting",
    "weights": "loss.weights",
    "protocol": "protocol.name",
    "seed": "seed",
    "study": None,
    "trial": None,
}

# Names given to a run: identity (they split a table), but the two sides of a pair may differ in them.
LABELS = ("experiment_name", "variant", "study", "trial")
# The task-set and what only weighs or heads its tasks: what a single- vs multi-task pair varies.
TASK_SET = ("tasks.names", "loss", "model.heads")


def covers(paths, dotted: str) -> bool:
    """True when `dotted` is one of `paths` or lies in the subtree of one."""
    return any(dotted == p or dotted.startswith(p + ".") for p in paths)


def hash_excluded() -> tuple[str, ...]:
    """Config paths left out of the config hash."""
    return OPERATIONAL


def grouping_excluded() -> tuple[str, ...]:
    """Config paths that do not split the report's configurations."""
    return OPERATIONAL + ENVIRONMENT


def pair_free() -> tuple[str, ...]:
    """Identity paths (config paths or record fields) in which the two sides of a pair may differ."""
    return LABELS + TASK_SET


def dirname_exclude_keys() -> list[str]:
    """conf/train.yaml's hydra.job.config.override_dirname.exclude_keys: a multirun directory is named by
    the overrides that make it another configuration in the report."""
    return sorted(set(grouping_excluded()) | set(OPERATIONAL_OVERRIDES))


def hashed_target(value):
    """`value` as the config hash reads it: a moved `_target_` address by its name before the move."""
    if isinstance(value, str):
        for old, new in MOVED_TARGETS.items():
            if value.startswith(new):
                return old + value[len(new):]
    return value


def current_target(path: str) -> str:
    """A `_target_` address written before the move, as it is now (others unchanged)."""
    for old, new in MOVED_TARGETS.items():
        if path.startswith(old):
            return new + path[len(old):]
    return path
