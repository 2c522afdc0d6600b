"""The engine: one set-wise path from records to ledger, scores, grades, list entries and measures.

A run computes the derived tables from the append-only facts as of a time, so results depend only
on (records, retractions, rulebook versions, population, as_of), never on arrival order. When only
records were appended since the last run (and as_of did not go back), it keeps the monthly
assessments before the earliest new record and redoes the rest from the state they carried; the
result is the same as a full run's (tests/test_incremental.py), at one month's cost instead of all.
Records are scored by the compiled decision tables into `record_entries`, an append-only table that
each run extends with the rows of the records appended since (a record's rows depend on nothing
else while the compiled rulebooks stay the same; any change to them rebuilds it whole); retractions
and caps are applied by the `record_ledger` view over it, so they show at once and stay right for
back-dated records. Characteristics give points while they hold; grades are
assessed at the start of every month (CST), when grade lists are entered and left and the network
rule reads contacts' list status as it stood before that assessment (the one-step lag of SPEC §5).

Every step is a handful of statements over whole tables, whatever the number of cities, versions
and rules: rules that hold in several (city, epoch) segments are run once against a small table of
those segments. This module is long because the steps share one run's state; each is one method.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from socialcredit.clock import RUN_HORIZON, bounded
from socialcredit.compiler import (
    CST,
    Compiled,
    columns,
    compile_rulebooks,
    condition_sql,
    epoch_expr,
    record_ledger_query,
    to_sql,
)
from socialcredit.frames import Tabular
from socialcredit.ingest import SQL_TYPES, q
from socialcredit.rulebook import Rulebook, RulebookSet, add_duration, duration_parts
from socialcredit.store import Store

Progress = Callable[[str, int, int], None]
STEPS = 7
# bump when the meaning of the stored derived tables changes: the next run then recomputes fully
INCREMENTAL_FORMAT = "1"
# bump when the meaning of a row of `record_entries` changes: the next run then rebuilds it
LEDGER_FORMAT = "1"
CITY_SHIFT = 40  # Engine.scores sums a citizen's city and points in one BIGINT
ENTRY_COLUMNS = "ckey, jkey, epoch, rkey, bkey, piece, points, valid_from, valid_to"


def utc_naive(t: dt.datetime | None) -> dt.datetime:
    if t is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    if t.tzinfo is None:
        return t
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def month_start_utc(t_utc: dt.datetime) -> dt.datetime:
    local = t_utc.replace(tzinfo=dt.UTC).astimezone(CST)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.UTC).replace(tzinfo=None)


def next_month_utc(t_utc: dt.datetime) -> dt.datetime:
    local = t_utc.replace(tzinfo=dt.UTC).astimezone(CST)
    y, m = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return dt.datetime(y, m, 1, tzinfo=CST).astimezone(dt.UTC).replace(tzinfo=None)


def interval_sql(duration: str) -> str:
    n, unit = duration_parts(duration)
    return f"INTERVAL {n} {unit.upper()}"


def lit(v: object) -> str:
    """A SQL literal for values the engine itself produces (times, codes, numbers), never rulebook text."""
    if v is None:
        return "NULL"
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v:%Y-%m-%d %H:%M:%S}'"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def in_force(pairs: Iterable[tuple[int, int]], alias: str) -> str:
    """`(jkey, epoch) IN (…)` for the segments a rule holds in."""
    items = ", ".join(f"({j}, {e})" for j, e in sorted(set(pairs)))
    return f"({alias}.jkey, {alias}.epoch) IN ({items})"


@dataclass
class LedgerUpdate:
    """What bringing `record_entries` up to date cost: whether it was rebuilt, how many records were scored
    (those appended since, or all) and how many rows they added."""

    rebuilt: bool
    records: int
    entries: int
    seconds: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class _Prepared:
    tables: dict[str, pa.Table]
    ledger: str  # Engine.ledger_fingerprint
    loaded: str  # every table loaded, and the ledger fingerprint
    # the record ledger's rows as SQL over all records, over those no stored row covers yet (the view
    # `records_unscored`) and over a batch being stored (`records_batch`): made once per compile, since
    # building the query costs more than running it on a month's records; the views carry the rkey bounds
    entries_all: str
    entries_unscored: str
    entries_batch: str
    attributes: list[str]  # Engine.attributes_used


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


# per process: compiles by (rulebook set, keys, pin), and what each compile loads; the set or compile is kept
# beside its entry so that a recycled id() can never match
_COMPILED: dict[tuple[int, str, str, str], tuple[RulebookSet, Compiled]] = {}
_PREPARED: dict[int, tuple[Compiled, _Prepared]] = {}


@dataclass
class RunSummary(Tabular):  # to_arrow/to_pandas and Jupyter HTML: one row (socialcredit.frames)
    as_of: dt.datetime
    pin: str | None
    records: int
    ledger_entries: int
    list_entries: int
    assessments: int
    seconds: float


class Engine:
    """Runs the compiled rulebooks over the store; the only writer of the derived tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.con = store.con
        self.catalog = store.catalog
        # the month the last `run` reassessed from, kept from the run before it; None when it recomputed everything
        self.resumed_from: dt.datetime | None = None
        self._last_first: dt.datetime | None = None  # the last run's first assessment
        self._first_assessment: dt.datetime | None = None
        # whether the last `run` started from the end state the run before stored (`engine_carry`)
        self.carried = False
        # what the last load_compiled did to the materialized record ledger
        self.ledger_update: LedgerUpdate | None = None
        self._records_seen = 0
        self._through = -1  # the last rkey `record_entries` holds (load_compiled)

    # ------------------------------------------------------------------ entry point

    def run(
        self, as_of: dt.datetime | None = None, pin: str | None = None, progress: Progress | None = None
    ) -> RunSummary:
        t0 = time.perf_counter()
        self.store.require_init()
        if as_of is not None:  # a projection is bounded too (socialcredit.clock): checked before any work
            as_of = bounded(as_of, "as_of", store_clock(self.store), RUN_HORIZON)
        as_of = utc_naive(as_of)
        self.prepare(pin)
        step = progress or (lambda *_: None)
        state = self._state_fingerprint()
        with self.store.transaction():
            facts = self._facts()
            resume = self._resume_from(as_of, pin, facts, state)
            self.resumed_from = resume
            if resume is not None:  # load_compiled recreates state_ledger: keep last run's network entries
                self.con.execute(
                    "CREATE OR REPLACE TEMP TABLE kept_network AS SELECT * FROM state_ledger WHERE source = 'network'"
                )
            step("ledger", 1, STEPS)
            self.load_compiled()
            self.records_table(as_of)
            step("characteristics", 2, STEPS)
            self._characteristics()
            self._characteristic_ledger()
            step("triggers", 3, STEPS)
            self._trigger_entries()
            step("assessments", 4, STEPS)
            n_assess = self._assessments(as_of, progress, resume)
            # the loop's own stays, before memory rewrites them: what the next run resumes from
            self.con.execute(
                "CREATE OR REPLACE TABLE engine_grade_stays AS SELECT * FROM list_entries WHERE cause = 'grade'"
            )
            step("memory", 5, STEPS)
            self._memory()
            step("notifications", 6, STEPS)
            self._notifications()
            # the ledger up to as_of, counted from the stored rows (load_compiled stored every record's, and a
            # cap changes points, never rows): counting through the view would pay for its running sums
            upto = f"valid_from <= {lit(as_of)}"
            records, ledger, entries = self.con.execute(
                f"SELECT (SELECT count(*) FROM records WHERE occurred_at <= {lit(as_of)}), "
                f"(SELECT count(*) FROM record_entries e ANTI JOIN retractions x ON x.rkey = e.rkey WHERE {upto}) "
                f"+ (SELECT count(*) FROM state_ledger WHERE {upto}), (SELECT count(*) FROM list_entries)"
            ).fetchall()[0]
            self.con.execute(
                "CREATE OR REPLACE TABLE engine_run AS SELECT ? AS as_of, ? AS pin, now()::TIMESTAMP AS computed_at, "
                "? AS watermark, ? AS facts, ? AS state, ?::TIMESTAMP AS first_assessment, "
                "(SELECT min(occurred_at) FROM records WHERE occurred_at > ?) AS next_record",
                [as_of, pin, watermark(self.store), facts, state, self._first_assessment, as_of],
            )
            step("done", STEPS, STEPS)
        return RunSummary(as_of, pin, records, ledger, entries, n_assess, time.perf_counter() - t0)

    # ------------------------------------------------------------------ incremental runs

    def _state_fingerprint(self) -> str:
        """What the stored derived tables depend on besides the facts: the compiled rulebooks and this code.

        A run resumes from the last one only when this is unchanged, so a new catalog or engine version
        can never mix its results with an older run's.
        """
        c = self.compiled
        parts = [
            INCREMENTAL_FORMAT,
            self.ledger_fingerprint(),
            repr([(s.jkey, s.epoch, s.rulebook.version, s.start, s.end) for s in c.segments]),
            repr(sorted((k, v.model_dump_json()) for k, v in self.catalog.characteristics.items())),
        ]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def _facts(self) -> str:
        """The facts other than records: a run resumes only when none of them changed.

        Counts alone miss a rewired contact graph (same number of ties) or a citizen moved to another
        city, and either changes past network points or scores; an order-independent sum of row hashes
        costs one scan of each table.
        """
        return str(
            self.con.execute(
                "SELECT (SELECT count(*) FROM retractions) || ',' || "
                "(SELECT count(*) FROM rulebook_versions) || ',' || "
                "(SELECT count(*) || ':' || coalesce(sum(hash(c)::HUGEINT), 0)::VARCHAR FROM citizens c) || ',' || "
                "(SELECT count(*) || ':' || coalesce(sum(hash(r)::HUGEINT), 0)::VARCHAR FROM relations r)"
            ).fetchall()[0][0]
        )

    def _resume_from(self, as_of: dt.datetime, pin: str | None, facts: str, state: str) -> dt.datetime | None:
        """A time before which no assessment can change (the first one at or after it is redone), or None for
        a full recompute.

        Only appended records (higher rkeys) and a later as_of are resumable. A new record changes ledger
        entries from its own time on (a cap's running sum only after it; a clearing record only ends an
        interval at its time; a trigger's stay starts then), so assessments before it stand; records that
        existed but lay after the last as_of enter after it, where the last run stopped.
        """
        if pin is not None or not self._has_resumable_state():
            return None
        rows = self.con.execute(
            "SELECT as_of, pin, watermark, facts, state, first_assessment FROM engine_run"
        ).fetchall()
        if len(rows) != 1:
            return None
        last_as_of, last_pin, mark, last_facts, last_state, self._last_first = rows[0]
        if last_pin is not None or last_state != state or last_facts != facts or last_as_of > as_of:
            return None
        top = int(str(mark).split(",")[0])
        if int(self.con.execute("SELECT coalesce(max(rkey), -1) FROM records").fetchall()[0][0]) < top:
            return None
        if not self._segments_contiguous():
            return None
        first_new = self.con.execute(
            f"SELECT min(occurred_at) FROM records WHERE rkey > {top} AND occurred_at <= {lit(as_of)}"
        ).fetchall()[0][0]
        # an assessment at t sees what happened at or before t, so the first one to redo is the first at or
        # after the earliest new record, or the first after the last as_of (those the last run did not do)
        resume = last_as_of + dt.timedelta(microseconds=1)
        return resume if first_new is None else min(resume, first_new)

    def _has_resumable_state(self) -> bool:
        need = {
            "engine_run": "first_assessment",
            "engine_grade_stays": "cause",
            "score_log": "ckey",
            "state_ledger": "source",
        }
        return self._has_columns(need)

    def _has_columns(self, need: dict[str, str]) -> bool:
        """Whether this store has each table (key) with its column (value): state tables of earlier runs,
        absent before the first run and in stores written before they existed."""
        found = self.con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
            "AND (table_name, column_name) IN (SELECT unnest(?), unnest(?))",
            [list(need), list(need.values())],
        ).fetchall()[0][0]
        return int(found) == len(need)

    def _segments_contiguous(self) -> bool:
        """Each city's rulebook, once in force, stays in force: then a citizen's last logged score is their
        current one (the log never records a score turning NULL), which resuming relies on."""
        by_j: dict[int, list] = {}
        for seg in self.compiled.segments:
            by_j.setdefault(seg.jkey, []).append(seg)
        for segs in by_j.values():
            segs.sort(key=lambda s: (s.start is not None, s.start))
            if segs[-1].end is not None or any(a.end != b.start for a, b in itertools.pairwise(segs)):
                return False
        return True

    def prepare(self, pin: str | None = None) -> Compiled:
        """Compile the store's rulebooks (all versions, or the one pinned) for its cities and behaviours."""
        rulebooks = self.store.rulebooks()
        pin_map = rulebooks.parse_version(pin)[1] if pin else None
        self.jkeys = dict(self.con.execute("SELECT code, jkey FROM jurisdictions").fetchall())
        self.bkeys = dict(self.con.execute("SELECT code, bkey FROM behaviours").fetchall())
        # rulebook sets are immutable and cached by the store, so a long-lived process compiles each once
        key = (id(rulebooks), repr(sorted(self.jkeys.items())), repr(sorted(self.bkeys.items())), repr(pin_map))
        hit = _COMPILED.get(key)
        if hit is None or hit[0] is not rulebooks:
            if len(_COMPILED) >= 4:
                _COMPILED.clear()
            hit = _COMPILED[key] = (rulebooks, compile_rulebooks(rulebooks, self.jkeys, self.bkeys, pin_map))
        self.compiled = hit[1]
        return self.compiled

    # ------------------------------------------------------------------ records → ledger

    def load_compiled(self, store_ledger: bool = True) -> None:
        """The compiled tables into the store, the record ledger brought up to date, and the ledger views.

        The tables are written only when they differ from those stored (by content): a run with unchanged
        rulebooks then pays for neither them nor the records already scored.

        Without `store_ledger` the stored record ledger is left as it is and the view scores every record
        it does not cover on the fly: a reading that only needs scores (`scores`, as the engine benchmark's
        cold path takes it) should not pay for writing millions of rows that only later runs would read.
        """
        con = self.con
        n = con.execute("SELECT coalesce(max(ckey), 0) + 1 FROM citizens").fetchall()[0][0]
        # dense integer citizen keys let DuckDB aggregate with a perfect hash table instead of a general one
        con.execute(f"SET perfect_ht_threshold = {max(12, min(26, int(n).bit_length() + 1))}")
        prep = self._prepared()
        built = self._built()
        if built is None or built[1] != prep.loaded:
            for name, table in prep.tables.items():
                con.register("_arrow", table)
                con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _arrow")
                con.unregister("_arrow")
        con.execute("""CREATE OR REPLACE TABLE state_ledger(ckey INTEGER, jkey SMALLINT, epoch INT,
            source VARCHAR, rkey BIGINT, bkey SMALLINT, characteristic VARCHAR, piece INT, points INT,
            valid_from TIMESTAMP, valid_to TIMESTAMP)""")
        if store_ledger:
            self.ledger_update, through = self._update_record_entries(prep, built)
            con.execute(
                "CREATE OR REPLACE TABLE record_entries_built AS SELECT ?::VARCHAR AS fingerprint, "
                "?::VARCHAR AS tables, ?::BIGINT AS through, ?::BIGINT AS records",
                [prep.ledger, prep.loaded, through, self._records_seen],
            )
        else:
            self.ledger_update, through = None, self._usable_through(prep, built)
        self._through = through
        # a stored view, as record_ledger is: other connections to the store read the ledger through it
        con.execute(f"CREATE OR REPLACE VIEW records_unscored AS SELECT * FROM records WHERE rkey > {int(through)}")
        con.execute(f"CREATE OR REPLACE VIEW record_ledger AS {self.record_ledger_sql()}")
        con.execute("CREATE OR REPLACE VIEW ledger AS SELECT * FROM record_ledger UNION ALL SELECT * FROM state_ledger")

    def _prepared(self) -> _Prepared:
        """The small tables the compiled SQL joins, the SQL that scores records, and their fingerprints: made
        once per compile (and a compile is shared by the runs of one process while the rulebooks stay)."""
        c = self.compiled
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
            "caps": self._caps_table(),
        }
        entries = self._entries_sql(to_sql(record_ledger_query(c, "records")))
        # what a record's rows depend on besides the record: the SQL that scores it and the tables it joins
        # (caps and retractions are not: the view applies them); and what the loaded tables are
        ledger = _digest([LEDGER_FORMAT, entries], tables, ("dt_params", "dt_buckets", "dt_cells", "general_rules"))
        prepared = _Prepared(
            tables,
            ledger,
            _digest([LEDGER_FORMAT, ledger], tables, sorted(tables)),
            entries,
            self._entries_sql(to_sql(record_ledger_query(c, "records_unscored"))),
            self._entries_sql(to_sql(record_ledger_query(c, "records_batch"))),
            self._attributes_used(),
        )
        if len(_PREPARED) >= 4:
            _PREPARED.clear()
        _PREPARED[id(c)] = (c, prepared)
        return prepared

    def ledger_fingerprint(self) -> str:
        """Everything a record's ledger rows depend on besides the record: the SQL that scores it and the
        tables that SQL joins, by content.

        Rulebook version labels would not do: a pin, a new catalog or rulebooks replaced under the same
        numbers change the tables, not the labels. Caps and retractions are not in it: the view applies them.
        """
        return self._prepared().ledger

    @staticmethod
    def _entries_sql(query: str) -> str:
        """Rows of `record_entries` from a record_ledger_query: its validity as an end time."""
        return f"""SELECT q.ckey, q.jkey, q.epoch, q.rkey, q.bkey, q.piece, q.points, q.occurred_at AS valid_from,
                   CASE WHEN q.vf_months IS NULL THEN NULL
                        ELSE q.occurred_at + to_months(q.vf_months) + to_days(q.vf_days) END AS valid_to
            FROM ({query}) q"""

    def _built(self) -> tuple[str, str, int, int] | None:
        """What the stored record ledger and compiled tables were made from: (ledger fingerprint, tables
        fingerprint, last rkey scored, number of records then), or None before the first run."""
        if not self._has_columns({"record_entries_built": "tables", "record_entries": "rkey"}):
            return None
        rows = self.con.execute("SELECT fingerprint, tables, through, records FROM record_entries_built").fetchall()
        return (str(rows[0][0]), str(rows[0][1]), int(rows[0][2]), int(rows[0][3])) if len(rows) == 1 else None

    def _usable_through(self, prep: _Prepared, built: tuple[str, str, int, int] | None) -> int:
        """The last rkey whose stored ledger rows still hold (-1 for none): those of the same fingerprint,
        while every record they were made from is still there."""
        if built is None or built[0] != prep.ledger:
            return -1
        seen = self.con.execute(f"SELECT count(*) FROM records WHERE rkey <= {built[2]}").fetchall()[0][0]
        return built[2] if seen == built[3] else -1

    def _update_record_entries(
        self, prep: _Prepared, built: tuple[str, str, int, int] | None
    ) -> tuple[LedgerUpdate, int]:
        """Score the records appended since `record_entries` was built, or all of them into a new one when the
        fingerprint changed (or records it had seen are gone); returns the update and the rkey it now covers.

        A record's rows depend only on the record and the fingerprint, so rows once written never change:
        records only ever get higher rkeys, and the count of those up to the last covered one must still
        be what it was.
        """
        con = self.con
        t0 = time.perf_counter()
        top, total = con.execute("SELECT coalesce(max(rkey), -1), count(*) FROM records").fetchall()[0]
        self._records_seen = int(total)
        usable = self._usable_through(prep, built)
        after = usable if usable >= 0 else None
        if after is None:
            con.execute("""CREATE OR REPLACE TABLE record_entries(ckey INTEGER, jkey SMALLINT, epoch INT, rkey BIGINT,
                bkey SMALLINT, piece INT, points INT, valid_from TIMESTAMP, valid_to TIMESTAMP)""")
        scored, added = 0, 0
        if after is None or top > after:
            scored = (
                int(total)
                if after is None
                else int(con.execute(f"SELECT count(*) FROM records WHERE rkey > {after}").fetchall()[0][0])
            )
            if after is None:
                query = prep.entries_all
            else:
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW records_batch AS SELECT * FROM records "
                    f"WHERE rkey > {int(after)} AND rkey <= {int(top)}"
                )
                query = prep.entries_batch
            added = int(con.execute(f"INSERT INTO record_entries {query}").fetchall()[0][0])
        return LedgerUpdate(after is None, scored, added, time.perf_counter() - t0), int(top)

    def _caps_table(self) -> pa.Table:
        rows = [
            (s.jkey, s.epoch, self.bkeys[cap.behaviour], cap.per, cap.max, cap.min)
            for s in self.compiled.segments
            for cap in s.rulebook.caps
        ]
        cols = columns(rows, 6)
        return pa.table({
            "jkey": pa.array(cols[0], pa.int16()), "epoch": pa.array(cols[1], pa.int32()),
            "bkey": pa.array(cols[2], pa.int16()), "per": pa.array(cols[3], pa.string()),
            "hi": pa.array(cols[4], pa.int32()), "lo": pa.array(cols[5], pa.int32()),
        })  # fmt: skip

    def records_table(self, as_of: dt.datetime) -> None:
        """The records that set characteristics or trigger lists, with their epoch (the versions then)."""
        epoch = to_sql(epoch_expr(self.compiled.change_points, exp.column("occurred_at")))
        # only the columns some rule, trigger or characteristic reads: copying all 20-odd attributes costs
        # more than scoring
        cols = "".join(f", r.{q(a)}" for a in self.attributes_used())
        self.con.execute(f"""CREATE OR REPLACE TEMP TABLE recs AS
            SELECT r.rkey, r.ckey, r.jkey, r.bkey, r.occurred_at{cols}, {epoch} AS epoch FROM records r
            WHERE r.occurred_at <= {lit(as_of)} AND r.bkey IN ({", ".join(map(str, self._event_bkeys()))})
              AND NOT EXISTS (SELECT 1 FROM retractions x WHERE x.rkey = r.rkey)""")

    def _event_bkeys(self) -> list[int]:
        codes = {b for ch in self.catalog.characteristics.values() for b in (*ch.set_by, *ch.cleared_by)}
        codes |= {t.behaviour for s in self.compiled.segments for lst in s.rulebook.lists for t in lst.triggers
                  if t.behaviour}  # fmt: skip
        return sorted(self.bkeys[c] for c in codes) or [-1]

    def attributes_used(self) -> list[str]:
        return self._prepared().attributes

    def _attributes_used(self) -> list[str]:
        names: set[str] = {d for d in self.compiled.dims if d}
        for seg in self.compiled.segments:
            for tree in seg.rulebook.conditions.values():
                names |= {col.name for col in tree.find_all(exp.Column)}
        for ch in self.catalog.characteristics.values():
            names |= set(ch.attributes) | ({ch.term_attribute} if ch.term_attribute else set())
        return sorted(names & set(self.catalog.attributes))

    def record_ledger_sql(self, after: dt.datetime | None = None, stored_only: bool = False) -> str:
        """The record part of the ledger: the path every score takes.

        The rows of records up to `self._through` are read from `record_entries`; those of any record
        appended since (the view `records_unscored`, which load_compiled bounds) are computed by the same
        query on the fly (the next run stores them), so the view never lags the records. Retractions are
        applied here, so a withdrawal shows at once and the stored rows stay append-only. Behaviours under
        a cap go through a running sum per cap period (CST calendar), clamped, over all of their rows, so a
        back-dated record moves the later ones; the rest do not pay for that window.

        With `after`, only the rows valid from after it, each as in the whole view: a capped row's running
        sum reads the rows of its cap period before it, all in the CST year it falls in (no cap period is
        longer), so the window reads the rows from the start of the year `after` falls in.

        With `stored_only`, for a caller that has just stored every record's rows, without the on-the-fly
        part: it would find no record, but planning the compiled query costs more than the rest.
        """
        through, live = self._through, self._prepared().entries_unscored
        capped = sorted({self.bkeys[cap.behaviour] for s in self.compiled.segments for cap in s.rulebook.caps})
        since, recent = "", ""
        if after is not None:
            local = after + dt.timedelta(hours=8)
            year = dt.datetime(local.year, 1, 1) - dt.timedelta(hours=8)
            since = f" WHERE e.valid_from >= {lit(year if capped else after)}"
            recent = f" AND valid_from > {lit(after)}"
        entries = f"""SELECT e.ckey, e.jkey, e.epoch, 'record' AS source, e.rkey, e.bkey,
                   NULL::VARCHAR AS characteristic, e.piece, e.points, e.valid_from, e.valid_to
            FROM ({self._entries_union(through, live, stored_only)}) e
            ANTI JOIN retractions x ON x.rkey = e.rkey{since}"""
        if not capped:
            return entries if after is None else f"SELECT * FROM ({entries}) WHERE true{recent}"
        keys = ", ".join(map(str, capped))
        return f"""SELECT * FROM ({entries}) WHERE bkey NOT IN ({keys}){recent}
            UNION ALL
            SELECT ckey, jkey, epoch, source, rkey, bkey, characteristic, piece,
                   (least(greatest(cum, coalesce(lo, cum)), coalesce(hi, cum))
                    - least(greatest(cum - points, coalesce(lo, cum - points)), coalesce(hi, cum - points)))::INT,
                   valid_from, valid_to
            FROM (SELECT e.*, c.hi, c.lo, sum(e.points) OVER (
                      PARTITION BY e.ckey, e.bkey, date_trunc(coalesce(c.per, 'year'), e.valid_from + INTERVAL 8 HOUR)
                      ORDER BY e.valid_from, e.rkey, e.piece ROWS UNBOUNDED PRECEDING) AS cum
                  FROM ({entries}) e LEFT JOIN caps c USING (jkey, epoch, bkey) WHERE e.bkey IN ({keys}))
            WHERE true{recent}"""

    @staticmethod
    def _entries_union(through: int, live: str, stored_only: bool) -> str:
        stored = f"SELECT {ENTRY_COLUMNS} FROM record_entries"
        if stored_only:
            return stored
        return f"{stored} UNION ALL {live}" if through >= 0 else live

    def scores(self, as_of: dt.datetime | None = None) -> pa.Table:
        """Every citizen's score at `as_of` straight from the ledger (compiled tables must be loaded).

        It reads the stored record entries, so it costs a scan of the rows in force, not a scoring of every
        record. One aggregation by citizen over the citizens (for their city, and so that everyone appears) and the
        record ledger in force, instead of joining a million citizens to a million sums. The bound on ckey
        gives DuckDB back the statistics the UNION ALL hides, so it aggregates with a perfect hash table on
        the dense citizen key. The city rides in the same BIGINT sum, as (jkey + 1) << 40 from the citizen's
        row (a citizen's points stay far below 2^39): a second aggregate, max(jkey) over every ledger row,
        cost as much as the sum. The state ledger (few rows) is summed apart and joined with its sums as the
        small build side.
        """
        t = utc_naive(as_of)
        segs = self._segments_at(t)
        score = _case_by_jkey(segs, lambda rb: rb.scale.score_sql("a.pts + coalesce(s.pts, 0)"), "a.jkey")
        in_force = f"valid_from <= {lit(t)} AND (valid_to IS NULL OR valid_to > {lit(t)})"
        top = self.con.execute("SELECT coalesce(max(ckey), 0) FROM citizens").fetchall()[0][0]
        city = f"((a.total + {1 << 39}) >> {CITY_SHIFT})"  # jkey + 1; 0 for a citizen without a city
        return self.con.sql(f"""SELECT a.ckey, {score}::INTEGER AS score FROM (
                SELECT ckey, {city} - 1 AS jkey, a.total - ({city} << {CITY_SHIFT}) AS pts FROM (
                    SELECT ckey, sum(v) AS total FROM (
                        SELECT ckey, (jkey + 1)::BIGINT << {CITY_SHIFT} AS v FROM citizens
                        UNION ALL SELECT ckey, points::BIGINT FROM record_ledger WHERE {in_force})
                    WHERE ckey BETWEEN 0 AND {int(top)} GROUP BY ckey) a) a
            LEFT JOIN (SELECT ckey, sum(points::BIGINT) AS pts FROM state_ledger WHERE {in_force} GROUP BY ckey) s
            USING (ckey)""").to_arrow_table()

    # ------------------------------------------------------------------ characteristics

    def _characteristics(self) -> None:
        """State characteristics as intervals: from each setting record to its clearing record or term's end."""
        cat = self.catalog
        attrs = sorted({a for ch in cat.characteristics.values() for a in ch.attributes})
        parts = []
        for ch in cat.characteristics.values():
            if ch.kind != "state":
                continue
            sets = ", ".join(str(self.bkeys[b]) for b in ch.set_by)
            clears = ", ".join(str(self.bkeys[b]) for b in ch.cleared_by) or "NULL"
            term = (
                f"CASE WHEN s.{q(ch.term_attribute)} > 0 "
                f"THEN s.occurred_at + to_days(s.{q(ch.term_attribute)}::INT) END"
                if ch.term_attribute
                else "NULL"
            )
            cols = "".join(
                ", "
                + (
                    f"s.{q(a)}"
                    if a in ch.attributes and all(a in cat.behaviours[b].attributes for b in ch.set_by)
                    else f"NULL::{SQL_TYPES[cat.attributes[a].type]}"
                )
                + f" AS {q(a)}"
                for a in attrs
            )
            parts.append(f"""
                SELECT s.ckey, s.jkey, {lit(ch.code)} AS characteristic, s.rkey, s.occurred_at AS start,
                       least((SELECT min(c.occurred_at) FROM recs c WHERE c.ckey = s.ckey AND c.bkey IN ({clears})
                              AND c.occurred_at >= s.occurred_at), {term}) AS "end"{cols}
                FROM recs s WHERE s.bkey IN ({sets})""")
        empty = "".join(f", NULL::{SQL_TYPES[cat.attributes[a].type]} AS {q(a)}" for a in attrs)
        parts.append(
            "SELECT NULL::INT AS ckey, NULL::SMALLINT AS jkey, NULL::VARCHAR AS characteristic, NULL::BIGINT AS rkey, "
            f'NULL::TIMESTAMP AS start, NULL::TIMESTAMP AS "end"{empty} WHERE false'
        )
        self.con.execute("CREATE OR REPLACE TABLE characteristic_intervals AS " + " UNION ALL ".join(parts))

    def _characteristic_ledger(self) -> None:
        """A state rule gives its points while the characteristic holds and the rule is in force (clipped)."""
        groups: dict[tuple[int, str], tuple[str, int, list[tuple[int, int]]]] = {}
        for seg, rule, cond, piece in self.compiled.characteristic_rules:
            code = rule.characteristic or ""
            if self.catalog.characteristics[code].kind != "state":
                continue
            key = (piece, condition_sql(cond, "ci"))
            groups.setdefault(key, (code, rule.points, []))[2].append((seg.jkey, seg.epoch))
        if not groups:
            return
        branches = [
            f"""SELECT ci.ckey, ci.jkey, g.epoch, 'characteristic', ci.rkey, NULL::SMALLINT, ci.characteristic, {piece},
                       {points}, greatest(ci.start, g.s_start), nullif(least(coalesce(ci."end", g.s_end), g.s_end),
                       TIMESTAMP '9999-12-31')
                FROM characteristic_intervals ci JOIN segments g ON g.jkey = ci.jkey
                 AND ci.start < g.s_end AND coalesce(ci."end", g.s_end) > g.s_start
                WHERE ci.characteristic = {lit(code)} AND {in_force(pairs, "g")} AND {cond_sql}"""
            for (piece, cond_sql), (code, points, pairs) in groups.items()
        ]
        self.con.execute("INSERT INTO state_ledger " + " UNION ALL ".join(branches))

    # ------------------------------------------------------------------ lists

    def _trigger_entries(self) -> None:
        """Stays that a record (for a duration) or a characteristic (while it holds) puts a citizen on."""
        self.con.execute("""CREATE OR REPLACE TABLE list_entries(ckey INTEGER, jkey SMALLINT, list_id VARCHAR,
            kind VARCHAR, start TIMESTAMP, "end" TIMESTAMP, cause VARCHAR, rkey BIGINT, characteristic VARCHAR,
            grade VARCHAR, score INTEGER, version VARCHAR)""")
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for seg in self.compiled.segments:
            rb = seg.rulebook
            for lst in rb.lists:
                for i, trig in enumerate(lst.triggers):
                    cond = rb.conditions.get(f"trigger:{lst.id}:{i}")
                    alias = "r" if trig.behaviour else "ci"
                    key = (
                        lst.id,
                        lst.kind,
                        trig.behaviour,
                        trig.characteristic,
                        trig.duration,
                        condition_sql(cond, alias),
                    )
                    groups.setdefault(key, []).append((seg.jkey, seg.epoch))
        branches = []
        for (list_id, kind, behaviour, characteristic, duration, cond_sql), pairs in groups.items():
            if behaviour is not None:
                branches.append(f"""SELECT r.ckey, r.jkey, {lit(list_id)}, {lit(kind)}, r.occurred_at,
                        r.occurred_at + {interval_sql(duration)}, 'behaviour', r.rkey, NULL, NULL, NULL, s.version
                    FROM recs r JOIN segments s USING (jkey, epoch)
                    WHERE r.bkey = {self.bkeys[behaviour]} AND {in_force(pairs, "r")} AND {cond_sql}""")
            else:
                branches.append(f"""SELECT ci.ckey, ci.jkey, {lit(list_id)}, {lit(kind)}, greatest(ci.start, g.s_start),
                        nullif(least(coalesce(ci."end", g.s_end), g.s_end), TIMESTAMP '9999-12-31'), 'characteristic',
                        ci.rkey, ci.characteristic, NULL, NULL, g.version
                    FROM characteristic_intervals ci JOIN segments g ON g.jkey = ci.jkey
                     AND ci.start < g.s_end AND coalesce(ci."end", g.s_end) > g.s_start
                    WHERE ci.characteristic = {lit(characteristic)} AND {in_force(pairs, "g")} AND {cond_sql}""")
        if branches:
            self.con.execute("INSERT INTO list_entries " + " UNION ALL ".join(branches))
        # a stay that spans a rulebook change is one stay: join the pieces the clipping made
        self.con.execute("""CREATE OR REPLACE TABLE list_entries AS
            SELECT ckey, jkey, list_id, kind, min(start) AS start,
                   CASE WHEN bool_or("end" IS NULL) THEN NULL ELSE max("end") END AS "end",
                   cause, rkey, characteristic, grade, score, first(version ORDER BY start) AS version
            FROM list_entries GROUP BY ckey, jkey, list_id, kind, cause, rkey, characteristic, grade, score""")

    # ------------------------------------------------------------------ monthly assessments

    def _assessments(self, as_of: dt.datetime, progress: Progress | None, resume: dt.datetime | None = None) -> int:
        """Monthly assessments: scores → grades → grade lists, with the network rule's one-step lag.

        With `resume` (see `_resume_from`) the assessments before it are kept from the last run and the loop
        restarts at the first one at or after it, from the state it carried, rebuilt from the stored tables.
        """
        con, c = self.con, self.compiled
        # what the assessments read: the ledger up to as_of without the network entries they add. A view, not
        # a copy: the record entries are stored, and copying them all would cost more than reading them
        con.execute(
            "CREATE OR REPLACE TEMP VIEW run_ledger AS SELECT * FROM ledger "
            f"WHERE valid_from <= {lit(as_of)} AND source <> 'network'"
        )
        # the first entry's time, from the stored rows: a cap changes points, never times, and keeps every row,
        # so reading through the view would only pay for its running sums
        first = con.execute(f"""SELECT min(valid_from) FROM (
                SELECT valid_from FROM record_entries e ANTI JOIN retractions x ON x.rkey = e.rkey
                UNION ALL SELECT valid_from FROM state_ledger WHERE source <> 'network')
            WHERE valid_from <= {lit(as_of)}""").fetchall()[0][0]
        starts = [s.start for s in c.segments if s.start is not None]
        begin = min([x for x in (first, min(starts) if starts else None) if x is not None], default=None)
        if first is not None and starts:
            begin = max(first, min(starts))
        periods: list[dt.datetime] = []
        if begin is not None and c.segments:
            t = month_start_utc(begin)
            while t <= as_of:
                periods.append(t)
                t = next_month_utc(t)
        # resuming needs at least one kept month (period 0 always runs and starts the network rule's check)
        p0 = 0 if resume is None else next((p for p, t in enumerate(periods) if t >= resume), len(periods))
        # the first assessment moves when the first ledger entry arrives (before it, the first rulebook's
        # start) or an earlier one is back-dated: then the kept months are not this run's months
        self._first_assessment = periods[0] if periods else None
        if not periods or periods[0] != self._last_first:
            p0 = 0
        if not p0:
            self.resumed_from = None
        # the kept part ends at that period (whole seconds, unlike `resume`); with none left to redo, after
        # everything the last run wrote
        t0 = periods[p0] if p0 < len(periods) else dt.datetime(9999, 12, 31)
        if p0:
            con.execute(f"DELETE FROM score_log WHERE assessed_at >= {lit(t0)}")
        else:
            con.execute(
                "CREATE OR REPLACE TABLE score_log(ckey INTEGER, assessed_at TIMESTAMP, score INTEGER, grade VARCHAR, "
                "version VARCHAR)"
            )
        if not periods:
            con.execute("DROP TABLE IF EXISTS engine_carry; DROP TABLE IF EXISTS engine_pending")
            return 0
        con.register(
            "_periods",
            pa.table({"p": pa.array(range(len(periods)), pa.int32()), "t": pa.array(periods, pa.timestamp("us"))}),
        )
        con.execute("CREATE OR REPLACE TEMP TABLE periods AS SELECT * FROM _periods")
        con.unregister("_periods")
        # the carried state, when the last run ended at the month before p0: then only the changes from p0 on
        carried = self.carried = bool(p0) and self._carried_at() == periods[p0 - 1]
        self._deltas(as_of, periods, periods[p0 - 1] if carried else None)
        con.execute("""CREATE OR REPLACE TEMP TABLE cur AS SELECT ckey, jkey, 0::INTEGER AS raw, 0::INTEGER AS net,
            NULL::INTEGER AS score, NULL::VARCHAR AS grade FROM citizens""")
        busy = self._busy_periods(periods)
        network = any(
            r.characteristic and self.catalog.characteristics[r.characteristic].kind == "network"
            for s in c.segments
            for r in s.rulebook.rules
        )
        wake: set[int] = set()
        done = 0
        listed_any = False
        if p0:
            listed_any = self._restore(periods, p0, t0, wake, carried) and network
        last_segs: dict[int, Rulebook] | None = None
        # the versions in force when the kept state was made: a resumed run's first month need not assess
        # everyone unless they changed since
        kept_segs = self._segments_at(periods[p0 - 1]) if p0 else None
        for p in range(p0, len(periods)):
            t = periods[p]
            if progress and p % 12 == 0:
                progress("assessments", p, len(periods))
            if not (p in busy or p in wake or (network and listed_any)):
                continue
            segs = self._segments_at(t)
            # everyone is assessed when no state is kept (a full run's first month) and when a rulebook
            # version changes (scale, grades and lists with it); otherwise only the citizens whose running
            # sum moves, who have ever had network points (the kept state does not carry them apart), and
            # whom a minimum stay keeps on a grade list though their grade no longer holds: for everyone
            # else score, grade and grade lists stay what they were
            everyone = self._assess_everyone(segs != (last_segs if done else kept_segs))
            done += 1
            if segs != last_segs:
                self._grade_list_tables(segs)
                last_segs = segs
            con.execute(f"UPDATE cur SET raw = raw + d.d FROM deltas d WHERE d.p = {p} AND d.ckey = cur.ckey")
            if network:
                self._network(segs, t, next_month_utc(t))
            if not everyone:
                con.execute(f"""CREATE OR REPLACE TEMP TABLE moved AS
                    SELECT ckey FROM deltas WHERE p = {p}
                    UNION SELECT ckey FROM state_ledger WHERE source = 'network'
                    UNION SELECT e.ckey FROM list_entries e JOIN cur c USING (ckey)
                        JOIN glists g ON g.jkey = c.jkey AND g.list_id = e.list_id
                    WHERE e.cause = 'grade' AND e."end" IS NULL
                      AND NOT EXISTS (SELECT 1 FROM glist_grades gg WHERE gg.jkey = c.jkey AND gg.list_id = e.list_id
                                      AND gg.grade = c.grade)""")
            self._assess(segs, t, everyone)
            self._grade_lists(t, wake, periods, everyone)
            if network and not listed_any:
                listed_any = (
                    con.execute("SELECT count(*) FROM list_entries WHERE kind = 'blacklist'").fetchall()[0][0] > 0
                )
        # the loop's state after the last month (the skipped months change nothing): the next run starts from it
        con.execute(
            f"CREATE OR REPLACE TABLE engine_carry AS SELECT {lit(periods[-1])} AS carried_at, ckey, raw, score, grade "
            "FROM cur"
        )
        return done

    def _deltas(self, as_of: dt.datetime, periods: list[dt.datetime], carried: dt.datetime | None) -> None:
        """The change each ledger entry makes to a citizen's running sum (its points from valid_from, minus them
        from valid_to), at the first assessment that sees it; and the record entries' expiries after the
        last month, for the next run.

        With the month the carry holds, only the changes after it, without reading the history: the entries
        valid from after it (records through the view restricted to them), the expiries of earlier record
        entries the last run stored (their points and ends are fixed: a new record lies after the carry,
        and a cap's running sum only moves the rows after it), and the characteristic entries (recomputed
        every run, few; a new clearing record can end an earlier one).
        """
        con, last = self.con, lit(periods[-1])
        if carried is None:
            con.execute("""CREATE OR REPLACE TEMP TABLE deltas AS
                WITH ev AS (
                    SELECT ckey, valid_from AS at, points AS d FROM run_ledger WHERE points <> 0
                    UNION ALL SELECT ckey, valid_to, -points FROM run_ledger WHERE points <> 0 AND valid_to IS NOT NULL)
                SELECT ev.ckey, p.p, sum(ev.d)::INTEGER AS d
                FROM ev ASOF JOIN periods p ON p.t >= ev.at
                GROUP BY ev.ckey, p.p HAVING sum(ev.d) <> 0""")
            con.execute(f"""CREATE OR REPLACE TABLE engine_pending AS
                SELECT ckey, valid_to AS due, -points AS d, valid_from AS vf FROM run_ledger
                WHERE source = 'record' AND points <> 0 AND valid_from <= {last} AND valid_to > {last}""")
            return
        # the run stored every record's rows (load_compiled), so the on-the-fly part has nothing to score
        t, recent = lit(carried), self.record_ledger_sql(carried, stored_only=self.ledger_update is not None)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE ev AS
            WITH src AS (
                SELECT ckey, source, points, valid_from, valid_to FROM ({recent})
                WHERE valid_from <= {lit(as_of)} AND points <> 0
                UNION ALL SELECT ckey, source, points, valid_from, valid_to FROM state_ledger
                WHERE source <> 'network' AND valid_from <= {lit(as_of)} AND points <> 0)
            SELECT ckey, valid_from AS due, points AS d, valid_from AS vf, false AS expiry FROM src
            WHERE valid_from > {t}
            UNION ALL SELECT ckey, valid_to, -points, valid_from, source = 'record' FROM src WHERE valid_to > {t}
            UNION ALL SELECT ckey, due, d, vf, true FROM engine_pending""")
        con.execute("""CREATE OR REPLACE TEMP TABLE deltas AS
            SELECT ev.ckey, p.p, sum(ev.d)::INTEGER AS d
            FROM ev ASOF JOIN periods p ON p.t >= ev.due
            GROUP BY ev.ckey, p.p HAVING sum(ev.d) <> 0""")
        con.execute(f"""CREATE OR REPLACE TABLE engine_pending AS
            SELECT ckey, due, d, vf FROM ev WHERE expiry AND vf <= {last} AND due > {last}""")

    def _carried_at(self) -> dt.datetime | None:
        """The month whose end state `engine_carry` holds (the last run's last assessment), if there is one."""
        if not self._has_columns({"engine_carry": "carried_at", "engine_pending": "vf"}):
            return None
        rows = self.con.execute("SELECT carried_at FROM engine_carry LIMIT 1").fetchall()
        return rows[0][0] if rows else None

    def _restore(
        self, periods: list[dt.datetime], p0: int, t0: dt.datetime, wake: set[int], carried: bool = False
    ) -> bool:
        """The loop's carried state at the start of period `p0` (the first at or after `t0`), as the last run
        left it; whether any blacklist stay exists by then (the network rule runs every month from the first).

        Running sums, scores and grades are the loop's own end state as the last run stored it
        (`engine_carry`) when that run ended at the month before p0, so the run reads none of the history;
        otherwise (a back-dated record) running sums are the deltas before p0, and current score and grade
        the last ones logged (the log has a row whenever either changed). Grade stays are the loop's own
        (before memory rewrote them), open if they ended at p0 or later; the network entries of earlier
        months were kept by `run`; and a stay with a minimum length wakes the months from its due date on,
        as when it was entered.
        """
        con = self.con
        if carried:
            con.execute("""CREATE OR REPLACE TEMP TABLE cur AS
                SELECT c.ckey, c.jkey, coalesce(k.raw, 0)::INTEGER AS raw, 0::INTEGER AS net, k.score, k.grade
                FROM citizens c LEFT JOIN engine_carry k USING (ckey)""")
        else:
            con.execute(f"""CREATE OR REPLACE TEMP TABLE cur AS
                SELECT c.ckey, c.jkey, coalesce(d.raw, 0)::INTEGER AS raw, 0::INTEGER AS net, s.score, s.grade
                FROM citizens c
                LEFT JOIN (SELECT ckey, sum(d)::INTEGER AS raw FROM deltas WHERE p < {p0} GROUP BY ckey) d USING (ckey)
                LEFT JOIN (SELECT ckey, arg_max(score, assessed_at) AS score, arg_max(grade, assessed_at) AS grade
                           FROM score_log GROUP BY ckey) s USING (ckey)""")
        con.execute(f"INSERT INTO state_ledger SELECT * FROM kept_network WHERE valid_from < {lit(t0)}")
        cols = 'ckey, jkey, list_id, kind, start, "end", cause, rkey, characteristic, grade, score, version'
        con.execute(f"""INSERT INTO list_entries ({cols})
            SELECT ckey, jkey, list_id, kind, start, CASE WHEN "end" < {lit(t0)} THEN "end" END, cause, rkey,
                   characteristic, grade, score, version
            FROM engine_grade_stays WHERE start < {lit(t0)}""")
        for jkey, list_id, start in con.execute(
            f"SELECT DISTINCT jkey, list_id, start FROM engine_grade_stays WHERE start < {lit(t0)}"
        ).fetchall():
            rb = self._segments_at(start).get(jkey)
            lst = next((x for x in rb.lists if x.id == list_id), None) if rb else None
            if lst is None or not lst.min_stay:
                continue
            n, unit = duration_parts(lst.min_stay)
            months, days = (n * 12 if unit == "year" else n if unit == "month" else 0), (n if unit == "day" else 0)
            if not (months or days):
                continue
            due = (add_duration(start, f"{months}m") if months else start) + dt.timedelta(days=days)
            wake.update(i for i, x in enumerate(periods) if x >= due)
        return bool(con.execute("SELECT count(*) FROM list_entries WHERE kind = 'blacklist'").fetchall()[0][0] > 0)

    def _busy_periods(self, periods: list[dt.datetime]) -> set[int]:
        """Months in which anything can change; the others are skipped (their assessment would repeat the last)."""
        busy = {p for (p,) in self.con.execute("SELECT DISTINCT p FROM deltas").fetchall()}
        busy |= {
            p
            for (p,) in self.con.execute(
                "SELECT DISTINCT p.p FROM (SELECT start AS at FROM list_entries UNION ALL "
                'SELECT "end" FROM list_entries WHERE "end" IS NOT NULL) e ASOF JOIN periods p ON p.t >= e.at'
            ).fetchall()
        }
        for s in self.compiled.segments:
            if s.start is not None:
                busy.add(next((i for i, t in enumerate(periods) if t >= s.start), len(periods)))
        busy.add(0)
        return busy

    def _segments_at(self, t: dt.datetime) -> dict[int, Rulebook]:
        return {
            s.jkey: s.rulebook
            for s in self.compiled.segments
            if (s.start is None or s.start <= t) and (s.end is None or t < s.end)
        }

    def _assess_everyone(self, needed: bool) -> bool:
        """Whether a month assesses every citizen (`needed`: no state was kept from an earlier month, or the
        rulebook versions changed) rather than those who moved. One place to decide it, so a test can make
        every month assess everyone and compare."""
        return needed

    def _assess(self, segs: dict[int, Rulebook], t: dt.datetime, everyone: bool = True) -> None:
        """Scores and grades at `t` for everyone, or for the citizens in `moved`; changes go to the score log."""
        score = _case_by_jkey(segs, lambda rb: rb.scale.score_sql("raw + net"))
        grade = _case_by_jkey(segs, lambda rb: _grade_case(rb, "score"))
        version = _case_by_jkey(segs, lambda rb: lit(rb.version))
        who = "" if everyone else " WHERE ckey IN (SELECT ckey FROM moved)"
        self.con.execute(f"""CREATE OR REPLACE TEMP TABLE nxt AS
            SELECT ckey, jkey, raw, net, score, {grade} AS grade, {version} AS version
            FROM (SELECT ckey, jkey, raw, net, {score} AS score FROM cur{who})""")
        self.con.execute(f"""INSERT INTO score_log
            SELECT n.ckey, {lit(t)}, n.score, n.grade, n.version FROM nxt n JOIN cur c USING (ckey)
            WHERE n.score IS NOT NULL AND (c.score IS DISTINCT FROM n.score OR c.grade IS DISTINCT FROM n.grade)""")
        if everyone:
            self.con.execute("CREATE OR REPLACE TEMP TABLE cur AS SELECT ckey, jkey, raw, net, score, grade FROM nxt")
        else:
            self.con.execute("UPDATE cur SET score = n.score, grade = n.grade FROM nxt n WHERE n.ckey = cur.ckey")

    def _network(self, segs: dict[int, Rulebook], t: dt.datetime, t_next: dt.datetime) -> None:
        """Share of contacts on a blacklist at `t` (before this assessment) → network ledger entries for the month."""
        con = self.con
        epoch_of = {s.jkey: s.epoch for s in self.compiled.segments if s.jkey in segs and segs[s.jkey] is s.rulebook}
        groups: dict[tuple[int, str], tuple[int, list[int]]] = {}
        for seg, rule, cond, piece in self.compiled.characteristic_rules:
            if self.catalog.characteristics[rule.characteristic or ""].kind != "network":
                continue
            if epoch_of.get(seg.jkey) != seg.epoch:
                continue
            groups.setdefault((piece, condition_sql(cond, "s")), (rule.points, []))[1].append(seg.jkey)
        con.execute("UPDATE cur SET net = 0 WHERE net <> 0")
        if not groups:
            return
        # only citizens with a listed contact get a share: find them from the few listed, then count all the
        # contacts of those alone (grouping every citizen's contacts cost 0.5 s a month at 1M citizens)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE share_t AS
            WITH listed AS (SELECT DISTINCT ckey FROM list_entries WHERE kind = 'blacklist'
                            AND start <= {lit(t)} AND ("end" IS NULL OR "end" > {lit(t)})),
            hit AS (SELECT r.ckey, count(*) AS n FROM relations r SEMI JOIN listed l ON l.ckey = r.other
                    WHERE r.kind = 'contact' GROUP BY r.ckey),
            degree AS (SELECT r.ckey, count(*) AS n FROM relations r SEMI JOIN hit h ON h.ckey = r.ckey
                       WHERE r.kind = 'contact' GROUP BY r.ckey)
            SELECT h.ckey, c.jkey, h.n::DOUBLE / d.n AS share
            FROM hit h JOIN degree d ON d.ckey = h.ckey JOIN citizens c ON c.ckey = h.ckey""")
        epochs = " ".join(f"WHEN {j} THEN {e}" for j, e in epoch_of.items())
        branches = [
            f"""SELECT s.ckey, s.jkey, CASE s.jkey {epochs} END, 'network', NULL, NULL, 'blacklisted_contacts', {piece},
                       {points}, {lit(t)}, {lit(t_next)}
                FROM share_t s WHERE s.jkey IN ({", ".join(map(str, jkeys))}) AND {cond_sql}"""
            for (piece, cond_sql), (points, jkeys) in groups.items()
        ]
        con.execute("INSERT INTO state_ledger " + " UNION ALL ".join(branches))
        con.execute(f"""UPDATE cur SET net = x.pts FROM (SELECT ckey, sum(points)::INTEGER AS pts FROM state_ledger
            WHERE source = 'network' AND valid_from = {lit(t)} GROUP BY ckey) x WHERE x.ckey = cur.ckey""")

    def _grade_list_tables(self, segs: dict[int, Rulebook]) -> None:
        """The grade lists in force, as small tables the two per-month statements join against."""
        lists, grades, bars = [], [], []
        for jkey, rb in segs.items():
            for lst in rb.lists:
                if not lst.grades:
                    continue
                months, days = (0, 0)
                if lst.min_stay:
                    n, unit = duration_parts(lst.min_stay)
                    months, days = (
                        (n * 12 if unit == "year" else n if unit == "month" else 0),
                        (n if unit == "day" else 0),
                    )
                lists.append((jkey, lst.id, lst.kind, months, days, rb.version))
                grades += [(jkey, lst.id, g) for g in lst.grades]
                bars += [(jkey, lst.id, m.after) for m in rb.memory if lst.id in m.never_lists]
        self.con.execute("""CREATE OR REPLACE TEMP TABLE glists(jkey SMALLINT, list_id VARCHAR, kind VARCHAR,
            stay_months INT, stay_days INT, version VARCHAR);
            CREATE OR REPLACE TEMP TABLE glist_grades(jkey SMALLINT, list_id VARCHAR, grade VARCHAR);
            CREATE OR REPLACE TEMP TABLE glist_bars(jkey SMALLINT, list_id VARCHAR, after VARCHAR)""")
        for name, rows, n in (("glists", lists, 6), ("glist_grades", grades, 3), ("glist_bars", bars, 3)):
            if rows:
                self.con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * n)})", rows)

    def _grade_lists(self, t: dt.datetime, wake: set[int], periods: list[dt.datetime], everyone: bool = True) -> None:
        """Leave grade lists whose grade no longer holds (after the minimum stay), then enter those that now hold;
        for everyone, or for the citizens in `moved` (no one else's grade changed, and it holds those a
        minimum stay keeps on a list)."""
        con = self.con
        who = "" if everyone else " AND c.ckey IN (SELECT ckey FROM moved)"
        con.execute(f"""UPDATE list_entries e SET "end" = {lit(t)}
            FROM cur c, glists g
            WHERE e.ckey = c.ckey AND e.cause = 'grade' AND e."end" IS NULL{who}
              AND g.jkey = c.jkey AND g.list_id = e.list_id
              AND NOT EXISTS (SELECT 1 FROM glist_grades gg WHERE gg.jkey = c.jkey AND gg.list_id = e.list_id
                              AND gg.grade = c.grade)
              AND e.start + to_months(g.stay_months) + to_days(g.stay_days) <= {lit(t)}""")
        con.execute(f"""INSERT INTO list_entries
            SELECT c.ckey, c.jkey, g.list_id, g.kind, {lit(t)}, NULL, 'grade', NULL, NULL, c.grade, c.score, g.version
            FROM cur c JOIN glists g ON g.jkey = c.jkey
            JOIN glist_grades gg ON gg.jkey = c.jkey AND gg.list_id = g.list_id AND gg.grade = c.grade
            WHERE NOT EXISTS (SELECT 1 FROM list_entries e WHERE e.ckey = c.ckey AND e.list_id = g.list_id
                              AND e.cause = 'grade' AND e."end" IS NULL){who}
              AND NOT EXISTS (SELECT 1 FROM glist_bars b JOIN list_entries x ON x.list_id = b.after
                              WHERE b.jkey = c.jkey AND b.list_id = g.list_id AND x.ckey = c.ckey
                              AND x.start <= {lit(t)})""")
        # a stay with a minimum length must be looked at again when that minimum is reached
        for months, days in con.execute(
            f"""SELECT DISTINCT g.stay_months, g.stay_days FROM list_entries e JOIN glists g
                ON g.jkey = e.jkey AND g.list_id = e.list_id
                WHERE e.cause = 'grade' AND e.start = {lit(t)} AND (g.stay_months > 0 OR g.stay_days > 0)"""
        ).fetchall():
            due = add_duration(t, f"{months}m") if months else t
            due = due + dt.timedelta(days=days)
            wake.update(i for i, x in enumerate(periods) if x >= due)

    # ------------------------------------------------------------------ memory and notifications

    def _memory(self) -> None:
        """Once untrustworthy, always restricted: a barred whitelist stay ends at the first blacklisting."""
        pairs: dict[tuple[str, str], set[int]] = {}
        for seg in self.compiled.segments:
            for mem in seg.rulebook.memory:
                for lid in mem.never_lists:
                    pairs.setdefault((mem.after, lid), set()).add(seg.jkey)
        for (after, lid), jkeys in pairs.items():
            js = ", ".join(map(str, sorted(jkeys)))
            self.con.execute(f"""
                WITH firsts AS (SELECT ckey, min(start) AS first FROM list_entries
                                WHERE list_id = {lit(after)} AND jkey IN ({js}) GROUP BY ckey)
                UPDATE list_entries SET "end" = f.first FROM firsts f
                WHERE list_entries.ckey = f.ckey AND list_entries.list_id = {lit(lid)}
                  AND list_entries.start < f.first
                  AND (list_entries."end" IS NULL OR list_entries."end" > f.first)""")
            self.con.execute(f"""
                DELETE FROM list_entries WHERE list_id = {lit(lid)} AND jkey IN ({js}) AND EXISTS (
                    SELECT 1 FROM list_entries b WHERE b.ckey = list_entries.ckey
                    AND b.list_id = {lit(after)} AND b.start <= list_entries.start)""")

    def _notifications(self) -> None:
        """Where a city notifies, the citizen is told at entry; elsewhere only a denial tells them."""
        self.con.execute("DELETE FROM notifications WHERE kind = 'listed'")
        self.con.execute("""INSERT INTO notifications
            SELECT e.ckey, e.start, 'listed', 'You were placed on the ' || e.list_id || ' (' || e.cause || ')'
            FROM list_entries e JOIN segments s ON s.jkey = e.jkey
             AND e.start >= coalesce(s.start, TIMESTAMP '0001-01-01') AND (s."end" IS NULL OR e.start < s."end")
            WHERE s.notify""")


def _grade_case(rb: Rulebook, score: str) -> str:
    whens = " ".join(f"WHEN {score} >= {g.min} THEN {lit(g.grade)}" for g in rb.grades)
    return f"CASE {whens} ELSE {lit(rb.grades[-1].grade)} END"


def _case_by_jkey(segs: dict[int, Rulebook], f: Callable[[Rulebook], str], col: str = "jkey") -> str:
    if not segs:
        return "NULL"
    whens = " ".join(f"WHEN {col} = {j} THEN {f(rb)}" for j, rb in segs.items())
    return f"(CASE {whens} ELSE NULL END)"


_WATERMARK = (
    "(SELECT coalesce(max(rkey), -1) FROM records) || ',' || (SELECT count(*) FROM retractions) || ',' || "
    "(SELECT count(*) FROM rulebook_versions) || ',' || (SELECT count(*) FROM citizens) || ',' || "
    "(SELECT count(*) FROM relations)"
)


def watermark(store: Store) -> str:
    """What the derived tables were computed from: changes whenever a fact is added."""
    return str(store.con.execute(f"SELECT {_WATERMARK}").fetchall()[0][0])


def store_clock(store: Store) -> dt.datetime:
    """The later of the store's last run and today: what bounds the times a question or a run may name
    (a store scored in the past can still be asked about the present, and one projected ahead about then)."""
    last, _, _ = run_state(store)
    now = utc_naive(None)
    return now if last is None else max(last, now)


def run_state(store: Store) -> tuple[dt.datetime | None, bool, str | None]:
    """(as_of of the last run, whether facts were added since, the replay's pin or None)."""
    row = store.con.execute(f"SELECT as_of, watermark <> {_WATERMARK}, pin FROM engine_run").fetchall()
    return (row[0][0], bool(row[0][1]), row[0][2]) if row else (None, True, None)


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


__all__ = ["Engine", "RunSummary", "next_record_after", "run_state", "store_clock", "watermark"]
