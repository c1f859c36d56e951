"""The closing lines of a run with variants (the quickstart): the report's own table, then the answer.

`agebench train experiment=quickstart` ends with what `agebench report runs=<dir> table=quickstart` prints
(percent, mean ± std over folds, Δ vs single-task with its Student-t CI and the paired t-test p), one
sentence that answers the experiment's question from the paired test, the output directory and the
command for more. Everything comes from agebench.report (no second formatter).
"""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

from agebench.report.stats import Paired, compare_single_multi
from agebench.results import metrics as metric_registry

# The one-sentence answer: the quickstart's headline (age in years, DLDL-v2); the table carries the rest.
ANSWER_METRICS = ("age/mae",)
_WORDS = {"age/top1": ("age top-1", 100.0, " points"), "age/mae": ("age MAE", 1.0, " years")}


def report_command(output_dir: str | Path, recipe: str) -> str:
    return f"agebench report runs={output_dir} table={recipe}"


def answer_sentence(result: Paired, multi: str, single: str, alpha: float = 0.05) -> str:
    """"age+gender improves age top-1 by 3.10 points (95% CI 1.02..5.18), corrected resampled t-test p = 0.014
    (5 folds; plain paired t-test p = 0.002). P(better / equivalent within ±1.00 points / worse) = …": the
    verdict from the corrected test (agebench.report.significance, docs/statistics.md), Holm-adjusted when the
    run makes several comparisons; a "no" says what the run could have detected."""
    name, scale, unit = _WORDS.get(result.metric, (result.metric, 1.0, ""))
    conf = int(round(result.confidence * 100))
    if result.n < 2 or not math.isfinite(result.p):
        return (f"{multi} vs {single}: {result.n} paired fold(s) of {name}, too few for a paired test "
                f"(run all folds for an answer).")
    d, low, high = result.mean_diff * scale, result.ci_low * scale, result.ci_high * scale
    holm = f", Holm-adjusted over {result.family} comparisons" if result.family > 1 else ""
    test = (f"corrected resampled t-test p = {_p(result.p)} ({result.n} folds{holm}; plain paired t-test "
            f"p = {_p(result.p_t)})")
    bayes = ""
    if result.bayes is not None:
        b = result.bayes
        bayes = (f" P(better / equivalent within ±{b.rope * scale:.2f}{unit} / worse) = "
                 f"{b.p_multi_better:.2f} / {b.p_equivalent:.2f} / {b.p_single_better:.2f}.")
    if result.p >= alpha:
        detect = (f"; this run detects |Δ| ≥ {result.detectable * scale:.2f}{unit} (power 0.8)"
                  if math.isfinite(result.detectable) else "")
        return (f"No significant difference: {multi} vs {single} on {name} (Δ = {d:+.2f}{unit}, {conf}% CI "
                f"{low:.2f}..{high:.2f}), {test}{detect}.{bayes}")
    better = metric_registry.improves(result.mean_multi, result.mean_single, result.metric)  # agebench.results.metrics
    verb = "improves" if better else "worsens"
    return f"{multi} {verb} {name} by {abs(d):.2f}{unit} ({conf}% CI {low:.2f}..{high:.2f}), {test}.{bayes}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def closing_text(output_dir: str | Path, recipe: str, confidence: float = 0.95) -> str:
    from agebench.report.document import build_document
    from agebench.report.tables import render

    cfg = OmegaConf.create({"runs": str(output_dir), "table": recipe, "format": "md", "percent": True,
                            "precision": 2, "incomplete": "mark", "compare": True, "confidence": confidence,
                            "filters": {}, "metrics": None, "ignore": []})
    doc, _, groups, _, _ = build_document(cfg)
    lines = [render(doc, "md").rstrip(), ""]
    comparisons = compare_single_multi(groups, ANSWER_METRICS, confidence)
    for c in sorted(comparisons, key=lambda c: (ANSWER_METRICS.index(c.result.metric), "+".join(c.multi.tasks))):
        lines.append("Answer: " + answer_sentence(c.result, "+".join(c.multi.tasks), "+".join(c.single.tasks),
                                                  alpha=1 - confidence))
    if not comparisons:
        lines.append("Answer: no single-task partner finished, so there is no paired comparison yet.")
    lines.append(f"Output directory: {output_dir}")
    lines.append(f"More (all metrics, plots with out=...): {report_command(output_dir, recipe)}")
    return "\n".join(lines)
