"""Export a store or a run for analysis elsewhere: its main tables and every report figure's data.

Why: an analyst wants the numbers in pandas, polars, R or a spreadsheet, not a DuckDB file with integer
keys. The tables come through the readable views (`socialcredit.views`: resident IDs, cities, behaviour
codes and labels, CST-zoned times), named by what they hold (`records`, `ledger`, `list_entries` …).
A figure's data is exactly what the report drew and printed under it: the report builds the figure and
its `Query` objects keep their answers, so nothing here repeats a query (`figures/<figure id>/<query
name>`; the rulebook-derived tables a query read beside it are written as inputs). A plain store (no run
directory: no scenario, no simulated calendar) has no report, so only its tables are written, and the
manifest says so.

Everything written is listed in `manifest.json` (file, rows, and what it is: a view, or a figure's query
with its SQL). Parquet keeps types (lists, structs, zoned times); CSV has no nested values, so lists and
structs go there as JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from socialcredit.store import Store
from socialcredit.views import VIEWS
from socialcredit.yamlio import LocatedError

FORMATS = ("parquet", "csv")
Step = Callable[[str, int, int], None]


@dataclass
class Exported:
    """What an export wrote."""

    out: Path
    format: str
    tables: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # why figure data is missing, when it is

    def manifest(self) -> dict[str, Any]:
        return {"format": self.format, "tables": self.tables, "figures": self.figures, "note": self.note}


def slug(name: str) -> str:
    """A file name from a query's name: `score quantiles per city …` → `score-quantiles-per-city-…`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "data"


def locate(source: Path) -> tuple[Path, Path | None]:
    """(the store file, the run directory if `source` is one)."""
    if source.is_dir():
        db = source / "store.duckdb"
        if not db.exists():
            raise LocatedError(f"{source}: not a run directory (no store.duckdb) and not a store file")
        return db, source
    if not source.exists():
        raise LocatedError(f"{source}: no such store file or run directory")
    return source, None


def _flat(table: pa.Table) -> pa.Table:
    """Lists and structs as JSON text (CSV has no nested values)."""
    cols = []
    for col in table.columns:
        if pa.types.is_nested(col.type):
            col = pa.array(
                [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in col.to_pylist()],
                pa.string(),
            )
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write(table: pa.Table, path: Path, fmt: str) -> Path:
    path = path.with_suffix(f".{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(_flat(table), path)
    return path


def export(source: Path, to: Path, fmt: str = "parquet", progress: Step | None = None) -> Exported:
    """Write `source`'s main tables (and, for a run directory, every report figure's data) into `to`."""
    if fmt not in FORMATS:
        raise LocatedError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    db, run_dir = locate(source)
    step = progress or (lambda *_: None)
    to.mkdir(parents=True, exist_ok=True)
    done = Exported(to, fmt)
    with Store(db, read_only=True) as store:
        store.require_init()
        made = store.readable()
        for i, view in enumerate(made):
            step(f"table {view}", i, len(made))
            table = store.con.table(view).to_arrow_table()  # the view by name: no SQL text to build
            name = view.removesuffix("_view")
            path = write(table, to / name, fmt)
            done.tables.append({"file": path.name, "rows": table.num_rows, "from": view, "columns": table.column_names})
        missing = [v for v in VIEWS if v not in made]
        if missing:
            done.note = f"not written (the engine has not made their tables yet): {', '.join(missing)}"
    if run_dir is None:
        done.note = "; ".join(
            filter(
                None,
                [
                    done.note,
                    (
                        "figure data: none — a plain store is not a run directory (a simulated calendar and scenario), "
                        "so there is no report to take it from; export a run directory for it"
                    ),
                ],
            )
        )
    else:
        _figures(run_dir, to, fmt, done, step)
    (to / "manifest.json").write_text(
        json.dumps(done.manifest(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return done


def _figures(run_dir: Path, to: Path, fmt: str, done: Exported, step: Step) -> None:
    """Every figure's queries (and their inputs), as the report built them."""
    from socialcredit.report.rundir import RunDir
    from socialcredit.report.society import build, facts

    step("building the report's figures", 0, 1)
    with RunDir.open(run_dir) as run:
        q, _ = facts(run)
        doc = build(run)
    figures = [("facts", "The run in numbers", [q])]
    figures += [(f.id, f.title, f.queries) for s in doc.sections for f in s.figures]
    for fid, title, queries in figures:
        entry: dict[str, Any] = {"figure": fid, "title": title, "files": []}
        for query in queries:
            path = write(query.table, to / "figures" / fid / slug(query.name), fmt)
            entry["files"].append(
                {"file": str(path.relative_to(to)), "rows": query.table.num_rows, "query": query.name, "sql": query.sql}
            )
            for key, table in query.inputs.items():
                ipath = write(table, to / "figures" / fid / f"input-{slug(key)}", fmt)
                entry["files"].append(
                    {"file": str(ipath.relative_to(to)), "rows": table.num_rows, "input": key, "of": query.name}
                )
        done.figures.append(entry)


__all__ = ["FORMATS", "Exported", "export", "locate", "slug"]
