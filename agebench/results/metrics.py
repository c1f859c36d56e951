"""The metric registry: every metric a run record carries, declared once.

Each declaration says how the metric reads: its direction (higher / lower is better, or `zero` for a
signed error whose best value is 0), its unit (`fraction` values are shown ×100 as %, `years`, `count`,
…), its number format, whether it is a default table column (the quickstart's closing table), its rank
as a task's primary metric, and how it aggregates over folds. The report (tables, paired tests, plots),
the regression gate, the quickstart table and the sweep objectives ask this module; no other module
spells out a direction or a percent unit (tests/test_metrics_registry.py checks that).

Names are `task/leaf` (`age/mae`, `gender/acc`) or run-record cost fields (`latency_ms`); `test/`,
`val/` and `metrics.` prefixes are ignored. `age/cs{θ}` is one declaration for every threshold θ
(`age/cs5` is CS@5: the fraction of faces whose predicted age is within 5 years). Torch-free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

HIGHER, LOWER, ZERO = "higher", "lower", "zero"
AGGREGATION = "mean ± sample std (ddof=1) over the folds that finished"


@dataclass(frozen=True)
class Metric:
    pattern: str              # full name; `{θ}` stands for a number
    direction: str            # higher | lower | zero (best at 0: a signed error)
    unit: str                 # fraction (shown as %) | years | count | gmacs | mb | ms | s | epochs | loss
    fmt: str                  # format of one value in its display unit
    label: str                # what it measures, for captions and --help
    default_column: bool = False
    primary: int | None = None    # rank as its task's headline metric (0 first); None = never
    aggregate: str = AGGREGATION
    order: int = 50           # column order within a task
    rope: float | None = None  # region of practical equivalence of a difference, in stored units (0.01 = 1 point)

    @property
    def percent(self) -> bool:
        return self.unit == "fraction"

    @property
    def regex(self) -> re.Pattern:
        return re.compile("^" + re.escape(self.pattern).replace(re.escape("{θ}"), r"(\d+(?:\.\d+)?)") + "$")


METRICS: tuple[Metric, ...] = (
    Metric("age/top1", HIGHER, "fraction", ".3f", "exact age-bin accuracy", default_column=True, primary=0, order=0, rope=0.01),
    Metric("age/top2", HIGHER, "fraction", ".3f", "true bin among the two most likely", order=1, rope=0.01),
    Metric("age/one_off", HIGHER, "fraction", ".3f", "predicted bin within one bin of the true one",
           default_column=True, order=2, rope=0.01),
    Metric("age/mae", LOWER, "years", ".3f", "mean absolute error of the decoded age", default_column=True,
           primary=2, order=3, rope=0.25),
    Metric("age/cs{θ}", HIGHER, "fraction", ".3f", "cumulative score: share of faces within θ years", order=4, rope=0.01),
    Metric("age/bias", ZERO, "years", "+.3f", "mean signed error (predicted − true age)", order=5, rope=0.25),
    Metric("age/aurc", LOWER, "years", ".3f", "area under the risk–coverage curve of the age error (certainty = "
           "the predicted distribution's spread)", order=6, rope=0.25),
    Metric("age/ece", LOWER, "fraction", ".3f", "expected calibration error of the age-bin probabilities", order=7,
           rope=0.01),
    Metric("gender/ece", LOWER, "fraction", ".3f", "expected calibration error of the gender probabilities", order=1,
           rope=0.01),
    Metric("race/ece", LOWER, "fraction", ".3f", "expected calibration error of the race probabilities", order=1,
           rope=0.01),
    Metric("gender/acc", HIGHER, "fraction", ".3f", "gender accuracy", default_column=True, primary=1, order=0, rope=0.01),
    Metric("race/acc", HIGHER, "fraction", ".3f", "race accuracy", default_column=True, primary=1, order=0, rope=0.01),
    Metric("loss", LOWER, "loss", ".4f", "weighted multi-task loss"),
    # run-record cost fields (sweep objectives and report cost columns)
    Metric("params", LOWER, "count", ",.0f", "params"),
    Metric("gmacs", LOWER, "gmacs", ".3f", "GMACs"),
    Metric("size_mb", LOWER, "mb", ".2f", "size MB"),
    Metric("latency_ms", LOWER, "ms", ".2f", "latency ms"),
    Metric("epochs", LOWER, "epochs", ".1f", "epochs"),
    Metric("train_seconds", LOWER, "s", ".0f", "train s"),
)
TASK_ORDER = ("age", "gender", "race")
COST_FIELDS = ("params", "gmacs", "size_mb", "latency_ms", "epochs", "train_seconds")
_PREFIXES = ("metrics.", "test/", "val/", "train/")


def base_name(name: str) -> str:
    """`test/age/mae`, `metrics.age/mae` → `age/mae`."""
    name = str(name)
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if name.startswith(p):
                name, changed = name[len(p):], True
    return name


def spec(name: str) -> Metric | None:
    """The declaration of a metric name, or None when it is not declared."""
    name = base_name(name)
    for m in METRICS:
        if m.pattern == name or ("{θ}" in m.pattern and m.regex.match(name)):
            return m
    if name.endswith("_loss") and "/" not in name:  # train/<task>_loss
        return METRICS[[m.pattern for m in METRICS].index("loss")]
    return None


def is_declared(name: str) -> bool:
    return spec(name) is not None


def direction(name: str) -> str:
    """higher | lower | zero; an undeclared metric reads as higher-is-better (accuracy-like)."""
    m = spec(name)
    return m.direction if m else HIGHER


def rope(name: str) -> float | None:
    """The metric's region of practical equivalence (a difference smaller than this does not matter), in
    its stored unit; None where the registry declares none (the Bayesian verdict is then left out)."""
    m = spec(name)
    return m.rope if m else None


def lower_is_better(name: str) -> bool:
    return direction(name) == LOWER


def improves(new: float, old: float, name: str) -> bool:
    """Is `new` better than `old` for this metric (strictly)?"""
    d = direction(name)
    if d == ZERO:
        return abs(new) < abs(old)
    return new < old if d == LOWER else new > old


def goal(name: str) -> str:
    """Optuna's study direction for this metric as an objective: maximize | minimize (|x| for zero)."""
    return "maximize" if direction(name) == HIGHER else "minimize"


