"""An experiment's `variants` (named override lists, e.g. single-task age vs age+gender): each composed on top
of the command line's overrides and run as its own experiment in `output_dir/<variant>/`, then the
recipe's closing report or the summary table."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agebench.config.compose import compose_config, hydra_task_overrides
from agebench.config.recipe_models import check_variant_models
from agebench.training import experiment  # run_experiment looked up at call time: tests replace it
from agebench.training.summary_table import format_summary_table


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
        summaries[name] = experiment.run_experiment(variant_cfg, str(Path(output_dir) / name), print_table=False)
    if cfg.get("closing_report"):  # the report's own table, the paired answer, the dir (agebench/report/closing.py)
        from agebench.report.closing import closing_text

        print(closing_text(output_dir, str(cfg.closing_report)))
    elif cfg.get("summary_table"):
        print(format_summary_table(summaries))
    return summaries
