"""Every citizen's list stays, held in memory, so that a decision is a lookup rather than a query.

Why: a service provider asks "may C use S now?" thousands of times a second, and the answer rests only
on list stays (own, and those of parents and household members) and the rulebook in force. The engine
writes those stays to `list_entries`; this index reads them once per engine run and keeps, for each
citizen with a stay or a relative with one, exactly the rows the old per-decision queries fetched.
Everyone else — most of the population — needs no entry at all: no stays, no reaching measures.

The index is a cache of the engine's output, not a second scoring path: it is rebuilt whenever the
engine has run since it was read (`engine_run.computed_at` changes).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.catalog import CHILDREN_UNDER
from socialcredit.clock import cst_midnight_utc
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError, first_of

Stay = tuple[str, dt.datetime, dt.datetime | None]  # (list_id, start, end)
# (other ckey, kind as seen from the citizen, other's citizen_id, other's city, when the tie began and ended: UTC)
Relative = tuple[int, str, str, str, dt.datetime, dt.datetime | None]


@dataclass
class StayIndex:
    """Stays by citizen key, relatives with stays, and a sorted ID array for citizen look-ups."""

    computed_at: dt.datetime | None
    facts: str | None  # the engine run's fingerprint of the facts other than records (the citizens among them)
    ids: np.ndarray  # sorted citizen_id, bytes S18
    ckeys: np.ndarray  # ckey aligned with ids
    city_of: np.ndarray  # index into cities, aligned with ids
    cities: list[str]
    stays: dict[int, list[Stay]] = field(default_factory=dict)
    relatives: dict[int, list[Relative]] = field(default_factory=dict)
    affected: frozenset[int] = frozenset()  # citizens with a stay or a relative with one
    # for citizens with a parent who has a stay: their birth date (a measure reaching children says until what age)
    born: dict[int, dt.date] = field(default_factory=dict)
    # what the relatives were read from: the relation changes (count, last seq), with the citizens in `facts`
    ties: tuple[int, int] | None = None
    # for each listed citizen, the citizens whose `relatives` name them: who to touch when they leave the lists
    tied_to: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affected = frozenset(self.stays) | frozenset(self.relatives)

    @classmethod
    def load(cls, store: Store, last: StayIndex | None = None) -> StayIndex:
        """The index after the store's last engine run. `last`: the index before it, whose citizens (ids, keys,
        cities: a sort of every citizen ID, 0.1 s at a million) are kept when that run found the same
        citizens (its fingerprint of the facts, which hashes every citizen's key, city key, ID, city and birth
        date, is the same). The stays are always read again; the relatives are read only for the citizens
        listed since `last`, when neither the citizens nor the relation changes changed (`_relatives`)."""
        con = store.con
        cur = con.execute("SELECT * FROM engine_run")
        found = cur.fetchall()
        run = dict(zip([d[0] for d in cur.description or []], found[0], strict=True)) if found else {}
        facts = run.get("facts")
        same = last if last is not None and facts is not None and last.facts == facts else None
        if same is not None:
            ids, ckeys, city_of, cities = same.ids, same.ckeys, same.city_of, same.cities
        else:
            ids, ckeys, city_of, cities = _citizens(store)
        stays: dict[int, list[Stay]] = defaultdict(list)
        if store.has_table("list_entries"):
            for ckey, list_id, start, end in con.execute(
                'SELECT ckey, list_id, start, "end" FROM list_entries ORDER BY ckey, start, list_id'
            ).fetchall():
                stays[ckey].append((list_id, start, end))
        ties = None  # nothing listed: no tie is read (nor kept)
        if stays:
            count, top = con.execute("SELECT count(*), coalesce(max(seq), -1) FROM relation_changes").fetchall()[0]
            ties = (int(count), int(top))
        relatives, born, tied_to = _relatives(
            store, set(stays), same if same is not None and same.ties == ties else None
        )
        return cls(
            run.get("computed_at"), facts, ids, ckeys, city_of, cities, dict(stays), relatives, born=born,
            ties=ties, tied_to=tied_to,
        )  # fmt: skip

    def locate(self, citizen_id: str) -> tuple[int, str]:
        """(ckey, city) of one citizen; an unknown ID is a located error, as in `Store.ckey`."""
        if not storable(citizen_id):
            raise LocatedError(f"citizen_id {citizen_id!r}: no such citizen in the store")
        key = citizen_id.encode()
        i = int(np.searchsorted(self.ids, key))
        if i >= len(self.ids) or self.ids[i] != key:
            raise LocatedError(f"citizen_id {citizen_id!r}: no such citizen in the store")
        return int(self.ckeys[i]), self.cities[self.city_of[i]]

    def locate_many(self, citizen_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ckeys, city indexes) for many IDs at once; every unknown ID is named in one error."""
        # S18 would truncate a longer ID onto a real one and cannot hold non-ASCII text: such IDs are unknown
        shaped = np.fromiter((storable(c) for c in citizen_ids), bool, len(citizen_ids))
        keys = np.asarray([c if k else "" for c, k in zip(citizen_ids, shaped, strict=True)], dtype="S18")
        pos = np.searchsorted(self.ids, keys)
        pos_c = np.minimum(pos, max(len(self.ids) - 1, 0))
        ok = (pos < len(self.ids)) & (self.ids[pos_c] == keys) if len(self.ids) else np.zeros(len(keys), bool)
        ok &= shaped
        if not ok.all():
            bad = [f"request {i + 1}: citizen_id {citizen_ids[i]!r}" for i in np.flatnonzero(~ok)]
            raise LocatedError("no such citizen in the store: " + first_of(bad, "; "))
        return self.ckeys[pos_c], self.city_of[pos_c]


