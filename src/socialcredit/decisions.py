"""Standings, decisions and explanations: what a service provider, a citizen or a reviewer sees.

All three read the engine's derived tables; when facts changed since the last run (or a later time is
asked about) the engine runs first, so there is no second scoring path that could drift from it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from socialcredit.catalog import Measure
from socialcredit.compiler import CST
from socialcredit.engine import Engine, last_run, utc_naive
from socialcredit.rulebook import Rulebook, add_duration
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

OUTCOME_ORDER = ("deny", "throttle", "deprioritise", "publish", "priority", "discount", "deposit_waived")
OUTCOME_NAME = {"deposit_waived": "waive_deposit"}


@dataclass
class ActiveMeasure:
    measure: str
    label: str
    kind: str
    effect: str
    services: list[str]
    public_reason: str
    via: str  # "list:<id>", "memory:<id>", or "parent:<citizen id> list:<id>"
    since: dt.datetime
    until: dt.datetime | None
    discount_pct: float | None = None
    throttle_pct: float | None = None

    @classmethod
    def of(cls, m: Measure, via: str, since: dt.datetime, until: dt.datetime | None) -> ActiveMeasure:
        return cls(
            m.code,
            m.label,
            m.kind,
            m.effect,
            list(m.services),
            m.public_reason,
            via,
            since,
            until,
            m.discount_pct,
            m.throttle_pct,
        )


@dataclass
class Standing:
    citizen_id: str
    name: str
    city: str
    as_of: dt.datetime
    score: int | None
    grade: str | None
    rulebook_version: str | None
    list_entries: list[dict[str, Any]]
    measures: list[ActiveMeasure]

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass
class Decision:
    citizen_id: str
    service: str
    at: dt.datetime
    outcome: str
    public_reason: str
    rulebook_version: str | None
    valid_until: dt.datetime | None
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dt.datetime):
        return x.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    return x


def ensure_fresh(store: Store, at: dt.datetime) -> None:
    """Run the engine if facts changed, or if `at` lies beyond the last run."""
    last, stale = last_run(store)
    if stale or last is None or at > last:
        now = utc_naive(None)
        Engine(store).run(as_of=max(now, at))


def _citizen(store: Store, citizen_id: str) -> tuple[int, str, str, int]:
    ckey = store.ckey(citizen_id)
    name, city, jkey = store.con.execute("SELECT name, city, jkey FROM citizens WHERE ckey = ?", [ckey]).fetchall()[0]
    return ckey, name, city, jkey


def rulebook_at(store: Store, city: str, at: dt.datetime) -> Rulebook | None:
    day = at.replace(tzinfo=dt.UTC).astimezone(CST).date()
    return store.rulebooks().resolve(city, day)


def score_at(store: Store, ckey: int, rb: Rulebook | None, at: dt.datetime) -> int | None:
    if rb is None:
        return None
    total = store.con.execute(
        "SELECT coalesce(sum(points), 0) FROM ledger WHERE ckey = ? AND valid_from <= ? "
        "AND (valid_to IS NULL OR valid_to > ?)",
        [ckey, at, at],
    ).fetchall()[0][0]
    return rb.scale.score(int(total))


def _entries(store: Store, ckey: int, at: dt.datetime) -> list[dict[str, Any]]:
    rows = store.con.execute(
        """SELECT e.list_id, e.kind, e.start, e."end", e.cause, r.record_id, r.agency, b.code, e.characteristic,
                  e.grade, e.score, e.version
           FROM list_entries e LEFT JOIN records r USING (rkey) LEFT JOIN behaviours b ON b.bkey = r.bkey
           WHERE e.ckey = ? AND e.start <= ? AND (e."end" IS NULL OR e."end" > ?) ORDER BY e.start, e.list_id""",
        [ckey, at, at],
    ).fetchall()
    keys = (
        "list_id",
        "kind",
        "start",
        "end",
        "cause",
        "record_id",
        "agency",
        "behaviour",
        "characteristic",
        "grade",
        "score",
        "version",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _own_measures(store: Store, ckey: int, rb: Rulebook | None, at: dt.datetime) -> list[ActiveMeasure]:
    """Measures of the lists a citizen is on at `at`, and the lasting ones of any past stay (memory).

    One query of the citizen's stays so far; decisions call this for the citizen and each relative.
    """
    if rb is None:
        return []
    cat = store.catalog
    stays = store.con.execute(
        'SELECT list_id, start, "end" FROM list_entries WHERE ckey = ? AND start <= ? ORDER BY start, list_id',
        [ckey, at],
    ).fetchall()
    out: list[ActiveMeasure] = []
    lists = {x.id: x for x in rb.lists}
    for list_id, start, end in stays:
        lst = lists.get(list_id)
        if lst is None or (end is not None and end <= at):
            continue
        for lm in lst.list_measures():
            until = add_duration(start, lm.for_) if lm.for_ else end
            if lm.for_ and until <= at:
                continue
            out.append(ActiveMeasure.of(cat.measures[lm.measure], f"list:{lst.id}", start, until))
    for mem in rb.memory:
        first = next((start for list_id, start, _ in stays if list_id == mem.after), None)
        if first is None:
            continue
        for code in mem.measures:
            out.append(ActiveMeasure.of(cat.measures[code], f"memory:{mem.id}", first, None))
    return out


def standing(store: Store, citizen_id: str, as_of: dt.datetime | None = None) -> Standing:
    at = utc_naive(as_of)
    ensure_fresh(store, at)
    ckey, name, city, _ = _citizen(store, citizen_id)
    rb = rulebook_at(store, city, at)
    score = score_at(store, ckey, rb, at)
    measures = _own_measures(store, ckey, rb, at) + reaching_measures(store, ckey, at)
    return Standing(
        citizen_id,
        name,
        city,
        at,
        score,
        rb.grade_of(score) if rb and score is not None else None,
        rb.version if rb else None,
        _entries(store, ckey, at),
        measures,
    )


def reaching_measures(store: Store, ckey: int, at: dt.datetime) -> list[ActiveMeasure]:
    """Measures of parents (reach children) and of household members (reach household)."""
    rows = store.con.execute(
        """SELECT r.other, r.kind, c.citizen_id, c.city FROM relations r JOIN citizens c ON c.ckey = r.other
           WHERE r.ckey = ? AND r.kind IN ('parent', 'spouse', 'child')""",
        [ckey],
    ).fetchall()
    out: list[ActiveMeasure] = []
    for other, kind, other_id, city in rows:
        rb = rulebook_at(store, city, at)
        for m in _own_measures(store, other, rb, at):
            reach = store.catalog.measures[m.measure].reach
            if (reach == "children" and kind == "parent") or reach == "household":
                m.via = f"{kind}:{other_id} {m.via}"
                out.append(m)
    return out


def decide(
    store: Store,
    citizen_id: str,
    service: str,
    at: dt.datetime | None = None,
    asked_by: str = "cli",
    record: bool = True,
) -> Decision:
    """May this citizen use this service now? The answer carries its reasons and the version used."""
    if service not in store.catalog.services:
        raise LocatedError(f"unknown service {service!r} (see `socialcredit catalog`)")
    t = utc_naive(at)
    ensure_fresh(store, t)
    ckey, _, city, _ = _citizen(store, citizen_id)
    rb = rulebook_at(store, city, t)
    # a decision rests on list entries and measures only, so it does not pay for computing the score
    measures = _own_measures(store, ckey, rb, t) + reaching_measures(store, ckey, t)
    version = rb.version if rb else None

    def applies(m: ActiveMeasure) -> bool:
        # a measure that reaches children binds the children, not the listed parent
        own = m.via.startswith(("list:", "memory:"))
        return not own or store.catalog.measures[m.measure].reach != "children"

    binding = [m for m in measures if service in m.services and applies(m)]
    effects = sorted({m.effect for m in binding}, key=OUTCOME_ORDER.index)
    outcome = OUTCOME_NAME.get(effects[0], effects[0]) if effects else "allow"
    chosen = [m for m in binding if effects and m.effect == effects[0]]
    public = "; ".join(dict.fromkeys(m.public_reason for m in chosen)) or "No restriction or privilege applies."
    untils = [m.until for m in chosen if m.until is not None]
    reasons = [
        {
            "measure": m.measure,
            "effect": m.effect,
            "via": m.via,
            "since": m.since,
            "until": m.until,
            "discount_pct": m.discount_pct,
            "throttle_pct": m.throttle_pct,
        }
        for m in binding
    ]
    d = Decision(citizen_id, service, t, outcome, public, version, min(untils) if untils else None, reasons)
    if record:
        store.con.execute(
            "INSERT INTO decisions SELECT coalesce(max(decision_id) + 1, 1), ?, ?, ?, ?, ?, ?, ? FROM decisions",
            [
                ckey,
                service,
                t,
                outcome,
                json.dumps(_jsonable(reasons), ensure_ascii=False),
                asked_by,
                version,
            ],
        )
        if outcome == "deny" and rb is not None and not rb.disclosure.notify_citizens:
            store.con.execute(
                """INSERT INTO notifications SELECT ?, ?, 'learned_by_denial', ? WHERE NOT EXISTS (
                   SELECT 1 FROM notifications WHERE ckey = ? AND kind = 'learned_by_denial')""",
                [ckey, t, f"Denied {service}: {public}", ckey],
            )
    return d


def explain(store: Store, citizen_id: str, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Score → ledger entries → records and rules; list entries → their cause; measures → their list."""
    st = standing(store, citizen_id, as_of)
    ckey = store.ckey(citizen_id)
    at = st.as_of
    rows = store.con.execute(
        """SELECT l.source, l.points, l.valid_from, l.valid_to, p.rule_ids, p.rule_points, s.version,
                  r.record_id, r.agency, b.code, r.occurred_at, l.characteristic, l.rkey
           FROM ledger l JOIN pieces p USING (piece) LEFT JOIN segments s ON s.jkey = l.jkey AND s.epoch = l.epoch
           LEFT JOIN records r ON r.rkey = l.rkey LEFT JOIN behaviours b ON b.bkey = coalesce(l.bkey, r.bkey)
           WHERE l.ckey = ? AND l.valid_from <= ? AND (l.valid_to IS NULL OR l.valid_to > ?)
           ORDER BY l.valid_from, l.rkey""",
        [ckey, at, at],
    ).fetchall()
    rbs = store.rulebooks()
    entries = []
    for (
        source,
        points,
        vf,
        vt,
        rule_ids,
        rule_points,
        version,
        record_id,
        agency,
        behaviour,
        occurred,
        characteristic,
        rkey,
    ) in rows:
        rules = []
        rb = None
        if version:
            city, pin = rbs.parse_version(version)
            rb = rbs.resolve(city, None, pin)
        for rid, pts in zip(rule_ids, rule_points, strict=True):
            rule = next((r for r in rb.rules if r.id == rid), None) if rb else None
            rules.append(
                {
                    "id": rid,
                    "points": pts,
                    "when": rule.when if rule else None,
                    "label": rule.label if rule else None,
                    "source": rule.source if rule else None,
                }
            )
        item: dict[str, Any] = {
            "source": source,
            "points": points,
            "valid_from": vf,
            "valid_to": vt,
            "rulebook_version": version,
            "rules": rules,
        }
        if source == "record":
            item["record"] = {
                "record_id": record_id,
                "agency": agency,
                "behaviour": behaviour,
                "occurred_at": occurred,
                "attributes": _attributes(store, rkey, behaviour),
            }
        else:
            item["characteristic"] = characteristic
            if record_id:
                item["set_by_record"] = {"record_id": record_id, "agency": agency, "behaviour": behaviour}
        entries.append(item)
    rb_now = rulebook_at(store, st.city, at)
    return _jsonable(
        {
            "citizen_id": st.citizen_id,
            "name": st.name,
            "city": st.city,
            "as_of": at,
            "rulebook_version": st.rulebook_version,
            "score": {
                "value": st.score,
                "grade": st.grade,
                "base": rb_now.scale.base if rb_now else None,
                "scale": [rb_now.scale.min, rb_now.scale.max] if rb_now else None,
                "sum_of_entries": sum(e["points"] for e in entries),
            },
            "ledger": entries,
            "list_entries": st.list_entries,
            "measures": [asdict(m) for m in st.measures],
        }
    )


def _attributes(store: Store, rkey: int | None, behaviour: str | None) -> dict[str, Any]:
    if rkey is None or behaviour is None:
        return {}
    names = store.catalog.behaviours[behaviour].attributes
    if not names:
        return {}
    from socialcredit.ingest import q

    row = store.con.execute(f"SELECT {', '.join(q(n) for n in names)} FROM records WHERE rkey = ?", [rkey]).fetchall()[
        0
    ]
    return {n: v for n, v in zip(names, row, strict=True) if v is not None}
