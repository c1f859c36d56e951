"""The small mean ± std table over folds that `agebench train` prints at the end (summary_table=true),
one row per variant."""

from __future__ import annotations


def format_summary_table(summaries: dict[str, dict]) -> str:
    """A small mean ± std table over folds, one row per variant (the quickstart's closing output)."""
    from agebench.results.metrics import default_columns  # the registry's compact-table columns

    metrics = sorted(default_columns(m for s in summaries.values() for m in s["metrics"]))
    header = ["variant", "folds"] + metrics
    rows = []
    for name, s in summaries.items():
        cells = [name, str(len(s["folds_ok"]))]
        for m in metrics:
            v = s["metrics"].get(m)
            cells.append(f"{v['mean']:.3f} ± {v['std']:.3f}" if v else "—")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
