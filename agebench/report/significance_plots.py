"""The figures of the statistics (docs/statistics.md): a critical-difference diagram when several methods are
ranked over several settings, and the Bayesian posterior of each single- vs multi-task difference.

* ``cd`` — Friedman's test over the methods, then Nemenyi's critical difference (Demšar 2006), computed and
  drawn by `autorank`: methods are the values of the first identity column that names ≥ 3 of them (an age
  head, a model, a variant), settings are every (other configuration values, fold) they share. Folds of one
  data set are not independent samples, which makes the diagram optimistic; the note says so.
* ``posterior`` — baycomp's plot of the Bayesian correlated t-test's posterior of multi − single, its ROPE
  shaded, for the headline metric of every comparison.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pandas as pd

from agebench.report.groups import Group, label_columns
from agebench.report.tables import Plot
from agebench.results import metrics as registry

METHOD_COLUMNS = ("config.tasks.age.head", "model", "config.model.width", "variant", "tasks")


def method_column(groups: list[Group]) -> str | None:
    for column in METHOD_COLUMNS:
        if len({str(g.key.get(column)) for g in groups if g.key.get(column) not in (None, "null")}) >= 3:
            return column
    return None


def rank_frame(groups: list[Group], method: str, metric: str) -> pd.DataFrame:
    """Rows: (other configuration values, fold) settings; columns: methods; complete rows only."""
    others = [c for c in label_columns(groups) if c != method and c not in ("variant", "experiment", "study", "trial")]
    cells: dict[tuple, dict[str, float]] = {}
    for g in groups:
        stat = g.metrics.get(metric)
        if stat is None:
            continue
        setting = tuple(str(g.key.get(c)) for c in others)
        for fold, value in stat.values.items():
            cells.setdefault((setting, str(fold)), {})[str(g.key.get(method))] = float(value)
    frame = pd.DataFrame.from_dict(cells, orient="index")
    return frame.dropna() if not frame.empty else frame


def cd_diagram(groups: list[Group], metric: str | None = None) -> tuple[Plot | None, str]:
    """(the diagram, a note) — or (None, why not)."""
    method = method_column(groups)
    if method is None:
        return None, "critical-difference diagram skipped: fewer than 3 methods (heads, models or variants) to rank"
    names = {m for g in groups for m in g.metrics}
    metric = metric or next(iter(registry.headline(names, limit=1)), None)
    if metric is None:
        return None, "critical-difference diagram skipped: no metric to rank on"
    frame = rank_frame(groups, method, metric)
    if frame.shape[1] < 3 or frame.shape[0] < 2:
        return None, (f"critical-difference diagram skipped: {frame.shape[1]} {method}(s) share {frame.shape[0]} "
                      f"setting(s) × fold(s) of {metric}; it needs ≥ 3 methods over ≥ 2")
    from autorank import autorank, plot_stats

    from agebench.report.figures import png_bytes, pyplot

    order = "ascending" if registry.lower_is_better(metric) else "descending"
    with contextlib.redirect_stdout(io.StringIO()):  # autorank prints its tables; a report's stdout is the report
        result = autorank(frame, alpha=0.05, order=order, force_mode="nonparametric")
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 2.8))
        plot_stats(result, ax=ax, allow_insignificant=True)
    what = method.rsplit(".", 1)[-1]
    ax.set_title(f"Mean rank on {registry.label(metric)} per {what} (rank 1 is best)", fontsize=9)
    note = (f"critical-difference diagram of {frame.shape[1]} {what}s over {frame.shape[0]} settings × folds on "
            f"{metric}: Friedman p = {result.pvalue:.3g}, Nemenyi critical difference {_cd(result)} (autorank); "
            f"folds share training data, so the ranks are less independent than the test assumes")
    return Plot(name=f"cd_{metric.replace('/', '_')}", title=f"Critical difference: {what}s on {metric}",
                png=png_bytes(fig)), note


def _cd(result) -> str:
    cd = getattr(result, "cd", None)
    return f"{cd:.2f} ranks" if isinstance(cd, (int, float)) and math.isfinite(cd) else "n/a"


def posterior_plots(groups: list[Group], max_plots: int = 4) -> tuple[list[Plot], list[str]]:
    """baycomp's posterior of multi − single for each comparison's headline metric (one plot each)."""
    from agebench.report.stats import compare_single_multi

    comparisons = [c for c in compare_single_multi(groups)
                   if c.result.metric == registry.primary(c.task, c.multi.metrics) and c.result.bayes is not None]
    if not comparisons:
        return [], ["posterior plot skipped: no paired comparison with a declared region of practical equivalence"]
    import baycomp

    from agebench.report.figures import png_bytes

    plots = []
    for i, c in enumerate(comparisons[:max_plots]):
        r = c.result
        single, multi = "+".join(c.single.tasks), "+".join(c.multi.tasks)
        import matplotlib

        with matplotlib.rc_context():  # baycomp restyles matplotlib globally; keep that to its own figure
            fig = baycomp.CorrelatedTTest.plot(np.array(r.single), np.array(r.multi), rope=r.bayes.rope,
                                               runs=r.runs if r.n % r.runs == 0 else 1, names=(single, multi))
            fig.axes[0].set_title(f"Posterior of {r.metric}: {multi} − {single} (ROPE ±{r.bayes.rope:g})", fontsize=9)
        plots.append(Plot(name=f"posterior_{i}_{multi}_{r.metric.replace('/', '_')}",
                          title=f"Bayesian posterior: {multi} vs {single} on {r.metric}", png=png_bytes(fig)))
    return plots, []
