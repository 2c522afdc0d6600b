"""What the service's writer has taken from each reader process (`shipments`), as the store writes it; the
protocol is `socialcredit.api.writer`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socialcredit.store import Store


def ensure_shipments(store: Store) -> None:
    """The table, created when the writer starts (a restarted writer reads what it took before from it)."""
    store.ensure_on_demand("shipments")


def record_shipment(store: Store, origin: str, seq: int, first: bool) -> None:
    """The origin's last batch written is now `seq` (in the caller's transaction); `first` when the origin has
    no row yet (the writer knows: it read the origin's row once)."""
    if first:
        store.con.execute("INSERT INTO shipments VALUES (?, ?)", [origin, seq])
    else:
        store.con.execute("UPDATE shipments SET seq = ? WHERE origin = ?", [seq, origin])


__all__ = ["ensure_shipments", "record_shipment"]
