"""The store's tables are the ones socialcredit.schema declares: same columns, in order, with their comments,
before and after an engine run (which replaces the derived tables whole)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from socialcredit import schema
from socialcredit.engine import Engine
from socialcredit.sample import load_sample
from socialcredit.store import Store


def _described(store: Store) -> dict[str, tuple[list[str], str | None, dict[str, str | None]]]:
    tables = dict(
        store.con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    )
    out = {}
    for name, comment in tables.items():
        cols = store.con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = current_database() "
            "AND table_name = ? ORDER BY column_index",
            [name],
        ).fetchall()
        out[name] = ([c for c, _ in cols], comment, dict(cols))
    return out


def test_tables_are_declared_and_commented_before_and_after_a_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.init()
    load_sample(store)
    # a resumed run replaces some derived tables and extends the others: only the replaced ones are commented again
    for when in ("created", "after a run", "after a resumed run"):
        if when == "after a run":
            Engine(store).run(as_of=dt.datetime(2025, 6, 1))
        if when == "after a resumed run":
            engine = Engine(store)
            engine.run(as_of=dt.datetime(2025, 9, 1))
            assert engine.carried
        found = _described(store)
        for table in schema.all_tables(store.catalog):
            assert table.name in found, (when, table.name)
            names, comment, comments = found[table.name]
            assert names == table.names, (when, table.name)
            assert comment == table.comment, (when, table.name)
            assert all(comments[c.name] == c.comment for c in table.columns), (when, table.name)
    store.close()
