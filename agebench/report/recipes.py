"""Tables from run records: the default table (every configuration) and paper-table recipes.

Our rows land beside the paper rows of a recipe (schema and loading: agebench.report.recipe_schema); the
`Source` column cites where every paper number came from. Without `rows`, every configuration that
passes `filters` is a row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from agebench.errors import UserError
from agebench.report import aggregate as agg
from agebench.report.aggregate import Group
from agebench.report.recipe_schema import (
    ColSpec,
    Recipe,
    RowSpec,
    available_recipes,
    load_recipe,
    parse_recipe,
)
from agebench.report.stats import (
    Comparison,
    adjust,
    compare_single_multi,
    delta_text,
    format_p,
    paired_test,
    split_ratio,
)
from agebench.report.tables import INCOMPLETE_MARK, Cell, Table, number_cell, stat_cell
from agebench.results import metrics as registry

# the recipe schema is re-exported: callers load and run a recipe through this one module
__all__ = ["ColSpec", "Options", "Recipe", "RowSpec", "available_recipes", "default_tables", "load_recipe",
           "parse_recipe", "recipe_tables"]

# cost columns: label and format from the metric registry
COST_LABELS = {name: (registry.label(name), registry.fmt(name)) for name in registry.COST_FIELDS}


def is_fraction_metric(name: str) -> bool:
    return registry.is_percent(name)


def metric_label(name: str, percent: bool) -> tuple[str, float]:
    return registry.display(name, percent)


@dataclass
class Options:
    percent: bool = True
    fmt: str = ".2f"
    incomplete: str = "mark"      # mark | drop
    confidence: float = 0.95
    compare: bool = True
    metrics: list | None = None


# --------------------------------------------------------------------------- shared helpers

def incomplete_notes(groups: list[Group], label_cols: list[str]) -> list[str]:
    notes = []
    for g in groups:
        label = g.label(label_cols) or "run"
        if not g.complete:
            notes.append(f"{INCOMPLETE_MARK} incomplete: {label}: {g.problems()}; "
                         f"numbers are over its {len(g.folds_ok)} finished fold(s) only")
        for f in g.duplicates:
            notes.append(f"{label}: fold {f} has more than one record; the latest finished one is used")
    return notes


def _stat_for(group: Group, metric: str, scale: float, fmt: str, opts: Options) -> Cell:
    stat = group.metrics.get(metric)
    if stat is None:
        return Cell("—")
    if not group.complete and opts.incomplete == "drop":
        return Cell(f"incomplete ({group.folds_text})")
    marker = "" if group.complete else INCOMPLETE_MARK
    if stat.n < len(group.folds_ok):  # a finished fold recorded no finite value: say over how many the cell is
        marker = f"{marker} ({stat.n}/{len(group.folds_ok)} folds)".strip()
    return stat_cell(stat.mean * scale, stat.std * scale if math.isfinite(stat.std) else None, fmt, marker)


@dataclass(frozen=True)
class Sides:
    """How a paired table names what it compares: single vs multi-task, or one recipe row vs another."""
    row: str = "multi-task configuration"
    base: str = "single-task"
    other: str = "multi-task"
    scope: str = "Same dataset, folds and trunk"


SINGLE_MULTI = Sides()
ROW_CONTRAST = Sides(row="contrast (compared row vs baseline row)", base="baseline row", other="compared row",
                     scope="Same dataset and folds, the two recipe rows named")


def comparison_table(comparisons: list[Comparison], label_cols: list[str], opts: Options,
                     title: str = "Single- vs multi-task, paired across folds", sides: Sides = SINGLE_MULTI) -> Table:
    conf = int(round(opts.confidence * 100))
    family = max((c.result.family for c in comparisons), default=1)
    p_label = "p (corrected, Holm)" if family > 1 else "p (corrected)"
    table = Table(title=title, name="paired",
                  columns=[sides.row, "metric", "paired folds", sides.base, sides.other,
                           f"Δ ({sides.other} − {sides.base})", f"{conf}% CI of Δ", p_label, "plain t-test p",
                           "Wilcoxon p", f"P({sides.other} better / ≈ / worse)", "detectable |Δ|", "verdict"],
                  caption=(f"{sides.scope}; Δ > 0 means {sides.other} scores higher. The verdict and "
                           "the CI come from the corrected resampled t-test (Nadeau & Bengio 2003: variance × "
                           "(1/J + n_test/n_train) over J paired folds)"
                           + (f", p Holm-adjusted over the table's {family} comparisons (the CI is per comparison, so "
                              f"a CI that excludes 0 can still fall short after Holm: the verdict then says so)"
                              if family > 1 else "")
                           + "; the plain paired t-test and Wilcoxon p are shown for comparison with papers and "
                           "decide nothing. P(…): Bayesian correlated t-test (baycomp) with the metric's region of "
                           "practical equivalence. Detectable |Δ|: the smallest difference this run finds with "
                           "power 0.8 at α = 0.05 (docs/statistics.md)."))
    for c in comparisons:
        r = c.result
        _, scale = metric_label(r.metric, opts.percent)
        fmt = opts.fmt
        better = registry.improves(r.mean_multi, r.mean_single, r.metric)
        if r.n < 2 or not math.isfinite(r.p):
            verdict = "too few folds" if r.n < 2 else "no variation"
        elif r.p < 1 - opts.confidence:
            verdict = f"{sides.other} better" if better else f"{sides.other} worse"
        elif r.p_corrected < 1 - opts.confidence:  # the CI (per comparison) excludes 0, the family's p does not
            verdict = (f"{'better' if better else 'worse'} alone (p = {format_p(r.p_corrected)}), not significant "
                       f"after Holm over {r.family}")
        else:
            verdict = "no significant difference"
        ci = (f"[{r.ci_low * scale:{fmt}}, {r.ci_high * scale:{fmt}}]" if math.isfinite(r.ci_low) else "n/a")
        bayes = (f"{r.bayes.p_multi_better:.2f} / {r.bayes.p_equivalent:.2f} / {r.bayes.p_single_better:.2f}"
                 if r.bayes is not None else "n/a")
        table.add([
            Cell(c.label or c.multi.label(label_cols)), Cell(r.metric), Cell(str(r.n), mean=float(r.n)),
            number_cell(r.mean_single * scale, fmt), number_cell(r.mean_multi * scale, fmt),
            number_cell(r.mean_diff * scale, f"+{fmt}") if math.isfinite(r.mean_diff) else Cell("n/a"),
            Cell(ci), _p_cell(r.p), _p_cell(r.p_t), _p_cell(r.p_w), Cell(bayes),
            number_cell(r.detectable * scale, fmt) if math.isfinite(r.detectable) else Cell("n/a"), Cell(verdict),
        ])
    return table


def row_contrasts(recipe: Recipe, groups_by_row: dict[str, list[Group]], confidence: float) -> list[Comparison]:
    """The recipe's `contrasts`: each [baseline row, compared row] pair, per metric, paired over the folds both
    finished, Holm over the contrasts shown. A pair whose rows were not trained on the same folds is refused."""
    out = []
    for base_label, other_label in recipe.contrasts.pairs:
        base, other = (_one_group(recipe, label, groups_by_row.get(label, [])) for label in (base_label, other_label))
        if base is None or other is None:
            continue  # a row without runs yet: its contrast waits for them
        why = split_mismatch(base, other)
        if why:
            raise UserError(f"{recipe.path}: contrast {other_label!r} vs {base_label!r} pairs folds that are not the "
                            f"same split ({why}); contrast rows trained on the same data, protocol and seed")
        for metric in recipe.contrasts.metrics:
            if metric not in base.metrics or metric not in other.metrics:
                continue
            res = paired_test(base.metrics[metric].values, other.metrics[metric].values, metric, confidence,
                              ratio=split_ratio(base, other))
            out.append(Comparison(multi=other, single=base, task=metric.split("/", 1)[0], result=res,
                                  label=f"{other_label} vs {base_label}"))
    adjust(out)
    return out


def _one_group(recipe: Recipe, label: str, groups: list[Group]) -> Group | None:
    if len(groups) > 1:
        raise UserError(f"{recipe.path}: contrast row {label!r} matches {len(groups)} configurations; narrow the "
                        f"row's `where` to one")
    return groups[0] if groups else None


def split_mismatch(a: Group, b: Group) -> str:
    """Why fold k of `a` and fold k of `b` may not have seen the same train/test split ("" when the records
    agree on everything that makes the folds: the record table's hash, the protocol, the seed, the sizes)."""
    def by_fold(group: Group) -> dict:
        return {(int(r.get("repeat") or 0), r.get("fold")): r for r in group.frame.get("_record", [])
                if isinstance(r, dict)}

    left, right = by_fold(a), by_fold(b)
    for fold in sorted(set(left) & set(right), key=str):
        ra, rb = left[fold], right[fold]
        for name, va, vb in (("record table", ra.get("records_fingerprint"), rb.get("records_fingerprint")),
                             ("protocol", _split_protocol(ra), _split_protocol(rb)),
                             ("seed", ra.get("seed"), rb.get("seed")),
                             ("fold sizes", ra.get("fold_sizes"), rb.get("fold_sizes"))):
            if va != vb:
                return f"fold {fold[1]}: {name} {va} vs {vb}"
    return ""


def _split_protocol(record: dict) -> dict:
    """The protocol settings that make the folds: `protocol.folds` only picks which of them a run trained."""
    protocol = dict((record.get("config") or {}).get("protocol") or {})
    protocol.pop("folds", None)
    return protocol


def _p_cell(p: float) -> Cell:
    return Cell(format_p(p), mean=p if math.isfinite(p) else None)


def primary_metric(task: str, names) -> str | None:
    return registry.primary(task, names)


# --------------------------------------------------------------------------- default table

def default_tables(frame: pd.DataFrame, opts: Options) -> tuple[list[Table], list[Group], list[Comparison]]:
    groups = agg.aggregate(frame)
    label_cols = agg.shown_columns(frame)
    metrics = [m for m in agg.metric_names(frame) if opts.metrics is None or m in opts.metrics]
    comparisons = compare_single_multi(groups, metrics, opts.confidence) if opts.compare else []
    cost_cols = [c for c in agg.COST_FIELDS if c in frame.columns and frame[c].notna().any()]
    columns = [agg.display_name(c) for c in label_cols] + ["folds"]
    metric_scales = []
    for m in metrics:
        label, scale = metric_label(m, opts.percent)
        columns.append(label)
        metric_scales.append((m, scale))
    if comparisons:
        columns.append("Δ vs single-task, p")
    columns += [COST_LABELS[c][0] for c in cost_cols]
    table = Table(title="Run records: mean ± std over folds", columns=columns, name="runs",
                  caption=f"{len(frame)} run records, {len(groups)} configurations; std is the sample std "
                          f"(ddof=1) over folds; {INCOMPLETE_MARK} marks a configuration with missing or "
                          f"failed folds.")
    for g in groups:
        cells = [Cell(g.key.get(c, "null")) for c in label_cols]
        cells.append(Cell(g.folds_text + ("" if g.complete else f" {INCOMPLETE_MARK}")))
        for m, scale in metric_scales:
            cells.append(_stat_for(g, m, scale, opts.fmt, opts))
        if comparisons:
            mine = [c for c in comparisons if c.multi is g
                    and c.result.metric == primary_metric(c.task, g.metrics)]
            parts = []
            for c in mine:
                _, scale = metric_label(c.result.metric, opts.percent)
                parts.append(f"{c.result.metric} {delta_text(c.result, scale, opts.fmt)}")
            cells.append(Cell("; ".join(parts)))
        for c in cost_cols:
            cells.append(number_cell(g.costs.get(c), COST_LABELS[c][1]))
        table.add(cells)
    table.notes = incomplete_notes(groups, label_cols)
    tables = [table]
    if comparisons:
        tables.append(comparison_table(comparisons, agg.label_columns([c.multi for c in comparisons]), opts))
    return tables, groups, comparisons


# --------------------------------------------------------------------------- recipes

_PM = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:±|\+/-|\+-)\s*(\d+(?:\.\d+)?)\s*$")


