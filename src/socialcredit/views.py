"""Readable views: the store's tables as an analyst reads them, without the integer keys.

The tables join on small integer surrogate keys (`ckey` citizen, `jkey` jurisdiction, `bkey` behaviour,
`rkey` record) and keep times as naive UTC: compact and fast for the engine, opaque to a person with
DuckDB, pandas or polars. Each view here names things by what they are — the resident ID, the city, the
behaviour's code and label, the record's own ID — and gives every time as a TIMESTAMPTZ (the same
instant, shown in China Standard Time by the store's session, and carried with its zone into Arrow,
pandas and polars). `decisions_view.reasons` is a typed list of structs, not the JSON text the table keeps.

They are TEMP views, so the file's schema stays the one the store declares: `Store(path, read_only=True)`
makes them when it opens the file, a writable store when asked (`store.readable()`, which `to_arrow` and
`export` call), since binding the view over the engine's ledger costs a writer ~0.2 s it rarely needs. A
view over a table the engine has not made yet appears after its first run (`install` again, as
`readable()` does). Nothing here writes to the file. This module declares them; the store makes them in
its connection (`store/views.py`), as it makes the tables `socialcredit.schema` declares.
"""

from __future__ import annotations

LABELS = "behaviour_labels"  # the labels table the views join (`lb`, `l`); the store makes it beside them

# the typed shape of one decision reason (decisions.Decider._decision writes them as JSON)
REASON_TYPE = (
    '[{"measure": "VARCHAR", "effect": "VARCHAR", "via": "VARCHAR", "since": "TIMESTAMPTZ", '
    '"until": "TIMESTAMPTZ", "discount_pct": "DOUBLE", "throttle_pct": "DOUBLE"}]'
)

# name → (tables it reads, its query). Ordered: the main tables first, as `export` writes them. Queries are
# templates (`socialcredit.sqltemplates.fill`): every time is `timezone('UTC', col)`, a naive-UTC column as
# TIMESTAMPTZ (the same instant, with its zone); `$reason_type` is REASON_TYPE, filled in as a literal.
VIEWS: dict[str, tuple[tuple[str, ...], str]] = {
    "citizens_view": (
        ("citizens", "citizen_profiles"),
        """
        SELECT c.citizen_id, c.name, c.name_latin, c.sex, c.birth_date, c.city, p.income_decile, p.occupation,
               p.household
        FROM citizens c LEFT JOIN citizen_profiles p USING (ckey)""",
    ),
    "relations_view": (
        ("relations", "citizens"),
        """
        SELECT a.citizen_id, r.kind, b.citizen_id AS other_citizen_id, timezone('UTC', r.valid_from) AS valid_from,
               timezone('UTC', r.valid_to) AS valid_to
        FROM relations r JOIN citizens a ON a.ckey = r.ckey JOIN citizens b ON b.ckey = r.other""",
    ),
    "records_view": (
        ("records", "citizens", "jurisdictions", "behaviours", "retractions"),
        """
        SELECT r.record_id, r.agency, c.citizen_id, j.code AS city, b.code AS behaviour, l.label AS behaviour_label,
               timezone('UTC', r.occurred_at) AS occurred_at, x.rkey IS NOT NULL AS retracted,
               r.* EXCLUDE (rkey, record_id, agency, ckey, jkey, bkey, occurred_at, ingested_at, batch),
               r.batch, timezone('UTC', r.ingested_at) AS ingested_at
        FROM records r JOIN citizens c USING (ckey) LEFT JOIN jurisdictions j ON j.jkey = r.jkey
        LEFT JOIN behaviours b ON b.bkey = r.bkey LEFT JOIN behaviour_labels l ON l.code = b.code
        LEFT JOIN (SELECT DISTINCT rkey FROM retractions) x ON x.rkey = r.rkey""",
    ),
    "retractions_view": (
        ("retractions", "records", "citizens"),
        """
        SELECT x.record_id, x.agency, c.citizen_id, timezone('UTC', x.retracted_at) AS retracted_at, x.reason,
               x.requested_by
        FROM retractions x JOIN records r USING (rkey) JOIN citizens c ON c.ckey = r.ckey""",
    ),
    "ledger_view": (
        ("ledger", "citizens", "jurisdictions", "pieces", "segments", "records", "behaviours"),
        """
        SELECT c.citizen_id, j.code AS city, l.source, r.record_id, b.code AS behaviour,
               lb.label AS behaviour_label, l.characteristic, p.rule_ids, p.rule_points, l.points,
               timezone('UTC', l.valid_from) AS valid_from, timezone('UTC', l.valid_to) AS valid_to,
               s.version AS rulebook_version
        FROM ledger l JOIN citizens c USING (ckey) LEFT JOIN jurisdictions j ON j.jkey = l.jkey
        LEFT JOIN pieces p USING (piece) LEFT JOIN segments s ON s.jkey = l.jkey AND s.epoch = l.epoch
        LEFT JOIN records r ON r.rkey = l.rkey LEFT JOIN behaviours b ON b.bkey = coalesce(l.bkey, r.bkey)
        LEFT JOIN behaviour_labels lb ON lb.code = b.code""",
    ),
    "score_log_view": (
        ("score_log", "citizens"),
        """
        SELECT c.citizen_id, c.city, timezone('UTC', s.assessed_at) AS assessed_at, s.score, s.grade,
               s.version AS rulebook_version
        FROM score_log s JOIN citizens c USING (ckey)""",
    ),
    "list_entries_view": (
        ("list_entries", "citizens", "jurisdictions", "records", "behaviours"),
        """
        SELECT c.citizen_id, j.code AS city, e.list_id, e.kind, timezone('UTC', e.start) AS start,
               timezone('UTC', e."end") AS "end",
               e.cause, r.record_id, r.agency, b.code AS behaviour, lb.label AS behaviour_label, e.characteristic,
               e.grade, e.score, e.version AS rulebook_version
        FROM list_entries e JOIN citizens c USING (ckey) LEFT JOIN jurisdictions j ON j.jkey = e.jkey
        LEFT JOIN records r ON r.rkey = e.rkey LEFT JOIN behaviours b ON b.bkey = r.bkey
        LEFT JOIN behaviour_labels lb ON lb.code = b.code""",
    ),
    "decisions_view": (
        ("decisions", "citizens"),
        """
        SELECT d.decision_id, c.citizen_id, c.city, d.service, timezone('UTC', d.asked_at) AS asked_at, d.outcome,
               from_json(d.reasons, $reason_type) AS reasons, d.asked_by, d.rulebook_version
        FROM decisions d JOIN citizens c USING (ckey)""",
    ),
    "notifications_view": (
        ("notifications", "citizens"),
        """
        SELECT c.citizen_id, timezone('UTC', n.sent_at) AS sent_at, n.kind, n.message
        FROM notifications n JOIN citizens c USING (ckey)""",
    ),
}


__all__ = ["LABELS", "REASON_TYPE", "VIEWS"]
