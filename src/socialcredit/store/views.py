"""The readable views (`socialcredit.views` declares them) made in a store's connection: TEMP views, so the
file's schema stays the one the store declares, and a labels table they join for behaviour labels."""

from __future__ import annotations

from functools import cache

import duckdb
import pyarrow as pa

from socialcredit.catalog import Catalog
from socialcredit.sqltemplates import create_temp, fill
from socialcredit.views import LABELS, REASON_TYPE, VIEWS


@cache
def _labels_ddl() -> str:
    """The labels table, copied from the registered Arrow table `_labels_in`."""
    return create_temp("TABLE", LABELS, fill("SELECT * FROM _labels_in"))


@cache
def _view_ddl(name: str) -> str:
    """A view's statement, generated once per process: the declarations are constants."""
    return create_temp("VIEW", name, fill(VIEWS[name][1], reason_type=REASON_TYPE))


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The file's tables and views (the engine keeps `ledger` as a view over its parts)."""
    return {
        t
        for (t,) in con.execute(
            """SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()
           UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database()"""
        ).fetchall()
    }


def install(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> list[str]:
    """(Re)make every view whose tables exist; return their names. Cheap: a few catalog statements."""
    have = _tables(con)
    if "records" not in have:
        return []
    labels = pa.table({
        "code": list(catalog.behaviours),
        "label": [b.label for b in catalog.behaviours.values()],
        "category": [b.category for b in catalog.behaviours.values()],
        "polarity": [b.polarity for b in catalog.behaviours.values()],
    })  # fmt: skip
    con.register("_labels_in", labels)
    try:
        con.execute(_labels_ddl())
    finally:
        con.unregister("_labels_in")
    made = []
    for name, (needs, _) in VIEWS.items():
        if all(t in have for t in needs):
            con.execute(_view_ddl(name))
            made.append(name)
    return made


__all__ = ["install"]
