"""Cases (objections, credit repairs) as facts: a case filed, a case decided. The rules for filing and
reviewing them are `socialcredit.objections`; what an upheld case changes goes through the store's
retractions and records like any other."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socialcredit.store import Store


def ensure_cases(store: Store) -> None:
    """The `cases` table, created before a case is written or looked for."""
    store.ensure_on_demand("cases")


def append_case(
    store: Store,
    case_id: int,
    kind: str,
    ckey: int,
    citizen_id: str,
    agency: str | None,
    record_id: str | None,
    list_id: str | None,
    reason: str,
    filed_at: dt.datetime,
) -> None:
    """One open case."""
    ensure_cases(store)
    store.con.execute(
        "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', NULL, NULL, NULL)",
        [case_id, kind, ckey, citizen_id, agency, record_id, list_id, reason, filed_at],
    )


def decide_case(store: Store, case_id: int, status: str, reviewer: str, at: dt.datetime, note: str) -> None:
    """A reviewer's decision on an open case (`upheld` or `rejected`)."""
    ensure_cases(store)
    store.con.execute(
        "UPDATE cases SET status = ?, reviewer = ?, reviewed_at = ?, note = ? WHERE case_id = ?",
        [status, reviewer, at, note, case_id],
    )


__all__ = ["append_case", "decide_case", "ensure_cases"]
