"""What the last run was: its as_of, whether facts were added since, its pin, and the store's clock.

Readers (questions, the service, the CLI) ask these of the store without running the engine.
"""

from __future__ import annotations

import datetime as dt

from sqlglot import exp

from socialcredit.clock import utc_naive
from socialcredit.engine.sql import fill
from socialcredit.store import Store

_WATERMARK = """CAST((SELECT coalesce(max(rkey), -1) FROM records) AS VARCHAR) || ',' ||
    CAST((SELECT count(*) FROM retractions) AS VARCHAR) || ',' ||
    CAST((SELECT count(*) FROM rulebook_versions) AS VARCHAR) || ',' ||
    CAST((SELECT count(*) FROM citizens) AS VARCHAR) || ',' ||
    CAST((SELECT coalesce(max(seq) + 1, 0) FROM relation_changes) AS VARCHAR)"""  # the next relation change's seq


def watermark_expr() -> exp.Expression:
    """What the derived tables were computed from: changes whenever a fact is added."""
    return fill(_WATERMARK)


def _run(store: Store, query: exp.Expression) -> list[tuple]:
    return store.con.execute(query.sql(dialect="duckdb")).fetchall()


def watermark(store: Store) -> str:
    """What the derived tables were computed from: changes whenever a fact is added."""
    return str(_run(store, exp.select(watermark_expr()))[0][0])


def store_clock(store: Store) -> dt.datetime:
    """The later of the store's last run and today: what bounds the times a question or a run may name
    (a store scored in the past can still be asked about the present, and one projected ahead about then)."""
    last, _, _ = run_state(store)
    now = utc_naive(None)
    return now if last is None else max(last, now)


def run_state(store: Store) -> tuple[dt.datetime | None, bool, str | None]:
    """(as_of of the last run, whether facts were added since, the replay's pin or None)."""
    row = _run(store, fill("SELECT as_of, watermark <> $mark, pin FROM engine_run", mark=watermark_expr()))
    return (row[0][0], bool(row[0][1]), row[0][2]) if row else (None, True, None)


def computed_at(store: Store) -> dt.datetime | None:
    """When the last engine run finished (None before the first): what tells a served store's writer and
    readers that the derived tables changed, so a snapshot must be published or reopened."""
    rows = store.con.execute("SELECT computed_at FROM engine_run").fetchall()
    found: dt.datetime | None = rows[0][0] if rows else None
    return found


def next_record_after(store: Store, t: dt.datetime) -> dt.datetime | None:
    """When the first stored record after `t` occurred: a run as of `t` did not see it (it may have been
    ingested before that run), so that run's derived tables answer questions only before this time.

    The last run keeps this for its own as_of (`engine_run.next_record`): asked on every question, it
    would otherwise scan the records' times each time. It holds until facts change, which reruns the engine.
    """
    cur = store.con.execute("SELECT * FROM engine_run")
    row = cur.fetchall()
    cols = [d[0] for d in cur.description or []]
    if row and "next_record" in cols and row[0][cols.index("as_of")] == t:
        kept: dt.datetime | None = row[0][cols.index("next_record")]
        return kept
    found = store.con.execute("SELECT min(occurred_at) FROM records WHERE occurred_at > ?", [t]).fetchall()
    return found[0][0] if found else None
