"""Memory and notifications: the last steps of a run, over the finished list entries.

- Memory: once untrustworthy, always restricted. A stay on a list the rulebook bars after a blacklisting
  ends at the first blacklisting, and one that would begin after it is removed.
- Notifications: where a city notifies, the citizen is told at entry; elsewhere only a denial tells them.
Both are whole rewrites of their table (portable to every executor), once per run.
"""

from __future__ import annotations

from sqlglot import exp

from socialcredit.compiler import FAR_PAST
from socialcredit.engine.context import Context
from socialcredit.engine.sql import fill, isin


def barred_pairs(ctx: Context) -> dict[tuple[str, str], set[int]]:
    """(list that leaves the mark, list barred after it) → the cities whose rulebooks say so."""
    pairs: dict[tuple[str, str], set[int]] = {}
    for seg in ctx.compiled.segments:
        for mem in seg.rulebook.memory:
            for lid in mem.never_lists:
                pairs.setdefault((mem.after, lid), set()).add(seg.jkey)
    return pairs


def remembered(after: str, barred: str, jkeys: set[int]) -> exp.Expression:
    """`list_entries` with the barred list's stays ended at the first stay on `after` (in those cities),
    and those that began at or after a stay on `after` removed."""
    return fill(
        """WITH firsts AS (SELECT ckey, min(start) AS first_at FROM list_entries
                           WHERE list_id = $after AND $cities GROUP BY ckey)
           SELECT e.ckey, e.jkey, e.list_id, e.kind, e.start,
                  CASE WHEN e.list_id = $barred AND e.start < f.first_at AND (e."end" IS NULL OR e."end" > f.first_at)
                       THEN f.first_at ELSE e."end" END AS "end",
                  e.cause, e.rkey, e.characteristic, e.grade, e.score, e.version
           FROM list_entries AS e LEFT JOIN firsts AS f ON f.ckey = e.ckey
           WHERE NOT (e.list_id = $barred AND $cities_e AND EXISTS (
                 SELECT 1 FROM list_entries AS b
                 WHERE b.ckey = e.ckey AND b.list_id = $after AND b.start <= e.start))""",
        after=after,
        barred=barred,
        cities=isin(exp.column("jkey"), sorted(jkeys)),
        cities_e=isin(exp.column("jkey", table="e"), sorted(jkeys)),
    )


LISTED = "listed"
"""The kind of the notifications a run writes; the other rows of `notifications` are the decisions' (denials)."""


def listed() -> exp.Expression:
    """The rows of `notifications` that runs write (`listings`), and only those: what a run replaces."""
    return exp.column("kind").eq(exp.Literal.string(LISTED))


def listings() -> exp.Expression:
    """The notifications of listings, from the list entries where the city notifies. The run replaces only
    these rows of `notifications`: the denials in it are the decisions' to write, and they go on writing them
    while a run is under way beside them (`Store.beside`; a run that replaced the table from what it read at
    its start lost the denials written meanwhile)."""
    return fill(
        """SELECT e.ckey, e.start AS sent_at, $kind AS kind,
                  'You were placed on the ' || e.list_id || ' (' || e.cause || ')' AS message
           FROM list_entries AS e JOIN segments AS s ON s.jkey = e.jkey
            AND e.start >= coalesce(s.start, $far_past) AND (s."end" IS NULL OR e.start < s."end")
           WHERE s.notify""",
        far_past=FAR_PAST,
        kind=LISTED,
    )
