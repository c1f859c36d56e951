"""`agebench report`: paper-style tables (and plots) from run records.

    agebench report runs=<dir or glob> [table=<recipe>] [format=md|latex|csv|html] [out=reports/…]
    agebench report source=wandb project=<entity>/<project> [table=…]

Modules: `aggregate` (records → configurations, the one import for: `canon` identity values, `age_bins`
a record's bins, `frame` records → rows, `filters`, `groups` mean ± std and incomplete folds), `stats`
(paired single- vs multi-task tests), `recipes` (default table and paper-table recipes; schema in
`recipe_schema`), `tables` (Markdown / LaTeX / CSV / HTML), `plots`, `study_plots`, `figures` (Pareto,
granularity, learning curves, confusion, planted effects), `wandb_source` (the same records from the W&B
API). What identifies a run is agebench.run_identity's; nothing here imports training or data code.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
    if records is not None and str(cfg.get("source") or "local") == "local":  # `agebench eval` records, if any
        from agebench.report.cross_dataset import cross_dataset_tables

        doc.tables += cross_dataset_tables(_plain(cfg.get("runs")), records, opts)
    n_files = len({r.get("results_file") for r in records}) if records else 0
    summary = (f"{len(records)} run records from {n_files} results file(s), {len(groups)} configurations"
               if records else "paper rows only")
    return doc, summary, groups, frame, plot_kinds


def _want_plots(cfg) -> bool:
    setting = cfg.get("plots", "auto")
    if isinstance(setting, bool):
        return setting
    setting = str(setting).lower()
    if setting in ("true", "yes", "1"):
        return True
    if setting in ("false", "no", "0", "none"):
        return False
    return str(cfg.get("format", "md")) == "html" or bool(cfg.get("out"))


def report_command(cfg) -> None:
    from agebench.report import aggregate as agg
    from agebench.report.plots import make_plots
    from agebench.report.tables import EXTENSIONS, render, table_to_csv

    fmt = str(cfg.get("format") or "md").lower()
    if fmt not in EXTENSIONS:
        raise UserError(f"unknown format={fmt!r}; choose one of md, latex, csv, html")
    doc, summary, groups, frame, plot_kinds = build_document(cfg)
    out = Path(str(cfg.get("out"))) if cfg.get("out") else None

    if groups and _want_plots(cfg):
        label_cols = agg.shown_columns(frame) if frame is not None and not frame.empty else []
        plots, skipped = make_plots(groups, label_cols, plot_kinds)
        doc.plots = plots
        doc.notes += skipped
        plots_dir = cfg.get("plots_dir")
        plots_dir = Path(str(plots_dir)) if plots_dir else (out.parent / f"{out.stem}_plots" if out else None)
        if plots_dir is not None and plots:
            plots_dir.mkdir(parents=True, exist_ok=True)
            for p in plots:
                path = plots_dir / f"{p.name}.png"
                path.write_bytes(p.png)
                p.path = str(path.relative_to(out.parent)) if out and path.is_relative_to(out.parent) else str(path)

    text = render(doc, fmt)
    if cfg.get("wandb"):
        from agebench.report.wandb_push import push_tables

        print(f"agebench report: tables logged to W&B, run dir {push_tables(doc, cfg, summary)}", file=sys.stderr)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        print(f"agebench report: {summary}", file=sys.stderr)
        return
    from agebench.results import atomic_write_text

    if out.suffix == "":
        out = out.with_suffix(EXTENSIONS[fmt])
    atomic_write_text(out, text)
    written = [str(out)]
    if fmt == "csv":
        for t in doc.tables[1:]:
            extra = out.with_name(f"{out.stem}_{t.name}.csv")
            atomic_write_text(extra, table_to_csv(t))
            written.append(str(extra))
    written += [p.path for p in doc.plots if p.path]
    print(f"agebench report: {summary}; wrote {', '.join(written)}", file=sys.stderr)


__all__ = ["report_command", "build_document"]
