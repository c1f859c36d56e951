"""`agebench report … breakdown=age|gender|race`: per-group error tables and the bias-vs-age plot.

Each fold's run record carries `breakdown` (agebench.results.breakdown): per age decade, gender, race and
gender×race cell, the group's face count, its metrics and their bootstrap standard errors (resampled by
subject). Tables add each group's 95 % CI of the headline metric, pooled over folds, and the largest gap
between groups per metric with its CI. Per configuration this module tabulates each group's fold mean ±
std (sample std over the folds that have the group), the mean face count per fold, and an `all` row
with the configuration's whole-test-set metrics, so the groups can be checked against the whole.
The bias plot draws the mean signed error (predicted − true age) per age decade, one line per
configuration: a model that pulls every face towards the mean age is positive on children and
negative on the elderly.
"""

from __future__ import annotations

import math

import numpy as np

from agebench.errors import UserError
from agebench.report.aggregate import Group
from agebench.report.tables import Cell, Plot, Table, number_cell, stat_cell
from agebench.results import metrics as registry
from agebench.results.breakdown import ATTRIBUTES, bucket_sort_key


def fold_groups(group: Group, attribute: str) -> dict[str, dict[str, dict]]:
    """{group name: {metric: {fold: value}}} over the configuration's finished folds."""
    out: dict[str, dict[str, dict]] = {}
    for rec in group.frame["_record"]:
        if not isinstance(rec, dict) or rec.get("status", "ok") != "ok":
            continue
        table = (rec.get("breakdown") or {}).get(attribute) or {}
        for name, values in table.items():
            for metric, value in (values or {}).items():
                if isinstance(value, (int, float)) and math.isfinite(float(value)):
                    out.setdefault(name, {}).setdefault(metric, {})[rec.get("fold")] = float(value)
    return out


def pooled(group: Group, attribute: str) -> dict[str, dict[str, tuple[float, float, int]]]:
    """{group name: {metric: (estimate, standard error, faces)}}: each fold's group metric weighted by its
    faces, with the folds' bootstrap standard errors (resampled by subject, agebench.results.breakdown)
    combined as independent (the folds' test subjects are disjoint). Metrics without an `se` are left out."""
    parts: dict[str, dict[str, list]] = {}
    for rec in group.frame["_record"]:
        if not isinstance(rec, dict) or rec.get("status", "ok") != "ok":
            continue
        for name, values in ((rec.get("breakdown") or {}).get(attribute) or {}).items():
            se = (values or {}).get("se") or {}
            n = values.get("n") if isinstance(values.get("n"), (int, float)) else 0
            for metric, err in se.items():
                value = values.get(metric)
                if n and isinstance(value, (int, float)) and isinstance(err, (int, float)) \
                        and math.isfinite(float(value)) and math.isfinite(float(err)):
                    parts.setdefault(name, {}).setdefault(metric, []).append((float(value), float(err), int(n)))
    out: dict[str, dict] = {}
    for name, metrics in parts.items():
        for metric, rows in metrics.items():
            n = np.array([r[2] for r in rows], dtype=float)
            w = n / n.sum()
            estimate = float(np.dot(w, [r[0] for r in rows]))
            se = float(math.sqrt(np.dot(w**2, [r[1] ** 2 for r in rows])))
            out.setdefault(name, {})[metric] = (estimate, se, int(n.sum()))
    return out


Z95 = 1.959963984540054


def largest_gap(per_group: dict[str, dict], metric: str) -> tuple[str, str, float, float, float] | None:
    """(best group, worst group, gap, CI low, CI high) of `metric` between the groups' pooled estimates, the
    CI from their bootstrap standard errors (groups of different faces: independent); None with < 2 groups."""
    have = {g: m[metric] for g, m in per_group.items() if metric in m}
    if len(have) < 2:
        return None
    lower = registry.lower_is_better(metric) or registry.direction(metric) == registry.ZERO
    value = (lambda g: abs(have[g][0])) if registry.direction(metric) == registry.ZERO else (lambda g: have[g][0])
    best = min(have, key=value) if lower else max(have, key=value)
    worst = max(have, key=value) if lower else min(have, key=value)
    gap = abs(value(worst) - value(best))
    se = math.sqrt(have[best][1] ** 2 + have[worst][1] ** 2)
    return best, worst, gap, gap - Z95 * se, gap + Z95 * se


def _stat(values: dict) -> tuple[float, float]:
    v = np.array(list(values.values()), dtype=float)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else float("nan"))


