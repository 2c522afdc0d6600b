"""What the pages read, one function each, so routes stay a few lines and the SQL is in one place.

Questions about stays, assessments, the published score, the register and the boards are the read
model's (`socialcredit.standings`), asked exactly as the HTTP API asks them; what is left here is plain
SQL over the registry and the decisions, which only the pages show. Nothing is scored here: scores for
one citizen come from `decisions.standing`/`explain`. Every function takes the store and the time
the page is about (naive UTC, as the store keeps it); the caller holds the service lock.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from socialcredit import standings
from socialcredit.store import Store

Row = dict[str, Any]


def _rows(store: Store, sql: str, args: list[Any] | None = None) -> list[Row]:
    cur = store.con.execute(sql, args or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def population(store: Store) -> dict[str, int]:
    """Citizens per home city (hukou)."""
    return dict(store.con.execute("SELECT city, count(*) FROM citizens GROUP BY city ORDER BY city").fetchall())


def grade_counts(store: Store, at: dt.datetime) -> dict[str, dict[str, int]]:
    """City → grade → citizens, by each citizen's published grade at `at` (the read model's)."""
    return standings.grade_counts(store, at)


def list_counts(store: Store, at: dt.datetime) -> dict[str, list[Row]]:
    """City → lists with the number of citizens on each at `at`."""
    return standings.list_counts(store, at)


def blacklisted_citizens(store: Store, at: dt.datetime) -> int:
    """Citizens on at least one blacklist at `at` (public or not: the dashboard shows only the count)."""
    return len(standings.listed(store, at, "blacklist"))


def decision_counts(store: Store) -> dict[str, dict[str, dict[str, int]]]:
    """City → service → outcome → decisions asked so far."""
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for city, service, outcome, n in store.con.execute(
        """SELECT c.city, d.service, d.outcome, count(*) FROM decisions d JOIN citizens c USING (ckey)
           GROUP BY ALL ORDER BY ALL"""
    ).fetchall():
        out[city][service][outcome] = n
    return {city: dict(services) for city, services in out.items()}


def citizen(store: Store, citizen_id: str) -> Row | None:
    """The registry entry (no standing): name, sex, birth date, city, avatar seed."""
    rows = _rows(
        store,
        "SELECT ckey, citizen_id, name, name_latin, sex, birth_date, city, avatar_seed FROM citizens "
        "WHERE citizen_id = ?",
        [citizen_id],
    )
    return rows[0] if rows else None


def decisions_about(store: Store, citizen_id: str, limit: int = 20) -> list[Row]:
    """The latest automated decisions asked about a citizen: who asked, for what, and the answer."""
    return _rows(
        store,
        """SELECT d.asked_at, d.service, d.outcome, d.asked_by, d.rulebook_version
           FROM decisions d JOIN citizens c USING (ckey) WHERE c.citizen_id = ?
           ORDER BY d.asked_at DESC, d.decision_id DESC LIMIT ?""",
        [citizen_id, limit],
    )


def notifications(store: Store, citizen_id: str) -> list[Row]:
    return _rows(
        store,
        """SELECT n.sent_at, n.kind, n.message FROM notifications n JOIN citizens c USING (ckey)
           WHERE c.citizen_id = ? ORDER BY n.sent_at DESC""",
        [citizen_id],
    )


def stays(store: Store, citizen_id: str) -> list[Row]:
    """Every blacklist stay a citizen has had (credit repair may be asked for any of them)."""
    return _rows(
        store,
        """SELECT e.list_id, min(e.start) AS start, max(e."end") AS "end", bool_or(e."end" IS NULL) AS open
           FROM list_entries e JOIN citizens c USING (ckey)
           WHERE c.citizen_id = ? AND e.kind = 'blacklist' GROUP BY e.list_id ORDER BY start""",
        [citizen_id],
    )


def rulebook_versions(store: Store) -> list[Row]:
    return _rows(
        store,
        """SELECT jurisdiction, version, effective_from, origin, loaded_at, digest FROM rulebook_versions
           ORDER BY jurisdiction, version""",
    )


def case_citizens(store: Store, citizen_ids: list[str]) -> dict[str, Row]:
    """Names and cities of the citizens in the review queue."""
    if not citizen_ids:
        return {}
    rows = _rows(
        store,
        "SELECT citizen_id, name, name_latin, city FROM citizens WHERE citizen_id IN (SELECT unnest(?))",
        [citizen_ids],
    )
    return {r["citizen_id"]: r for r in rows}
