"""Run records → one pandas frame: a row per record with its identity (canonical strings), derived
fields, costs and metrics.

A record's identity is its top-level identity fields (dataset, model, task-set, age bins, loss, seed, …)
plus every value of its resolved `config` except the paths agebench.results.run_identity keeps out of the
grouping (where and how a run executed). Records that share an identity are one configuration's folds
(agebench.report.groups).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from agebench.errors import UserError
from agebench.report.age_bins import age_classes, bins_name
from agebench.report.canon import canon, canon_tasks, flatten, get
from agebench.results import run_identity
from agebench.results.store import RESULTS_FILE, find_result_files, read_records

# Top-level identity fields of a run record, in display order.
IDENTITY_FIELDS = tuple(run_identity.RECORD_FIELDS)
ALWAYS_SHOWN = ("dataset", "model", "tasks")

# config paths that duplicate a top-level identity field (shown once, under the short name)
DUPLICATE_CONFIG = {f"config.{path}": name for name, path in run_identity.RECORD_FIELDS.items() if path}

# config paths (and their subtrees) that say where/how a run executed, not what it is
IGNORED_CONFIG = tuple(f"config.{path}" for path in run_identity.grouping_excluded())

COST_FIELDS = ("params", "gmacs", "size_mb", "latency_ms", "epochs", "train_seconds")
METRIC_PREFIX = "metrics."
LOSS_COLUMNS = ("gamma", "weights", "weighting")


def collect_records(runs) -> list[dict]:
    """Every run record under `runs` (dirs or globs, or a list of them), each with `results_file`.
    One clear UserError when there is nothing to report."""
    items = [runs] if isinstance(runs, (str, Path)) else [str(r) for r in (runs or [])]
    if not items:
        raise UserError("no runs given; pass runs=<dir with results.jsonl files> (e.g. runs=outputs)")
    for item in items:
        if not glob.glob(str(item)):
            raise UserError(f"runs={item} does not exist; point runs= at a directory written by `agebench train`")
    files = find_result_files(items)
    if not files:
        raise UserError(f"no {RESULTS_FILE} found under {', '.join(map(str, items))}; "
                        f"point runs= at a directory written by `agebench train`")
    records = []
    for f in files:
        for r in read_records(f):
            r = dict(r)
            r.setdefault("results_file", str(f))
            records.append(r)
    if not records:
        raise UserError(f"the {RESULTS_FILE} files under {', '.join(map(str, items))} hold no run records yet")
    return records


def _loss_fields(record: Mapping, config: Mapping) -> dict:
    loss = record.get("loss")
    cfg_loss = config.get("loss") if isinstance(config.get("loss"), Mapping) else {}
    if isinstance(loss, Mapping):
        gamma, weights, weighting = loss.get("gamma"), loss.get("weights"), loss.get("weighting")
    elif isinstance(loss, (int, float)):
        gamma, weights, weighting = loss, None, None
    else:
        gamma, weights, weighting = None, None, None
    gamma = gamma if gamma is not None else cfg_loss.get("gamma")
    weights = weights if weights is not None else cfg_loss.get("weights")
    weighting = weighting or cfg_loss.get("weighting") or "fixed"
    return {"gamma": gamma, "weights": weights, "weighting": weighting}


def _expected_folds(record: Mapping, config: Mapping):
    proto = config.get("protocol") if isinstance(config.get("protocol"), Mapping) else None
    if proto is None and isinstance(record.get("protocol"), Mapping):
        proto = record["protocol"]
    if not proto:
        return None
    folds = proto.get("folds")
    if folds is not None:
        numbers = tuple(sorted(int(f) for f in folds))
    else:
        n = proto.get("n_folds")
        if not (isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1):
            return None
        numbers = tuple(range(int(n)))
    repeats = proto.get("repeats") or 1
    repeats = int(repeats) if isinstance(repeats, (int, float)) and not isinstance(repeats, bool) else 1
    return numbers + tuple((r, f) for r in range(1, repeats) for f in numbers)


def _identity(record: Mapping, config: Mapping) -> dict:
    """The record's top-level identity fields, falling back to the config paths they repeat."""
    tasks = record.get("tasks")
    if tasks is None:
        tasks = get(config, "tasks.names")
    if tasks is None:
        tasks = sorted({m.split("/", 1)[0] for m in (record.get("metrics") or {}) if "/" in m})
    protocol = record.get("protocol")
    if isinstance(protocol, Mapping):
        protocol = protocol.get("name")
    if protocol is None:
        protocol = get(config, "protocol.name")
    return {
        "experiment": record.get("experiment", config.get("experiment_name")),
        "dataset": record.get("dataset", get(config, "data.name")),
        "model": record.get("model", get(config, "model.name")),
        "tasks": tasks,
        "age_bins": bins_name(record, config),
        **_loss_fields(record, config),
        "protocol": protocol,
        "seed": record.get("seed", config.get("seed")),
        "study": record.get("study"),
        "trial": record.get("trial"),
    }


