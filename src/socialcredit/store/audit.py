"""The audit trail's rows, as the store writes them; the chain (hashes, checkpoints, verify) is `socialcredit.audit`.

The split: what an entry says and how entries chain is pure computation and stays with the trail; putting
the computed rows and the head that counts them into the database is a write of facts, and the store is the
only writer of facts (SPEC §4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from socialcredit.store import Store


def ensure_trail(store: Store) -> None:
    """The `audit_log` table, created before the first entry is written (a store without one has no entries)."""
    store.ensure_on_demand("audit_log")


def append_entries(store: Store, rows: pa.Table, seq: int, head: str) -> None:
    """The rows and the head (`meta`) in the caller's transaction: a crash keeps both or neither. Written
    apart, a crash between them left the head behind the rows, and `verify` reported entries removed
    from the end that were all there (found by tests/test_crash.py). The head is one UPDATE once its
    rows exist (a DELETE and an INSERT before: each statement costs DuckDB a plan)."""
    con = store.con
    con.from_arrow(rows).insert_into("audit_log")
    updated = con.execute(
        "UPDATE meta SET value = CASE key WHEN 'audit_count' THEN ? ELSE ? END "
        "WHERE key IN ('audit_count', 'audit_head')",
        [str(seq), head],
    ).fetchall()[0][0]
    if updated != 2:
        con.execute("DELETE FROM meta WHERE key IN ('audit_count', 'audit_head')")
        con.execute("INSERT INTO meta VALUES ('audit_count', ?), ('audit_head', ?)", [str(seq), head])


__all__ = ["append_entries", "ensure_trail"]