def paper_cell(value, col: ColSpec) -> Cell:
    """A paper value as typed: a number, "m ± s", or text ("≈ 4800", "inapplicable", "-")."""
    if value is None:
        return Cell("")
    if isinstance(value, bool):
        return Cell(str(value))
    if isinstance(value, (int, float)):
        v = float(value) * col.ref_scale
        if col.ref_scale != 1.0 or "," in col.fmt:
            return Cell(f"{v:{col.fmt}}", mean=v)
        return Cell(str(value), mean=v)
    text = str(value).strip()
    m = _PM.match(text)
    if m:
        mean, std = float(m.group(1)) * col.ref_scale, float(m.group(2)) * col.ref_scale
        shown = text.replace("+/-", "±").replace("+-", "±") if col.ref_scale == 1.0 else f"{mean:{col.fmt}} ± {std:{col.fmt}}"
        return Cell(shown, mean=mean, std=std)
    try:
        v = float(text)
        return Cell(text if col.ref_scale == 1.0 else f"{v * col.ref_scale:{col.fmt}}", mean=v * col.ref_scale)
    except ValueError:
        return Cell(text)


def _ambiguous(row: str, col: str, groups: list[Group]) -> UserError:
    keys = sorted({k for g in groups for k in g.key if len({h.key.get(k) for h in groups}) > 1})
    return UserError(f"recipe row {row!r}, column {col!r} matches {len(groups)} configurations that differ in "
                     f"{', '.join(agg.display_name(k) for k in keys)}; narrow the row's `where`")


