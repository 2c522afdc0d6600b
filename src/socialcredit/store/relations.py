"""Relations over time: ties that begin and end by appended, dated facts (`relation_changes`), never by a
deletion, so a tie stays readable for the times it was in force.

The store's `add_relations` and `end_relations` (which say what they take) call `change_relations`: every
refusal is found set-wise in one query before anything is written, and the changes are appended in one
transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
from contextlib import AbstractContextManager
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from socialcredit.clock import utc_naive
from socialcredit.rulebook import RulebookSet
from socialcredit.sqltemplates import fill, union_all
from socialcredit.store.ingest import BatchRejected, Problem


class Registry(Protocol):
    """What registering citizens and changing their ties need of the store: a protocol, not the store's class,
    because the store calls these (one direction only: no import circle)."""

    @property
    def con(self) -> duckdb.DuckDBPyConnection: ...

    def require_init(self) -> None: ...

    def rulebooks(self) -> RulebookSet: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def ensure_tables(self, names: tuple[str, ...] | None = None) -> None: ...


MIRROR = {"parent": "child", "child": "parent", "spouse": "spouse", "contact": "contact"}
"""each kind of tie and the kind its mirror has (a parent's child, a spouse's spouse)"""
MAX_PROBLEMS = 1000  # a systematically broken million-row batch is reported by its first problems


# Every refusal of a relation change, over `_rel_in` (the ties asked), `_rel` (with their mirrors) and
# `_rel_now` (as they stand): (row, field, message) each; `$at` is the change's time (bound)
_TIE = "'the tie (' || ckey || ', ' || other || ', ' || kind || ')'"
_RELATION_CHECKS = (
    """SELECT row, 'ckey', 'unknown citizen: ckey ' || ckey FROM _rel_in
       WHERE ckey NOT IN (SELECT ckey FROM citizens)""",
    """SELECT row, 'other', 'unknown citizen: ckey ' || other FROM _rel_in
       WHERE other NOT IN (SELECT ckey FROM citizens)""",
    "SELECT row, 'other', 'a citizen is not their own relation' FROM _rel_in WHERE ckey = other",
    """SELECT max(row), 'other', 'repeats row ' || min(row) FROM _rel
       WHERE ckey <> other GROUP BY ckey, other, kind HAVING count(*) > 1""",
)
_RELATION_CHECKS_BY_CHANGE = {
    "start": (
        """SELECT min(row), 'other', $tie || ' is already in force' FROM _rel_now
           WHERE open IS NOT NULL GROUP BY ckey, other, kind""",
        """SELECT min(row), 'at', $tie || ' last changed at ' || last || ' UTC, after this'
           FROM _rel_now WHERE last > $at GROUP BY ckey, other, kind, last""",
    ),
    "end": (
        """SELECT min(row), 'other', $tie || ' is not in force, so cannot end' FROM _rel_now
           WHERE open IS NULL GROUP BY ckey, other, kind""",
        """SELECT min(row), 'at', $tie || ' began at ' || last || ' UTC, after this' FROM _rel_now
           WHERE open IS NOT NULL AND last > $at GROUP BY ckey, other, kind, last""",
    ),
}


@functools.cache
def _relation_checks(change: str) -> str:
    """Every refusal of a relation change (`start` or `end`) as one query: distinct (row, field, message), at
    most 1,001. Generated once per kind of change; `$at` binds the change's time."""
    checks = [*_RELATION_CHECKS, *_RELATION_CHECKS_BY_CHANGE[change]]
    return fill(
        "SELECT DISTINCT * FROM __checks AS p(row, field, message) ORDER BY row, field, message LIMIT 1001",
        checks=union_all([fill(c, tie=fill(_TIE), at=exp.Placeholder(this="at")) for c in checks]),
    ).sql("duckdb")


def change_relations(
    store: Registry, change: str, ckey: Any, other: Any, kind: str, at: dt.datetime, source: str
) -> int:
    """`Store.add_relations` (`change` start) or `Store.end_relations` (end): the ties and their mirrors as
    they stand (`_rel_now`), every refusal in one query, then the changes appended in one transaction."""
    store.require_init()
    a = np.asarray(ckey, dtype=np.int64).reshape(-1)
    b = np.asarray(other, dtype=np.int64).reshape(-1)
    if kind not in MIRROR:
        raise BatchRejected(source, [Problem(0, "kind", f"{kind!r} is not one of {', '.join(MIRROR)}")])
    if a.shape != b.shape:
        raise BatchRejected(source, [Problem(0, "other", f"{b.size} others for {a.size} citizens")])
    if not a.size:
        return 0
    when = utc_naive(at)
    store.con.register("_rel_in", pa.table({"row": np.arange(1, a.size + 1), "ckey": a, "other": b}))
    params: dict[str, object] = {"kind": kind, "mirror": MIRROR[kind]}
    try:
        store.con.execute(
            """CREATE OR REPLACE TEMP TABLE _rel AS
               SELECT row, 0 AS dir, ckey, other, $kind AS kind FROM _rel_in
               UNION ALL SELECT row, 1, other, ckey, $mirror FROM _rel_in""",
            params,
        )
        # the ties concerned as they stand: the open start of each, and the time of its last change
        store.con.execute(
            """CREATE OR REPLACE TEMP TABLE _rel_now AS
               SELECT r.row, r.dir, r.ckey, r.other, r.kind, max(c.changed_at) AS last,
                      max(c.seq) FILTER (WHERE c.change = 'start' AND e.ends IS NULL) AS open
               FROM _rel r LEFT JOIN relation_changes c ON c.ckey = r.ckey AND c.other = r.other
                    AND c.kind = r.kind
               LEFT JOIN (SELECT ends FROM relation_changes WHERE change = 'end') e ON e.ends = c.seq
               GROUP BY r.row, r.dir, r.ckey, r.other, r.kind"""
        )
        found = store.con.execute(_relation_checks(change), {"at": when}).fetchall()
        if found:
            raise BatchRejected(source, [Problem(int(r), f, m) for r, f, m in found[:MAX_PROBLEMS]])
        with store.transaction():
            seq = store.con.execute("SELECT coalesce(max(seq) + 1, 0) FROM relation_changes").fetchall()[0][0]
            store.con.execute(
                """INSERT INTO relation_changes
                   SELECT $seq + row_number() OVER (ORDER BY row, dir) - 1, ckey, other, kind,
                          $change, $at, CASE WHEN $change = 'end' THEN open END
                   FROM _rel_now ORDER BY row, dir""",
                {"seq": seq, "change": change, "at": when},
            )
    finally:
        store.con.unregister("_rel_in")
        store.con.execute("DROP TABLE IF EXISTS _rel; DROP TABLE IF EXISTS _rel_now")
    return int(a.size)