def breakdown_table(group: Group, attribute: str, label: str, percent: bool = True, fmt: str = ".2f") -> Table | None:
    per_group = fold_groups(group, attribute)
    if not per_group:
        return None
    names = sorted(per_group, key=bucket_sort_key)
    metric_names = sorted({m for g in per_group.values() for m in g if m != "n"}, key=registry.sort_key)
    columns = [attribute, "faces per fold", "folds"] + [registry.display(m, percent)[0] for m in metric_names]
    table = Table(title=f"Error by {attribute} — {label}", columns=columns, name=f"breakdown_{attribute}",
                  caption=f"Per {attribute} group: mean ± std over folds (sample std, ddof=1); `all` is the whole "
                          f"test set; faces without {attribute} labels are in `all` only.")
    for name in names:
        values = per_group[name]
        n_mean, _ = _stat(values["n"]) if values.get("n") else (float("nan"), float("nan"))
        cells = [Cell(str(name)), number_cell(n_mean, ".1f"), Cell(str(len(values.get("n", {}))))]
        for m in metric_names:
            if not values.get(m):
                cells.append(Cell("—"))
                continue
            mean, std = _stat(values[m])
            scale = registry.display(m, percent)[1]
            cells.append(stat_cell(mean * scale, std * scale if math.isfinite(std) else None, fmt))
        table.add(cells)
    whole_n = [sum(per_group[g]["n"].get(f, 0) for g in names) for f in group.folds_ok]
    cells = [Cell("all"), number_cell(float(np.mean(whole_n)) if whole_n else float("nan"), ".1f"),
             Cell(str(len(group.folds_ok)))]
    for m in metric_names:
        stat = group.metrics.get(m)
        scale = registry.display(m, percent)[1]
        cells.append(stat_cell(stat.mean * scale, stat.std * scale if math.isfinite(stat.std) else None, fmt)
                     if stat else Cell("—"))
    table.add(cells)
    _add_intervals(table, group, attribute, names, metric_names, percent, fmt)
    return table


def _add_intervals(table: Table, group: Group, attribute: str, names: list, metric_names: list, percent: bool,
                   fmt: str) -> None:
    """Each group's 95 % CI of its headline metric (bootstrap by subject, pooled over folds) as a column, and
    the largest gap between groups per metric, with its CI, as notes: the fairness audit of a paper."""
    per_group = pooled(group, attribute)
    if not per_group:
        return
    headline = next((m for m in ("age/mae", "gender/acc", "race/acc") if m in metric_names), None)
    if headline is not None:
        label, scale = registry.display(headline, percent)
        table.columns.append(f"{label}: 95% CI (bootstrap by subject)")
        for row, name in zip(table.rows, [*names, "all"], strict=True):
            est = per_group.get(name, {}).get(headline)
            row.append(Cell(f"[{(est[0] - Z95 * est[1]) * scale:{fmt}}, {(est[0] + Z95 * est[1]) * scale:{fmt}}]")
                       if est else Cell("—"))
    for metric in metric_names:
        gap = largest_gap(per_group, metric)
        if gap is None:
            continue
        best, worst, size, low, high = gap
        label, scale = registry.display(metric, percent)
        table.notes.append(f"largest gap in {label}: {worst} vs {best}, {size * scale:{fmt}} "
                           f"(95% CI {low * scale:{fmt}} to {high * scale:{fmt}}; bootstrap by subject, pooled over "
                           f"folds" + ("; the CI excludes 0" if low > 0 else "; the CI includes 0") + ")")


def breakdown_tables(groups: list[Group], attribute: str, label_cols: list[str], percent: bool = True,
                     fmt: str = ".2f") -> list[Table]:
    attribute = str(attribute)
    if attribute not in ATTRIBUTES:
        raise UserError(f"breakdown={attribute!r}; use one of {', '.join(ATTRIBUTES)}")
    tables = [t for g in groups if (t := breakdown_table(g, attribute, g.label(label_cols) or "run", percent, fmt))]
    if not tables:
        raise UserError(f"no run record here has a per-{attribute} breakdown (records written before agebench "
                        f"recorded per-group error, or a dataset without {attribute} labels); retrain, or drop breakdown=")
    return tables


def bias_vs_age(groups: list[Group], labels: dict, max_lines: int = 8) -> Plot | None:
    """Mean signed age error per age decade (mean over folds, std as error bars), one line per configuration."""
    series = []
    for g in groups:
        per = fold_groups(g, "age")
        decades = [d for d in sorted(per, key=bucket_sort_key) if per[d].get("age/bias")]
        if decades:
            stats = [_stat(per[d]["age/bias"]) for d in decades]
            series.append((labels.get(id(g)) or "run", decades, stats))
    if not series:
        return None
    from agebench.report.figures import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    every = sorted({d for _, ds, _ in series for d in ds}, key=bucket_sort_key)
    x_of = {d: i for i, d in enumerate(every)}
    for label, decades, stats in series[:max_lines]:
        ax.errorbar([x_of[d] for d in decades], [m for m, _ in stats],
                    yerr=[s if math.isfinite(s) else 0.0 for _, s in stats], marker="o", capsize=3, label=label)
    ax.axhline(0.0, color="grey", lw=1)
    ax.set_xticks(range(len(every)), every)
    ax.set_xlabel("true age (decade)")
    ax.set_ylabel("mean signed error, predicted − true (years)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Age bias per decade (mean over folds ± std)")
    return Plot(name="bias_vs_age", title="Age bias vs age (signed error per decade)", png=png_bytes(fig))
