"""`agebench train`: run one experiment over its protocol's folds and write the results store.

For each selected fold: build the model, profile it, train with early stopping on a validation metric,
test the best checkpoint on the held-out fold, append a run record to `results.jsonl` and rewrite
`summary.json`. Rerunning with the same `output_dir` skips finished folds and resumes an unfinished
one from its last checkpoint. An experiment may declare `variants` (named override lists, e.g.
single-task age vs age+gender): each runs as its own experiment in `output_dir/<variant>/`.

This module is the command and its variant loop; the work lives in (one job each):
agebench/experiment.py (the fold loop, resume, results store), agebench/fold_plan.py (tasks, rows,
folds), agebench/fit.py (one fold), agebench/run_record.py (the record's fields),
agebench/callbacks.py and agebench/loggers.py (from config), agebench/builders.py (model, trainer, sizes).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agebench import progress
from agebench.config import compose_config, hydra_output_dir, hydra_task_overrides
from agebench.errors import UserError
from agebench.experiment import run_experiment
from agebench.recipe_models import check_variant_models
from agebench.summary_table import format_summary_table

# the names callers reach through `agebench.train` (sweeps call run_experiment here; tests replace it)
__all__ = ["train_command", "run_variants", "run_experiment", "format_summary_table"]


def train_command(cfg: DictConfig):
    """Hydra task function behind `agebench train`."""
    output_dir = hydra_output_dir() or str(cfg.output_dir)
    with progress.log_to(output_dir):  # first and last stdout lines: where the output goes
        progress.output_started(output_dir)
        try:
            result = run_variants(cfg, output_dir) if cfg.get("variants") else run_experiment(cfg, output_dir)
        except UserError:
            raise
        except BaseException:
            progress.output_finished(output_dir, ok=False)
            raise
        progress.output_finished(output_dir)
    return result


def run_variants(cfg: DictConfig, output_dir: str, base_overrides: list[str] | None = None) -> dict:
    """Run each named variant of `cfg` (its overrides on top of the command line's) in its own dir."""
    base = hydra_task_overrides() if base_overrides is None else list(base_overrides)
    base = [o for o in base if not o.startswith(("output_dir=", "variants"))]
    check_variant_models(cfg.experiment_name, base, cfg.variants)  # a variant's model= would drop the user's
    summaries = {}
    for name, overrides in cfg.variants.items():
        variant_cfg = compose_config(base + list(overrides) + [f"output_dir={Path(output_dir) / name}", "variants=null"])
        OmegaConf.set_struct(variant_cfg, False)
        variant_cfg.variant = str(name)
        summaries[name] = run_experiment(variant_cfg, str(Path(output_dir) / name), print_table=False)
    if cfg.get("closing_report"):  # the report's own table, the paired answer, the dir (agebench/report/closing.py)
        from agebench.report.closing import closing_text

        print(closing_text(output_dir, str(cfg.closing_report)))
    elif cfg.get("summary_table"):
        print(format_summary_table(summaries))
    return summaries
