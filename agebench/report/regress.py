"""`agebench regress baseline=<yaml> runs=<dir>`: the accuracy gate for CI.

A baseline file names configurations (a `where` filter on run-record / config values, as in report
recipes) and, per metric, the expected fold mean and a tolerance:

    configurations:
      - name: age+gender
        where: {experiment: quickstart, model: lmtcnn, tasks: age_gender}
        min_folds: 3                       # optional; default: every fold the protocol expects
        metrics:
          age/top1: {expected: 0.61, std: 0.012, k: 3, tolerance: 0.02}

The tolerance is max(`tolerance` (absolute), `k` × std), std being the baseline's measured fold std
(`std`), or the current runs' fold std when the baseline has none. A metric regresses when its current
fold mean falls below expected − tolerance (above expected + tolerance for lower-is-better metrics
such as MAE; agebench/results/metrics.py declares each direction, and a baseline's `direction:` may only
restate it). A configuration with no runs, a missing metric or too few finished folds fails too. Any failure raises RegressionError → exit code 1, after the table.

`update=true` measures `runs=` and writes `expected`/`std` (and where they came from) into the
baseline instead of checking it — the honest way to fill or refresh one.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from agebench.errors import UserError
from agebench.report import aggregate as agg
from agebench.report.tables import Cell, Table, number_cell
from agebench.results import metrics as registry

METRIC_KEYS = {"expected", "std", "k", "tolerance", "direction", "n"}
CONFIG_KEYS = {"name", "where", "metrics", "min_folds", "description"}
BASELINE_KEYS = {"description", "command", "measured", "defaults", "configurations", "notes"}


@dataclass
class Check:
    config: str
    metric: str
    expected: float | None
    tolerance: float | None
    higher: bool
    two_sided: bool = False   # a signed error (direction zero in agebench.results.metrics): within expected ± tolerance
    mean: float | None = None
    std: float | None = None
    n: int = 0
    folds: str = ""
    status: str = "PASS"   # PASS | FAIL | MISSING | INCOMPLETE
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "PASS"

    @property
    def delta(self) -> float | None:
        if self.mean is None or self.expected is None:
            return None
        return self.mean - self.expected

    @property
    def bound(self) -> float | None:
        if self.expected is None or self.tolerance is None:
            return None
        return self.expected - self.tolerance if self.higher else self.expected + self.tolerance


def find_baseline(name) -> Path:
    p = Path(str(name))
    if p.is_file():
        return p
    from agebench.paths import reports_dir

    for candidate in (reports_dir() / "baselines" / f"{name}", reports_dir() / "baselines" / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise UserError(f"baseline file {name} not found; pass baseline=<path to a yaml> "
                    f"(see reports/baselines/quickstart.yaml for the format)")


def load_baseline(name) -> tuple[Path, dict]:
    path = find_baseline(name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix the baseline") from None
    validate_baseline(data, path)
    return path, data


def validate_baseline(data, path) -> None:
    def bad(msg):
        return UserError(f"{path}: {msg}; see docs/ci_gate.md for the baseline format")

    if not isinstance(data, Mapping) or not isinstance(data.get("configurations"), list) or not data["configurations"]:
        raise bad("a baseline needs a non-empty `configurations:` list")
    unknown = set(data) - BASELINE_KEYS
    if unknown:
        raise bad(f"unknown top-level key(s) {sorted(unknown)}")
    defaults = data.get("defaults")
    if defaults is not None:
        if not isinstance(defaults, Mapping) or set(defaults) - {"k", "tolerance", "direction"}:
            raise bad(f"defaults: {defaults!r} must map k and/or tolerance to numbers, e.g. {{k: 2.0, tolerance: 0.02}}")
        for key in ("k", "tolerance"):
            if defaults.get(key) is not None and _num(defaults[key]) is None:
                raise bad(f"defaults: {key}: {defaults[key]!r} is not a number")
    names = []
    for i, c in enumerate(data["configurations"]):
        if not isinstance(c, Mapping) or "name" not in c or not isinstance(c.get("where"), Mapping):
            raise bad(f"configuration {i + 1} needs a `name` and a `where` mapping")
        if not isinstance(c["name"], str) or not c["name"].strip():
            raise bad(f"configuration {i + 1}: name: {c['name']!r} must be a non-empty string")
        folds = c.get("min_folds")
        if folds is not None and not (_num(folds) is not None and float(folds).is_integer() and folds >= 1):
            raise bad(f"configuration {c['name']!r}: min_folds: {folds!r} must be a whole number ≥ 1")
        if set(c) - CONFIG_KEYS:
            raise bad(f"configuration {c['name']!r}: unknown key(s) {sorted(set(c) - CONFIG_KEYS)}")
        if not isinstance(c.get("metrics"), Mapping) or not c["metrics"]:
            raise bad(f"configuration {c['name']!r} needs a `metrics:` mapping (metric: {{expected, tolerance|k}})")
        for m, spec in c["metrics"].items():
            if not isinstance(spec, Mapping) or set(spec) - METRIC_KEYS:
                raise bad(f"{c['name']!r} / {m}: a metric maps to keys among {sorted(METRIC_KEYS)}")
            if spec.get("direction") not in (None, "higher", "lower"):
                raise bad(f"{c['name']!r} / {m}: direction must be higher or lower")
            for key in ("expected", "std", "k", "tolerance", "n"):
                if spec.get(key) is not None and _num(spec[key]) is None:
                    raise bad(f"{c['name']!r} / {m}: {key}: {spec[key]!r} is not a number; write a finite number "
                              f"(or null, and fill expected/std with update=true)")
        names.append(c["name"])
    if len(set(names)) != len(names):
        raise bad(f"configuration names must be unique (got {names})")


def _num(v) -> float | None:
    if v is None or isinstance(v, (bool, str)):  # YAML's yes/no are booleans, and "0.5" is text: neither is a value
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _select(frame, conf: Mapping, path) -> list[agg.Group]:
    matched = agg.apply_filters(frame, dict(conf["where"]))
    groups = agg.aggregate(matched)
    if len(groups) > 1:
        varying = agg.varying_columns(matched)
        raise UserError(f"{path}: configuration {conf['name']!r} matches {len(groups)} configurations that differ "
                        f"in {', '.join(agg.display_name(c) for c in varying)}; add those keys to its `where`")
    return groups


def _check_metric_name(metric: str, known: list[str], conf_name, path) -> None:
    """A metric no run record carries at all is a misspelt name in the baseline (a user error, exit 2),
    not a regression; one the runs carry but this configuration lacks stays a MISSING check."""
    if not known or metric in known:
        return
    import difflib

    close = difflib.get_close_matches(metric, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UserError(f"{path}: {conf_name!r} / {metric}: no run record has a metric {metric!r}; {hint}the runs report "
                    f"{', '.join(known)}; fix the metric name in the baseline")


def evaluate(data: Mapping, frame, path="baseline") -> list[Check]:
    defaults = dict(data.get("defaults") or {})
    checks = []
    known = agg.metric_names(frame)
    for conf in data["configurations"]:
        groups = _select(frame, conf, path)
        group = groups[0] if groups else None
        for metric, spec in conf["metrics"].items():
            if group is not None:  # with no matching runs at all the check is MISSING (exit 1), whatever the name
                _check_metric_name(str(metric), known, conf["name"], path)
            spec = {**defaults, **dict(spec)}
            expected = _num(spec.get("expected"))
            if expected is None:
                raise UserError(f"{path}: {conf['name']!r} / {metric} has no expected value; measure it with "
                                f"`agebench regress baseline={path} runs=<dir> update=true`")
            declared = registry.direction(metric)
            # the registry is the one place a metric's direction is declared: a baseline may restate
            # it (older baselines do) but not contradict it
            if spec.get("direction") and registry.spec(metric) and spec["direction"] != declared:
                raise UserError(f"{path}: {conf['name']!r} / {metric}: direction {spec['direction']} contradicts "
                                f"agebench/results/metrics.py ({metric} is {declared}-is-better); drop `direction:`")
            higher = (spec.get("direction") or declared) == registry.HIGHER
            check = Check(config=str(conf["name"]), metric=str(metric), expected=expected, tolerance=None, higher=higher,
                          two_sided=declared == registry.ZERO)
            stat = group.metrics.get(metric) if group else None
            if group is None:
                check.status, check.reason = "MISSING", "no run records match `where`"
            elif stat is None:
                check.status, check.reason = "MISSING", f"the runs have no {metric}"
                check.folds = group.folds_text
            else:
                check.mean, check.n = stat.mean, stat.n
                check.std = stat.std if math.isfinite(stat.std) else None
                check.folds = group.folds_text
            std = _num(spec.get("std"))
            if std is None:
                std = check.std or 0.0
            k, tol_abs = _num(spec.get("k")), _num(spec.get("tolerance"))
            if k is None and tol_abs is None:
                raise UserError(f"{path}: {conf['name']!r} / {metric} needs a tolerance (absolute) or k (× fold std)")
            check.tolerance = max(tol_abs or 0.0, (k or 0.0) * std)
            if check.status != "PASS":
                checks.append(check)
                continue
            min_folds = conf.get("min_folds")
            needed = int(min_folds) if min_folds is not None else group.n_expected
            bad = sorted((str(f) for f, v in stat.values.items() if not math.isfinite(float(v))))
            if bad or not math.isfinite(check.mean):
                check.status = "FAIL"
                check.reason = f"not a finite number in fold(s) {', '.join(bad) or '?'}: the run is broken"
            elif stat.n < needed:
                check.status = "INCOMPLETE"
                check.reason = f"{stat.n} finished fold(s), {needed} needed ({group.problems() or 'folds missing'})"
            elif check.two_sided and abs(check.mean - expected) > check.tolerance:
                check.status = "FAIL"
                check.reason = f"outside {expected:.4g} ± {check.tolerance:.3g}"
            elif check.two_sided:
                pass
            elif check.higher and check.mean < check.bound:
                check.status = "FAIL"
                check.reason = f"below {check.bound:.4g} (expected {expected:.4g} − {check.tolerance:.3g})"
            elif not check.higher and check.mean > check.bound:
                check.status = "FAIL"
                check.reason = f"above {check.bound:.4g} (expected {expected:.4g} + {check.tolerance:.3g})"
            else:
                gain = check.mean - expected if check.higher else expected - check.mean
                if gain > check.tolerance:
                    check.reason = "improved beyond the tolerance: consider update=true"
            checks.append(check)
    return checks


def checks_table(checks: list[Check], title: str) -> Table:
    table = Table(title=title, name="regress",
                  columns=["configuration", "metric", "expected", "tolerance", "bound", "measured", "n folds",
                           "Δ", "status", "reason"])
    for c in checks:
        if c.mean is None:
            measured = Cell("—")
        elif c.std is not None:
            measured = Cell(f"{c.mean:.4f} ± {c.std:.4f}", mean=c.mean, std=c.std)
        else:
            measured = number_cell(c.mean, ".4f")
        table.add([Cell(c.config), Cell(c.metric), number_cell(c.expected, ".4f"), number_cell(c.tolerance, ".4f"),
                   (Cell(f"{c.expected:.4f} ± {c.tolerance:.4f}") if c.two_sided else
                    Cell(("≥ " if c.higher else "≤ ") + f"{c.bound:.4f}")) if c.bound is not None else Cell("—"),
                   measured, Cell(c.folds or "0"),
                   number_cell(c.delta, "+.4f") if c.delta is not None else Cell("—"),
                   Cell(c.status), Cell(c.reason)])
    return table


def update_baseline(path: Path, data: dict, frame, runs) -> list[str]:
    """Write measured mean/std into the baseline; returns a line per metric."""
    lines = []
    shas, hosts, n_folds = set(), set(), set()
    for conf in data["configurations"]:
        groups = _select(frame, conf, path)
        if not groups:
            raise UserError(f"{path}: configuration {conf['name']!r} matches no run records under {runs}; "
                            f"train it first or fix its `where`")
        g = groups[0]
        if not g.complete:
            raise UserError(f"{path}: configuration {conf['name']!r} is incomplete ({g.problems()}); "
                            f"measure a baseline only from complete runs")
        for rec in g.frame["_record"]:
            shas.add(str(rec.get("git_sha")))
            hosts.add(str(rec.get("host")))
        n_folds.add(len(g.folds_ok))
        for metric, spec in conf["metrics"].items():
            stat = g.metrics.get(metric)
            if stat is None:
                raise UserError(f"{path}: the runs of {conf['name']!r} have no {metric}")
            if not math.isfinite(stat.mean):  # an inf/NaN fold is a broken run, never a baseline
                raise UserError(f"{path}: {conf['name']!r} / {metric} is {stat.mean} over its folds (a fold recorded a "
                                f"non-finite value); fix or rerun those folds before measuring a baseline")
            spec["expected"] = round(stat.mean, 6)
            spec["std"] = round(stat.std, 6) if math.isfinite(stat.std) else None
            spec["n"] = stat.n
            lines.append(f"{conf['name']} / {metric}: expected {stat.mean:.4f}, std {stat.std:.4f}, n {stat.n}")
    data["measured"] = {
        "runs": str(runs) if not isinstance(runs, list) else [str(r) for r in runs],
        "git_sha": sorted(shas) if len(shas) > 1 else next(iter(shas), None),
        "host": sorted(hosts) if len(hosts) > 1 else next(iter(hosts), None),
        "folds": sorted(n_folds)[0] if len(n_folds) == 1 else sorted(n_folds),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    header = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            header.append(line)
        else:
            break
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=110)
    from agebench.results.store import atomic_write_text

    atomic_write_text(path, "\n".join(header).rstrip() + ("\n" if header else "") + body)
    return lines
