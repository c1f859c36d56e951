"""What `agebench report` shows: the run records of `runs=` (or W&B), the configurations they form,
and the document of tables (a recipe's or the default) that agebench.report.command renders and writes."""

from __future__ import annotations

from agebench.errors import UserError
from agebench.report.canon import plain as _plain


def load_source(cfg) -> list[dict] | None:
    from agebench.report import aggregate as agg

    source = str(cfg.get("source") or "local")
    if source == "wandb":
        from agebench.report.wandb_source import fetch_records

        return fetch_records(cfg.get("project"), _plain(cfg.get("wandb_filters")) or None)
    if source != "local":
        raise UserError(f"unknown source={source!r}; choose local (runs=<dir>) or wandb (project=<entity/project>)")
    runs = _plain(cfg.get("runs"))
    if runs is None or (isinstance(runs, str) and runs.lower() in ("null", "none", "")):
        if not cfg.get("table"):
            raise UserError("runs= is required (a directory with results.jsonl files); runs=null only "
                            "makes sense with table=<recipe> to print the paper rows alone")
        return None
    return agg.collect_records(runs)


def build_document(cfg):
    """(Document, summary line) for a composed report config."""
    from agebench.report import aggregate as agg
    from agebench.report import recipes
    from agebench.report.tables import Document

    opts = recipes.Options(percent=bool(cfg.get("percent", True)), fmt=f".{int(cfg.get('precision', 2))}f",
                           incomplete=str(cfg.get("incomplete", "mark")),
                           confidence=float(cfg.get("confidence", 0.95)), compare=bool(cfg.get("compare", True)),
                           metrics=_plain(cfg.get("metrics")))
    if opts.incomplete not in ("mark", "drop"):
        raise UserError(f"incomplete={opts.incomplete!r}: choose mark or drop")
    if not 0 < opts.confidence < 1:
        raise UserError(f"confidence={opts.confidence} must lie between 0 and 1, e.g. 0.95")
    records = load_source(cfg)
    frame = None
    if records is not None:
        frame = agg.build_frame(records, ignore=_plain(cfg.get("ignore")) or ())
        filters = _plain(cfg.get("filters")) or {}
        if filters:
            frame = agg.apply_filters(frame, filters)
            if frame.empty:
                raise UserError(f"no run record matches filters {filters}; check the keys and values "
                                f"(e.g. +filters.dataset=synthetic '+filters.model.width=[2,1]')")
    table_name = cfg.get("table")
    if table_name:
        recipe = recipes.load_recipe(str(table_name))
        tables, groups, comparisons, frame = recipes.recipe_tables(recipe, frame, opts)
        title = recipe.title
        plot_kinds = recipe.plots
    else:
        tables, groups, comparisons = recipes.default_tables(frame, opts)
        title = "agebench report"
        plot_kinds = None
    if cfg.get("breakdown"):  # per age decade / gender / race: one table per configuration
        from agebench.report import breakdown as bd

        tables = list(tables) + bd.breakdown_tables(groups, str(cfg.get("breakdown")), agg.label_columns(groups),
                                                    opts.percent, opts.fmt)
    doc = Document(title=title, tables=tables)
    if cfg.get("power") is not None:
        doc.notes += power_notes(comparisons, _power_target(cfg.get("power")), opts.percent)
    if records is not None and str(cfg.get("source") or "local") == "local":  # `agebench eval` records, if any
        from agebench.report.cross_dataset import cross_dataset_tables

        doc.tables += cross_dataset_tables(_plain(cfg.get("runs")), records, opts)
    n_files = len({r.get("results_file") for r in records}) if records else 0
    summary = (f"{len(records)} run records from {n_files} results file(s), {len(groups)} configurations"
               if records else "paper rows only")
    return doc, summary, groups, frame, plot_kinds


def _power_target(value) -> float:
    try:
        target = float(value)
    except (TypeError, ValueError):
        target = float("nan")
    if not target > 0 or target == float("inf"):
        raise UserError(f"power={value!r}: give the difference to detect, a positive number in the table's units "
                        f"(points for accuracies, years for MAE), e.g. power=2.0")
    return target


def power_notes(comparisons, target: float, percent: bool) -> list[str]:
    """"to detect Δ = 2.0 points on age/top1 (…): 5 × 4 folds": the repeats of the k folds the corrected test
    needs (power 0.8, α 0.05) at each comparison's observed per-fold spread (agebench.report.significance)."""
    import math

    from agebench.report import significance
    from agebench.report.recipes import metric_label

    notes = []
    for c in comparisons:
        r = c.result
        if r.n < 2 or not math.isfinite(r.spread):
            continue
        _, scale = metric_label(r.metric, percent)
        unit = " points" if scale == 100 else ""
        k = max(r.n // max(r.runs, 1), 2)
        repeats = significance.repeats_needed(target / scale, r.spread, k, r.ratio)
        where = f"Δ = {target:g}{unit} on {r.metric} ({'+'.join(c.multi.tasks)} vs {'+'.join(c.single.tasks)})"
        if repeats is None:
            notes.append(f"power: to detect {where}: out of reach by repeating these {k} folds (per-fold spread "
                         f"{r.spread * scale:.2f}{unit}; the training-set overlap keeps a floor): more data is the answer")
        else:
            notes.append(f"power: to detect {where}: {repeats} × {k} folds (protocol.repeats={repeats}; "
                         f"this run detects |Δ| ≥ {r.detectable * scale:.2f}{unit})")
    return notes or [f"power={target:g}: no paired comparison in these records to plan from"]


def want_plots(cfg) -> bool:
    setting = cfg.get("plots", "auto")
    if isinstance(setting, bool):
        return setting
    setting = str(setting).lower()
    if setting in ("true", "yes", "1"):
        return True
    if setting in ("false", "no", "0", "none"):
        return False
    return str(cfg.get("format", "md")) == "html" or bool(cfg.get("out"))
