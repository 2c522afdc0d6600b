"""What the pages read, one plain-SQL function each, so routes stay a few lines and the SQL is in one place.

Why plain SQL here and not the core: these are read-only views over tables the engine already derived
(score log, list entries, decisions); nothing is scored here. Scores for one citizen come from
`decisions.standing`/`explain`, never from these functions. Every function takes the store and the time
the page is about (naive UTC, as the store keeps it); the caller holds the service lock.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

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
    """City → grade → citizens, by each citizen's latest monthly assessment at or before `at`."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for city, grade, n in store.con.execute(
        """SELECT c.city, s.grade, count(*) FROM (
               SELECT ckey, arg_max(grade, assessed_at) AS grade FROM score_log WHERE assessed_at <= ? GROUP BY ckey
           ) s JOIN citizens c USING (ckey) GROUP BY ALL ORDER BY ALL""",
        [at],
    ).fetchall():
        out[city][grade] = n
    return dict(out)


def list_counts(store: Store, at: dt.datetime) -> dict[str, list[Row]]:
    """City → lists with the number of citizens on each at `at`."""
    out: dict[str, list[Row]] = defaultdict(list)
    for r in _rows(
        store,
        """SELECT c.city, e.list_id, e.kind, count(DISTINCT e.ckey) AS citizens
           FROM list_entries e JOIN citizens c USING (ckey)
           WHERE e.start <= ? AND (e."end" IS NULL OR e."end" > ?)
           GROUP BY ALL ORDER BY c.city, e.kind, citizens DESC, e.list_id""",
        [at, at],
    ):
        out[r.pop("city")].append(r)
    return dict(out)


def blacklisted_citizens(store: Store, at: dt.datetime) -> int:
    """Citizens on at least one blacklist at `at` (public or not: the dashboard shows only the count)."""
    return int(
        store.con.execute(
            """SELECT count(DISTINCT ckey) FROM list_entries
               WHERE kind = 'blacklist' AND start <= ? AND ("end" IS NULL OR "end" > ?)""",
            [at, at],
        ).fetchall()[0][0]
    )


def decision_counts(store: Store) -> dict[str, dict[str, dict[str, int]]]:
    """City → service → outcome → decisions asked so far."""
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for city, service, outcome, n in store.con.execute(
        """SELECT c.city, d.service, d.outcome, count(*) FROM decisions d JOIN citizens c USING (ckey)
           GROUP BY ALL ORDER BY ALL"""
    ).fetchall():
        out[city][service][outcome] = n
    return {city: dict(services) for city, services in out.items()}


def search(store: Store, text: str, limit: int = 50) -> list[Row]:
    """Citizens whose resident ID is `text`, or whose Chinese or Latin name contains it; exact matches first."""
    text = text.strip()
    return _rows(
        store,
        """SELECT citizen_id, name, name_latin, sex, birth_date, city FROM citizens
           WHERE citizen_id = upper($t) OR contains(name, $t) OR contains(lower(name_latin), lower($t))
           ORDER BY citizen_id = upper($t) OR name = $t OR lower(name_latin) = lower($t) DESC, name_latin, citizen_id
           LIMIT $n""",
        {"t": text, "n": limit},  # type: ignore[arg-type]
    )


def assessments(store: Store, citizen_ids: list[str], at: dt.datetime) -> dict[str, Row]:
    """Each citizen's latest monthly assessment (score, grade, when, rulebook version) at or before `at`."""
    if not citizen_ids:
        return {}
    rows = _rows(
        store,
        """SELECT c.citizen_id, arg_max(s.score, s.assessed_at) AS score, arg_max(s.grade, s.assessed_at) AS grade,
                  max(s.assessed_at) AS assessed_at, arg_max(s.version, s.assessed_at) AS version
           FROM score_log s JOIN citizens c USING (ckey)
           WHERE c.citizen_id IN (SELECT unnest(?)) AND s.assessed_at <= ? GROUP BY c.citizen_id""",
        [citizen_ids, at],
    )
    return {r.pop("citizen_id"): r for r in rows}


def blacklisted(store: Store, city: str, list_ids: list[str], at: dt.datetime) -> list[Row]:
    """Citizens of `city` on any of these lists at `at`: one row per stay, newest stays first."""
    if not list_ids:
        return []
    return _rows(
        store,
        """SELECT c.citizen_id, c.name, c.name_latin, c.sex, c.birth_date, c.avatar_seed, e.list_id, e.start, e.cause,
                  e.characteristic, e.grade, b.code AS behaviour
           FROM list_entries e JOIN citizens c USING (ckey)
           LEFT JOIN records r USING (rkey) LEFT JOIN behaviours b ON b.bkey = r.bkey
           WHERE c.city = ? AND e.kind = 'blacklist' AND e.list_id IN (SELECT unnest(?))
             AND e.start <= ? AND (e."end" IS NULL OR e."end" > ?)
           ORDER BY e.start DESC, c.citizen_id, e.list_id""",
        [city, list_ids, at, at],
    )


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