def is_percent(name: str) -> bool:
    m = spec(name)
    return bool(m and m.percent)


def display(name: str, percent: bool = True) -> tuple[str, float]:
    """(column label, scale): fraction metrics as `name (%)` ×100 when `percent`."""
    if percent and is_percent(name):
        return f"{name} (%)", 100.0
    return name, 1.0


def fmt(name: str, default: str = ".3f") -> str:
    m = spec(name)
    return m.fmt if m else default


def label(name: str) -> str:
    m = spec(name)
    return m.label if m else name


def sort_key(name: str) -> tuple:
    """Task order (age, gender, race), then the declared order within a task, then the name (cs3 < cs5)."""
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    task, _, _ = name.partition("/")
    m = spec(name)
    number = re.search(r"(\d+(?:\.\d+)?)$", name)
    return (order.get(task, 9), task, m.order if m else 50, float(number.group(1)) if number else 0.0, name)


def default_columns(names: Iterable[str]) -> list[str]:
    """The metrics of `names` that a compact table (the quickstart's) shows, in table order."""
    return sorted({n for n in names if (m := spec(n)) is not None and m.default_column}, key=sort_key)


def primary(task: str, names: Iterable[str]) -> str | None:
    """The task's headline metric among `names` (age/top1, else age/mae; gender/acc; race/acc)."""
    ranked = [(m.primary, n) for n in names if n.startswith(f"{task}/") and (m := spec(n)) and m.primary is not None]
    return min(ranked)[1] if ranked else None


def headline(names: Iterable[str], limit: int | None = None) -> list[str]:
    """Every task's primary metric among `names`, in task order (what a plot puts on its y axis)."""
    names = set(names)
    out = [p for t in TASK_ORDER if (p := primary(t, names))]
    return out[:limit] if limit is not None else out


def cs_name(theta) -> str:
    theta = float(theta)
    return f"age/cs{int(theta)}" if theta.is_integer() else f"age/cs{theta:g}"


def format_value(name: str, value: float, percent: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    _, scale = display(name, percent)
    return f"{value * scale:{fmt(name)}}"
