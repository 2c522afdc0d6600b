"""The simulator's log of contact ties dropped and made (`contact_changes`), as the store writes it. The ties
themselves are relation changes (`Store.end_relations`, `add_relations`); this is the run's record of why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from socialcredit.store import Store


def ensure_contact_changes(store: Store) -> None:
    """The table, created when a run avoids contacts at all: a report reads its presence as "this run did"."""
    store.ensure_on_demand("contact_changes")


def append_contact_changes(store: Store, changes: pa.Table) -> None:
    """Rows (month, ckey, other, change), written drops first, then by tie, so a rerun writes the same order."""
    ensure_contact_changes(store)
    con = store.con
    con.register("_contact_changes_in", changes)
    try:
        con.execute("INSERT INTO contact_changes SELECT * FROM _contact_changes_in ORDER BY change DESC, ckey, other")
    finally:
        con.unregister("_contact_changes_in")


__all__ = ["append_contact_changes", "ensure_contact_changes"]
