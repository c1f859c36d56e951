"""Table recipes: their schema, and finding, reading and checking one.

A recipe (`reports/tables/<name>.yaml`) says which runs (`filters`), which rows (each a `where` filter
on config values, with the paper's numbers for that row under `paper`), which columns (a metric, a
cost field, a Δ-vs-single-task column, or a paper-only column) and how to format them. Our rows land
beside the paper rows; the `Source` column cites where every paper number came from.

Recipe schema (all keys optional except title/columns):

    title: Seed 000 Table 3 — ...
    source: seed 000 Table 3          # default citation of `paper` values
    caption: one line under the title
    filters: {dataset: adience}       # applied to all our runs
    merge: [tasks]                    # identity keys a row does not split on (default: none)
    columns:
      - {key: age, metric: age/top1, label: "Age top-1 (%)", scale: 100, fmt: .2f, where: {...}}
      - {key: params, field: params, label: Params, fmt: ",.0f"}
      - {key: d_age, delta: age/top1, label: "Δ age vs single-task, p", scale: 100}
      - {key: zenbo, label: "Zenbo ms/frame (paper)"}          # paper-only column
    rows:
      - label: LMTCNN-2-1
        where: {model: lmtcnn, config.model.width: [2, 1]}
        merge: [tasks]
        paper: {age: 44.26, gender: "85.16"}   # values in the paper's units; "m ± s" or text allowed
        source: seed 000 Table 3
      - {label: "Sun et al. [16]", paper: {...}}   # a paper-only row (no `where`)
    notes: [free text lines]
    contrasts:                        # row against row, paired across folds (e.g. 10 vs 3 age classes)
      title: "10 vs 3 age classes"    # optional; the table's title after the recipe's own
      metrics: [age/top1, age/mae]
      pairs: [["K = 3, age", "K = 10, age"]]   # [baseline row, compared row]: labels of rows with `where`

Without `rows`, every configuration that passes `filters` is a row. A contrast's two rows must be one
configuration each, trained on the same folds (same data, protocol and seed, the same fold sizes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import yaml

from agebench.errors import UserError
from agebench.report.frame import COST_FIELDS


@dataclass
class ColSpec:
    key: str
    label: str
    metric: str | None = None
    field: str | None = None
    delta: str | None = None
    scale: float = 1.0
    fmt: str = ".2f"
    where: dict = dc_field(default_factory=dict)
    ref_scale: float = 1.0

    @property
    def paper_only(self) -> bool:
        return not (self.metric or self.field or self.delta)


@dataclass
class RowSpec:
    label: str
    where: dict | None = None
    paper: dict | None = None
    source: str | None = None
    merge: list = dc_field(default_factory=list)
    paper_label: str | None = None


@dataclass
class Contrasts:
    metrics: list[str]
    pairs: list[tuple[str, str]]     # (baseline row label, compared row label)
    title: str = ""


@dataclass
class Recipe:
    name: str
    title: str
    columns: list[ColSpec]
    rows: list[RowSpec] | None
    source: str = ""
    caption: str = ""
    filters: dict = dc_field(default_factory=dict)
    merge: list = dc_field(default_factory=list)
    notes: list = dc_field(default_factory=list)
    plots: list | None = None
    path: str = ""
    contrasts: Contrasts | None = None


RECIPE_KEYS = {"title", "source", "caption", "filters", "merge", "columns", "rows", "notes", "plots", "contrasts"}
CONTRAST_KEYS = {"title", "metrics", "pairs"}
COLUMN_KEYS = {"key", "label", "metric", "field", "delta", "scale", "fmt", "where", "ref_scale"}
ROW_KEYS = {"label", "where", "paper", "source", "merge", "paper_label"}


def recipe_dir() -> Path:
    from agebench.paths import reports_dir

    return reports_dir() / "tables"


def available_recipes() -> list[str]:
    try:
        return sorted(p.stem for p in recipe_dir().glob("*.yaml"))
    except UserError:
        return []


def find_recipe(name: str) -> Path:
    p = Path(str(name))
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = recipe_dir() / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    raise UserError(f"unknown table recipe {name!r}; choose one of {', '.join(available_recipes())} "
                    f"(reports/tables/) or give a path to a recipe yaml")


def load_recipe(name: str) -> Recipe:
    path = find_recipe(name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix the recipe") from None
    return parse_recipe(data, path)


def parse_recipe(data, path: Path | str = "<recipe>") -> Recipe:
    def bad(msg):
        return UserError(f"{path}: {msg}; see the recipe schema in reports/README.md")

    if not isinstance(data, Mapping):
        raise bad("a recipe is a mapping with title, columns and rows")
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)}")
    if "title" not in data or not data.get("columns"):
        raise bad("needs a title and at least one column")
    columns = []
    for i, c in enumerate(data["columns"]):
        if not isinstance(c, Mapping) or set(c) - COLUMN_KEYS:
            raise bad(f"column {i + 1} must be a mapping of {sorted(COLUMN_KEYS)}")
        kinds = [k for k in ("metric", "field", "delta") if c.get(k)]
        if len(kinds) > 1:
            raise bad(f"column {i + 1} names more than one of metric/field/delta")
        if c.get("field") and c["field"] not in COST_FIELDS:
            raise bad(f"column {i + 1}: field {c['field']!r} is not one of {list(COST_FIELDS)}")
        key = str(c.get("key") or c.get("metric") or c.get("field") or c.get("delta") or c.get("label"))
        columns.append(ColSpec(key=key, label=str(c.get("label") or key), metric=c.get("metric"),
                               field=c.get("field"), delta=c.get("delta"), scale=float(c.get("scale", 1.0)),
                               fmt=str(c.get("fmt", ".2f")), where=dict(c.get("where") or {}),
                               ref_scale=float(c.get("ref_scale", 1.0))))
    keys = [c.key for c in columns]
    if len(set(keys)) != len(keys):
        raise bad(f"column keys must be unique (got {keys})")
    rows = None
    if data.get("rows") is not None:
        rows = []
        for i, r in enumerate(data["rows"]):
            if not isinstance(r, Mapping) or "label" not in r or set(r) - ROW_KEYS:
                raise bad(f"row {i + 1} must be a mapping with a label and any of {sorted(ROW_KEYS - {'label'})}")
            paper = r.get("paper")
            if paper is not None:
                if not isinstance(paper, Mapping):
                    raise bad(f"row {r['label']!r}: paper must map column keys to values")
                stray = set(map(str, paper)) - set(keys)
                if stray:
                    raise bad(f"row {r['label']!r}: paper values for unknown column key(s) {sorted(stray)}")
            if r.get("where") is None and paper is None:
                raise bad(f"row {r['label']!r} has neither `where` (our runs) nor `paper` (reference values)")
            rows.append(RowSpec(label=str(r["label"]), where=dict(r["where"]) if r.get("where") is not None else None,
                                paper={str(k): v for k, v in paper.items()} if paper else None,
                                source=r.get("source"), merge=list(r.get("merge") or []),
                                paper_label=r.get("paper_label")))
    return Recipe(name=Path(str(path)).stem, title=str(data["title"]), columns=columns, rows=rows,
                  source=str(data.get("source") or ""), caption=str(data.get("caption") or ""),
                  filters=dict(data.get("filters") or {}), merge=list(data.get("merge") or []),
                  notes=[str(n) for n in data.get("notes") or []], plots=data.get("plots"), path=str(path),
                  contrasts=parse_contrasts(data.get("contrasts"), rows, bad))


def parse_contrasts(data, rows: list[RowSpec] | None, bad) -> Contrasts | None:
    """The recipe's `contrasts`: metrics, and pairs of labels of rows that have our runs (`where`)."""
    if data is None:
        return None
    if not isinstance(data, Mapping) or set(data) - CONTRAST_KEYS or not data.get("metrics") or not data.get("pairs"):
        raise bad(f"contrasts must be a mapping with metrics and pairs (and an optional title), of {sorted(CONTRAST_KEYS)}")
    ours = {r.label for r in rows or [] if r.where is not None}
    pairs = []
    for pair in data["pairs"]:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise bad(f"contrast pair {pair!r} must be [baseline row label, compared row label]")
        unknown = [str(label) for label in pair if str(label) not in ours]
        if unknown:
            raise bad(f"contrast pair {list(pair)!r} names {unknown}, not a row label with `where` "
                      f"(rows: {sorted(ours)})")
        pairs.append((str(pair[0]), str(pair[1])))
    return Contrasts(metrics=[str(m) for m in data["metrics"]], pairs=pairs, title=str(data.get("title") or ""))
