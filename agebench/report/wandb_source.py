"""`source=wandb`: the same run records, pulled from the W&B API instead of the local store.

`agebench train logger=wandb` logs one W&B run per fold with the resolved config and the test metrics
in its summary. This module turns each W&B run back into a run record — `config` (nested again if the
API returns dotted keys), the record's identity fields (from the config, falling back to the W&B
group / job_type), `metrics` from the summary (`test/age/top1` and `age/top1` both read as
`age/top1`, test/ preferred) and the cost fields — so the rest of the report cannot tell the
difference. Needs network access and a W&B login (`wandb login` or WANDB_API_KEY).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agebench.errors import UserError

RECORD_KEYS = ("experiment", "dataset", "model", "tasks", "loss", "age_bins", "protocol", "fold", "seed",
               "status", "epochs", "train_seconds", "params", "gmacs", "size_mb", "latency_ms", "git_sha",
               "config_hash", "started_at", "host", "study", "trial", "trial_params", "predictions")
METRIC_RE = re.compile(r"^(?:(test|val|train)/)?((?:age|gender|race)/[A-Za-z0-9_.]+)$")
STATE_STATUS = {"finished": "ok", "crashed": "failed", "failed": "failed", "killed": "failed",
                "running": "running", "pending": "running"}


def _plain(obj):
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _unflatten(config: Mapping) -> dict:
    """{"model.width": [2,1]} → {"model": {"width": [2,1]}}; W&B wraps values as {"value": v} sometimes."""
    out: dict = {}
    for key, value in config.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping) and set(value) == {"value"}:
            value = value["value"]
        if isinstance(value, Mapping) and set(value) <= {"value", "desc"} and "value" in value:
            value = value["value"]
        cur = out
        parts = str(key).split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {}) if isinstance(cur.get(p, {}), dict) else cur
        cur[parts[-1]] = _plain(value)
    return out


def _summary_dict(summary) -> dict:
    if summary is None:
        return {}
    if hasattr(summary, "_json_dict"):
        return dict(summary._json_dict)
    try:
        return dict(summary)
    except (TypeError, ValueError):
        return {}


def run_to_record(run) -> dict:
    config = _unflatten(dict(getattr(run, "config", {}) or {}))
    summary = _summary_dict(getattr(run, "summary", None))
    # a run may carry the whole run record in its config (record fields at top level, resolved config under
    # "config") or just the resolved Hydra config
    inner = config.get("config") if isinstance(config.get("config"), Mapping) else None
    cfg = inner if inner is not None else config
    record: dict = {}
    for key in RECORD_KEYS:
        nested_ok = key in ("loss", "protocol", "trial_params") and inner is not None
        if key in config and (nested_ok or not isinstance(config[key], Mapping)):
            record[key] = config[key]
        elif key in summary and not isinstance(summary[key], Mapping):
            record[key] = summary[key]
    record.setdefault("experiment", cfg.get("experiment_name") or getattr(run, "group", None))
    record.setdefault("dataset", (cfg.get("data") or {}).get("name") if isinstance(cfg.get("data"), Mapping) else None)
    model = cfg.get("model")
    if "model" not in record or isinstance(record.get("model"), Mapping):
        record["model"] = model.get("name") if isinstance(model, Mapping) else model
    tasks = cfg.get("tasks")
    if "tasks" not in record or isinstance(record.get("tasks"), Mapping):
        record["tasks"] = tasks.get("names") if isinstance(tasks, Mapping) else tasks
    if "age_bins" not in record and isinstance(tasks, Mapping) and isinstance(tasks.get("age"), Mapping):
        record["age_bins"] = tasks["age"].get("bins")
    if "loss" not in record and isinstance(cfg.get("loss"), Mapping):
        loss = cfg["loss"]
        record["loss"] = {"gamma": loss.get("gamma"), "weights": loss.get("weights"),
                          "weighting": loss.get("weighting", "fixed")}
    if "seed" not in record:
        record["seed"] = cfg.get("seed")
    if "fold" not in record:
        found = re.search(r"(\d+)$", str(getattr(run, "job_type", "") or ""))
        record["fold"] = int(found.group(1)) if found else None
    if "status" not in record:
        record["status"] = STATE_STATUS.get(str(getattr(run, "state", "finished")), "failed")
    metrics: dict = {}
    ranks: dict = {}
    for key, value in summary.items():
        m = METRIC_RE.match(str(key))
        if not m or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        rank = {"test": 0, None: 1, "val": 2, "train": 3}[m.group(1)]
        if rank < 3 and rank < ranks.get(m.group(2), 9):
            metrics[m.group(2)] = float(value)
            ranks[m.group(2)] = rank
    if isinstance(summary.get("metrics"), Mapping):
        metrics.update({k: float(v) for k, v in summary["metrics"].items() if isinstance(v, (int, float))})
    record["metrics"] = metrics
    record["config"] = cfg
    record["results_file"] = f"wandb:{getattr(run, 'path', None) and '/'.join(map(str, run.path)) or getattr(run, 'id', '?')}"
    return record


def fetch_records(project: str, filters: Mapping | None = None, api=None, include_running: bool = False) -> list[dict]:
    """Run records of every run in `entity/project` (optionally W&B server-side `filters`)."""
    if not project or "/" not in str(project):
        raise UserError(f"source=wandb needs project=<entity>/<project> (got {project!r})")
    if api is None:
        try:
            import wandb
        except ImportError:  # pragma: no cover
            raise UserError("source=wandb needs the wandb package: pip install wandb") from None
        try:
            api = wandb.Api(timeout=30)
        except Exception as err:  # noqa: BLE001 — wandb raises many kinds for a missing login
            raise UserError(f"cannot reach W&B ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                            f"run `wandb login` or set WANDB_API_KEY, or report from local runs=<dir>") from None
    try:
        runs = list(api.runs(str(project), filters=dict(filters) if filters else None))
    except Exception as err:  # noqa: BLE001
        raise UserError(f"W&B project {project!r} could not be read ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                        f"check the entity/project name and your login") from None
    # the tables `agebench report wandb=true` logged are not run records
    records = [run_to_record(r) for r in runs if getattr(r, "job_type", None) != "report"]
    if not include_running:
        records = [r for r in records if r.get("status") != "running"]
    if not records:
        raise UserError(f"W&B project {project!r} has no finished runs to report")
    return records
