"""Run records → one pandas frame → configurations (groups of folds) with mean ± std per metric.

A *configuration* is every run record that shares the same identity: the run record's dataset,
model, task-set, age bins, loss and seed, plus every value of its resolved `config` except those that
only say where or how a run was executed (paths, logger, device, which folds were requested; see
`IGNORED_CONFIG`). Records of one configuration are its folds. A configuration whose protocol expects
folds that are missing or not `ok` is *incomplete*: it is reported, with its finished folds' mean and
std, and marked; it is never averaged silently.

Every identity value is held as a canonical string (`canon`) so that lists (`model.width=[2,1]`),
None and numbers group and filter the same way whether they come from JSON, YAML or the command line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agebench.errors import UserError
from agebench.results import RESULTS_FILE, find_result_files, read_records

TASK_ORDER = ("age", "gender", "race")

# Top-level identity fields of a run record, in display order.
IDENTITY_FIELDS = ("experiment", "dataset", "model", "tasks", "age_bins", "gamma", "weighting", "weights",
                   "protocol", "seed", "study", "trial")
ALWAYS_SHOWN = ("dataset", "model", "tasks")

# config paths that duplicate a top-level identity field (shown once, under the short name)
DUPLICATE_CONFIG = {
    "config.experiment_name": "experiment",
    "config.data.name": "dataset",
    "config.model.name": "model",
    "config.tasks.names": "tasks",
    "config.tasks.age.bins": "age_bins",
    "config.loss.gamma": "gamma",
    "config.loss.weighting": "weighting",
    "config.loss.weights": "weights",
    "config.protocol.name": "protocol",
    "config.seed": "seed",
}

# config paths (prefixes) that say where/how a run executed, not what it is
IGNORED_CONFIG = (
    "config.output_dir", "config.cache_dir", "config.data.root", "config.data.num_workers", "config.data.render_workers",
    "config.trainer.async_checkpoint", "config.trainer.progress_bar",
    "config.protocol.folds", "config.logger", "config.hydra", "config.summary_table", "config.closing_report", "config.profile",
    "config.trainer.accelerator", "config.trainer.devices", "config.trainer.strategy",
    "config.trainer.threads", "config.trainer.log_every_n_steps", "config.trainer.deterministic",
    "config.trainer.compile", "config.trainer.channels_last", "config.trainer.matmul_precision",
    "config.trial_params", "config.sweep",
)

COST_FIELDS = ("params", "gmacs", "size_mb", "latency_ms", "epochs", "train_seconds")
METRIC_PREFIX = "metrics."

# short names users may write in filters
ALIASES = {
    "width": "config.model.width",
    "bins": "age_bins",
    "γ": "gamma",
    "backbone": "config.model.backbone",
    "num_convs": "config.model.num_convs",
    "head": "config.tasks.age.head",
}


# --------------------------------------------------------------------------- canonical values

def canon(value) -> str:
    """A canonical string for grouping and filtering: 1 == 1.0 == "1", [2, 1] → "[2,1]", None → "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "null"
        return f"{v:.10g}"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{canon(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canon(v) for v in value) + "]"
    if hasattr(value, "items"):  # OmegaConf DictConfig
        return canon(dict(value.items()))
    if hasattr(value, "__iter__") and not isinstance(value, str):  # ListConfig
        return canon(list(value))
    text = str(value).strip()
    try:  # numbers written as strings on the command line
        return canon(float(text)) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) else text
    except ValueError:  # pragma: no cover
        return text


def canon_tasks(value) -> str:
    """Task-set as "age+gender": from a list, "age_gender", "age+gender" or a single name."""
    if value is None:
        return "null"
    if isinstance(value, str):
        parts = re.split(r"[+_,\s]+", value.strip("[] "))
    else:
        parts = [str(v) for v in value]
    parts = [p for p in parts if p]
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    return "+".join(sorted(parts, key=lambda t: (order.get(t, len(order)), t)))


def _flatten(obj, prefix: str, out: dict) -> dict:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = obj
    return out


