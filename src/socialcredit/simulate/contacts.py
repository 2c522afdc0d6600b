"""Citizens avoid contacts who are blacklisted: the contact graph evolves, month by month, in the store.

Why: the seed's network rule ("dealing with citizens with a low score") punishes a citizen for the
company they keep, so the obvious response is to drop that company. Each month, every contact tie
between a citizen on a blacklist and one who is not is dropped with probability `p_drop` (the one
not listed does the dropping; two listed citizens do not avoid each other). With probability
`p_rewire` the citizen who dropped the tie makes a new contact instead: an adult of the same city
who is not on a blacklist, not themselves and not already a contact (a draw that hits one of those
is simply not replaced, so slightly fewer ties are added than the probability says).

Where the change goes: relations are dated facts the store alone writes, so a dropped tie is ended and a
new one started through the store's API (`Store.end_relations`, `add_relations`, both directions, as
every contact is symmetric), dated at the month's start, in one transaction; nothing is deleted. The
engine's network rule reads the contacts in force at each assessment, so the next run sees the new graph
from that month on and the months before keep the graph they had (their points stand, and the run
resumes from the change instead of recomputing every month). For the run's report each change is also
logged to a `contact_changes` table in the run's store (month, ckey, other, change = 'drop' | 'add'), one
row per tie (ckey < other), through the store (`store/contacts.py`), and the run writes a per-month
`contacts.parquet` series.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from socialcredit import standings
from socialcredit.store.contacts import append_contact_changes, ensure_contact_changes

if TYPE_CHECKING:
    from socialcredit.store import Store

SCHEMA = pa.schema(
    [
        ("month", pa.date32()),
        ("dropped", pa.int64()),
        ("added", pa.int64()),
        ("ties", pa.int64()),
        ("citizens_with_listed_contacts", pa.int64()),
        ("mean_listed_share", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ContactMonth:
    """One month of graph change and the graph's exposure to the blacklist after it."""

    month: dt.date
    dropped: int
    added: int
    ties: int
    citizens_with_listed_contacts: int
    mean_listed_share: float

    def row(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in SCHEMA.names}


def _listed(store: Store, at: dt.datetime) -> np.ndarray:
    return np.array(standings.listed(store, at, "blacklist"), np.int64)


def exposure(store: Store, listed: np.ndarray) -> tuple[int, int, float]:
    """(ties, citizens with a listed contact, mean share of listed contacts over citizens with contacts), for
    the contacts in force now (the latest graph: changes are dated in the order they are made)."""
    store.con.register("_listed", pa.table({"ckey": pa.array(listed, pa.int32())}))
    try:
        ties, exposed, share = store.con.execute(
            """WITH s AS (SELECT r.ckey, count(l.ckey) AS k, count(*) AS n
                          FROM relations r LEFT JOIN _listed l ON l.ckey = r.other
                          WHERE r.kind = 'contact' AND r.valid_to IS NULL GROUP BY r.ckey)
               SELECT (SELECT count(*) FROM relations WHERE kind = 'contact' AND valid_to IS NULL) // 2,
                      count(*) FILTER (WHERE k > 0), coalesce(avg(k / n), 0) FROM s"""
        ).fetchall()[0]
    finally:
        store.con.unregister("_listed")
    return int(ties), int(exposed), float(share)


