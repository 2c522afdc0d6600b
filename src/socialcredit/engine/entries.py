"""The stored record ledger (`record_entries`): brought up to date by scoring only the records appended since.

A record's rows depend only on the record and the ledger fingerprint (the SQL that scores it and the
decision tables it joins), so rows once written never change: records only ever get higher rkeys, and
the count of those up to the last covered one must still be what it was. Any change to the compiled
rulebooks rebuilds it whole, but versions added: those redo the records from their first day on (`update`).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from sqlglot import exp

from socialcredit.engine.context import Context
from socialcredit.engine.ledger import BATCH_VIEW, Prepared, record_views, redone
from socialcredit.engine.resume import Added
from socialcredit.engine.sql import fill
from socialcredit.schema import TABLES

Built = tuple[str, str, int, int]


@dataclass
class LedgerUpdate:
    """What bringing `record_entries` up to date cost: whether it was rebuilt, how many records were scored
    (those appended since, or all) and how many rows they added."""

    rebuilt: bool
    records: int
    entries: int
    seconds: float = field(default=0.0, compare=False)


def built(ctx: Context) -> Built | None:
    """What the stored record ledger and compiled tables were made from: (ledger fingerprint, tables
    fingerprint, last rkey scored, number of records then), or None before the first run."""
    rows = ctx.rows(fill("SELECT fingerprint, tables, through, records FROM record_entries_built"))
    return (str(rows[0][0]), str(rows[0][1]), int(rows[0][2]), int(rows[0][3])) if len(rows) == 1 else None


def usable_through(ctx: Context, ledger: str, made: Built | None) -> int:
    """The last rkey whose stored ledger rows still hold (-1 for none): those of the ledger fingerprint
    `ledger`, while every record they were made from is still there."""
    if made is None or made[0] != ledger:
        return -1
    seen = ctx.scalar(fill("SELECT count(*) FROM records WHERE rkey <= $through", through=made[2]))
    return made[2] if int(seen) == made[3] else -1


def update(
    ctx: Context, prep: Prepared, made: Built | None, views: bool = True, added: Added | None = None
) -> tuple[LedgerUpdate, int, int]:
    """Score the records appended since `record_entries` was built, or all of them into a new one when the
    fingerprint changed (or records it had seen are gone); the update, the rkey it now covers and the
    number of records. `views`: the compiled views exist (`ledger.compiled_views`), so an appended batch is
    read through the one over `records_batch` (its text generated once, when the compiled tables were
    loaded); without them the batch's query is the compiled query itself.

    `added`: rulebook versions were added since the last run, which change nothing before `added.since`
    (`resume.rulebooks_added`). When the stored rows were built by the last run's rulebooks (`added.ledger`),
    the rows of records before that time stand: such a record is scored by a version in force before it, and
    its epoch, piece and points are numbered alike in both compilations (`compiler._build_tables`). Only the
    records from that time on are scored again, with those appended since (a version scheduled ahead: none)."""
    ex = ctx.executor
    t0 = time.perf_counter()
    top, total = ctx.rows(fill("SELECT coalesce(max(rkey), -1), count(*) FROM records"))[0]
    usable, since = usable_through(ctx, prep.ledger, made), None
    if usable < 0 and added is not None and (kept := usable_through(ctx, added.ledger, made)) >= 0:
        usable, since = kept, (None if added.since == dt.datetime.max else added.since)
    after = usable if usable >= 0 else None
    if after is None:
        ex.materialize("record_entries", TABLES["record_entries"].empty())
    elif since is not None:
        ex.delete("record_entries", fill("valid_from >= $since", since=since))
    scored, appended, query = 0, 0, prep.entries_all
    if after is None:
        scored = int(total)
    elif since is not None or top > after:
        scored = int(ctx.scalar(fill("SELECT count(*) FROM records WHERE $redo", redo=redone(after, since))))
        ex.view(*record_views(after, int(top), since)[1])
        query = exp.select("*").from_(BATCH_VIEW) if views else prep.entries_batch
    if scored:
        appended = ex.append("record_entries", query.copy())  # the prepared tree is kept for later runs
    return LedgerUpdate(after is None, scored, appended, time.perf_counter() - t0), int(top), int(total)


def built_row(prep: Prepared, through: int, records: int) -> object:
    """The one row of `record_entries_built`."""
    return fill(
        """SELECT CAST($fingerprint AS VARCHAR) AS fingerprint, CAST($tables AS VARCHAR) AS tables,
                  CAST($through AS BIGINT) AS through, CAST($records AS BIGINT) AS records""",
        fingerprint=prep.ledger,
        tables=prep.loaded,
        through=through,
        records=records,
    )
