"""How sure each prediction is, as figures: a reliability diagram per classifier (accuracy against confidence
per bin, the diagonal is perfect calibration) and the age risk–coverage curve, from the `calibration` field
every fold records (agebench.results.uncertainty). Folds are pooled: each bin's faces summed, its accuracy and
confidence weighted by them; the risk–coverage curves are averaged at the recorded coverages."""

from __future__ import annotations

import numpy as np

from agebench.report.figures import png_bytes, pyplot
from agebench.report.groups import Group
from agebench.report.tables import Plot


def pooled_reliability(group: Group, task: str) -> dict | None:
    """{"confidence", "accuracy", "count"} per bin over the group's ok folds; None when no fold has them."""
    count = conf = acc = None
    for rec in group.frame["_record"]:
        if not isinstance(rec, dict) or rec.get("status", "ok") != "ok":
            continue
        bins = ((rec.get("calibration") or {}).get(task) or {}).get("reliability")
        if not isinstance(bins, dict) or not bins.get("count"):
            continue
        n = np.array(bins["count"], dtype=float)
        c = np.array([v if v is not None else 0.0 for v in bins["confidence"]], dtype=float)
        a = np.array([v if v is not None else 0.0 for v in bins["accuracy"]], dtype=float)
        if count is None:
            count, conf, acc = np.zeros_like(n), np.zeros_like(n), np.zeros_like(n)
        if n.shape != count.shape:
            continue  # another binning: not poolable with the first fold's
        count, conf, acc = count + n, conf + n * c, acc + n * a
    if count is None or count.sum() == 0:
        return None
    seen = count > 0
    return {"confidence": np.where(seen, conf / np.maximum(count, 1), np.nan),
            "accuracy": np.where(seen, acc / np.maximum(count, 1), np.nan), "count": count}


def reliability_diagram(group: Group, label: str) -> Plot | None:
    tasks = [t for t in ("age", "gender", "race") if pooled_reliability(group, t) is not None]
    if not tasks:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        bins = pooled_reliability(group, task)
        seen = bins["count"] > 0
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.plot(bins["confidence"][seen], bins["accuracy"][seen], marker="o")
        ece = float(np.nansum(bins["count"] * np.abs(bins["accuracy"] - bins["confidence"])) / bins["count"].sum())
        ax.set_title(f"{task}: ECE {ece:.3f} ({int(bins['count'].sum())} faces)", fontsize=9)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Reliability — {label}", fontsize=10)
    return Plot(name=f"reliability_{_slug(label)}", title=f"Reliability diagram: {label}", png=png_bytes(fig))


def risk_coverage_plot(groups: list[Group], labels: dict, max_lines: int = 8) -> Plot | None:
    series = []
    for g in groups:
        curves = [((rec.get("calibration") or {}).get("age") or {}).get("risk_coverage")
                  for rec in g.frame["_record"] if isinstance(rec, dict) and rec.get("status", "ok") == "ok"]
        curves = [c for c in curves if isinstance(c, dict) and c.get("coverage")]
        lengths = {len(c["coverage"]) for c in curves}
        if curves and len(lengths) == 1:
            series.append((labels.get(id(g)) or "run", np.mean([c["coverage"] for c in curves], axis=0),
                           np.mean([c["risk"] for c in curves], axis=0)))
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, coverage, risk in series[:max_lines]:
        ax.plot(coverage, risk, marker=".", label=label)
    ax.set_xlabel("coverage (most certain share of the test faces)")
    ax.set_ylabel("risk: mean absolute age error (years)")
    ax.set_title("Age risk–coverage (mean over folds); lower and flatter-left is better", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return Plot(name="risk_coverage", title="Age risk–coverage curve", png=png_bytes(fig))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)[:60].strip("_") or "run"
