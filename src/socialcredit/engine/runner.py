"""The runner: one set-wise path from records to ledger, scores, grades, list entries and measures.

A run computes the derived tables from the append-only facts as of a time, so results depend only on
(records, retractions, rulebook versions, population, as_of), never on arrival order. It executes the
steps of the modules beside it, in order, through an executor (`socialcredit.engine.executors`): every step is
sqlglot expressions, so the same run goes to DuckDB (the store's own connection, the default) or to any
other executor. Only the incremental part (`resume.py`) reads what the store's last run left.

    ledger           load the compiled tables; bring record_entries up to date; the ledger views
    characteristics  event records → characteristic intervals → their ledger entries
    triggers         the stays records and characteristics start
    assessments      monthly: running sums, network rule, scores and grades, grade lists
    memory           barred lists end at the first blacklisting
    notifications    listings told to citizens where the city notifies
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace

import pyarrow as pa

from socialcredit.clock import RUN_HORIZON, bounded, utc_naive
from socialcredit.compiler import Compiled, compile_rulebooks
from socialcredit.engine import assessments, entries, memory, resume
from socialcredit.engine.characteristics import characteristic_entries, event_records, intervals, trigger_stays
from socialcredit.engine.context import Context, rows
from socialcredit.engine.entries import LedgerUpdate
from socialcredit.engine.executors import Executor, releasing, step
from socialcredit.engine.executors.duckdb import DuckDBExecutor
from socialcredit.engine.ledger import (
    compiled_views,
    ledger_views,
    prepared,
    record_ledger,
    record_views,
    scores_query,
)
from socialcredit.engine.runstate import store_clock, watermark_expr
from socialcredit.engine.sql import fill
from socialcredit.frames import Tabular
from socialcredit.rulebook import RulebookSet
from socialcredit.schema import TABLES, all_tables
from socialcredit.store import Store

Progress = assessments.Progress
STEPS = 7

# per process: compiles by (rulebook set, keys, pin); the set is kept beside its compile so that a recycled
# id() can never match
_COMPILED: dict[tuple[int, str, str, str], tuple[RulebookSet, Compiled]] = {}


@dataclass
class RunSummary(Tabular):  # to_arrow/to_pandas and Jupyter HTML: one row (socialcredit.frames)
    as_of: dt.datetime
    pin: str | None
    records: int
    ledger_entries: int
    list_entries: int
    assessments: int
    seconds: float
    # the time from which this run redid the monthly assessments, keeping the last run's before it (None:
    # everything was computed from the facts)
    resumed_from: dt.datetime | None = None


class Engine:
    """Runs the compiled rulebooks over the store; the only writer of the derived tables.

    `executor`: what runs the steps; by default DuckDB on the store's connection, told the number of
    citizens (its dense key) when the compiled tables are loaded.

    `handed_over`: the executor is not the store's, and its derived tables come home through the Parquet
    hand-over (`socialcredit.engine.handover`), which makes the store's ledger views itself. Then no view needs to
    score records appended after the run (the ledger is the stored rows, which the run brings up to every
    record), and the ledger views a run reads many times are computed once (`Executor.keep`).
    """

    def __init__(self, store: Store, executor: Executor | None = None, handed_over: bool = False) -> None:
        self.store = store
        self.handed_over = handed_over
        self.con = store.con
        self.catalog = store.catalog
        self._given = executor
        self.executor: Executor = executor or DuckDBExecutor(store.con)
        # the month the last `run` reassessed from, kept from the run before it; None when it recomputed everything
        self.resumed_from: dt.datetime | None = None
        self._last: dict[str, object] | None = None
        self._first_assessment: dt.datetime | None = None
        self._carried_at: dt.datetime | None = None
        # whether the last `run` started from the end state the run before stored (`engine_carry`)
        self.carried = False
        # what the last load_compiled did to the materialized record ledger
        self.ledger_update: LedgerUpdate | None = None
        self._through = -1  # the last rkey `record_entries` holds (load_compiled)

    # ------------------------------------------------------------------ entry point

    @releasing
    def run(
        self,
        as_of: dt.datetime | None = None,
        pin: str | None = None,
        progress: Progress | None = None,
        full: bool = False,
    ) -> RunSummary:
        """The derived tables as of `as_of` (under the pinned versions, if any), written in one transaction.

        `full`: compute everything from the facts, as if the store had never been scored: neither the last
        run's assessments nor its stored record ledger are kept (a resumed run gives the same tables; this
        is how a differential test makes sure each engine computed them itself)."""
        t0 = time.perf_counter()
        self.store.require_init()
        if as_of is not None:  # a projection is bounded too (socialcredit.clock): checked before any work
            as_of = bounded(as_of, "as_of", store_clock(self.store), RUN_HORIZON)
        as_of = utc_naive(as_of)
        self.prepare(pin)
        step = progress or (lambda *_: None)
        ctx, ex = self.ctx, self.executor
        state = resume.state_fingerprint(ctx)
        with self.store.engine_lock, self.store.transaction():  # one run at a time on any connection (`beside`)
            self.store.ensure_tables()
            # the store's own fingerprint (DuckDB's row hash, see resume.py), whatever executor runs the steps
            facts = resume.facts_fingerprint(replace(ctx, executor=DuckDBExecutor(self.con)))
            self._last = None if full else resume.last_run(ctx)
            earlier = None if pin else resume.earlier_rulebooks(self.store.rulebooks_before_newest, ctx)
            added = resume.rulebooks_added(ctx, self._last, facts, state, earlier)
            start = resume.resume_from(ctx, self._last, as_of, pin, facts, state, added)
            self.resumed_from = start
            if start is not None:  # load_compiled recreates state_ledger: keep last run's network entries
                ex.materialize("kept_network", resume.kept_network(), temporary=True)
            step("ledger", 1, STEPS)
            self.load_compiled(full=full, added=added)
            self.records_table(as_of)
            step("characteristics", 2, STEPS)
            self.characteristics()
            step("triggers", 3, STEPS)
            ex.materialize("trigger_stays", trigger_stays(ctx), temporary=True)
            ex.materialize("grade_stays", TABLES["list_entries"].empty(), temporary=True)
            ex.view("stays", fill("SELECT * FROM trigger_stays UNION ALL SELECT * FROM grade_stays"), temporary=True)
            step("assessments", 4, STEPS)
            n_assess = self._assessments(as_of, progress, start)
            # the loop's own stays, before memory rewrites them: what the next run resumes from
            ex.materialize("engine_grade_stays", fill("SELECT * FROM grade_stays"))
            ex.materialize("list_entries", fill("SELECT * FROM stays"))
            step("memory", 5, STEPS)
            for (after, barred), jkeys in memory.barred_pairs(ctx).items():
                ex.materialize("list_entries", memory.remembered(after, barred, jkeys))
            step("notifications", 6, STEPS)
            ex.delete("notifications", memory.listed())  # its own rows only (see `memory.listings`)
            ex.extend("notifications", memory.listings())
            # the ledger up to as_of, counted from the stored rows (load_compiled stored every record's, and a
            # cap changes points, never rows): counting through the view would pay for its running sums
            records, ledger, listed = ctx.rows(
                fill(
                    """SELECT (SELECT count(*) FROM records WHERE occurred_at <= $as_of),
                          (SELECT count(*) FROM record_entries AS e ANTI JOIN retractions AS x ON x.rkey = e.rkey
                           WHERE e.valid_from <= $as_of)
                          + (SELECT count(*) FROM state_ledger WHERE valid_from <= $as_of),
                          (SELECT count(*) FROM list_entries)""",
                    as_of=as_of,
                )
            )[0]
            ex.materialize(
                "engine_run",
                fill(
                    """SELECT CAST($as_of AS TIMESTAMP) AS as_of, CAST($pin AS VARCHAR) AS pin,
                          CAST($now AS TIMESTAMP) AS computed_at, $watermark AS watermark,
                          CAST($facts AS VARCHAR) AS facts, CAST($state AS VARCHAR) AS state,
                          CAST($first AS TIMESTAMP) AS first_assessment,
                          (SELECT min(occurred_at) FROM records WHERE occurred_at > $as_of) AS next_record,
                          CAST($carried AS TIMESTAMP) AS carried_at, $kept AS kept""",
                    as_of=as_of,
                    pin=pin,
                    now=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    watermark=watermark_expr(),
                    facts=facts,
                    state=state,
                    first=self._first_assessment,
                    carried=self._carried_at,
                    kept=resume.kept_expr(),
                ),
            )
            # the derived tables this run replaced lost their comments (the analyst reads them)
            self.store.comment_tables(tuple(t.name for t in all_tables(self.catalog) if t.derived), lost=True)
            step("done", STEPS, STEPS)
        return RunSummary(as_of, pin, int(records), int(ledger), int(listed), n_assess, time.perf_counter() - t0, start)

    def prepare(self, pin: str | None = None) -> Compiled:
        """Compile the store's rulebooks (all versions, or the one pinned) for its cities and behaviours."""
        rulebooks = self.store.rulebooks()
        pin_map = rulebooks.parse_version(pin)[1] if pin else None
        jkeys = {str(k): int(v) for k, v in rows(self.executor, fill("SELECT code, jkey FROM jurisdictions"))}
        bkeys = {str(k): int(v) for k, v in rows(self.executor, fill("SELECT code, bkey FROM behaviours"))}
        self.jkeys, self.bkeys = jkeys, bkeys
        # rulebook sets are immutable and cached by the store, so a long-lived process compiles each once
        key = (id(rulebooks), repr(sorted(jkeys.items())), repr(sorted(bkeys.items())), repr(pin_map))
        hit = _COMPILED.get(key)
        if hit is None or hit[0] is not rulebooks:
            if len(_COMPILED) >= 4:
                _COMPILED.clear()
            hit = _COMPILED[key] = (rulebooks, compile_rulebooks(rulebooks, jkeys, bkeys, pin_map))
        self.compiled = hit[1]
        self.ctx = Context(self.executor, self.compiled, self.catalog, jkeys, bkeys, through=self._through)
        return self.compiled

    # ------------------------------------------------------------------ records → ledger

    @releasing
    def load_compiled(self, store_ledger: bool = True, full: bool = False, added: resume.Added | None = None) -> None:
        """The compiled tables into the store, the record ledger brought up to date, and the ledger views.

        The tables are written only when they differ from those stored (by content): a run with unchanged
        rulebooks then pays for neither them nor the records already scored.

        Without `store_ledger` the stored record ledger is left as it is and the view scores every record
        it does not cover on the fly: a reading that only needs scores (`scores`, as the engine benchmark's
        cold path takes it) should not pay for writing millions of rows that only later runs would read.
        `full`: the stored record ledger is not kept either; every record is scored into a new one. `added`:
        rulebook versions added since the last run, whose records before their first day keep their rows.
        """
        ctx = self.ctx
        if self._given is None:  # DuckDB's own: dense integer citizen keys let it use perfect hash tables
            n = ctx.scalar(fill("SELECT coalesce(max(ckey), 0) + 1 FROM citizens"))
            self.executor = ctx.executor = DuckDBExecutor(self.con, dense_keys=int(n))
        ex = self.executor
        self.store.ensure_tables(("record_entries", "record_entries_built"))  # what `built` reads
        prep = prepared(ctx)
        made = None if full else entries.built(ctx)
        # a handed-over executor starts with the facts and the last run's tables, never the compiled ones
        if made is None or made[1] != prep.loaded or self.handed_over:
            for name, table in prep.tables.items():
                ex.load(name, table)
            # the compiled scoring query as views, for records appended after this (not for a hand-over: Spark
            # analyses a view's query when it is made, seconds for this one, and no reader of the store sees it)
            for name, query in () if self.handed_over else (*record_views(-1), *compiled_views(ctx)):
                ex.view(name, query)
        ex.materialize("state_ledger", TABLES["state_ledger"].empty())
        if store_ledger:
            self.ledger_update, through, seen = entries.update(ctx, prep, made, not self.handed_over, added)
            ex.materialize("record_entries_built", entries.built_row(prep, through, seen))  # type: ignore[arg-type]
        else:
            self.ledger_update, through = None, entries.usable_through(ctx, prep.ledger, made)
        self._through = ctx.through = through
        for name, query in ledger_views(ctx, stored_only=self.handed_over and store_ledger):
            ex.view(name, query)

    def ledger_fingerprint(self) -> str:
        """Everything a record's ledger rows depend on besides the record: the SQL that scores it and the
        tables that SQL joins, by content (caps and retractions are not in it: the view applies them)."""
        return prepared(self.ctx).ledger

    def attributes_used(self) -> list[str]:
        return prepared(self.ctx).attributes

    @releasing
    def scores(self, as_of: dt.datetime | None = None) -> pa.Table:
        """Every citizen's score at `as_of` straight from the ledger (compiled tables must be loaded).

        It reads the stored record entries, so it costs a scan of the rows in force, not a scoring of every
        record: one aggregation by citizen over the citizens and the record ledger in force, with the state
        ledger (few rows) summed apart (see `ledger.scores_query`).
        """
        t = utc_naive(as_of)
        top = self.ctx.scalar(fill("SELECT coalesce(max(ckey), 0) FROM citizens"))
        return self.executor.fetch(scores_query(self.ctx, t, int(top)))

    # ------------------------------------------------------------------ characteristics and triggers

    def records_table(self, as_of: dt.datetime) -> None:
        """The records that set characteristics or trigger lists (`recs`), with their epoch."""
        self.executor.materialize("recs", event_records(self.ctx, as_of), temporary=True)

    def characteristics(self) -> None:
        """The characteristic intervals (from `recs`) and their state ledger entries."""
        self.executor.materialize("characteristic_intervals", intervals(self.ctx))
        if (made := characteristic_entries(self.ctx)) is not None:
            self.executor.load("state_rules", made[0], temporary=True)
            self.executor.extend("state_ledger", made[1])

    # ------------------------------------------------------------------ monthly assessments

    def _assess_everyone(self, needed: bool) -> bool:
        """Whether a month assesses every citizen (`needed`: no state was kept from an earlier month, or the
        rulebook versions changed) rather than those who moved. One place to decide it, so a test can make
        every month assess everyone and compare."""
        return needed

    def _assessments(self, as_of: dt.datetime, progress: Progress | None, start: dt.datetime | None = None) -> int:
        """Monthly assessments (see `assessments.py`). With `start` (see `resume.resume_from`) the assessments
        before it are kept from the last run and the loop restarts at the first one at or after it, from
        the state it carried."""
        ctx, ex, c = self.ctx, self.executor, self.compiled
        # the first entry's time, from the stored rows: a cap changes points, never times
        first = ctx.scalar(
            fill(
                """SELECT min(valid_from) FROM (
                   SELECT e.valid_from FROM record_entries AS e ANTI JOIN retractions AS x ON x.rkey = e.rkey
                   UNION ALL SELECT valid_from FROM state_ledger WHERE source <> 'network') AS v
               WHERE valid_from <= $as_of""",
                as_of=as_of,
            )
        )
        starts = [s.start for s in c.segments if s.start is not None]
        begin = min([x for x in (first, min(starts) if starts else None) if x is not None], default=None)
        if first is not None and starts:
            begin = max(first, min(starts))
        periods = assessments.months(begin, as_of) if c.segments else []
        # resuming needs at least one kept month (period 0 always runs and starts the network rule's check)
        p0 = 0 if start is None else next((p for p, t in enumerate(periods) if t >= start), len(periods))
        # the first assessment moves when the first ledger entry arrives or an earlier one is back-dated:
        # then the kept months are not this run's months
        self._first_assessment = periods[0] if periods else None
        last_first = self._last["first_assessment"] if self._last else None
        if not periods or periods[0] != last_first:
            p0 = 0
        if not p0:
            self.resumed_from = None
        # the kept part ends at that period; with none left to redo, after everything the last run wrote
        t0 = periods[p0] if p0 < len(periods) else assessments.FAR
        if not p0:
            ex.materialize("score_log", TABLES["score_log"].empty())
        elif ctx.scalar(resume.score_log_from(t0)):  # kept as it is when nothing in it is redone
            ex.materialize("score_log", resume.score_log_before(t0))
        self._carried_at = None
        if not periods:  # nothing carried (engine_run.carried_at is NULL)
            ex.materialize("engine_carry", TABLES["engine_carry"].empty())
            ex.materialize("engine_pending", TABLES["engine_pending"].empty())
            return 0
        # the carried state, when the last run ended at the month before p0: then only the changes from p0 on
        carried_at = self._last["carried_at"] if self._last else None
        carried = self.carried = bool(p0) and carried_at == periods[p0 - 1]
        self._deltas(as_of, periods, periods[p0 - 1] if carried else None)
        if not p0:  # otherwise `_restore` makes it from what the last run left
            ex.materialize("engine_carry", assessments.start_state())
        network = any(
            r.characteristic and self.catalog.characteristics[r.characteristic].kind == "network"
            for s in c.segments
            for r in s.rulebook.rules
        )
        loop = assessments.MonthLoop(ctx, periods, network, self._assess_everyone)
        busy = loop.busy()  # before the kept stays come back: their times were the last run's
        if p0:
            loop.listed_any = self._restore(loop, p0, t0, carried) and network
        # the versions in force when the kept state was made: a resumed run's first month need not assess
        # everyone unless they changed since
        kept_segs = ctx.segments_at(periods[p0 - 1]) if p0 else None
        done = loop.run(p0, kept_segs, progress, busy)
        # the loop's state after the last month (the skipped months change nothing) is where the next run starts:
        # it is `engine_carry` itself, so only its month is written (`engine_run.carried_at`)
        self._carried_at = periods[-1]
        return done

    def _deltas(self, as_of: dt.datetime, periods: list[dt.datetime], carried: dt.datetime | None) -> None:
        """The change each ledger entry makes to a citizen's running sum at the first assessment that sees it;
        and the record entries' expiries after the last month, for the next run.

        With the month the carry holds, only the changes after it, without reading the history: the entries
        valid from after it (records through the view restricted to them), the expiries of earlier record
        entries the last run stored (their points and ends are fixed: a new record lies after the carry,
        and a cap's running sum only moves the rows after it), and the characteristic entries (recomputed
        every run, few; a new clearing record can end an earlier one).
        """
        ex = self.executor
        # the run stored every record's rows (load_compiled), so the on-the-fly part has nothing to score: read
        # without it, no statement plans the compiled scoring query (the sample's deltas and pending: 383 -> 25 ms)
        stored = self.ledger_update is not None
        if carried is None:
            ledger = assessments.run_ledger(record_ledger(self.ctx, stored_only=stored), as_of)
            ex.view("run_ledger", ledger, temporary=True)
            if self.handed_over:  # the loop adds network entries only, which it leaves out: its rows are fixed
                ex.keep("run_ledger")
            ex.materialize("deltas", assessments.deltas_full(periods), temporary=True)
            ex.materialize("engine_pending", assessments.pending_full(periods))
            return
        recent = record_ledger(self.ctx, carried, stored_only=stored)
        ex.materialize("ev", assessments.events_carried(recent, as_of, carried), temporary=True)
        ex.materialize("deltas", assessments.deltas_carried(periods), temporary=True)
        ex.delete("engine_pending", step(assessments.pending_spent, periods[-1]))
        ex.extend("engine_pending", step(assessments.pending_new, periods[-1]))

    def _restore(self, loop: assessments.MonthLoop, p0: int, t0: dt.datetime, carried: bool) -> bool:
        """The loop's carried state at the start of period `p0` (the first at or after `t0`), as the last run
        left it; whether any blacklist stay exists by then (the network rule runs every month from the first).

        Grade stays are the loop's own (before memory rewrote them), open if they ended at p0 or later; the
        network entries of earlier months were kept by `run`; and a stay with a minimum length wakes the
        months from its due date on, as when it was entered.
        """
        ex = self.executor
        if not carried:  # else the last run's end state is in place: the month loop goes on from it as it is
            ex.materialize("engine_carry", resume.restored_state(p0))
        ex.extend("state_ledger", resume.restored_network(t0))
        ex.extend("grade_stays", resume.restored_grade_stays(t0))
        for due in resume.minimum_stays_due(self.ctx, t0):
            loop.wake_at(due)
        return int(self.ctx.scalar(fill("SELECT count(*) FROM stays WHERE kind = 'blacklist'"))) > 0
