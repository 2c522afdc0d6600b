"""Recorded decisions and the notifications denials cause, as the store writes them; deciding is
`socialcredit.decisions`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from socialcredit.store import Store


def append_decisions(store: Store, rows: pa.Table) -> None:
    """Decisions with their IDs, in the `decisions` table's columns: one insert, no row passing through Python."""
    store.con.from_arrow(rows).insert_into("decisions")


def notify_learned_by_denials(store: Store, learned: Sequence[tuple[int, dt.datetime, str]]) -> None:
    """Tell each citizen denied here, once ever, that a listing lies behind it: one `learned_by_denial`
    notification per citizen (the first of these denials), none for a citizen told before. One statement
    for them all (a statement per denial cost a DuckDB plan each)."""
    if not learned:
        return
    ckeys, ats, messages = (list(c) for c in zip(*learned, strict=True))
    store.con.execute(
        """INSERT INTO notifications
           SELECT u.ckey, u.at, 'learned_by_denial', u.message
           FROM (SELECT unnest(?::INTEGER[]) AS ckey, unnest(?::TIMESTAMP[]) AS at, unnest(?::VARCHAR[]) AS message,
                        unnest(range(?::BIGINT)) AS i) u
           WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.ckey = u.ckey AND n.kind = 'learned_by_denial')
           QUALIFY row_number() OVER (PARTITION BY u.ckey ORDER BY u.i) = 1
           ORDER BY u.i""",
        [ckeys, ats, messages, len(ckeys)],
    )


def forget_decisions(store: Store) -> None:
    """Every recorded decision and what the denials among them told citizens: a replay asks them all again
    under other rules, in a store that is the replay's own copy (never the store a service answered from)."""
    store.con.execute("DELETE FROM decisions")
    store.con.execute("DELETE FROM notifications WHERE kind = 'learned_by_denial'")


__all__ = ["append_decisions", "forget_decisions", "notify_learned_by_denials"]
