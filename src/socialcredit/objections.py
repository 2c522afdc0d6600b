"""Objections and credit repair: a citizen contests a record or asks to be taken off a list early.

A reviewer (role admin) upholds or rejects each case. An upheld objection retracts the record — records
are never edited or deleted, a retraction is a new row — and the next engine run rescores without it, so
every score, list entry and decision that rested on it changes through the one scoring path.

An upheld credit repair is reported as a record of the behaviour `credit_repair_completed` by the
`credit_repair_office`, scored by whatever the citizen's rulebook says of it (the national rulebook adds
points). It therefore helps the way the rulebook decides: a grade-based listing ends when the next
assessment finds the score above the band (after any minimum stay). Stays that a court or a trigger set for
a fixed term are not shortened by a repair; the cure for a court listing is the court's delisting record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlglot import exp

from socialcredit import text
from socialcredit.engine import utc_naive
from socialcredit.store import Store
from socialcredit.store.cases import append_case, decide_case, ensure_cases
from socialcredit.yamlio import LocatedError

KINDS = ("objection", "repair")
REPAIR_AGENCY = "credit_repair_office"
REPAIR_BEHAVIOUR = "credit_repair_completed"
COLUMNS = (
    "case_id",
    "kind",
    "citizen_id",
    "agency",
    "record_id",
    "list_id",
    "reason",
    "filed_at",
    "status",
    "reviewer",
    "reviewed_at",
    "note",
)


def _next_id(store: Store) -> int:
    return int(store.con.execute("SELECT coalesce(max(case_id), 0) + 1 FROM cases").fetchall()[0][0])


MAX_TEXT = 4000  # a reason or a reviewer's note: every door (API, pages, library) gets the same bound


def _text_fields(**fields: str) -> None:
    """Free text a citizen or reviewer writes: valid Unicode and bounded, checked before anything is done."""
    for name, value in fields.items():
        why = text.problem(value, MAX_TEXT)
        if why is not None:
            raise LocatedError(f"{name}: {why}")


def file_objection(store: Store, citizen_id: str, agency: str, record_id: str, reason: str) -> int:
    """Contest one of one's own records; refused if the record is not the citizen's or already retracted."""
    ensure_cases(store)
    _text_fields(agency=agency, record_id=record_id, reason=reason)
    if not reason.strip():
        raise LocatedError("reason: say why the record is wrong")
    ckey = store.ckey(citizen_id)
    rows = store.con.execute(
        """SELECT r.ckey, (SELECT count(*) FROM retractions x WHERE x.rkey = r.rkey) FROM records r
           WHERE r.agency = ? AND r.record_id = ?""",
        [agency, record_id],
    ).fetchall()
    if not rows or rows[0][0] != ckey:
        raise LocatedError(f"record {agency}/{record_id}: no such record about citizen {citizen_id}")
    if rows[0][1]:
        raise LocatedError(f"record {agency}/{record_id}: already retracted")
    open_ = store.con.execute(
        "SELECT case_id FROM cases WHERE kind = 'objection' AND agency = ? AND record_id = ? AND status = 'open'",
        [agency, record_id],
    ).fetchall()
    if open_:
        raise LocatedError(f"record {agency}/{record_id}: objection {open_[0][0]} is already open")
    case_id = _next_id(store)
    append_case(store, case_id, "objection", ckey, citizen_id, agency, record_id, None, reason, utc_naive(None))
    return case_id


def apply_repair(store: Store, citizen_id: str, list_id: str, reason: str) -> int:
    """Ask for credit repair of a stay on a list one is on now (or was on)."""
    ensure_cases(store)
    _text_fields(list_id=list_id, reason=reason)
    if not reason.strip():
        raise LocatedError("reason: say how the cause was cured")
    ckey = store.ckey(citizen_id)
    from socialcredit.decisions import ensure_fresh

    ensure_fresh(store, utc_naive(None))  # list stays as of now
    on = store.con.execute(
        "SELECT count(*) FROM list_entries WHERE ckey = ? AND list_id = ? AND kind = 'blacklist'", [ckey, list_id]
    ).fetchall()[0][0]
    if not on:
        raise LocatedError(f"list_id {list_id!r}: citizen {citizen_id} has no stay on that blacklist")
    # one open application per stay: a second would let one cure be reported (and scored) twice when both are upheld
    open_ = store.con.execute(
        "SELECT case_id FROM cases WHERE kind = 'repair' AND ckey = ? AND list_id = ? AND status = 'open'",
        [ckey, list_id],
    ).fetchall()
    if open_:
        raise LocatedError(f"list_id {list_id!r}: repair application {open_[0][0]} is already open")
    case_id = _next_id(store)
    append_case(store, case_id, "repair", ckey, citizen_id, None, None, list_id, reason, utc_naive(None))
    return case_id


def cases(store: Store, status: str | None = None, citizen_id: str | None = None) -> list[dict[str, Any]]:
    ensure_cases(store)
    query, args = exp.select(*COLUMNS).from_("cases"), []
    if status:
        query = query.where("status = ?")
        args.append(status)
    if citizen_id:
        query = query.where("citizen_id = ?")
        args.append(citizen_id)
    sql = query.order_by("case_id").sql("duckdb")
    return [dict(zip(COLUMNS, r, strict=True)) for r in store.con.execute(sql, args).fetchall()]


def review(
    store: Store, case_id: int, uphold: bool, reviewer: str, note: str = "", at: dt.datetime | None = None
) -> dict[str, Any]:
    """Decide an open case. Upholding writes facts (a retraction, or a repair record); rejecting writes none."""
    ensure_cases(store)
    _text_fields(note=note)
    found = [c for c in cases(store) if c["case_id"] == case_id]
    if not found:
        raise LocatedError(f"case {case_id}: no such case")
    case = found[0]
    if case["status"] != "open":
        raise LocatedError(f"case {case_id}: already {case['status']}")
    when = utc_naive(at)
    if uphold and case["kind"] == "objection":
        store.retract(case["agency"], [case["record_id"]], f"objection {case_id} upheld: {note}".strip(), reviewer)
    elif uphold:
        store.ingest(
            [
                {
                    "record_id": f"repair-{case_id}",
                    "citizen_id": case["citizen_id"],
                    "behaviour": REPAIR_BEHAVIOUR,
                    "occurred_at": when.replace(tzinfo=dt.UTC).isoformat(),
                    "reported_by": REPAIR_AGENCY,
                    "attributes": {},
                }
            ],
            name=f"repair case {case_id}",
        )
    decide_case(store, case_id, "upheld" if uphold else "rejected", reviewer, when, note)
    return next(c for c in cases(store) if c["case_id"] == case_id)


__all__ = ["apply_repair", "cases", "file_objection", "review"]