def avoid_listed_contacts(
    store: Store, at: dt.datetime, month: dt.date, p_drop: float, p_rewire: float, rng: np.random.Generator
) -> ContactMonth:
    """Drop (and perhaps replace) ties to contacts on a blacklist at `at` (naive UTC); log and apply them."""
    con = store.con
    ensure_contact_changes(store)
    listed = _listed(store, at)
    dropped = np.zeros((0, 2), np.int64)
    added = np.zeros((0, 2), np.int64)
    if listed.size and p_drop > 0:
        con.register("_listed", pa.table({"ckey": pa.array(listed, pa.int32())}))
        try:
            # each at-risk tie once, as (avoider, listed contact), in a fixed order
            ties = np.array(
                con.execute(
                    """SELECT r.ckey, r.other FROM relations r JOIN _listed l ON l.ckey = r.other
                       WHERE r.kind = 'contact' AND r.valid_to IS NULL AND r.ckey NOT IN (SELECT ckey FROM _listed)
                       ORDER BY r.ckey, r.other"""
                ).fetchall(),
                np.int64,
            ).reshape(-1, 2)
        finally:
            con.unregister("_listed")
        dropped = ties[rng.random(len(ties)) < p_drop]
        if dropped.size and p_rewire > 0:
            added = _rewire(store, at, dropped[rng.random(len(dropped)) < p_rewire, 0], listed, rng)
    if dropped.size or added.size:
        _apply(store, month, at, dropped, added)
    ties_n, exposed, share = exposure(store, listed)
    return ContactMonth(month, len(dropped), len(added), ties_n, exposed, share)


def _rewire(
    store: Store, at: dt.datetime, avoiders: np.ndarray, listed: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A new contact for each avoider: a random adult of the same city, not listed, new to them."""
    if not avoiders.size:
        return np.zeros((0, 2), np.int64)
    adult_day = (at - dt.timedelta(days=round(18 * 365.2425))).date()
    adults = store.con.sql(
        "SELECT ckey, city FROM citizens WHERE birth_date <= ? ORDER BY ckey", params=[adult_day]
    ).to_arrow_table()
    ckey = adults.column("ckey").to_numpy().astype(np.int64)
    city = np.asarray(adults.column("city").to_numpy(zero_copy_only=False), dtype=object)
    pool = ~np.isin(ckey, listed)
    ckey, city = ckey[pool], city[pool]
    cities, code = np.unique(city, return_inverse=True)
    by_city = np.argsort(code, kind="stable")
    first = np.searchsorted(code[by_city], np.arange(len(cities)))
    size = np.bincount(code, minlength=len(cities))
    where = np.searchsorted(ckey, avoiders)
    known = (where < ckey.size) & (ckey[np.minimum(where, ckey.size - 1)] == avoiders)
    avoiders = avoiders[known]  # an avoider is unlisted, so in the pool unless under 18 (never, for a contact)
    home = code[where[known]]
    pick = ckey[by_city[first[home] + np.floor(rng.random(avoiders.size) * size[home]).astype(np.int64)]]
    a, b = np.minimum(avoiders, pick), np.maximum(avoiders, pick)
    packed = a << 32 | b
    existing = (
        store.con.sql("""SELECT (ckey::BIGINT << 32) | other AS k FROM relations
                         WHERE kind = 'contact' AND valid_to IS NULL AND ckey < other""")
        .to_arrow_table()
        .column("k")
        .to_numpy()
    )
    _, first_seen = np.unique(packed, return_index=True)
    once = np.zeros(packed.size, bool)
    once[first_seen] = True
    ok = (a != b) & ~np.isin(packed, existing) & once
    return np.stack([avoiders[ok], pick[ok]], axis=1)


def _apply(store: Store, month: dt.date, at: dt.datetime, dropped: np.ndarray, added: np.ndarray) -> None:
    """End the dropped ties and start the new ones at `at` through the store (it writes both directions),
    and log each tie once, all in one transaction."""

    def log(pairs: np.ndarray, change: str) -> pa.Table:
        lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
        return pa.table(
            {
                "month": pa.array([month] * len(pairs), pa.date32()),
                "ckey": pa.array(lo, pa.int32()),
                "other": pa.array(hi, pa.int32()),
                "change": pa.array([change] * len(pairs), pa.string()),
            }
        )

    with store.transaction():
        store.end_relations(dropped[:, 0], dropped[:, 1], "contact", at, source=f"contact avoidance {month}")
        store.add_relations(added[:, 0], added[:, 1], "contact", at, source=f"contact avoidance {month}")
        append_contact_changes(store, pa.concat_tables([log(dropped, "drop"), log(added, "add")]))


__all__ = ["SCHEMA", "ContactMonth", "avoid_listed_contacts", "exposure"]
