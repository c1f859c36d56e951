"""Cross-dataset tables: trained-on rows × tested-on columns, from `agebench eval` records.

`agebench eval` appends eval records (`kind: eval`, `trained_on`, `tested_on`) to `evals.jsonl` beside
a run's `results.jsonl`. For every trained model that has at least one, this adds one table per
headline metric (age/top1, gender/acc, ... or the report's `metrics=`): a row per trained model
(dataset it was trained on, model, tasks, run), a column per dataset it was tested on, each cell the
mean ± std over the evaluated folds. The in-domain cell comes from the run's own test records unless
an eval of the same folds on the same dataset replaces it. Reports without eval records are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agebench.report.recipes import Options, metric_label, primary_metric
from agebench.report.tables import Cell, Table, stat_cell
from agebench.results.store import EVALS_FILE, find_result_files, read_records


def find_eval_files(runs) -> list[Path]:
    return find_result_files(runs or [], EVALS_FILE)


def _row_key(record: dict) -> tuple:
    return (str(record.get("trained_on", record.get("dataset"))), str(record.get("model")),
            "+".join(record.get("tasks") or []), str(record.get("variant") or record.get("experiment") or ""),
            str(record.get("config_hash")))


def _column(record: dict) -> str:
    """The tested-on column: the dataset, with the split when it is not the usual one (the own test
    folds for the training dataset, every image for another)."""
    tested, split = str(record["tested_on"]), record.get("split")
    usual = "test" if tested == str(record.get("trained_on")) else "all"
    return tested if split == usual else f"{tested} ({split})"


def cross_dataset_tables(runs, run_records: list[dict] | None, opts: Options) -> list[Table]:
    """The tables described in the module docstring ([] when `runs` holds no eval records)."""
    evals = [r for f in find_eval_files(runs) for r in read_records(f) if r.get("status") == "ok"]
    if not evals:
        return []
    # (row, tested_on) → {fold: metrics}; the run's own test records first, evals replace them
    cells: dict[tuple, dict] = {}
    rows = {_row_key(r) for r in evals}
    for r in run_records or []:
        if r.get("status") == "ok" and r.get("kind") != "eval" and _row_key({**r, "trained_on": r.get("dataset")}) in rows:
            key = (_row_key({**r, "trained_on": r.get("dataset")}), str(r.get("dataset")))
            cells.setdefault(key, {})[("test", r.get("fold"))] = r.get("metrics") or {}
    for r in evals:
        cells.setdefault((_row_key(r), _column(r)), {})[(r.get("split"), r.get("fold"))] = r.get("metrics") or {}
    tested = sorted({t for _, t in cells}, key=lambda t: (t not in {row[0] for row in rows}, t))
    names = {m for per_fold in cells.values() for ms in per_fold.values() for m in ms}
    tasks = sorted({t for row in rows for t in row[2].split("+") if t})
    metrics = [m for m in (opts.metrics or [primary_metric(t, names) for t in tasks]) if m and m in names]
    tables = []
    for metric in metrics:
        label, scale = metric_label(metric, opts.percent)
        table = Table(title=f"Cross-dataset {label}: trained on (rows) × tested on (columns)",
                      columns=["trained on", "model", "tasks", "run", *tested], name=f"cross_dataset_{metric.replace('/', '_')}",
                      caption="mean ± std over the evaluated folds (`agebench eval`); the in-domain column is the "
                              "run's own test folds")
        for row in sorted(rows):
            out = [Cell(row[0]), Cell(row[1]), Cell(row[2]), Cell(row[3])]
            for target in tested:
                values = [ms[metric] for ms in cells.get((row, target), {}).values() if ms.get(metric) is not None]
                if not values:
                    out.append(Cell("—"))
                    continue
                arr = np.asarray(values, dtype=float) * scale
                out.append(stat_cell(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None, opts.fmt))
            table.add(out)
        tables.append(table)
    return tables
