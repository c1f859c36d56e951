"""Results pages (docs/results/*.md): prose written by hand, every table generated from committed run records.

A page marks each generated region with the report command that makes it:

    <!-- agebench report runs=reports/results/utkface/architectures table=utkface_architectures -->
    …generated: the recipe's tables in Markdown, and how many folds ended on their last epoch…
    <!-- end -->

`agebench report page=docs/results/utkface.md` re-renders every region from the records (paths relative to
the project root) and rewrites the page atomically; tests/test_results_pages.py renders each committed page
again and fails when it differs, so a page can never drift from its records, and a record changes a page
only through this command.
"""

from __future__ import annotations

import re
import shlex
import statistics
from pathlib import Path

from agebench.errors import UserError
from agebench.paths import PROJECT_ROOT
from agebench.report import canon

REGION = re.compile(r"(<!-- agebench report (?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)
ALLOWED_ARGS = {"runs", "table", "metrics", "precision", "power", "breakdown", "filters"}


def region_config(args: str, root: Path = PROJECT_ROOT):
    """The report config of one region's `key=value` arguments (runs= relative to the project root)."""
    from omegaconf import OmegaConf

    cfg = {"runs": None, "table": None, "format": "md", "percent": True, "precision": 2, "incomplete": "mark",
           "compare": True, "confidence": 0.95, "filters": {}, "metrics": None, "ignore": [], "power": None,
           "source": "local", "breakdown": None}
    for item in shlex.split(args):
        key, sep, value = item.partition("=")
        if not sep or key not in ALLOWED_ARGS:
            raise UserError(f"results page region argument {item!r}: use key=value with keys {sorted(ALLOWED_ARGS)}")
        cfg[key] = str(root / value) if key == "runs" else value
    return OmegaConf.create(cfg)


def render_region(args: str, root: Path = PROJECT_ROOT) -> str:
    from agebench.report.document import build_document
    from agebench.report.tables import render

    cfg = region_config(args, root)
    doc, _, groups, frame, _ = build_document(cfg)
    text = render(doc, "md").rstrip() + "\n"
    return text + "\n" + budget_line(frame) + "\n\n" + compute_line(frame) + "\n"


TAIL_EPOCHS = 3  # the budget line's "end of training": how much the monitored metric still moved there


def budget_line(frame) -> str:
    """Whether the epoch budget was enough, as far as the records can say.

    A fold whose best epoch is its last may still have been learning, but under a schedule that anneals the
    learning rate to its minimum at the last epoch (cosine) a late best epoch is what annealing does, not
    evidence that more epochs would help. So the line names the schedule and measures the tail: how much
    the early-stopping metric's best value improved over the last epochs (median and largest over folds).
    """
    if frame is None or frame.empty or "_record" not in frame:
        return "_No finished fold yet._"
    ok = [r for r in frame["_record"] if r.get("status") == "ok" and r.get("best_epoch") is not None]
    if not ok:
        return "_No finished fold yet._"
    last = sum(1 for r in ok if int(r["best_epoch"]) + 1 >= int(r.get("epochs") or 0))
    budgets = sorted({int(r.get("epochs") or 0) for r in ok})
    schedules = sorted({str(canon.get(r, "config.optim.scheduler") or "none") for r in ok})
    line = (f"_Epoch budget: {', '.join(map(str, budgets))} epochs, {' / '.join(schedules)} schedule; the best "
            f"validation epoch was the last one in {last} of {len(ok)} finished folds")
    tail = tail_gains(ok)
    if tail:
        monitor, gains = tail
        line += (f"; over the last {TAIL_EPOCHS} epochs the best {monitor} improved by a median of "
                 f"{statistics.median(gains):.3g} (largest {max(gains):.3g})")
    if not last:
        return line + "._"
    if schedules == ["cosine"]:
        return line + (". The cosine schedule anneals the learning rate to its end, so a late best epoch is "
                       "expected and does not show that more epochs would help; only a longer run can._")
    return line + " (those folds may still have been learning: their rows may understate the method)._"


def compute_line(frame) -> str:
    """What the table cost, from its records: training time summed over finished folds, on which hardware
    with how many threads, so a reader can plan a rerun (wall time = this ÷ the runs side by side)."""
    if frame is None or frame.empty or "_record" not in frame:
        return "_Compute: no finished fold yet._"
    ok = [r for r in frame["_record"] if r.get("status") == "ok"]
    seconds = sum(float(r.get("train_seconds") or 0.0) for r in ok)
    where = sorted({f"{(r.get('hardware') or {}).get('cpu', '?')}, "
                    f"{(r.get('hardware') or {}).get('torch_threads', '?')} thread(s)"
                    + (", CUDA" if (r.get("hardware") or {}).get("cuda") else "") for r in ok})
    return (f"_Compute: {seconds / 3600:.1f} hours of wall-clock training over {len(ok)} finished folds "
            f"({seconds / 60 / max(len(ok), 1):.1f} min per fold; {'; '.join(where)})._")


def tail_gains(records: list[dict]) -> tuple[str, list[float]] | None:
    """The early-stopping metric and, per fold, how much its best value improved in the last TAIL_EPOCHS
    epochs (>= 0; in the metric's units); None when the records carry no such history."""
    gains, monitors = [], set()
    for record in records:
        monitor = canon.get(record, "config.callbacks.early_stopping.monitor")
        mode = canon.get(record, "config.callbacks.early_stopping.mode") or "min"
        values = [h[monitor] for h in record.get("history") or [] if monitor and h.get(monitor) is not None]
        if len(values) <= TAIL_EPOCHS:
            continue
        best = min if mode == "min" else max
        before, overall = best(values[:-TAIL_EPOCHS]), best(values)
        gains.append(float(before - overall if mode == "min" else overall - before))
        monitors.add(monitor)
    if not gains or len(monitors) != 1:
        return None
    return monitors.pop(), gains


def render_page(text: str, root: Path = PROJECT_ROOT) -> str:
    """The page with every marked region re-rendered from its records."""
    return REGION.sub(lambda m: m.group(1) + render_region(m.group("args"), root) + m.group(4), text)


def write_page(path: str | Path) -> str:
    """Re-render `path` in place (atomically); the summary line of what it did."""
    from agebench.results.store import atomic_write_text

    page = Path(str(path))
    if not page.is_file():
        raise UserError(f"page={path} is not a file; give a results page such as docs/results/utkface.md")
    text = page.read_text(encoding="utf-8")
    regions = len(REGION.findall(text))
    if not regions:
        raise UserError(f"{page} has no `<!-- agebench report … -->` … `<!-- end -->` region to render")
    new = render_page(text)
    atomic_write_text(page, new)
    return f"{page}: {regions} region(s) re-rendered from their run records" + ("" if new != text else " (unchanged)")
