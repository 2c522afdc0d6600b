"""The derived tables of a store's last run, to compare two runs of the same facts row for row."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from socialcredit.engine import handover
from socialcredit.store import Store

# what may differ between two runs of the same facts: when each finished
UNCOMPARED = {"engine_run": ("computed_at",)}


def derived(store: Store) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every table a run writes (those the hand-over carries home), as column names and sorted rows."""
    out = {}
    for name in handover.DERIVED:
        cur = store.con.execute(exp.select("*").from_(exp.to_table(name)).sql("duckdb"))
        cols = [d[0] for d in cur.description or []]
        keep = [i for i, c in enumerate(cols) if c not in UNCOMPARED.get(name, ())]
        rows = [tuple(r[i] for i in keep) for r in cur.fetchall()]
        out[name] = ([cols[i] for i in keep], sorted(rows, key=lambda r: tuple((v is not None, v) for v in r)))
    return out


def same(duck: dict[str, Any], spark: dict[str, Any]) -> None:
    assert sorted(duck) == sorted(spark)
    for name in duck:
        if spark[name] != duck[name]:  # name the table and the first rows that differ, not just the table
            cols, d_rows = duck[name]
            only_duck = [dict(zip(cols, r, strict=True)) for r in d_rows if r not in spark[name][1]][:3]
            only_spark = [dict(zip(spark[name][0], r, strict=True)) for r in spark[name][1] if r not in d_rows][:3]
            raise AssertionError(f"{name}: DuckDB only {only_duck}; Spark only {only_spark}")


def but_run(tables: dict[str, Any]) -> dict[str, Any]:
    """The derived tables without the run row (when and from what it ran: a carried run's says so), the carried
    state kept."""
    return {name: rows for name, rows in tables.items() if name != "engine_run"}
