"""`agebench report ... wandb=true`: log the report's tables to W&B as `wandb.Table`s.

One W&B run (job_type `report`) per report, holding one table per report table under `report/<name>`
(`report/runs` for the run table, `report/paired` for the single- vs multi-task comparison). Columns
are those of `format=csv`: a stat column becomes `<label> mean` and `<label> std` numbers, so W&B can
sort and plot them. With WANDB_MODE=offline the run lands in `<wandb_dir>/wandb/offline-run-*` and
`wandb sync` uploads it later (docs/wandb.md).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from agebench.report.tables import Document, Table, table_to_csv


def _number_or_text(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def table_rows(table: Table) -> tuple[list[str], list[list]]:
    """(columns, rows) of a report table, numbers as floats (the CSV rendering, parsed back)."""
    header, *rows = list(csv.reader(io.StringIO(table_to_csv(table))))
    return header, [[_number_or_text(v) if v != "" else None for v in row] for row in rows]


def push_tables(doc: Document, cfg, summary: str) -> str:
    """Log every table of `doc` to one new W&B run; returns the run's local directory."""
    import wandb

    project = cfg.get("wandb_project") or (str(cfg.get("project")).split("/")[-1] if cfg.get("project") else "agebench")
    entity = str(cfg.get("project")).split("/")[0] if cfg.get("project") and "/" in str(cfg.get("project")) else None
    run_dir = Path(str(cfg.get("wandb_dir") or "."))
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=str(project), entity=entity, job_type="report", group="reports",
                     name=f"report-{doc.title}"[:120], dir=str(run_dir),
                     mode=os.environ.get("WANDB_MODE") or "online",
                     config={"runs": str(cfg.get("runs")), "table": cfg.get("table"), "source": cfg.get("source"),
                             "summary": summary})
    try:
        logged: dict[str, object] = {}
        for t in doc.tables:
            columns, rows = table_rows(t)
            key = f"report/{t.name}"
            key = key if key not in logged else f"{key}_{len(logged)}"  # recipes may repeat a name
            logged[key] = wandb.Table(columns=columns, data=rows)
        run.log(logged)
    finally:
        run.finish()
    return run.dir
