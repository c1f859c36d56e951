"""The results store: run records (one JSON object per fold) and experiment summaries.

`results.jsonl` is only ever replaced whole (write to a temporary file, fsync, rename), so a crash
mid-write leaves the previous complete file; a record for a fold replaces any earlier record of the
same fold, so a resumed run never duplicates one. `load_records` turns any number of result files
into one pandas frame with the metrics flattened to `metrics.<name>` columns.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from agebench.errors import UserError
from agebench.files import atomic_write_bytes, exclusive

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
EVALS_FILE = "evals.jsonl"   # agebench eval's records beside a run's results (read by the report's cross-dataset table)

# The fields every run record carries (agebench.training.run_record writes them; docs/architecture.md, "run record"); more may follow.
RECORD_FIELDS = (
    "experiment", "dataset", "model", "tasks", "loss", "age_bins", "protocol", "fold", "seed", "status",
    "metrics", "epochs", "train_seconds", "params", "gmacs", "size_mb", "latency_ms", "git_sha",
    "config_hash", "started_at", "host",
)
STATUSES = ("ok", "failed", "diverged")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_records(path: str | Path) -> list[dict]:
    """Run records of one results.jsonl (empty list when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    # A bad line is one UserError naming file:line, not a skip: `train` rewrites this file on every
    # fold, so a skipped line would silently vanish, and `report` would print tables without it.
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UserError(f"{path}:{n} is not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                            f"remove or repair that line") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{n} is not a JSON run record ({err.msg}); remove or repair that line") from None
        except ValueError as err:  # e.g. an integer of more than 4,300 digits (Python's int-parsing guard)
            raise UserError(f"{path}:{n} is not a JSON run record ({str(err).split(';')[0]}); remove or repair "
                            f"that line") from None
        if not isinstance(record, dict) or not {"fold", "status"} <= set(record):
            what = f"a JSON {type(record).__name__}" if not isinstance(record, dict) else "an object without fold/status"
            raise UserError(f"{path}:{n} is valid JSON but not a run record ({what}); remove or repair that line")
        problem = record_type_problem(record) or (eval_record_problem(record) if path.name == EVALS_FILE else None)
        if problem:
            raise UserError(f"{path}:{n} is not a valid run record ({problem}); remove or repair that line")
        records.append(record)
    return records


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_type_problem(record: dict) -> str | None:
    """What makes a parsed record unusable by the report (a field of the wrong type), or None. Values the
    report can show as they are (an infinite metric, a failed fold) are not problems here."""
    fold, repeat, metrics, tasks = record.get("fold"), record.get("repeat"), record.get("metrics"), record.get("tasks")
    if not (_number(fold) and float(fold).is_integer() and fold >= 0):
        return f"fold is {json.dumps(fold)[:40]}, not a fold number"
    if repeat is not None and not (_number(repeat) and float(repeat).is_integer() and repeat >= 0):
        return f"repeat is {json.dumps(repeat)[:40]}, not a repeat number"
    if not isinstance(record.get("status"), str):
        return "status is not a string"
    if metrics is not None:
        if not isinstance(metrics, dict):
            return f"metrics is a JSON {type(metrics).__name__}, not an object of name: number"
        bad = next((k for k, v in metrics.items() if v is not None and not _number(v)), None)
        if bad is not None:
            return f"metric {bad!r} is {json.dumps(metrics[bad])[:40]}, not a number"
    if tasks is not None and not (isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)):
        return f"tasks is {json.dumps(tasks)[:40]}, not a list of task names"
    return None


def eval_record_problem(record: dict) -> str | None:
    """What makes a record of evals.jsonl unusable by the cross-dataset table (which places it by the
    datasets it was trained and tested on), or None."""
    for field in ("trained_on", "tested_on"):
        if not isinstance(record.get(field), str):
            return f"{field} is {json.dumps(record.get(field))[:40]}, not a dataset name"
    return None


