"""Plots of the synthetic benchmark's two planted effects, against the knob that plants them.

* ``coupling``: the multi-task Δ (multi − single, paired across folds, corrected resampled t CI from
  :func:`agebench.report.stats.paired_test`) against ``data.gender_specific_aging``, one series per
  multi-task set and dataset seed (sweeps/coupling.yaml, reports/tables/coupling.yaml).
* ``leakage``: age accuracy with ``protocol.subject_exclusive`` false vs true, and the inflation
  (leaky − exclusive, Welch CI over folds: the two protocols split differently, so nothing pairs)
  against ``data.images_per_subject`` (sweeps/leakage.yaml, reports/tables/leakage.yaml).

Each returns (plot or None, note lines); the notes carry the plotted numbers, so a Markdown report
states them too. None when the records lack the knob or a partner, so a report never fails for a plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agebench.report.figures import png_bytes, pyplot
from agebench.report.frame import display_name
from agebench.report.groups import Group
from agebench.report.tables import Plot

COUPLING_KNOB = "config.data.gender_specific_aging"
LEAK_SWITCH = "config.protocol.subject_exclusive"
LEAK_KNOB = "config.data.images_per_subject"
# identity columns a study's series must not split on (they are the axes, or labels of the same point)
_AXES = {"tasks", "study", "trial", "experiment", COUPLING_KNOB, LEAK_SWITCH, LEAK_KNOB}


@dataclass
class Point:
    series: str
    x: float
    mean: float
    low: float
    high: float
    p: float
    n: int


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _series_label(group: Group, columns: list[str]) -> str:
    return ", ".join(f"{display_name(c)}={group.key.get(c)}" for c in columns)


def _varying(groups: list[Group]) -> list[str]:
    keys = sorted({k for g in groups for k in g.key})
    return [k for k in keys if k not in _AXES and len({g.key.get(k) for g in groups}) > 1]


def coupling_points(groups: list[Group], metric: str = "age/top1", confidence: float = 0.95) -> list[Point]:
    """One point per (multi-task configuration with a single-task partner, coupling value)."""
    from agebench.report.stats import compare_single_multi

    comparisons = [c for c in compare_single_multi(groups, [metric], confidence)
                   if _number(c.multi.key.get(COUPLING_KNOB)) is not None]
    series_cols = _varying([c.multi for c in comparisons])
    points = []
    for c in comparisons:
        r = c.result
        label = "+".join(c.multi.tasks) + (f" ({_series_label(c.multi, series_cols)})" if series_cols else "")
        points.append(Point(label, _number(c.multi.key[COUPLING_KNOB]), r.mean_diff, r.ci_low, r.ci_high, r.p, r.n))
    return sorted(points, key=lambda p: (p.series, p.x))


def leakage_points(groups: list[Group], metric: str = "age/top1", confidence: float = 0.95) -> list[Point]:
    """Inflation (leaky − subject-exclusive mean) per images-per-subject value and series."""
    from scipy import stats as sps

    usable = [g for g in groups if metric in g.metrics and _number(g.key.get(LEAK_KNOB)) is not None
              and str(g.key.get(LEAK_SWITCH)).lower() in ("true", "false")]
    series_cols = _varying(usable)
    cells: dict[tuple[str, float], dict[str, Group]] = {}
    for g in usable:
        label = "+".join(g.tasks) + (f" ({_series_label(g, series_cols)})" if series_cols else "")
        side = "exclusive" if str(g.key[LEAK_SWITCH]).lower() == "true" else "leaky"
        cells.setdefault((label, _number(g.key[LEAK_KNOB])), {})[side] = g
    points = []
    for (label, x), sides in cells.items():
        if set(sides) != {"exclusive", "leaky"}:
            continue
        a = np.array(list(sides["leaky"].metrics[metric].values.values()), dtype=float)
        b = np.array(list(sides["exclusive"].metrics[metric].values.values()), dtype=float)
        mean = float(a.mean() - b.mean())
        low = high = p = math.nan
        if len(a) >= 2 and len(b) >= 2:
            va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
            se = math.sqrt(va + vb)
            if se > 0:  # Welch–Satterthwaite degrees of freedom
                dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
                half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
                low, high = mean - half, mean + half
                p = float(sps.ttest_ind(a, b, equal_var=False).pvalue)
        points.append(Point(label, x, mean, low, high, p, min(len(a), len(b))))
    return sorted(points, key=lambda p: (p.series, p.x))


def _note(kind: str, knob: str, metric: str, scale: float, points: list[Point], confidence: float,
          unit: str) -> list[str]:
    conf = int(round(confidence * 100))
    return [f"{kind} {metric} [{pt.series}] at {display_name(knob)}={pt.x:g}: {pt.mean * scale:+.2f}{unit} "
            f"({conf}% CI {pt.low * scale:.2f}..{pt.high * scale:.2f}, p={pt.p:.3g}, {pt.n} folds)"
            for pt in points]


def _errorbar_plot(points: list[Point], scale: float, xlabel: str, ylabel: str, title: str):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for series in sorted({p.series for p in points}):
        pts = [p for p in points if p.series == series]
        x = np.array([p.x for p in pts])
        y = np.array([p.mean * scale for p in pts])
        low = np.array([(p.mean - p.low) * scale if math.isfinite(p.low) else 0.0 for p in pts])
        high = np.array([(p.high - p.mean) * scale if math.isfinite(p.high) else 0.0 for p in pts])
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=4, label=series)
    ax.axhline(0.0, color="0.3", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


@dataclass(frozen=True)
class Study:
    """One planted effect: how its points are computed and how its plot and notes are worded."""
    kind: str
    knob: str
    points: Callable[..., list[Point]]
    xlabel: str
    ylabel: str        # {metric}, {unit}
    title: str         # {metric}, {conf}
    plot_title: str    # {metric}
    note: str
    metric: str = "age/top1"   # what the study measures (coupling: age MAE, the quickstart's headline)
    scale: float = 100.0       # 100: a fraction shown in points; 1: the metric's own unit
    unit: str = " points"


STUDIES = (
    Study("coupling", COUPLING_KNOB, coupling_points, "task coupling (data.gender_specific_aging)",
          "Δ {metric} multi − single{unit}",
          "Multi-task gain vs task coupling (mean Δ over paired folds, {conf}% corrected t CI)",
          "Multi-task Δ {metric} vs task coupling", "multi-task Δ", metric="age/mae", scale=1.0,
          unit=" years"),
    Study("leakage", LEAK_KNOB, leakage_points, "images per subject (data.images_per_subject)",
          "{metric} leaky − subject-exclusive{unit}",
          "Accuracy a subject leak adds (fold means, {conf}% Welch CI)",
          "Subject-leak inflation of {metric} vs images per subject", "leak inflation"),
)


def study_plot(study: Study, groups: list[Group], metric: str | None = None, scale: float | None = None,
               confidence: float = 0.95) -> tuple[Plot | None, list[str]]:
    """The study's plot and note lines, on its own metric unless `metric` (and `scale`) say otherwise."""
    own = metric is None
    metric, scale = (study.metric, study.scale) if own else (metric, 100.0 if scale is None else scale)
    unit_word = study.unit if own else (" points" if scale == 100 else "")
    points = study.points(groups, metric, confidence)
    if not points:
        return None, []
    unit = f" ({unit_word.strip()})" if unit_word else ""
    fig = _errorbar_plot(points, scale, study.xlabel, study.ylabel.format(metric=metric, unit=unit),
                         study.title.format(metric=metric, conf=int(round(confidence * 100))))
    return (Plot(name=study.kind, title=study.plot_title.format(metric=metric), png=png_bytes(fig)),
            _note(study.note, study.knob, metric, scale, points, confidence, unit_word))


def study_plots(groups: list[Group], which: set) -> tuple[list[Plot], list[str]]:
    """The `coupling` and `leakage` plot kinds of a recipe, with their numbers as note lines."""
    plots, notes = [], []
    for study in STUDIES:
        if study.kind not in which:
            continue
        plot, lines = study_plot(study, groups)
        if plot is None:
            notes.append(f"{study.kind} plot skipped: no pairs across {display_name(study.knob)} in these runs")
            continue
        plots.append(plot)
        notes += lines
    return plots, notes