def _get(d, dotted: str, default=None):
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def age_classes(age_bins, config: Mapping | None = None):
    """Number of age classes of a bin scheme (adience8 → 8, uniform:5 → 5, edges → K); None if unknown."""
    if config and _get(config, "tasks.age.head") == "regression" and age_bins in (None, "null"):
        return None
    spec = age_bins if age_bins not in (None, "null") else _get(config or {}, "tasks.age.bins")
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return len(spec) - 1 if len(spec) >= 3 else None
    text = str(spec)
    if text.startswith("uniform:"):
        try:
            return int(text.split(":", 1)[1])
        except ValueError:
            return None
    if text.startswith("edges:"):
        return len(text.split(":", 1)[1].split(",")) - 1
    years = re.fullmatch(r"years:(-?\d+)-(-?\d+)", text)  # one bin per year, both ends included
    if years:
        return int(years.group(2)) - int(years.group(1)) + 1
    if text.startswith("["):
        try:
            edges = json.loads(text)
            return len(edges) - 1
        except ValueError:
            return None
    found = re.search(r"(\d+)$", text)
    return int(found.group(1)) if found else None


# --------------------------------------------------------------------------- loading

def collect_records(runs) -> list[dict]:
    """Every run record under `runs` (dirs or globs, or a list of them), each with `results_file`.
    One clear UserError when there is nothing to report."""
    items = [runs] if isinstance(runs, (str, Path)) else [str(r) for r in (runs or [])]
    if not items:
        raise UserError("no runs given; pass runs=<dir with results.jsonl files> (e.g. runs=outputs)")
    import glob as _glob

    for item in items:
        if not _glob.glob(str(item)):
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
        return tuple(sorted(int(f) for f in folds))
    n = proto.get("n_folds")
    if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1:
        return tuple(range(int(n)))
    return None


def record_row(record: Mapping, ignore: Iterable[str] = ()) -> dict:
    """One frame row of a run record: identity (canonical strings), derived fields, costs, metrics."""
    config = record.get("config") if isinstance(record.get("config"), Mapping) else {}
    ignored = tuple(IGNORED_CONFIG) + tuple("config." + i if not i.startswith("config.") else i for i in ignore)
    row: dict = {}
    tasks = record.get("tasks")
    if tasks is None:
        tasks = _get(config, "tasks.names")
    if tasks is None:
        tasks = sorted({m.split("/", 1)[0] for m in (record.get("metrics") or {}) if "/" in m})
    protocol = record.get("protocol")
    if isinstance(protocol, Mapping):
        protocol = protocol.get("name")
    if protocol is None:
        protocol = _get(config, "protocol.name")
    age_bins = record.get("age_bins")
    if age_bins is None:
        age_bins = _get(config, "tasks.age.bins")
    ident = {
        "experiment": record.get("experiment", config.get("experiment_name")),
        "dataset": record.get("dataset", _get(config, "data.name")),
        "model": record.get("model", _get(config, "model.name")),
        "tasks": tasks,
        "age_bins": age_bins,
        **_loss_fields(record, config),
        "protocol": protocol,
        "seed": record.get("seed", config.get("seed")),
        "study": record.get("study"),
        "trial": record.get("trial"),
    }
    for key, value in ident.items():
        row[key] = canon_tasks(value) if key == "tasks" else canon(value)
    task_list = [t for t in row["tasks"].split("+") if t and t != "null"]
    # single-task runs ignore the loss weighting: do not let it split or mislabel them
    if len(task_list) <= 1:
        row["gamma"], row["weights"], row["weighting"] = "null", "null", "fixed"
    for key, value in _flatten(config, "config", {}).items():
        if key in DUPLICATE_CONFIG or key.startswith(ignored) or key == "config":
            continue
        row[key] = canon(value)
    row["n_tasks"] = len(task_list)
    row["single_task"] = len(task_list) == 1
    row["age_classes"] = age_classes(age_bins, config)
    fold = record.get("fold")
    row["fold"] = int(fold) if isinstance(fold, (int, float)) and not isinstance(fold, bool) else fold
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
    rows = [record_row(r, ignore) for r in records]
    frame = pd.DataFrame(rows)
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
    """age before gender before race, then the order the metric registry declares (agebench.metrics)."""
    from agebench import metrics as registry

    return registry.sort_key(name)


LOSS_COLUMNS = ("gamma", "weights", "weighting")


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


def display_name(col: str) -> str:
    return col[len("config."):] if col.startswith("config.") else col


# --------------------------------------------------------------------------- filters

