"""The commands of this package: `agebench report` (tables and plots from run records, conf/report.yaml)
and `agebench regress` (the accuracy gate against a baseline, conf/regress.yaml). The work lives in
agebench.report.document (which records, which tables) and agebench.report.regress (the checks)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from agebench.errors import RegressionError, UserError
from agebench.files import atomic_write_bytes
from agebench.report import aggregate as agg
from agebench.report.canon import plain
from agebench.report.document import build_document, want_plots
from agebench.report.plots import make_plots
from agebench.report.regress import checks_table, evaluate, load_baseline, update_baseline
from agebench.report.tables import EXTENSIONS, Document, render, table_to_csv
from agebench.results.store import atomic_write_text


def report_command(cfg) -> None:
    """Hydra task function behind `agebench report` (conf/report.yaml)."""
    if cfg.get("page"):  # a results page: its regions re-rendered from committed records (agebench.report.pages)
        from agebench.report.pages import write_page

        print(f"agebench report: {write_page(cfg.page)}", file=sys.stderr)
        return
    fmt = str(cfg.get("format") or "md").lower()
    if fmt not in EXTENSIONS:
        raise UserError(f"unknown format={fmt!r}; choose one of md, latex, csv, html")
    doc, summary, groups, frame, plot_kinds = build_document(cfg)
    out = Path(str(cfg.get("out"))) if cfg.get("out") else None

    if groups and want_plots(cfg):
        label_cols = agg.shown_columns(frame) if frame is not None and not frame.empty else []
        plots, skipped = make_plots(groups, label_cols, plot_kinds)
        doc.plots = plots
        doc.notes += skipped
        plots_dir = cfg.get("plots_dir")
        plots_dir = Path(str(plots_dir)) if plots_dir else (out.parent / f"{out.stem}_plots" if out else None)
        if plots_dir is not None and plots:
            for p, path in zip(plots, write_plots(plots, plots_dir), strict=True):
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


def write_plots(plots, plots_dir: Path) -> list[Path]:
    """Every plot's PNG in `plots_dir`, or none of them: they are written to a sibling temporary dir first and
    moved in only when all are whole, so a full disk or an interrupt leaves no partial `*_plots/` behind (a full
    disk is a DiskFullError naming the file: one line from the CLI)."""
    plots_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plots_dir.name}.", dir=plots_dir.parent))
    try:
        for p in plots:
            atomic_write_bytes(staging / f"{p.name}.png", p.png, "free some space there or choose another out=")
        plots_dir.mkdir(exist_ok=True)
        paths = []
        for p in plots:
            os.replace(staging / f"{p.name}.png", plots_dir / f"{p.name}.png")
            paths.append(plots_dir / f"{p.name}.png")
        return paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def regress_command(cfg) -> None:
    """Hydra task function behind `agebench regress` (conf/regress.yaml): exits 1 when a check fails."""
    path, data = load_baseline(cfg.get("baseline"))
    runs = plain(cfg.get("runs"))
    records = agg.collect_records(runs)
    frame = agg.build_frame(records, ignore=plain(cfg.get("ignore")) or ())
    if bool(cfg.get("update", False)):
        lines = update_baseline(path, data, frame, runs)
        print("\n".join(lines))
        print(f"agebench regress: wrote measured values into {path}", file=sys.stderr)
        return
    checks = evaluate(data, frame, path)
    fmt = str(cfg.get("format") or "md").lower()
    failed = [c for c in checks if not c.ok]
    title = f"Accuracy gate: {path.name} vs {runs}"
    table = checks_table(checks, title)
    table.caption = (f"{len(checks) - len(failed)} of {len(checks)} checks pass"
                     + (f"; baseline measured {data['measured'].get('date')}" if isinstance(data.get("measured"), Mapping)
                        and data["measured"].get("date") else ""))
    if fmt == "json":
        text = json.dumps([c.__dict__ | {"bound": c.bound} for c in checks], indent=2) + "\n"
    else:
        text = render(Document(title=title, tables=[table]), fmt)
    sys.stdout.write(text)
    sys.stdout.flush()
    if cfg.get("out"):
            atomic_write_text(Path(str(cfg.get("out"))), text)
    if failed:
        worst = "; ".join(f"{c.config} {c.metric}: {c.status.lower()}" + (f" ({c.reason})" if c.reason else "")
                          for c in failed[:3])
        more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
        raise RegressionError(f"accuracy gate failed: {len(failed)} of {len(checks)} checks: {worst}{more}")
    print(f"agebench regress: all {len(checks)} checks pass", file=sys.stderr)
