"""`agebench data summary data=<name> data.root=<dir> [tasks=<set>] [format=json] [plot=<png>]`.

Parses a dataset's metadata only (images need not exist; missing ones are counted) and reports what a
run over the task-set would use: records kept, subjects, counts per fold / split, label histograms per
fold (or split), the rows the parser skipped grouped by reason, the rows the task-set drops, and the
parser's notes. `plot=<path>` also writes the age / gender distribution figure of seeds 001/002.
With format=json only the JSON document goes to stdout (warnings go to stderr).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from agebench.data.filtering import dropped_for_tasks, label_mask, require_from_cfg
from agebench.data.sources import get_source

EXAMPLES = 3
GENDER_NAMES = ("male", "female")
DECADES = tuple(range(0, 101, 10))


def _grouped(table: pd.DataFrame) -> dict[str, dict]:
    """{reason: {count, examples}} ordered by count."""
    out: dict[str, dict] = {}
    if table is None or table.empty:
        return out
    for reason, part in sorted(table.groupby("reason", sort=False), key=lambda kv: -len(kv[1])):
        out[str(reason)] = {"count": int(len(part)), "examples": [str(d) for d in part["detail"].head(EXAMPLES)]}
    return out


def _decade(age: float) -> str:
    lo = int(min(age // 10 * 10, 100))
    return "100+" if lo >= 100 else f"{lo}-{lo + 9}"


def _histograms(records: pd.DataFrame, group_names, race_names) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    groups = records["age_group"].to_numpy()
    years = records["age"].to_numpy(dtype=np.float64)
    if (groups >= 0).any():
        names = list(group_names) or [str(i) for i in range(int(groups.max()) + 1)]
        counts = np.bincount(groups[groups >= 0], minlength=len(names))
        hist = {names[i] if i < len(names) else str(i): int(c) for i, c in enumerate(counts)}
        hist["missing"] = int((groups < 0).sum())
        out["age_group"] = hist
    if (~np.isnan(years)).any():
        labels = [_decade(a) for a in years[~np.isnan(years)]]
        order = [_decade(d) for d in DECADES]
        counted = pd.Series(labels).value_counts()
        hist = {k: int(counted.get(k, 0)) for k in order if counted.get(k, 0)}
        hist["missing"] = int(np.isnan(years).sum())
        out["age_years"] = hist
        out["age_stats"] = {"mean": round(float(np.nanmean(years)), 2), "min": float(np.nanmin(years)),
                            "max": float(np.nanmax(years))}
    for column, names in (("gender", GENDER_NAMES), ("race", tuple(race_names))):
        values = records[column].to_numpy()
        if (values >= 0).any():
            names = list(names) or [str(i) for i in range(int(values.max()) + 1)]
            counts = np.bincount(values[values >= 0], minlength=len(names))
            hist = {names[i] if i < len(names) else str(i): int(c) for i, c in enumerate(counts)}
            hist["missing"] = int((values < 0).sum())
            out[column] = hist
    return out


def _image_check(source, records: pd.DataFrame, data_cfg) -> dict:
    if source.name == "synthetic":
        return {"checked": 0, "missing": 0, "first_missing": [], "note": "rendered, no image files"}
    paths = source.image_paths(records, data_cfg)
    kinds = _image_problems(paths)
    bad = {kind: [str(p) for p, k in zip(paths, kinds) if k == kind]
           for kind in ("missing", "empty", "corrupt", "too_large")}
    return {"checked": len(paths), "bad": sum(len(v) for v in bad.values()),
            "missing": len(bad["missing"]), "first_missing": bad["missing"][:EXAMPLES],
            "empty": len(bad["empty"]), "first_empty": bad["empty"][:EXAMPLES],
            "corrupt": len(bad["corrupt"]), "first_corrupt": bad["corrupt"][:EXAMPLES],
            "too_large": len(bad["too_large"]), "first_too_large": bad["too_large"][:EXAMPLES]}


def _image_problems(paths) -> list[str]:
    """Per path "" (decodes), "missing", "empty" (0 bytes), "too_large" (its header claims more pixels than the
    decode limit: never decoded) or "corrupt" (does not decode): what a run
    would skip. Each file is decoded at a tiny size (JPEG decoders then read a fraction of the data)."""
    from concurrent.futures import ThreadPoolExecutor

    from agebench.data.decode import OK, TOO_LARGE, decode_workers, try_decode

    def problem(path) -> str:
        if not os.path.isfile(path):
            return "missing"
        if os.path.getsize(path) == 0:
            return "empty"
        status = try_decode(path, 8, None)[0]
        return "" if status == OK else "too_large" if status == TOO_LARGE else "corrupt"

    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=decode_workers(len(paths))) as pool:
        return list(pool.map(problem, paths, chunksize=64))


def summarise_dataset(data_cfg, task_names, plot: str | os.PathLike | None = None, check_images: bool = True) -> dict:
    """Everything `agebench data summary` reports, as a JSON-able dict (see module docstring)."""
    task_names = list(task_names)
    source = get_source(str(data_cfg.name))
    if source.needs_root or source.name == "multisource":
        source.check_root(data_cfg)
    parsed = source.parse(data_cfg)
    require = require_from_cfg(data_cfg)
    everything = parsed.records
    keep = label_mask(everything, task_names, require) if len(everything) else np.zeros(0, bool)
    records = everything[keep].reset_index(drop=True)
    dropped = dropped_for_tasks(everything, task_names, require) if len(everything) else None

    result: dict = {
        "dataset": source.name,
        "root": None if data_cfg.get("root") is None else str(data_cfg.get("root")),
        "tasks": task_names,
        "rows_with_missing_labels": "kept, masked per task" if require == "any" else "dropped",
        "rows_read": int(len(everything) + len(parsed.skipped)),
        "records_parsed": int(len(everything)),
        "records_kept": int(len(records)),
        "subjects": int(records["subject"].nunique()),
        "native_age_bins": source.native_age_bins.name if source.native_age_bins is not None else None,
    }
    if (records["fold"] >= 0).any():
        result["folds"] = {str(k): int(n) for k, n in records["fold"].value_counts().sort_index().items()}
    if (records["split"] != "").any():
        result["splits"] = {str(k): int(n) for k, n in records["split"].value_counts().sort_index().items()}
    if records["source"].nunique() > 1:
        result["sources"] = {str(k): int(n) for k, n in records["source"].value_counts().sort_index().items()}
    if check_images:
        result["images"] = _image_check(source, records, data_cfg)

    by = next((col for key, col in (("folds", "fold"), ("splits", "split"), ("sources", "source")) if key in result), None)
    histograms = {"all": _histograms(records, parsed.age_group_names, parsed.race_names)}
    if by:
        for key, part in records.groupby(by, sort=True):
            histograms[f"{by} {key}"] = _histograms(part, parsed.age_group_names, parsed.race_names)
    result["histograms"] = histograms
    result["skipped"] = _grouped(parsed.skipped)
    result["skipped_total"] = int(len(parsed.skipped))
    result["dropped_for_tasks"] = _grouped(dropped)
    result["dropped_for_tasks_total"] = int(0 if dropped is None else len(dropped))
    result["notes"] = list(parsed.notes)
    if plot:
        result["plot"] = str(plot_distributions(records, parsed, plot, title=f"{source.name} ({'_'.join(task_names)})"))
    return result


def plot_distributions(records: pd.DataFrame, parsed, path, title: str = "") -> Path:
    """Age distribution by gender (left) and per fold/split (right), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if (records["age_group"] >= 0).any():
        names = list(parsed.age_group_names) or [str(i) for i in range(int(records["age_group"].max()) + 1)]
        age_bin = records["age_group"].to_numpy()
    else:
        names = [_decade(d) for d in DECADES]
        years = records["age"].to_numpy(dtype=np.float64)
        age_bin = np.where(np.isnan(years), -1, np.minimum(np.nan_to_num(years) // 10, 10)).astype(int)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    bottom = np.zeros(len(names))
    gender = records["gender"].to_numpy()
    for value, label in ((0, "male"), (1, "female"), (-1, "gender unknown")):
        sel = (gender == value) & (age_bin >= 0)
        if sel.any():
            counts = np.bincount(age_bin[sel], minlength=len(names))[: len(names)]
            axes[0].bar(x, counts, bottom=bottom, label=label)
            bottom += counts
    axes[0].set_title("age by gender")
    by = "fold" if (records["fold"] >= 0).any() else ("split" if (records["split"] != "").any() else None)
    if by:
        for key in sorted(records[by].unique()):
            idx = np.flatnonzero(records[by].to_numpy() == key)
            sel = age_bin[idx]
            sel = sel[sel >= 0]
            counts = np.bincount(sel, minlength=len(names))[: len(names)]
            axes[1].plot(x, counts / max(counts.sum(), 1), marker="o", label=f"{by} {key}")
        axes[1].set_title(f"age distribution per {by} (fraction)")
    else:
        sel = age_bin[age_bin >= 0]
        axes[1].plot(x, np.bincount(sel, minlength=len(names))[: len(names)] / max(len(sel), 1), marker="o")
        axes[1].set_title("age distribution (fraction)")
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_summary(result: dict) -> str:
    """The human-readable table of `agebench data summary`."""
    lines = [f"dataset {result['dataset']}  root={result['root']}  tasks={'_'.join(result['tasks'])}",
             f"rows read {result['rows_read']}  parsed {result['records_parsed']}  kept {result['records_kept']}  "
             f"subjects {result['subjects']}  (rows missing a task's label: {result['rows_with_missing_labels']})"]
    for key in ("folds", "splits", "sources"):
        if key in result:
            lines.append(f"{key}: " + "  ".join(f"{k}={v}" for k, v in result[key].items()))
    images = result.get("images")
    if images:
        if images.get("note"):
            lines.append(f"images: {images['note']}")
        else:
            parts = [f"{images.get(kind, 0)} {label}" for kind, label in
                     (("missing", "missing"), ("empty", "empty (0 bytes)"), ("corrupt", "corrupt"),
                      ("too_large", "over the decode limit (decompression-bomb guard)")) if images.get(kind)]
            first = [p for kind in ("missing", "empty", "corrupt", "too_large")
                     for p in images.get(f"first_{kind}", [])][:EXAMPLES]
            lines.append(f"images: {images['checked']} checked, {images.get('bad', images['missing'])} bad"
                         + (f" ({', '.join(parts)}; first: {', '.join(first)})" if parts else ""))
    lines.append("")
    hists = result["histograms"]
    labels = sorted({label for h in hists.values() for label in h if label != "age_stats"},
                    key=["age_group", "age_years", "gender", "race"].index)
    for label in labels:
        groups = [g for g in hists if label in hists[g]]
        categories = list(hists["all"].get(label, {}).keys())
        width = max(12, *(len(g) for g in groups)) + 2
        lines.append(f"{label}:")
        lines.append("  " + "".ljust(16) + "".join(g.rjust(width) for g in groups))
        for cat in categories:
            lines.append("  " + str(cat)[:16].ljust(16) + "".join(str(hists[g][label].get(cat, 0)).rjust(width) for g in groups))
        lines.append("")
    for title, key, total in (("skipped by the parser", "skipped", "skipped_total"),
                              ("dropped for these tasks", "dropped_for_tasks", "dropped_for_tasks_total")):
        lines.append(f"{title}: {result[total]}")
        for reason, info in result[key].items():
            lines.append(f"  {info['count']:>7}  {reason}   e.g. {'; '.join(info['examples'])}")
    if result["notes"]:
        lines.append("notes:")
        lines += [f"  - {note}" for note in result["notes"]]
    if result.get("plot"):
        lines.append(f"plot written to {result['plot']}")
    return "\n".join(lines)