def fold_key(record: dict):
    """A record's fold key: its `fold`, or (repeat, fold) in the repeats after the first (protocol.repeats);
    records written before repeats existed have no `repeat` and are repeat 0."""
    repeat = record.get("repeat") or 0
    return record.get("fold") if not repeat else (int(repeat), record.get("fold"))


def fold_order(key) -> tuple:
    """Sort key of fold keys: repeat 0's folds by number, then each later repeat's, then anything else."""
    if isinstance(key, (tuple, list)) and len(key) == 2:
        return (0, int(key[0]), int(key[1]) if isinstance(key[1], (int, float)) else 0, str(key[1]))
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, 0, int(key), "")
    return (1, 0, 0, str(key))


def _record_key(record: dict) -> tuple:
    return (record.get("study"), record.get("trial"), record.get("repeat") or 0, record.get("fold"))


def append_record(path: str | Path, record: dict, key=_record_key) -> None:
    """Add a run record, replacing an earlier record of the same fold (a rerun), atomically.
    `key(record)` says which records are the same one (eval records: agebench.evaluation.evaluate)."""
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"run record lacks {missing}")
    same = key(record)
    with exclusive(_lock_of(path)):  # any writer (train, eval, a notebook): read-modify-write as one step
        kept = [r for r in read_records(path) if key(r) != same]
        kept.append(_jsonable(record))
        atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def drop_records(path: str | Path, unwanted) -> int:
    """Remove the records for which `unwanted(record)` is true, atomically; returns how many went."""
    with exclusive(_lock_of(path)):
        records = read_records(path)
        kept = [r for r in records if not unwanted(r)]
        if len(kept) < len(records):
            atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return len(records) - len(kept)


def _lock_of(path: str | Path) -> Path:
    """The lock file of a JSONL store (`results.jsonl.lock` beside `results.jsonl`): its own file, so a caller
    that already holds a wider lock (train's `.results.lock`) never waits on itself."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def summarise(records: list[dict]) -> dict:
    """Per-metric mean, std (sample, ddof=1) and n over the folds whose status is ok."""
    ok = [r for r in records if r.get("status") == "ok"]
    names = sorted({m for r in ok for m, v in r.get("metrics", {}).items() if v is not None})
    metrics = {}
    for name in names:
        values = np.array([r["metrics"][name] for r in ok if r["metrics"].get(name) is not None], dtype=float)
        metrics[name] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": int(len(values)),
        }
    return {
        "folds_ok": sorted((fold_key(r) for r in ok), key=fold_order),
        "folds_failed": sorted((fold_key(r) for r in records if r.get("status") != "ok"), key=fold_order),
        "metrics": metrics,
    }


def find_result_files(runs: str | Path | Iterable[str | Path], name: str = RESULTS_FILE) -> list[Path]:
    """Every file called `name` (results.jsonl; evals.jsonl for `agebench eval`) under the given directories or globs."""
    items = [runs] if isinstance(runs, (str, Path)) else list(runs)
    files: set[Path] = set()
    for item in items:
        # an existing path is taken as it is: `run[1]` names that directory, not a glob class matching `run1`
        matches = [str(item)] if Path(item).exists() else glob.glob(str(item))
        for match in matches:
            p = Path(match)
            if p.is_file() and p.name == name:
                files.add(p.resolve())
            elif p.is_dir():
                files.update(f.resolve() for f in p.rglob(name))
    return sorted(files)


def load_records(runs) -> pd.DataFrame:
    """All run records under `runs` as a frame: one row per fold record, `metrics.*` flattened,
    plus `results_file`. Raises UserError when nothing is found."""
    files = find_result_files(runs)
    if not files:
        raise UserError(f"no {RESULTS_FILE} found under {runs}; point runs= at a directory written by `agebench train`")
    rows = []
    for f in files:
        for r in read_records(f):
            r = dict(r)
            r["results_file"] = str(f)
            rows.append(r)
    if not rows:
        raise UserError(f"the {RESULTS_FILE} files under {runs} hold no run records yet")
    return pd.json_normalize(rows, max_level=1)
