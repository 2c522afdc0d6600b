"""One self-contained HTML file per report, and the same figures as PNG files beside it.

Why self-contained: a report is shared, mailed and archived, and must open offline years later. So the
pictures are embedded as base64 data URIs, the CSS is inline, and the page asks for nothing from
anywhere (no fonts, scripts or CDN). Numbers in the tables are printed as the queries returned them,
so a reader (or a test) can compare them with the same query run on the store.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from socialcredit.report.figures import Section

MAX_ROWS = 300  # rows shown per query; the figure is drawn from all of them and the note says so


@dataclass
class Document:
    """Everything a report page shows, apart from how it looks."""

    title: str
    lede: str
    facts: list[tuple[str, str]]
    sections: list[Section]
    preamble: str  # the SET VARIABLE lines that make every shown query reproducible
    check: str  # how a reader re-runs a shown query
    command: str
    source: str


@dataclass
class ShownTable:
    columns: list[str]
    text: list[bool]  # left-aligned columns (text), the rest are numbers
    rows: list[list[str]]
    total: int
    csv: str = ""  # every row as a CSV data URI, when the page prints only the first MAX_ROWS


def cell(value: Any) -> str:
    """How a value is printed: as DuckDB returned it, with dates ISO and nothing rounded a second time."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(round(value, 6)) if value != int(value) else f"{value:.1f}"
    return str(value)


def _shown(table: Any) -> ShownTable:
    rows = table.slice(0, MAX_ROWS).to_pylist()
    columns = list(table.column_names)
    text = [not _numeric(str(t)) for t in table.schema.types]
    shown = ShownTable(columns, text, [[cell(r[c]) for c in columns] for r in rows], table.num_rows)
    if table.num_rows > MAX_ROWS:  # the page is not the place for thousands of rows, but none is withheld
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(columns)
        out.writerows([cell(r[c]) for c in columns] for r in table.to_pylist())
        shown.csv = "data:text/csv;charset=utf-8;base64," + base64.b64encode(buf.getvalue().encode()).decode("ascii")
    return shown


def _numeric(type_name: str) -> bool:
    return type_name.startswith(("int", "uint", "double", "float", "decimal", "halffloat"))


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("socialcredit.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(doc: Document, interactive: bool = False) -> str:
    """The page; `interactive` swaps each PNG for its drawing as inline SVG with hover and zoom (one inline
    script), for the reader who wants to explore; the default page has no script at all."""
    figures = [f for s in doc.sections for f in s.figures]
    charts = {}
    if interactive:
        from socialcredit.report.interactive import chart

        charts = {f.id: chart(f.drawing, f"fig-{f.id}") for f in figures if f.drawing is not None}
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            title=doc.title,
            lede=doc.lede,
            facts=doc.facts,
            sections=doc.sections,
            images={f.id: base64.b64encode(f.png).decode("ascii") for f in figures},
            charts=charts,
            tables={f.id: [_shown(q.table) for q in f.queries] for f in figures},
            preamble=doc.preamble,
            check=doc.check,
            command=doc.command,
            source=doc.source,
        )
    )


def write(doc: Document, out: Path, interactive: bool = False) -> list[Path]:
    """Write the HTML to `out` and each figure to `<stem>-<figure id>.png` beside it; return every path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(doc, interactive), encoding="utf-8")
    written = [out]
    for section in doc.sections:
        for f in section.figures:
            path = out.with_name(f"{out.stem}-{f.id}.png")
            path.write_bytes(f.png)
            written.append(path)
    return written


__all__ = ["Document", "cell", "render", "write"]
