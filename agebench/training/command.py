"""`agebench train` (conf/train.yaml): one experiment over its protocol's folds, or each of its variants.

For each selected fold: build the model, profile it, train with early stopping on a validation metric,
test the best checkpoint on the held-out fold, append a run record to `results.jsonl` and rewrite
`summary.json`. Rerunning with the same `output_dir` skips finished folds and resumes an unfinished
one from its last checkpoint. The work lives in agebench.training.experiment (the fold loop) and
agebench.training.variants (an experiment's variants); this module prints where the output goes.
"""

from __future__ import annotations

from omegaconf import DictConfig

from agebench.config.compose import hydra_output_dir
from agebench.errors import UserError
from agebench.runtime import progress
from agebench.training import experiment
from agebench.training.variants import run_variants


def train_command(cfg: DictConfig):
    """Hydra task function behind `agebench train`."""
    output_dir = hydra_output_dir() or str(cfg.output_dir)
    with progress.log_to(output_dir):  # first and last stdout lines: where the output goes
        progress.output_started(output_dir)
        try:
            result = run_variants(cfg, output_dir) if cfg.get("variants") else experiment.run_experiment(cfg, output_dir)
        except UserError:
            raise
        except BaseException:
            progress.output_finished(output_dir, ok=False)
            raise
        progress.output_finished(output_dir)
    return result