def _citizens(store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Every citizen's ID (sorted, S18), key and city (an index into the sorted city names), and those names."""
    cit = store.con.sql("SELECT citizen_id, ckey, city FROM citizens ORDER BY citizen_id").to_arrow_table()
    ids = _fixed_width(cit.column("citizen_id"))
    # cities by dictionary encoding, not np.unique over a million Python strings
    coded = pc.dictionary_encode(cit.column("city")).combine_chunks()
    names = coded.dictionary.to_pylist()
    cities = sorted(names)
    rank = np.array([cities.index(c) for c in names], np.int32)
    city_of = rank[coded.indices.to_numpy()] if len(coded) else np.zeros(0, np.int32)
    ckeys = np.asarray(cit.column("ckey").to_numpy(), dtype=np.int64)
    return ids, ckeys, np.asarray(city_of, dtype=np.int32), [str(c) for c in cities]


_RELATIVES = """SELECT r.ckey, r.other, r.kind, c.citizen_id, c.city, r.valid_from, r.valid_to, me.birth_date
    FROM relations r JOIN _listed l ON l.ckey = r.other JOIN citizens c ON c.ckey = r.other
    JOIN citizens me ON me.ckey = r.ckey
    WHERE r.kind IN ('parent', 'spouse', 'child') ORDER BY r.ckey, r.kind, r.other, r.valid_from"""


def _relatives(
    store: Store, listed: set[int], last: StayIndex | None
) -> tuple[dict[int, list[Relative]], dict[int, dt.date], dict[int, tuple[int, ...]]]:
    """Every tie ever in force to a listed citizen (`listed`), with its dates, by the citizen at its other end
    (a decision asks which held at its own time); the birth dates of those whose parent is listed; and for
    each listed citizen, the citizens tied to them (`StayIndex.tied_to`).

    With `last` (an index read from the same citizens and relation changes), only the ties to citizens
    listed since are read, and only the citizens tied to one listed since or no longer listed are touched;
    the others keep the last index's own lists. A tie's rows depend on those facts alone, and at a million
    citizens the full read and its Python rows cost 0.2 s after every engine run, where a month lists a few
    thousand citizens anew (rebuilding every kept citizen's entry cost 0.05 s more by month 12). Each
    citizen's ties keep the full read's order (kind, other, from).
    """
    if not listed:
        return {}, {}, {}
    known = set(last.stays) if last is not None else set()
    new = sorted(listed - known)
    relatives: dict[int, list[Relative]] = dict(last.relatives) if last is not None else {}
    born_on = dict(last.born) if last is not None else {}
    tied_to = dict(last.tied_to) if last is not None else {}
    touched: set[int] = set()
    for o in known - listed:  # no longer listed: their ties leave the lists of those tied to them
        for k in tied_to.pop(o, ()):
            if k in relatives:
                relatives[k] = [r for r in relatives[k] if r[0] != o]
                touched.add(k)
    if new:
        con = store.con
        con.register("_listed", pa.table({"ckey": pa.array(new, pa.int32())}))
        try:
            found = con.execute(_RELATIVES).fetchall()
        finally:
            con.unregister("_listed")
        fresh: set[int] = set()
        holders: dict[int, set[int]] = defaultdict(set)
        for ckey, other, kind, other_id, city, since, until, birth in found:
            if ckey not in fresh and ckey not in touched:
                relatives[ckey] = list(relatives.get(ckey, []))  # never the last index's own list
            fresh.add(ckey)
            relatives[ckey].append((other, kind, other_id, city, since, until))
            holders[other].add(ckey)
            if kind == "parent":
                born_on[ckey] = birth
        if last is not None:
            for k in fresh:
                relatives[k].sort(key=lambda r: (r[1], r[0], r[4]))
        tied_to.update((o, tuple(sorted(ks))) for o, ks in holders.items())
        touched |= fresh
    for k in touched:
        if not relatives[k]:
            del relatives[k]
        if k in born_on and not any(r[1] == "parent" for r in relatives.get(k, ())):
            del born_on[k]
    return relatives, born_on, tied_to


@functools.lru_cache(maxsize=1 << 16)  # asked for every parent's measure in every decision about a child
def coming_of_age(born: dt.date, under: int = CHILDREN_UNDER) -> dt.datetime:
    """The instant (naive UTC) a citizen born on `born` is no longer a child a measure reaching children under
    `under` reaches: the CST midnight that starts their `under`-th birthday (29 February births: 1 March in a
    common year)."""
    year = born.year + under
    try:
        day = born.replace(year=year)
    except ValueError:
        day = dt.date(year, 3, 1)
    return cst_midnight_utc(day)


def storable(citizen_id: str) -> bool:
    """Whether the ID has the stored IDs' shape (18 ASCII characters); nothing else can be in the index."""
    return len(citizen_id) == 18 and citizen_id.isascii()


def _fixed_width(column: pa.ChunkedArray) -> np.ndarray:
    """Resident IDs as an S18 array straight from Arrow's data buffer (every stored ID is 18 ASCII
    characters); anything else goes the slow way, through Python objects."""
    a = column.combine_chunks()
    if len(a) and a.null_count == 0:
        off = np.frombuffer(a.buffers()[1], np.int32)[a.offset : a.offset + len(a) + 1]
        if bool((np.diff(off) == 18).all()):
            return np.frombuffer(a.buffers()[2], "S18", count=len(a), offset=int(off[0])).copy()
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype="S18")


__all__ = ["Relative", "Stay", "StayIndex", "coming_of_age"]
