"""What one fold of an experiment needs, in one object: decided once per experiment (the sized config, its
hash, the dataset, the fold plan and the input sizes) and handed to each fold with that fold's split, so a
fold never re-derives a fact of its experiment (tests/test_fold_context.py counts `resolve_sizes`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from agebench.data.protocols import Fold
from agebench.training.builders import Sizes
from agebench.training.fold_plan import FoldPlan


@dataclass(frozen=True)
class FoldContext:
    cfg: object              # the experiment's config, sized (agebench.training.builders.sized_config)
    cfg_dict: dict           # the same, resolved to plain values: the record's `config`
    config_hash: str
    dataset: object          # agebench.data.loading.LoadedDataset (a stand-in with images, records, race_names)
    plan: FoldPlan
    sizes: Sizes
    out: Path                # the experiment's output_dir
    extra: dict | None = None   # merged into the record (a sweep's study and trial)
    fold: Fold | None = None    # set by for_fold
    records_fingerprint: str | None = None   # the record table's hash (LoadedDataset.fingerprint), once

    def for_fold(self, fold: Fold) -> FoldContext:
        return replace(self, fold=fold)

    @property
    def tasks(self) -> list:
        return self.plan.tasks

    @property
    def fold_dir(self) -> Path:
        return self.out / self.fold.dirname

    @property
    def dataset_fold(self) -> Fold:
        """The fold in dataset rows: fold indices address the task-filtered records, while the image
        array and the targets are indexed by dataset row."""
        rows, f = self.plan.rows, self.fold
        return Fold(f.index, rows[f.train], rows[f.val], rows[f.test], repeat=f.repeat)