def resolve_key(key: str, frame: pd.DataFrame) -> str:
    key = str(key)
    key = ALIASES.get(key, key)
    if key in frame.columns:
        return key
    if METRIC_PREFIX + key in frame.columns:
        return METRIC_PREFIX + key
    if "config." + key in frame.columns:
        return "config." + key
    if key.startswith("config.") and key in DUPLICATE_CONFIG:
        return DUPLICATE_CONFIG[key]
    if ("config." + key) in DUPLICATE_CONFIG:
        return DUPLICATE_CONFIG["config." + key]
    return key  # absent: matches only a null filter value


def _match_value(series: pd.Series, key: str, wanted) -> pd.Series:
    if isinstance(wanted, Mapping) and (set(wanted) & {"in", "not", "not_in", "lt", "le", "gt", "ge"}):
        mask = pd.Series(True, index=series.index)
        if "in" in wanted:
            mask &= _match_value(series, key, {"__any__": list(wanted["in"])})
        if "not" in wanted:
            mask &= ~_match_value(series, key, wanted["not"])
        if "not_in" in wanted:
            mask &= ~_match_value(series, key, {"__any__": list(wanted["not_in"])})
        numeric = pd.to_numeric(series.replace("null", np.nan), errors="coerce")
        for op, fn in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
            if op in wanted:
                mask &= fn(numeric, float(wanted[op])).fillna(False)
        return mask
    if isinstance(wanted, Mapping) and "__any__" in wanted:
        mask = pd.Series(False, index=series.index)
        for w in wanted["__any__"]:
            mask |= _match_value(series, key, w)
        return mask
    conv = canon_tasks if key == "tasks" else canon
    if key in ("single_task",):
        return series.astype(bool) == (canon(wanted) == "true")
    if key in ("n_tasks", "age_classes", "fold"):
        return series.map(canon) == canon(wanted)
    values = series.map(lambda v: v if isinstance(v, str) else canon(v))
    if isinstance(wanted, (list, tuple)) and key != "tasks":
        as_list = values == canon(list(wanted))
        # a list filter on a scalar field means "any of these"
        any_of = values.isin([conv(w) for w in wanted])
        return as_list | any_of
    return values == conv(wanted)


def apply_filters(frame: pd.DataFrame, filters: Mapping | None) -> pd.DataFrame:
    """Records whose values match every `key: value` (value: scalar, list = any of / list-valued
    equality, or {in: [...], not: x, lt/le/gt/ge: n})."""
    if not filters:
        return frame
    mask = pd.Series(True, index=frame.index)
    for key, wanted in flatten_filters(_plain(filters)).items():
        col = resolve_key(key, frame)
        if col not in frame.columns:
            if canon(wanted) != "null":
                mask &= False
            continue
        mask &= _match_value(frame[col], col, _plain(wanted))
    return frame[mask]


FILTER_OPS = {"in", "not", "not_in", "lt", "le", "gt", "ge"}


def flatten_filters(filters: Mapping, prefix: str = "") -> dict:
    """{model: {width: [2, 1]}} (as `+filters.model.width=[2,1]` builds it) → {"model.width": [2, 1]}."""
    out = {}
    for key, value in dict(filters).items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and not (set(map(str, value)) & FILTER_OPS):
            out.update(flatten_filters(value, name))
        else:
            out[name] = value
    return out


