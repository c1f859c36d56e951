"""Report plots (matplotlib, Agg backend, PNG bytes): accuracy vs cost with the Pareto front, age accuracy
vs granularity per task-set (seed 002 Figs 4/6), learning curves per fold (seed 001 Figs 4–7) and the
age confusion matrix. Each returns None when the records lack what it needs (no `gmacs`, one
granularity only, no `history`, no predictions file), so a report never fails for want of a plot.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from agebench.report.age_bins import record_bins
from agebench.report.figures import png_bytes, pyplot
from agebench.report.groups import Group
from agebench.report.tables import Plot
from agebench.results.metrics import headline


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60] or "plot"


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points no other point beats (lower cost x and better y), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1] if higher_is_better else points[i][1]))
    front, best = [], -math.inf if higher_is_better else math.inf
    for i in order:
        y = points[i][1]
        if (higher_is_better and y > best) or (not higher_is_better and y < best):
            front.append(i)
            best = y
    return front


# A front ranks configurations: with one or two there is nothing to rank, and the cost axis only spreads two
# nearly equal numbers (two models that differ by a head) over ticks with many digits.
MIN_FRONT = 3


def accuracy_vs_cost(groups: list[Group], metric: str, labels: dict, scale: float = 100.0) -> Plot | None:
    """`metric` against GMACs and latency. With >= MIN_FRONT configurations: a cost axis and the Pareto front
    (plot `pareto_<metric>`); with fewer: one bar-free point per configuration, its cost in the tick label
    (plot `cost_<metric>`)."""
    costs = [("gmacs", "GMACs"), ("latency_ms", "latency (ms, batch 1)")]
    usable = [(c, name) for c, name in costs
              if sum(1 for g in groups if metric in g.metrics and math.isfinite(g.costs.get(c, math.nan))) >= 1]
    if not usable:
        return None
    from agebench.report.stats import lower_is_better

    higher = not lower_is_better(metric)
    ranked = len([g for g in groups if metric in g.metrics]) >= MIN_FRONT
    plt = pyplot()
    fig, axes = plt.subplots(1, len(usable), figsize=(6.2 * len(usable), 4.6), squeeze=False)
    for ax, (cost, xlabel) in zip(axes[0], usable, strict=False):
        pts, names, errs = [], [], []
        for g in groups:
            x = g.costs.get(cost, math.nan)
            if metric not in g.metrics or not math.isfinite(x):
                continue
            s = g.metrics[metric]
            pts.append((x, s.mean * scale))
            errs.append(s.std * scale if math.isfinite(s.std) else 0.0)
            names.append(labels.get(id(g), ""))
        if ranked:
            _cost_axis_with_front(ax, pts, names, errs, higher)
            ax.set_xlabel(xlabel)
        else:  # categorical: the configurations side by side, each tick naming its cost with 3 significant digits
            xs = np.arange(len(pts))
            ax.errorbar(xs, [p[1] for p in pts], yerr=errs, fmt="o", color="tab:blue", ecolor="0.6", capsize=4)
            ax.set_xticks(xs, [f"{name}\n{_sig(p[0])} {xlabel.split(' ')[0]}" for name, p in zip(names, pts, strict=True)],
                          fontsize=8)
            ax.set_xlim(-0.6, len(pts) - 0.4)
        ax.set_ylabel(f"{metric}{' (%)' if scale == 100 else ''}")
        ax.grid(alpha=0.3)
    fig.subplots_adjust(wspace=0.4, bottom=0.18)
    fig.suptitle(f"{metric} vs cost (mean ± std over folds)")
    if ranked:
        return Plot(name=f"pareto_{_slug(metric)}", title=f"{metric} vs GMACs / latency with the Pareto front",
                    png=png_bytes(fig))
    return Plot(name=f"cost_{_slug(metric)}", title=f"{metric} and the cost of each configuration "
                f"(no Pareto front below {MIN_FRONT} configurations)", png=png_bytes(fig))


def _cost_axis_with_front(ax, pts, names, errs, higher: bool) -> None:
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    ax.errorbar(xs, ys, yerr=errs, fmt="o", color="tab:blue", ecolor="0.6", capsize=3, label="configurations")
    front = pareto_front(pts, higher)
    ax.step(xs[front], ys[front], where="post", color="tab:red", lw=1.5, label="Pareto front")
    ax.plot(xs[front], ys[front], "o", mfc="none", mec="tab:red", ms=11)
    mid = (xs.min() + xs.max()) / 2
    for x, y, name in zip(xs, ys, names, strict=False):
        right = x > mid  # labels of the right half point leftwards, inside the axes
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(-4 if right else 4, 4), fontsize=7,
                    ha="right" if right else "left")
    if xs.min() > 0 and xs.max() / max(xs.min(), 1e-12) > 20:
        ax.set_xscale("log")
    else:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ticks = [t for t in ax.get_xticks() if xs.min() - (np.ptp(xs) or 1) <= t <= xs.max() + (np.ptp(xs) or 1)]
        digits = tick_digits(ticks)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _sig(v, digits)))
    ax.legend(fontsize=8, loc="lower right" if higher else "upper right")


def tick_digits(ticks, most: int = 6) -> int:
    """The fewest significant digits (2..most) at which the tick labels are all different."""
    for digits in range(2, most + 1):
        if len({_sig(t, digits) for t in ticks}) == len(ticks):
            return digits
    return most


def _sig(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def accuracy_vs_granularity(groups: list[Group], series_cols: list[str], metric: str = "age/top1",
                            scale: float = 100.0) -> Plot | None:
    by_series: dict[str, list[tuple[int, float, float]]] = {}
    for g in groups:
        if metric not in g.metrics:
            continue
        k = g.frame["age_classes"].dropna()
        if k.empty:
            continue
        s = g.metrics[metric]
        name = ", ".join(f"{c.replace('config.', '')}={g.key.get(c)}" for c in series_cols) or g.key.get("tasks", "")
        by_series.setdefault(name, []).append((int(k.iloc[0]), s.mean * scale,
                                               s.std * scale if math.isfinite(s.std) else 0.0))
    if len({k for pts in by_series.values() for k, _, _ in pts}) < 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for name, pts in sorted(by_series.items()):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                    label=name)
    ax.set_xlabel("age classes (granularity)")
    ax.set_ylabel(f"{metric}{' (%)' if scale == 100 else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{metric} vs age granularity per task-set (cf. seed 002 Figs 4/6)")
    return Plot(name="granularity", title="Age accuracy vs granularity per task-set", png=png_bytes(fig))


def learning_curves(group: Group, label: str) -> Plot | None:
    histories = []
    for rec in group.frame["_record"]:
        hist = rec.get("history") if isinstance(rec, dict) else None
        if isinstance(hist, list) and hist:
            histories.append((rec.get("fold"), hist))
    if not histories:
        return None
    keys = {k for _, h in histories for e in h if isinstance(e, dict) for k in e}
    loss_keys = [k for k in ("train/loss", "val/loss") if k in keys]
    val_metrics = sorted(k for k in keys if k.startswith("val/") and k != "val/loss")
    preferred = ["val/" + m for m in headline([k.removeprefix("val/") for k in val_metrics])]
    metric_key = (preferred or val_metrics or [None])[0]
    plt = pyplot()
    panels = (1 if loss_keys else 0) + (1 if metric_key else 0)
    if panels == 0:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (fold, hist) in enumerate(sorted(histories, key=lambda fh: str(fh[0]))):
        color = colors[i % len(colors)]
        epochs = [e.get("epoch", j) for j, e in enumerate(hist)]
        p = 0
        if loss_keys:
            for k, style in zip(loss_keys, ("-", "--"), strict=False):
                axes[0][p].plot(epochs, [e.get(k, np.nan) for e in hist], style, color=color,
                                label=f"fold {fold} {k.split('/')[0]}")
            p += 1
        if metric_key:
            axes[0][p].plot(epochs, [e.get(metric_key, np.nan) for e in hist], "-", color=color, label=f"fold {fold}")
    p = 0
    if loss_keys:
        axes[0][p].set_ylabel("loss (solid: train, dashed: val)")
        p += 1
    if metric_key:
        axes[0][p].set_ylabel(metric_key)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Learning curves per fold: {label}")
    return Plot(name=f"curves_{_slug(label)}", title=f"Learning curves per fold — {label}", png=png_bytes(fig))


def _resolve(path: str, results_file: str | None) -> Path | None:
    p = Path(path)
    if p.is_file():
        return p
    if results_file and not p.is_absolute():
        q = Path(results_file).parent / p
        if q.is_file():
            return q
    return None


def _age_classes(true: np.ndarray, pred: np.ndarray, bins) -> tuple[np.ndarray, np.ndarray] | None:
    """Class indices from a predictions file: `age_true` is (N,) classes or (N, 2) [class, years] (the
    training targets); `age_pred` is classes, or years from a regression head (binned with the run's bins)."""
    true = np.asarray(true)
    if true.ndim == 2:
        true = true[:, 0]
    pred = np.asarray(pred).ravel()
    if len(true) != len(pred):
        return None
    if np.issubdtype(pred.dtype, np.floating) and not np.all(np.isnan(pred) | (pred == np.round(pred))):
        if bins is None:
            return None
        pred = np.where(np.isnan(pred), -1, bins.assign(np.nan_to_num(pred, nan=-1.0)))
    true = np.nan_to_num(true.astype(float), nan=-1).astype(int)
    pred = np.nan_to_num(pred.astype(float), nan=-1).astype(int)
    return true, pred


def _bins_of(group: Group):
    """The configuration's age bins from its records' structured `age_bins` (agebench.report.age_bins);
    None for records that name their bins only (class indices label the matrix then)."""
    for rec in group.frame["_record"]:
        bins = record_bins(rec) if isinstance(rec, dict) else None
        if bins is not None:
            return bins
    return None


def confusion_matrix(group: Group, label: str) -> Plot | None:
    trues, preds, found = [], [], 0
    bins = _bins_of(group)
    for rec in group.frame["_record"]:
        if not isinstance(rec, dict) or not rec.get("predictions") or rec.get("status") != "ok":
            continue
        path = _resolve(str(rec["predictions"]), rec.get("results_file"))
        if path is None:
            continue
        try:
            with np.load(path) as data:
                if "age_true" not in data or "age_pred" not in data:
                    continue
                classes = _age_classes(data["age_true"], data["age_pred"], bins)
        except (OSError, ValueError):
            continue
        if classes is None:
            continue
        t, p = classes
        keep = (t >= 0) & (p >= 0)
        trues.append(t[keep])
        preds.append(p[keep])
        found += 1
    if not found:
        return None
    t, p = np.concatenate(trues), np.concatenate(preds)
    k = int(max(t.max(initial=0), p.max(initial=0)) + 1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    if bins is not None and bins.num_bins >= k:
        k = bins.num_bins
        cm = np.pad(cm, ((0, k - cm.shape[0]), (0, k - cm.shape[1])))
    names = bins.labels if bins is not None and bins.num_bins == k else [str(i) for i in range(k)]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(0.6 * k + 3, 0.6 * k + 2.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted age class")
    ax.set_ylabel("true age class")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row-normalised")
    ax.set_title(f"Age confusion ({found} fold(s), {int(cm.sum())} faces)\n{label}", fontsize=9)
    return Plot(name=f"confusion_{_slug(label)}", title=f"Age confusion matrix — {label}", png=png_bytes(fig))


def make_plots(groups: list[Group], label_cols: list[str], which=None, max_groups: int = 6) -> tuple[list[Plot], list[str]]:
    """All applicable plots, and a note per plot kind that had no data."""
    from agebench.report.recipes import is_fraction_metric

    asked = set(which or ())
    which = set(which or ("pareto", "granularity", "curves", "confusion", "bias", "cd", "posterior", "calibration"))
    from agebench.report.groups import label_columns

    short = [c for c in label_columns(groups) if len({g.key.get(c) for g in groups}) > 1] or ["tasks"]
    labels = {id(g): g.label(short) for g in groups}
    plots, skipped = [], []
    names = {m for g in groups for m in g.metrics}
    if "pareto" in which:
        made = False
        for metric in headline(names, limit=2):
            p = accuracy_vs_cost(groups, metric, labels, 100.0 if is_fraction_metric(metric) else 1.0)
            if p:
                plots.append(p)
                made = True
        if not made:
            skipped.append("accuracy-vs-cost plot skipped: no records with gmacs/latency_ms and an accuracy metric")
    if "granularity" in which:
        series = [c for c in label_cols if c not in ("age_bins", "config.tasks.age.bins")]
        p = accuracy_vs_granularity(groups, series)
        if p:
            plots.append(p)
        elif any("age/top1" in g.metrics for g in groups):
            skipped.append("granularity plot skipped: the runs cover fewer than two age granularities")
    if "curves" in which:
        made = [p for g in groups[:max_groups] if (p := learning_curves(g, labels[id(g)] or "run"))]
        plots += made
        if not made:
            skipped.append("learning curves skipped: no `history` in the run records")
    if "confusion" in which:
        made = [p for g in groups if "age/top1" in g.metrics
                and (p := confusion_matrix(g, labels[id(g)] or "run"))][:max_groups]
        plots += made
        if not made:
            skipped.append("confusion matrix skipped: no `predictions` npz with age_true/age_pred found")
    if "bias" in which:  # signed age error per decade, from the records' per-group breakdown
        from agebench.report.breakdown import bias_vs_age

        p = bias_vs_age(groups, labels)
        if p:
            plots.append(p)
        elif "bias" in asked:
            skipped.append("bias-vs-age plot skipped: no per-age `breakdown` in the run records")
    if "calibration" in which:  # reliability diagrams and the age risk–coverage curve (calibration_plots.py)
        from agebench.report.calibration_plots import reliability_diagram, risk_coverage_plot

        made = [p for g in groups[:max_groups] if (p := reliability_diagram(g, labels[id(g)] or "run"))]
        if (rc := risk_coverage_plot(groups, labels)) is not None:
            made.append(rc)
        plots += made
        if not made and "calibration" in asked:
            skipped.append("calibration plots skipped: no `calibration` in the run records (written since issue 24)")
    if "cd" in which:  # ≥ 3 methods ranked over ≥ 2 settings: Friedman + Nemenyi (significance_plots.py)
        from agebench.report.significance_plots import cd_diagram

        p, note = cd_diagram(groups)
        plots += [p] if p else []
        if p or "cd" in asked:  # a default kind that does not apply stays silent
            skipped.append(note)
    if "posterior" in which:
        from agebench.report.significance_plots import posterior_plots

        more, notes = posterior_plots(groups)
        plots += more
        skipped += notes if "posterior" in asked else []
    if which & {"coupling", "leakage"}:  # the synthetic benchmark's planted effects (study_plots.py)
        from agebench.report.study_plots import study_plots

        more, notes = study_plots(groups, which)
        plots += more
        skipped += notes
    return plots, skipped