def recipe_tables(recipe: Recipe, frame: pd.DataFrame | None, opts: Options
                  ) -> tuple[list[Table], list[Group], list[Comparison], pd.DataFrame | None]:
    """The recipe's table (paper rows beside ours), and the paired comparison of our runs in it."""
    if frame is not None:
        frame = agg.apply_filters(frame, recipe.filters)
    has_runs = frame is not None and not frame.empty
    all_groups = agg.aggregate(frame) if has_runs else []
    delta_metrics = {c.delta for c in recipe.columns if c.delta}
    # Holm's family is the comparisons this table shows (its Δ columns), not every metric the records hold:
    # a reader must be able to count the family, and hidden tests would only make the verdicts stricter.
    comparisons = (compare_single_multi(all_groups, delta_metrics, opts.confidence) if (has_runs and opts.compare)
                   else [])
    label_cols = agg.shown_columns(frame) if has_runs else []

    rows = recipe.rows
    if rows is None:  # every configuration is a row
        rows = [RowSpec(label=g.label(label_cols), where={k: v for k, v in g.key.items()}) for g in all_groups]

    # rows may split into variants by whatever else varies among their runs
    expanded: list[tuple[RowSpec, str, pd.DataFrame | None]] = []
    for row in rows:
        if row.where is None or not has_runs:
            expanded.append((row, "", None))
            continue
        matched = agg.apply_filters(frame, row.where)
        if matched.empty:
            expanded.append((row, "", matched))
            continue
        merge = {agg.resolve_key(k, frame) for k in list(recipe.merge) + list(row.merge)}
        where_cols = {agg.resolve_key(k, frame) for k in row.where}
        split = [c for c in agg.varying_columns(matched) if c not in merge and c not in where_cols]
        if not split:
            expanded.append((row, "", matched))
        else:
            for values, sub in matched.groupby(split, dropna=False, sort=False):
                values = values if isinstance(values, tuple) else (values,)
                variant = ", ".join(f"{agg.display_name(c)}={v}" for c, v in zip(split, values, strict=False))
                expanded.append((row, variant, sub))
    has_variant = any(v for _, v, _ in expanded)

    columns = ["Method", "Source"] + (["Variant"] if has_variant else []) + [c.label for c in recipe.columns]
    columns.append("folds")
    caption = recipe.caption
    table = Table(title=recipe.title, columns=columns, caption=caption, name=recipe.name)
    used_groups: dict[tuple, Group] = {}
    groups_by_row: dict[str, list[Group]] = {}
    for row, variant, sub in expanded:
        if row.paper is not None and not variant_is_repeat(expanded, row, variant):
            cells = [Cell(row.paper_label or row.label), Cell(row.source or recipe.source or "paper")]
            cells += [Cell("")] if has_variant else []
            cells += [paper_cell(row.paper.get(c.key), c) if c.key in row.paper else Cell("") for c in recipe.columns]
            cells.append(Cell(""))
            table.add(cells, kind="paper")
        if row.where is None or frame is None:
            continue
        cells = [Cell(row.label), Cell("agebench")] + ([Cell(variant)] if has_variant else [])
        if sub is None or sub.empty:
            cells += [Cell("—") for _ in recipe.columns] + [Cell("no runs")]
            table.add(cells)
            continue
        row_groups = agg.aggregate(sub)
        groups_by_row.setdefault(row.label, []).extend(row_groups)
        for g in row_groups:
            used_groups[tuple(sorted(g.key.items()))] = g
        for col in recipe.columns:
            cells.append(_recipe_cell(row, col, sub, row_groups, comparisons, opts))
        folds = sorted({g.folds_text + ("" if g.complete else f" {INCOMPLETE_MARK}") for g in row_groups})
        cells.append(Cell(", ".join(folds)))
        table.add(cells)
    notes = []
    if has_runs:
        notes += incomplete_notes(list(used_groups.values()), label_cols)
    elif frame is not None:
        notes.append("no run records pass this recipe's filters "
                     f"({', '.join(f'{k}={v}' for k, v in recipe.filters.items()) or 'none'}); only paper rows shown")
    else:
        notes.append("paper rows only (runs=null)")
    notes += recipe.notes
    table.notes = notes
    tables = [table]
    if comparisons:
        pair_cols = agg.label_columns([c.multi for c in comparisons])
        tables.append(comparison_table(comparisons, pair_cols, opts,
                                       title=f"{recipe.title} — single- vs multi-task, paired across folds"))
    contrasts = row_contrasts(recipe, groups_by_row, opts.confidence) if (recipe.contrasts and opts.compare) else []
    if contrasts:
        title = recipe.contrasts.title or "row contrasts, paired across folds"
        contrast_table = comparison_table(contrasts, [], opts, title=f"{recipe.title} — {title}", sides=ROW_CONTRAST)
        contrast_table.name = "contrasts"
        tables.append(contrast_table)
    return tables, list(used_groups.values()), comparisons, frame