def _plain(value):
    """OmegaConf containers → plain Python."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return value


# --------------------------------------------------------------------------- groups

@dataclass
class Stat:
    mean: float
    std: float          # sample std (ddof=1); NaN with one fold
    n: int
    values: dict        # fold → value (ok folds)


@dataclass
class Group:
    key: dict                       # identity column → canonical value
    frame: pd.DataFrame             # its records (one per fold after de-duplication)
    expected: list | None
    folds_ok: list = field(default_factory=list)
    folds_bad: dict = field(default_factory=dict)    # fold → status
    folds_missing: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)   # folds that had more than one record
    metrics: dict = field(default_factory=dict)      # name → Stat
    costs: dict = field(default_factory=dict)        # name → mean over ok folds

    @property
    def complete(self) -> bool:
        return not self.folds_bad and not self.folds_missing and bool(self.folds_ok)

    @property
    def n_expected(self) -> int:
        return len(self.expected) if self.expected is not None else len(self.folds_ok) + len(self.folds_bad)

    @property
    def folds_text(self) -> str:
        return f"{len(self.folds_ok)}/{self.n_expected}"

    @property
    def tasks(self) -> list[str]:
        return [t for t in self.key.get("tasks", "").split("+") if t and t != "null"]

    def problems(self) -> str:
        """"fold 3 failed, fold 4 missing" (empty when complete)."""
        parts = [f"fold {f} {s}" for f, s in sorted(self.folds_bad.items(), key=lambda kv: str(kv[0]))]
        parts += [f"fold {f} missing" for f in self.folds_missing]
        if not self.folds_ok:
            parts.append("no finished fold")
        return ", ".join(parts)

    def label(self, columns: Iterable[str]) -> str:
        return ", ".join(f"{display_name(c)}={self.key.get(c, 'null')}" for c in columns)


def _fold_sort(f):
    return (0, f) if isinstance(f, (int, np.integer)) else (1, str(f))


def make_group(key: dict, records: pd.DataFrame) -> Group:
    expected_sets = [e for e in records["expected_folds"] if e is not None]
    expected = sorted(set().union(*map(set, expected_sets)), key=_fold_sort) if expected_sets else None
    chosen, duplicates = [], []
    for fold, recs in records.groupby("fold", dropna=False, sort=False):
        if len(recs) > 1:
            duplicates.append(fold)
            ok = recs[recs["status"] == "ok"]
            pick = (ok if len(ok) else recs).sort_values("started_at").iloc[[-1]]
        else:
            pick = recs
        chosen.append(pick)
    dedup = pd.concat(chosen) if chosen else records.iloc[:0]
    ok = dedup[dedup["status"] == "ok"]
    bad = dedup[dedup["status"] != "ok"]
    folds_ok = sorted(ok["fold"].tolist(), key=_fold_sort)
    folds_bad = {f: s for f, s in zip(bad["fold"], bad["status"], strict=False)}
    seen = set(folds_ok) | set(folds_bad)
    missing = [f for f in (expected or []) if f not in seen]
    group = Group(key=key, frame=dedup.sort_values("fold", key=lambda s: s.map(_fold_sort)), expected=expected,
                  folds_ok=folds_ok, folds_bad=folds_bad, folds_missing=missing,
                  duplicates=sorted(duplicates, key=_fold_sort))
    for col in [c for c in ok.columns if c.startswith(METRIC_PREFIX)]:
        sub = ok[["fold", col]].dropna()
        if sub.empty:
            continue
        values = sub[col].to_numpy(dtype=float)
        group.metrics[col[len(METRIC_PREFIX):]] = Stat(
            mean=float(values.mean()),
            std=float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            n=int(len(values)),
            values=dict(zip(sub["fold"].tolist(), values.tolist(), strict=False)),
        )
    for name in COST_FIELDS:
        vals = ok[name].dropna() if name in ok.columns else pd.Series(dtype=float)
        if vals.empty and name in dedup.columns:  # params etc. are known even for a failed fold
            vals = dedup[name].dropna() if name in ("params", "gmacs", "size_mb") else vals
        group.costs[name] = float(vals.mean()) if len(vals) else float("nan")
    return group


def aggregate(frame: pd.DataFrame, by: list[str] | None = None) -> list[Group]:
    """Configurations of `frame`, grouped by every identity column (or `by`), in first-seen order."""
    if frame.empty:
        return []
    by = by if by is not None else identity_columns(frame)
    groups = []
    for values, recs in frame.groupby(by, dropna=False, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        groups.append(make_group(dict(zip(by, values, strict=False)), recs))
    return groups


def shown_columns(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Identity columns a table shows: dataset, model, tasks and whatever else varies."""
    exclude = set(exclude)
    varying = varying_columns(frame, exclude)
    cols = [c for c in ALWAYS_SHOWN if c in frame.columns and c not in exclude]
    return cols + [c for c in varying if c not in cols]


def label_columns(groups: list[Group]) -> list[str]:
    """dataset, model, tasks and the identity columns whose values differ among `groups`."""
    if not groups:
        return list(ALWAYS_SHOWN)
    keys = [k for k in groups[0].key]
    multi = [g for g in groups if len(g.tasks) > 1]
    varying = [k for k in keys if k not in ALWAYS_SHOWN
               and len({g.key.get(k) for g in (multi if k in LOSS_COLUMNS else groups)}) > 1]
    return [k for k in ALWAYS_SHOWN if k in keys] + varying
