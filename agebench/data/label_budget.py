"""A label budget: train on age labels of only some training subjects (``data.age_label_fraction``).

Multi-task learning pays off in the papers when the main task's labels are few (seed 001): the auxiliary
task's labels then shape the shared features. This knob plants that regime without changing the data:
the records, folds and test sets stay the same for every task-set (so single- and multi-task runs stay
paired fold by fold), and only the age *training* targets of the subjects outside the budget are hidden
(bin -1, years NaN: the losses mask them, as they do multi-source rows without an age). Validation and
test keep every label, so early stopping and the reported metrics are measured as usual.

Which subjects keep their age depends only on (data.seed, subject id), not on the fold or the task-set.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def subject_draws(subjects: pd.Series, seed: int) -> np.ndarray:
    """A uniform in [0, 1) per row, the same for all rows of a subject and stable across runs."""
    unique, inverse = np.unique(subjects.astype(str).to_numpy(), return_inverse=True)
    draws = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{s}".encode(), digest_size=8).digest(), "little")
                      for s in unique], dtype=np.float64) / 2.0**64
    return draws[inverse]


def apply_age_label_budget(data_cfg, records: pd.DataFrame, targets: dict[str, np.ndarray],
                           train_rows: np.ndarray) -> dict[str, np.ndarray]:
    """`targets` with the age of training rows outside the budget hidden (a copy; the input is untouched).

    `records` are the dataset's records (the rows `targets` and `train_rows` index)."""
    fraction = float(data_cfg.get("age_label_fraction", 1.0) if data_cfg is not None else 1.0)
    if fraction >= 1.0 or "age" not in targets:
        return targets
    if not 0.0 < fraction <= 1.0:
        from agebench.errors import UserError

        raise UserError(f"data.age_label_fraction={fraction} must lie in (0, 1]; e.g. 0.25 keeps a quarter of "
                        f"the training subjects' ages")
    hidden = train_rows[subject_draws(records["subject"].iloc[train_rows], int(data_cfg.get("seed", 0))) >= fraction]
    age = targets["age"].copy()
    age[hidden, 0] = -1.0
    age[hidden, 1] = np.nan
    return {**targets, "age": age}