def variant_is_repeat(expanded, row, variant) -> bool:
    """A row split into variants shows its paper values once, above the first variant."""
    firsts = {}
    for r, v, _ in expanded:
        firsts.setdefault(id(r), v)
    return firsts[id(row)] != variant


def _recipe_cell(row: RowSpec, col: ColSpec, sub: pd.DataFrame, row_groups: list[Group],
                 comparisons: list[Comparison], opts: Options) -> Cell:
    if col.paper_only:
        return Cell("")
    scope = agg.apply_filters(sub, col.where) if col.where else sub
    groups = row_groups if not col.where else agg.aggregate(scope)
    if col.metric:
        having = [g for g in groups if col.metric in g.metrics]
        if not having:
            return Cell("—")
        if len(having) > 1:
            raise _ambiguous(row.label, col.label, having)
        return _stat_for(having[0], col.metric, col.scale, col.fmt, opts)
    if col.field:
        values = [g.costs.get(col.field) for g in groups]
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return Cell("—")
        if len({round(v, 9) for v in values}) == 1:
            return number_cell(values[0] * col.scale, col.fmt)
        return Cell(" / ".join(f"{v * col.scale:{col.fmt}}" for v in values))
    # delta column
    keys = {tuple(sorted(g.key.items())) for g in groups}
    mine = [c for c in comparisons if c.result.metric == col.delta and tuple(sorted(c.multi.key.items())) in keys]
    if not mine:
        single = [g for g in groups if len(g.tasks) == 1]
        return Cell("(single-task)" if single and len(single) == len(groups) else "—")
    if len(mine) > 1:  # e.g. a row merged over granularities: one Δ per configuration, labelled
        cols = [k for k in agg.label_columns([c.multi for c in mine]) if k not in agg.ALWAYS_SHOWN]
        return Cell("; ".join(f"{c.multi.label(cols)}: {delta_text(c.result, col.scale, col.fmt)}" for c in mine))
    return Cell(delta_text(mine[0].result, col.scale, col.fmt), mean=mine[0].result.mean_diff * col.scale)
