"""A report as data (tables of cells, notes, plots) and its four renderings: Markdown, LaTeX, CSV, HTML.

A `Cell` keeps both the text shown ("44.14 ± 1.20 †") and the numbers behind it (mean, std), so the
CSV rendering carries full-precision numbers in separate `mean` / `std` columns while Markdown and
LaTeX show the rounded text. Paper reference rows and our rows share one table; the `Source` column
says which is which.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from dataclasses import dataclass, field

INCOMPLETE_MARK = "†"


@dataclass
class Cell:
    text: str = ""
    mean: float | None = None
    std: float | None = None
    marker: str = ""

    @property
    def shown(self) -> str:
        return f"{self.text} {self.marker}".strip() if self.marker else self.text


def stat_cell(mean: float, std: float | None, fmt: str = ".2f", marker: str = "") -> Cell:
    if mean is None or not math.isfinite(mean):
        return Cell("—")
    text = f"{mean:{fmt}}"
    if std is not None and math.isfinite(std):
        text += f" ± {std:{fmt}}"
    return Cell(text, mean=mean, std=std if std is not None and math.isfinite(std) else None, marker=marker)


def number_cell(value: float | None, fmt: str = ".2f") -> Cell:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Cell("—")
    return Cell(f"{value:{fmt}}", mean=float(value))


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    row_kinds: list[str] = field(default_factory=list)   # "ours" | "paper" per row
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    name: str = "table"

    def add(self, cells: list[Cell], kind: str = "ours") -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)
        self.row_kinds.append(kind)

    def stat_columns(self) -> list[bool]:
        return [any(r[i].std is not None for r in self.rows) for i in range(len(self.columns))]


@dataclass
class Plot:
    name: str            # file stem
    title: str
    png: bytes
    path: str | None = None   # where it was written, if it was


@dataclass
class Document:
    title: str
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- markdown

def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_to_markdown(table: Table) -> str:
    out = [f"### {table.title}", ""]
    if table.caption:
        out += [table.caption, ""]
    out.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
    out.append("|" + "|".join("---" for _ in table.columns) + "|")
    for cells in table.rows:
        out.append("| " + " | ".join(_md_escape(c.shown) for c in cells) + " |")
    if table.notes:
        out.append("")
        out += [f"- {_md_escape(n)}" for n in table.notes]
    return "\n".join(out) + "\n"


def to_markdown(doc: Document) -> str:
    same = bool(doc.tables) and doc.tables[0].title == doc.title
    parts = [] if same else [f"## {doc.title}", ""]
    for t in doc.tables:
        parts.append(table_to_markdown(t))
    for p in doc.plots:
        if p.path:
            parts.append(f"![{p.title}]({p.path})\n")
    if doc.notes:
        parts += [f"_{_md_escape(n)}_  " for n in doc.notes]
    return "\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- latex

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_SYMBOLS = {
    "±": r"$\pm$", "†": r"$^\dagger$", "Δ": r"$\Delta$", "γ": r"$\gamma$", "−": r"$-$", "≈": r"$\approx$",
    "<": r"$<$", ">": r"$>$", "×": r"$\times$", "—": "--", "–": "--", "≥": r"$\geq$", "≤": r"$\leq$",
}


def latex_escape(text: str) -> str:
    out = []
    for ch in str(text):
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ch in _LATEX_SYMBOLS:
            out.append(_LATEX_SYMBOLS[ch])
        else:
            out.append(ch)
    return "".join(out)


def table_to_latex(table: Table) -> str:
    spec = "l" * min(2, len(table.columns)) + "r" * max(0, len(table.columns) - 2)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(table.title)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    for cells, kind in zip(table.rows, table.row_kinds, strict=False):
        row = [latex_escape(c.shown) for c in cells]
        if kind == "paper":
            row = [rf"\textit{{{c}}}" if c else c for c in row]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.caption or table.notes:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [latex_escape(t) + r"\\" for t in ([table.caption] if table.caption else []) + table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_latex(doc: Document) -> str:
    head = [f"% {latex_escape(doc.title)} -- generated by `agebench report`; needs \\usepackage{{booktabs}}"]
    return "\n".join(head + [table_to_latex(t) for t in doc.tables]).rstrip() + "\n"


# --------------------------------------------------------------------------- csv

def table_to_csv(table: Table) -> str:
    """Stat columns become `<label> mean` and `<label> std` (full precision); text stays text."""
    stat = table.stat_columns()
    header = []
    for label, is_stat in zip(table.columns, stat, strict=False):
        header += [f"{label} mean", f"{label} std"] if is_stat else [label]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["source_kind", *header])
    for cells, kind in zip(table.rows, table.row_kinds, strict=False):
        row = [kind]
        for c, is_stat in zip(cells, stat, strict=False):
            value = repr(float(c.mean)) if c.mean is not None else ("" if c.text == "—" else c.text)
            if is_stat:
                row += [value, repr(float(c.std)) if c.std is not None else ""]
            else:
                row.append(value)
        writer.writerow(row)
    return buf.getvalue()


def to_csv(doc: Document) -> str:
    return table_to_csv(doc.tables[0]) if doc.tables else ""


# --------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.92em}
th,td{border-bottom:1px solid #ccc;padding:0.3em 0.7em;text-align:right;white-space:nowrap}
th{border-bottom:2px solid #444;background:#f4f4f4}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
tr.paper td{font-style:italic;color:#555;background:#fafaf2}
caption{caption-side:top;text-align:left;font-weight:600;padding:0.4em 0}
.notes{font-size:0.85em;color:#555}
figure{display:inline-block;margin:1em}
figure img{max-width:720px;border:1px solid #ddd}
"""


def table_to_html(table: Table) -> str:
    e = html.escape
    out = [f'<section id="{e(table.name)}">', f"<h2>{e(table.title)}</h2>"]
    if table.caption:
        out.append(f"<p>{e(table.caption)}</p>")
    out.append("<table>")
    out.append("<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr></thead>")
    out.append("<tbody>")
    for cells, kind in zip(table.rows, table.row_kinds, strict=False):
        out.append(f'<tr class="{e(kind)}">' + "".join(f"<td>{e(c.shown)}</td>" for c in cells) + "</tr>")
    out.append("</tbody>")
    out.append("</table>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in table.notes) + "</ul>")
    out.append("</section>")
    return "\n".join(out)


def to_html(doc: Document) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(doc.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{e(doc.title)}</h1>"]
    parts += [table_to_html(t) for t in doc.tables]
    if doc.plots:
        parts.append('<section id="plots">')
        parts.append("<h2>Plots</h2>")
        for p in doc.plots:
            data = base64.b64encode(p.png).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(p.title)}">'
                         f"<figcaption>{e(p.title)}</figcaption></figure>")
        parts.append("</section>")
    if doc.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in doc.notes) + "</ul>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


RENDERERS = {"md": to_markdown, "markdown": to_markdown, "latex": to_latex, "tex": to_latex,
             "csv": to_csv, "html": to_html}
EXTENSIONS = {"md": ".md", "markdown": ".md", "latex": ".tex", "tex": ".tex", "csv": ".csv", "html": ".html"}


def render(doc: Document, fmt: str) -> str:
    from agebench.errors import UserError

    if fmt not in RENDERERS:
        raise UserError(f"unknown format={fmt!r}; choose one of md, latex, csv, html")
    return RENDERERS[fmt](doc)
