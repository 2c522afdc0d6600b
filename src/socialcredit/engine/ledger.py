"""Records → ledger: the compiled tables, the rows of `record_entries`, the ledger views and scores.

Records are scored by the compiled decision tables (`compiler.record_ledger_query`) into `record_entries`,
an append-only table each run extends with the rows of the records appended since; retractions and caps
are applied by the `record_ledger` view over it, so they show at once and stay right for back-dated
records. Everything here is a sqlglot expression; `store.py`'s runner decides when to write what.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from socialcredit.clock import cst_year_start
from socialcredit.compiler import Compiled, columns, record_ledger_query, to_sql
from socialcredit.engine.context import Context
from socialcredit.engine.sql import case_by_jkey, cst_shift, fill, isin, score_expr, valid_at, value

# bump when the meaning of a row of `record_entries` changes: the next run then rebuilds it
LEDGER_FORMAT = "4"  # 4: validity months on the CST calendar
CITY_SHIFT = 40  # scores sums a citizen's city and points in one BIGINT
ENTRY_COLUMNS = ("ckey", "jkey", "epoch", "rkey", "bkey", "piece", "points", "valid_from", "valid_to")
# the compiled scoring query over the records no stored row covers, and over a batch being stored: views made
# when the compiled tables are loaded (once per compile, not per run: generating the compiled query's SQL
# costs more than running it on a month's records); each run only moves the bounds of the record views
LIVE_VIEW = "record_entries_unscored"
BATCH_VIEW = "record_entries_batch"
SCORED_LEDGER = "scored_ledger"  # the ledger of the stored rows alone (see `ledger_views`)


@dataclass(frozen=True)
class Prepared:
    """What one compile loads and runs, made once per compile (and shared by the runs of one process)."""

    tables: dict[str, pa.Table]
    ledger: str  # ledger_fingerprint
    loaded: str  # every table loaded, and the ledger fingerprint
    # the record ledger's rows over all records, over those no stored row covers yet (the view
    # `records_unscored`) and over a batch being stored (`records_batch`): building the query costs more
    # than running it on a month's records
    entries_all: exp.Expression
    entries_unscored: exp.Expression
    entries_batch: exp.Expression
    attributes: list[str]


def _digest(parts: list[str], tables: dict[str, pa.Table], names: Iterable[str]) -> str:
    """sha256 of some text and of tables by content (their Arrow IPC bytes)."""
    h = hashlib.sha256("\x00".join(parts).encode())
    for name in names:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tables[name].schema) as writer:
            writer.write_table(tables[name])
        h.update(name.encode())
        h.update(sink.getvalue())
    return h.hexdigest()


_PREPARED: dict[int, tuple[Compiled, Prepared]] = {}


def prepared(ctx: Context) -> Prepared:
    """The small tables the compiled SQL joins, the queries that score records, and their fingerprints."""
    c = ctx.compiled
    hit = _PREPARED.get(id(c))
    if hit is not None and hit[0] is c:
        return hit[1]
    seg = pa.table(
        {
            "jkey": pa.array([s.jkey for s in c.segments], pa.int16()),
            "epoch": pa.array([s.epoch for s in c.segments], pa.int32()),
            "version": [s.rulebook.version for s in c.segments],
            "start": pa.array([s.start for s in c.segments], pa.timestamp("us")),
            "end": pa.array([s.end for s in c.segments], pa.timestamp("us")),
            "notify": [s.rulebook.disclosure.notify_citizens for s in c.segments],
            **c._bound_columns([(s.jkey, s.epoch) for s in c.segments]),
        }
    )
    tables = {
        "dt_params": c.params_table(),
        "dt_buckets": c.buckets_table(),
        "dt_cells": c.cells_table(),
        "pieces": c.pieces_table(),
        "general_rules": c.general_table(),
        "segments": seg,
        "caps": caps_table(ctx),
    }
    entries = entries_query(record_ledger_query(c, "records"))
    # what a record's rows depend on besides the record: the SQL that scores it and the tables it joins
    # (caps and retractions are not: the view applies them); and what the loaded tables are
    ledger = _digest(
        [LEDGER_FORMAT, to_sql(entries.copy())], tables, ("dt_params", "dt_buckets", "dt_cells", "general_rules")
    )
    prep = Prepared(
        tables,
        ledger,
        _digest([LEDGER_FORMAT, ledger], tables, sorted(tables)),
        entries,
        entries_query(record_ledger_query(c, "records_unscored")),
        entries_query(record_ledger_query(c, "records_batch")),
        attributes_used(ctx),
    )
    if len(_PREPARED) >= 4:
        _PREPARED.clear()
    _PREPARED[id(c)] = (c, prep)
    return prep


def entries_query(query: exp.Expression) -> exp.Expression:
    """Rows of `record_entries` from a record_ledger_query: its validity as an end time.

    A validity in months counts on the CST calendar (SPEC §5), as caps and assessments do: a month from
    1 May 00:30 CST ends 1 June 00:30 CST, so the months are added to the CST wall time, not to UTC (where
    that record sits on 30 April and its month would end on 30 May)."""
    return fill(
        """SELECT q.ckey, q.jkey, q.epoch, q.rkey, q.bkey, q.piece, q.points, q.occurred_at AS valid_from,
                  CASE WHEN q.vf_months IS NULL THEN NULL
                       ELSE q.occurred_at + $cst + INTERVAL (q.vf_months) MONTH + INTERVAL (q.vf_days) DAY - $cst
                  END AS valid_to
           FROM __scored AS q""",
        scored=query,
        cst=cst_shift(),
    )


def caps_table(ctx: Context) -> pa.Table:
    rows = [
        (s.jkey, s.epoch, ctx.bkeys[cap.behaviour], cap.per, cap.max, cap.min)
        for s in ctx.compiled.segments
        for cap in s.rulebook.caps
    ]
    cols = columns(rows, 6)
    return pa.table({
        "jkey": pa.array(cols[0], pa.int16()), "epoch": pa.array(cols[1], pa.int32()),
        "bkey": pa.array(cols[2], pa.int16()), "per": pa.array(cols[3], pa.string()),
        "hi": pa.array(cols[4], pa.int32()), "lo": pa.array(cols[5], pa.int32()),
    })  # fmt: skip


def attributes_used(ctx: Context) -> list[str]:
    """The record attributes some rule, trigger or characteristic reads."""
    names: set[str] = {d for d in ctx.compiled.dims if d}
    for seg in ctx.compiled.segments:
        for tree in seg.rulebook.conditions.values():
            names |= {col.name for col in tree.find_all(exp.Column)}
    for ch in ctx.catalog.characteristics.values():
        names |= set(ch.attributes) | ({ch.term_attribute} if ch.term_attribute else set())
    return sorted(names & set(ctx.catalog.attributes))


def _stored() -> exp.Expression:
    return exp.select(*ENTRY_COLUMNS).from_("record_entries")


def record_ledger(ctx: Context, after: dt.datetime | None = None, stored_only: bool = False) -> exp.Expression:
    """The record part of the ledger: the path every score takes.

    The rows of records up to `ctx.through` are read from `record_entries`; those of any record appended
    since (the view `records_unscored`) are computed by the same query on the fly, so the view never lags
    the records. Retractions are applied here, as an anti join (`ANTI JOIN`, which DuckDB and Spark both
    read; a NOT EXISTS over this UNION ALL would make DuckDB materialize the union and mark-join it, three
    times slower), so a withdrawal shows at once and the stored rows stay append-only. Behaviours under
    a cap go through a running sum per cap period (CST calendar), clamped, over all of their rows, so a
    back-dated record moves the later ones; the rest do not pay for that window.

    With `after`, only the rows valid from after it, each as in the whole view: a capped row's running
    sum starts from the sum of its cap period's rows up to `after` (a grouping of those rows, all in the
    CST year `after` falls in: no cap period is longer), then runs over the rows after it.

    With `stored_only`, for a caller that has just stored every record's rows, without the on-the-fly part.
    """
    live = exp.select(*ENTRY_COLUMNS).from_(LIVE_VIEW)
    if stored_only:
        union = _stored()
    elif ctx.through >= 0:
        union = exp.union(_stored(), live, distinct=False)
    else:
        union = live
    capped = sorted({ctx.bkeys[cap.behaviour] for s in ctx.compiled.segments for cap in s.rulebook.caps})

    def entries(where: exp.Expression | exp.Condition) -> exp.Expression:
        return fill(
            """SELECT e.ckey, e.jkey, e.epoch, 'record' AS source, e.rkey, e.bkey,
                      CAST(NULL AS VARCHAR) AS characteristic, e.piece, e.points, e.valid_from, e.valid_to
               FROM __union AS e ANTI JOIN retractions AS x ON x.rkey = e.rkey
               WHERE $where""",
            union=union.copy(),
            where=where,
        )

    recent: exp.Expression = exp.true()
    since: exp.Expression = exp.true()
    if after is not None:
        recent = exp.column("valid_from", table="e") > value(after)
        since = exp.column("valid_from", table="e") >= value(cst_year_start(after))
    if not capped:
        return entries(recent)
    in_capped = isin(exp.column("bkey", table="e"), capped)
    # a capped row's points: what the running sum of its cap period gains by it, clamped to the cap
    clamp = fill("""least(greatest(cum, coalesce(lo, cum)), coalesce(hi, cum))
                    - least(greatest(cum - points, coalesce(lo, cum - points)), coalesce(hi, cum - points))""")
    period = fill("date_trunc(coalesce(c.per, 'year'), e.valid_from + $cst)", cst=cst_shift())
    # Each part reads only its own rows: the uncapped rows valid from after `after`, and the capped rows after it
    # too, whose running sums then start from what their cap period held by then (`held`: the sum of its earlier
    # rows, a grouping; a window over every capped row of the year cost 0.47 s of CPU in a December at a
    # million citizens, where the capped behaviours are two thirds of the rows). Without `after`, every row.
    running = fill(
        """SELECT e.*, c.hi, c.lo, $held + sum(e.points) OVER (
               PARTITION BY e.ckey, e.bkey, $period
               ORDER BY e.valid_from, e.rkey, e.piece ROWS UNBOUNDED PRECEDING) AS cum
           FROM __capped AS e LEFT JOIN caps AS c USING (jkey, epoch, bkey)""",
        capped=entries(exp.and_(in_capped.copy(), recent.copy())),
        held=fill("coalesce(b.held, 0)") if after is not None else exp.Literal.number(0),
        period=period.copy(),
    )
    if after is not None:
        held = fill(
            """SELECT e.ckey, e.bkey, $period AS period, sum(e.points) AS held
               FROM __before AS e SEMI JOIN __capped AS n ON n.ckey = e.ckey AND n.bkey = e.bkey
               LEFT JOIN caps AS c USING (jkey, epoch, bkey) GROUP BY ALL""",
            before=entries(exp.and_(in_capped.copy(), since, exp.not_(recent.copy()))),
            capped=entries(exp.and_(in_capped.copy(), recent.copy())),
            period=period.copy(),
        )
        assert isinstance(running, exp.Select)
        running = running.join(
            exp.Subquery(this=held, alias=exp.TableAlias(this=exp.to_identifier("b"))),
            on=fill("b.ckey = e.ckey AND b.bkey = e.bkey AND b.period = $period", period=period.copy()),
            join_type="LEFT",
            copy=False,
        )
    return fill(
        """SELECT * FROM __uncapped AS q
           UNION ALL
           SELECT ckey, jkey, epoch, source, rkey, bkey, characteristic, piece, CAST($clamp AS INT) AS points,
                  valid_from, valid_to
           FROM __running AS w""",
        uncapped=entries(exp.and_(exp.not_(in_capped), recent)),
        running=running,
        clamp=clamp,
    )


def record_views(
    through: int, top: int | None = None, since: dt.datetime | None = None
) -> list[tuple[str, exp.Expression]]:
    """The records no stored row covers (after `through`), and the batch being stored (through `top`, and
    with `since` the covered ones from that time on, which new rulebook versions score anew)."""
    unscored = fill("SELECT * FROM records WHERE rkey > $through", through=int(through))
    batch = fill(
        "SELECT * FROM records WHERE rkey <= $top AND ($redo)",
        top=int(through if top is None else top),
        redo=redone(through, since),
    )
    return [("records_unscored", unscored), ("records_batch", batch)]


def redone(through: int, since: dt.datetime | None) -> exp.Expression:
    """Which records a ledger update scores: those after `through`, and with `since` those from that time on."""
    after = fill("rkey > $after", after=int(through))
    return after if since is None else exp.Or(this=after, expression=fill("occurred_at >= $since", since=since))


def compiled_views(ctx: Context) -> list[tuple[str, exp.Expression]]:
    """The compiled scoring query over the record views (made when the compiled tables are loaded)."""
    prep = prepared(ctx)
    return [(LIVE_VIEW, prep.entries_unscored.copy()), (BATCH_VIEW, prep.entries_batch.copy())]


def ledger_views(ctx: Context, stored_only: bool = False) -> list[tuple[str, exp.Expression]]:
    """The stored views over the ledger (other connections to the store read the ledger through them).

    `stored_only`: for a run whose ledger never serves another connection (an executor whose tables come home
    through the hand-over): the record ledger is the stored rows alone, which the run has just brought up to
    every record, so no view carries the compiled scoring query (an engine that plans a view each time it is
    read would plan that query again at every statement).

    `scored_ledger` is the ledger over the stored rows alone, whatever `stored_only` says: while no record is
    unscored it holds exactly `ledger`'s rows, and one citizen's total through it took DuckDB ~6 ms where
    `ledger`, which carries the compiled query for records appended since, took ~21 ms (mostly planning). The read
    model picks it when `records_unscored` is empty (`standings.ledger_table`)."""
    return [
        record_views(ctx.through)[0],
        ("record_ledger", record_ledger(ctx, stored_only=stored_only)),
        ("ledger", fill("SELECT * FROM record_ledger UNION ALL SELECT * FROM state_ledger")),
        (SCORED_LEDGER, scored_ledger(ctx, stored_only)),
    ]


def scored_ledger(ctx: Context, stored_only: bool = False) -> exp.Expression:
    """The ledger of the stored rows alone: the record rows `record_entries` holds (none before a first run
    stored any: the table may not even exist where an executor was handed only the facts) and the state
    ledger."""
    if ctx.through < 0 and not stored_only:
        return fill("SELECT * FROM state_ledger")
    return fill(
        "SELECT * FROM __stored AS r UNION ALL SELECT * FROM state_ledger",
        stored=record_ledger(ctx, stored_only=True),
    )


def in_force(t: dt.datetime) -> exp.Expression:
    """Ledger rows that count at `t`."""
    return valid_at(t)


def scores_query(ctx: Context, t: dt.datetime, top: int) -> exp.Expression:
    """Every citizen's score at `t` from the ledger in one aggregation by citizen (see Engine.scores).

    The city rides in the same BIGINT sum as (jkey + 1) << 40 from the citizen's row (a citizen's points
    stay far below 2^39); the bound on ckey gives DuckDB back the statistics the UNION ALL hides.
    """
    city = fill("((a.total + $half) >> $shift)", half=1 << (CITY_SHIFT - 1), shift=CITY_SHIFT)
    points = fill("a.pts + coalesce(s.pts, 0)")
    score = case_by_jkey(ctx.segments_at(t), lambda rb: score_expr(rb, points.copy()), "a.jkey")
    return fill(
        """SELECT a.ckey, CAST($score AS INT) AS score FROM (
               SELECT ckey, $city - 1 AS jkey, a.total - ($city << $shift) AS pts FROM (
                   SELECT ckey, sum(v) AS total FROM (
                       SELECT ckey, CAST(jkey + 1 AS BIGINT) << $shift AS v FROM citizens
                       UNION ALL SELECT ckey, CAST(points AS BIGINT) FROM record_ledger WHERE $in_force) AS u
                   WHERE ckey BETWEEN 0 AND $top GROUP BY ckey) AS a) AS a
           LEFT JOIN (SELECT ckey, sum(CAST(points AS BIGINT)) AS pts FROM state_ledger WHERE $in_force
                      GROUP BY ckey) AS s USING (ckey)""",
        score=score,
        city=city,
        shift=CITY_SHIFT,
        in_force=in_force(t),
        top=int(top),
    )
