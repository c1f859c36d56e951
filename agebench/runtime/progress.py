"""What a running command tells its user: plain progress lines on stdout and in `<output_dir>/train.log`,
and a live bar (rich) only when stdout is a terminal.

Lines go through the `agebench.runtime.progress` logger, which has its own handlers and does not propagate:
Hydra's job logging would otherwise print them a second time, prefixed with a timestamp and logger
name. Its stdout handler looks `sys.stdout` up at every line, so a rich live display (which swaps
`sys.stdout` for a proxy) or pytest's capture still gets them in order.

Why `train.log` used to stay empty: Hydra's job logging does write the root logger to
`<output_dir>/train.log`, but nothing logged there during a normal run (agebench logged only skips
and failures, Lightning's loggers are lowered to WARNING and its warnings use `warnings`, and no
per-epoch output existed). Every line below also goes to each open run log (`log_to`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

LOGGER_NAME = "agebench.runtime.progress"
RUN_LOG = "train.log"
log = logging.getLogger(LOGGER_NAME)

_positions: dict = {}  # fold key ((repeat, fold) or a fold number) -> (position, number of folds this run trains)


class _CurrentStdout(logging.StreamHandler):
    """A StreamHandler on whatever `sys.stdout` is when a line is written."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):  # StreamHandler.__init__ assigns it; the property always answers sys.stdout
        pass


def _setup() -> None:
    if any(isinstance(h, _CurrentStdout) for h in log.handlers):
        return
    handler = _CurrentStdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def is_writer() -> bool:
    """Only one process speaks: rank 0 under torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def say(message: str) -> None:
    """One progress line on stdout and in every open run log."""
    if not is_writer():
        return
    _setup()
    log.info(message)


@contextmanager
def log_to(output_dir: str | Path):
    """Copy every progress line into `<output_dir>/train.log` while the block runs (nested blocks on
    the same file share one handler)."""
    path = (Path(output_dir) / RUN_LOG).resolve()
    if not is_writer() or any(getattr(h, "baseFilename", None) == str(path) for h in log.handlers):
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    _setup()
    log.addHandler(handler)
    try:
        yield path
    finally:
        log.removeHandler(handler)
        handler.close()


def live_bar_wanted(setting) -> bool:
    """`trainer.progress_bar`: auto (a live bar when stdout is a terminal), true or false."""
    text = str(setting).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("auto", "none", "null", ""):
        return sys.stdout.isatty()
    return False


def duration(seconds: float) -> str:
    """0.4s, 12s, 3m05s, 2h07m."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def number(value) -> str:
    """A metric or loss for a progress line."""
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def params_text(n) -> str:
    if n is None:
        return "? params"
    n = int(n)
    return f"{n / 1e6:.2f} M params" if n >= 1e5 else f"{n:,} params"


# ---------------------------------------------------------------------------------------------------
# `agebench train`: where its output goes, folds

def output_started(output_dir: str | Path) -> None:
    say(f"agebench train: output in {Path(output_dir).resolve()} (train.log, results.jsonl, summary.json)")


def output_finished(output_dir: str | Path, ok: bool = True) -> None:
    say(f"{'output' if ok else 'output (incomplete)'}: {Path(output_dir).resolve()}")


def plan_folds(keys: list) -> None:
    """The folds this run trains, in order, so that each fold's lines say `fold k/n`. A key is a fold's
    (repeat, fold) pair (a bare fold number means repeat 0)."""
    _positions.clear()
    _positions.update({_as_key(i): (k, len(keys)) for k, i in enumerate(keys, start=1)})


def _as_key(key) -> tuple:
    return (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (0, int(key))


def fold_label(fold_key, variant=None, trial=None) -> str:
    key = _as_key(fold_key)
    k, n = _positions.get(key, (None, None))
    where = f"fold {k}/{n}" if k else (f"fold {key[1]}" if key[0] == 0 else f"repeat {key[0]} fold {key[1]}")
    prefix = " ".join(p for p in (f"trial {trial}" if trial is not None else None, f"[{variant}]" if variant else None) if p)
    return f"{prefix} {where}".strip()


def fold_skipped(fold_key, dirname: str, variant=None, trial=None) -> None:
    say(f"{fold_label(fold_key, variant, trial)} ({dirname}): already finished; skipped")


def fold_finished(record: dict) -> None:
    from agebench.results.metrics import default_columns

    label = fold_label((record.get("repeat") or 0, record["fold"]), record.get("variant"), record.get("trial"))
    took = duration(record.get("train_seconds") or 0)
    if record.get("status") != "ok":
        say(f"{label} {record.get('status', 'failed')} after {took}: {record.get('error', '')}")
        return
    metrics = record.get("metrics") or {}
    shown = sorted(default_columns(metrics))  # the metric registry's compact-table columns
    text = " · ".join(f"test {k} {number(metrics[k])}" for k in shown) or "no test metrics"
    best = record.get("best_epoch")
    n = int(record.get("epochs") or 0)
    epochs = f"{n} epoch{'' if n == 1 else 's'}" + (f" (best {best + 1})" if best is not None else "")
    say(f"{label} done in {took} · {epochs} · {text}")


# ---------------------------------------------------------------------------------------------------
# long data work: a bar with counts on a terminal, a start and an end line otherwise

@contextmanager
def counted_work(total: int, doing: str, done: str, unit: str = "images"):
    """`with counted_work(n, "decoding", "decoded") as advance: ... advance(k)`."""
    total = int(total)
    start = time.perf_counter()
    bar = rich_bar(f"{doing} {unit}", total) if (sys.stdout.isatty() and is_writer() and total) else None
    if bar is None:
        say(f"{doing} {total:,} {unit}…")
        yield lambda k=1: None
    else:
        progress, task = bar
        with progress:
            yield lambda k=1: progress.advance(task, k)
    seconds = time.perf_counter() - start
    rate = f" ({total / seconds:,.0f}/s)" if seconds > 0 and total else ""
    say(f"{done} {total:,} {unit} in {seconds:.1f} s{rate}")


def rich_bar(description: str, total: int | None, transient: bool = False):
    from rich import progress as rp

    progress = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                           rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), transient=transient)
    return progress, progress.add_task(description, total=total)