def record_row(record: Mapping, ignore: Iterable[str] = ()) -> dict:
    """One frame row of a run record: identity (canonical strings), derived fields, costs, metrics."""
    config = record.get("config") if isinstance(record.get("config"), Mapping) else {}
    ignored = IGNORED_CONFIG + tuple("config." + i if not i.startswith("config.") else i for i in ignore)
    row: dict = {}
    ident = _identity(record, config)
    for key, value in ident.items():
        row[key] = canon_tasks(value) if key == "tasks" else canon(value)
    task_list = [t for t in row["tasks"].split("+") if t and t != "null"]
    # single-task runs ignore the loss weighting: do not let it split or mislabel them
    if len(task_list) <= 1:
        row["gamma"], row["weights"], row["weighting"] = "null", "null", "fixed"
    for key, value in flatten(config, "config", {}).items():
        if key in DUPLICATE_CONFIG or run_identity.covers(ignored, key) or key == "config":
            continue
        if run_identity.NEUTRAL_DEFAULTS.get(key[len("config."):], object()) == value:
            continue  # e.g. protocol.repeats=1: the same configuration as a record from before the key
        row[key] = canon(value)
    row["n_tasks"] = len(task_list)
    row["single_task"] = len(task_list) == 1
    entry = record.get("age_bins")
    row["age_classes"] = age_classes(entry if isinstance(entry, Mapping) else ident["age_bins"], config)
    fold = record.get("fold")
    fold = int(fold) if isinstance(fold, (int, float)) and not isinstance(fold, bool) else fold
    repeat = record.get("repeat") or 0  # protocol.repeats: (repeat, fold) is the fold key; repeat 0 stays a number
    row["fold"] = (int(repeat), fold) if isinstance(repeat, int) and repeat > 0 else fold
    row["status"] = record.get("status", "ok")
    row["expected_folds"] = _expected_folds(record, config)
    for name in COST_FIELDS:
        value = record.get(name)
        row[name] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan
    for name, value in (record.get("metrics") or {}).items():
        row[METRIC_PREFIX + name] = float(value) if isinstance(value, (int, float)) and value is not None else np.nan
    row["started_at"] = str(record.get("started_at") or "")
    row["results_file"] = record.get("results_file")
    row["_record"] = dict(record)
    return row


def build_frame(records: list[Mapping], ignore: Iterable[str] = ()) -> pd.DataFrame:
    if not records:
        raise UserError("no run records to report")
    frame = pd.DataFrame([record_row(r, ignore) for r in records])
    # config keys absent from some records (older configs) compare as "null"
    for col in identity_columns(frame):
        frame[col] = frame[col].fillna("null")
    return frame


def identity_columns(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in IDENTITY_FIELDS if c in frame.columns]
    cols += sorted(c for c in frame.columns if c.startswith("config."))
    return cols


def metric_names(frame: pd.DataFrame) -> list[str]:
    names = [c[len(METRIC_PREFIX):] for c in frame.columns if c.startswith(METRIC_PREFIX)]
    return sorted(names, key=metric_sort_key)


def metric_sort_key(name: str) -> tuple:
    """age before gender before race, then the order the metric registry declares (agebench.results.metrics)."""
    from agebench.results import metrics as registry
    return registry.sort_key(name)


def varying_columns(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Identity columns whose value differs between records. The loss columns count only among
    multi-task records (single-task runs carry no loss weighting)."""
    exclude = set(exclude)
    multi = frame[frame["n_tasks"] > 1] if "n_tasks" in frame.columns else frame
    out = []
    for c in identity_columns(frame):
        if c in exclude:
            continue
        col = multi[c] if c in LOSS_COLUMNS else frame[c]
        if col.nunique(dropna=False) > 1:
            out.append(c)
    return out


def shown_columns(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Identity columns a table shows: dataset, model, tasks and whatever else varies."""
    exclude = set(exclude)
    varying = varying_columns(frame, exclude)
    cols = [c for c in ALWAYS_SHOWN if c in frame.columns and c not in exclude]
    return cols + [c for c in varying if c not in cols]


def display_name(col: str) -> str:
    return col[len("config."):] if col.startswith("config.") else col
