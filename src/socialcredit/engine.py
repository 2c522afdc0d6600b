"""The engine: one set-wise path from records to ledger, scores, grades, list entries and measures.

A run recomputes the derived tables from the append-only facts as of a time, so results depend only
on (records, retractions, rulebook versions, population, as_of), never on arrival order. Records are
scored by the compiled decision tables; characteristics give points while they hold; grades are
assessed at the start of every month, when grade lists are entered and left and the network rule
reads contacts' list status (as it stood before that assessment: the one-step lag of SPEC §5).
This module is long because those steps share one run's state; each step is one function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from socialcredit.compiler import (
    CST,
    Compiled,
    Segment,
    compile_rulebooks,
    epoch_expr,
    record_ledger_query,
    to_sql,
)
from socialcredit.conditions import qualify
from socialcredit.ingest import q
from socialcredit.rulebook import Rulebook, duration_parts
from socialcredit.store import Store

Progress = Callable[[str, int, int], None]


def utc_naive(t: dt.datetime | None) -> dt.datetime:
    if t is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    if t.tzinfo is None:
        return t
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def month_start_utc(t_utc: dt.datetime) -> dt.datetime:
    local = (t_utc.replace(tzinfo=dt.UTC)).astimezone(CST)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.UTC).replace(tzinfo=None)


def next_month_utc(t_utc: dt.datetime) -> dt.datetime:
    local = (t_utc.replace(tzinfo=dt.UTC)).astimezone(CST)
    y, m = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return dt.datetime(y, m, 1, tzinfo=CST).astimezone(dt.UTC).replace(tzinfo=None)


def interval_sql(duration: str) -> str:
    n, unit = duration_parts(duration)
    return f"INTERVAL {n} {unit.upper()}"


def lit(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v:%Y-%m-%d %H:%M:%S}'"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


@dataclass
class RunSummary:
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

    # ------------------------------------------------------------------ entry point

    def run(
        self, as_of: dt.datetime | None = None, pin: str | None = None, progress: Progress | None = None
    ) -> RunSummary:
        import time

        t0 = time.perf_counter()
        self.store.require_init()
        as_of = utc_naive(as_of)
        rulebooks = self.store.rulebooks()
        pin_map = None
        if pin:
            _, pin_map = rulebooks.parse_version(pin)
        jkeys = dict(self.con.execute("SELECT code, jkey FROM jurisdictions").fetchall())
        bkeys = dict(self.con.execute("SELECT code, bkey FROM behaviours").fetchall())
        self.bkeys = bkeys
        compiled = compile_rulebooks(rulebooks, jkeys, bkeys, pin_map)
        self.compiled = compiled
        step = progress or (lambda *_: None)
        with self.store.transaction():
            step("compile", 1, 7)
            self._tune()
            self._load_compiled(compiled)
            self._records_view(compiled, as_of)
            step("ledger", 2, 7)
            self.record_ledger(compiled)
            self._apply_caps(compiled)
            step("characteristics", 3, 7)
            self._characteristics()
            self._characteristic_ledger(compiled)
            step("triggers", 4, 7)
            self._trigger_entries(compiled)
            step("assessments", 5, 7)
            n_assess = self._assessments(compiled, as_of, progress)
            step("memory", 6, 7)
            self._memory(compiled)
            self._notifications(compiled)
            step("done", 7, 7)
            records = self.con.execute("SELECT count(*) FROM recs").fetchall()[0][0]
            ledger = self.con.execute("SELECT count(*) FROM ledger").fetchall()[0][0]
            entries = self.con.execute("SELECT count(*) FROM list_entries").fetchall()[0][0]
            watermark = self.con.execute(
                "SELECT (SELECT coalesce(max(rkey), -1) FROM records), (SELECT count(*) FROM retractions), "
                "(SELECT count(*) FROM rulebook_versions), (SELECT count(*) FROM citizens), "
                "(SELECT count(*) FROM relations)"
            ).fetchall()[0]
            self.con.execute(
                "CREATE OR REPLACE TABLE engine_run AS SELECT ? AS as_of, ? AS pin, "
                "now()::TIMESTAMP AS computed_at, ? AS watermark",
                [as_of, pin, ",".join(map(str, watermark))],
            )
        return RunSummary(as_of, pin, records, ledger, entries, n_assess, time.perf_counter() - t0)

    # ------------------------------------------------------------------ steps

    def _tune(self) -> None:
        n = self.con.execute("SELECT coalesce(max(ckey), 0) + 1 FROM citizens").fetchall()[0][0]
        bits = max(12, min(26, int(n).bit_length() + 1))
        self.con.execute(f"SET perfect_ht_threshold = {bits}")

    def _load_compiled(self, c: Compiled) -> None:
        for name, table in (
            ("dt_params", c.params_table()),
            ("dt_intervals", c.intervals_table()),
            ("pieces", c.pieces_table()),
        ):
            self.con.register("_arrow", table)
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _arrow")
            self.con.unregister("_arrow")
        seg = pa.table(
            {
                "jkey": pa.array([s.jkey for s in c.segments], pa.int16()),
                "epoch": pa.array([s.epoch for s in c.segments], pa.int32()),
                "version": [s.rulebook.version for s in c.segments],
                "start": pa.array([s.start for s in c.segments], pa.timestamp("us")),
                "end": pa.array([s.end for s in c.segments], pa.timestamp("us")),
                "base": [s.rulebook.scale.base for s in c.segments],
                "min": [s.rulebook.scale.min for s in c.segments],
                "max": [s.rulebook.scale.max for s in c.segments],
            }
        )
        self.con.register("_arrow", seg)
        self.con.execute("CREATE OR REPLACE TABLE segments AS SELECT * FROM _arrow")
        self.con.unregister("_arrow")

    def _records_view(self, c: Compiled, as_of: dt.datetime) -> None:
        epoch = to_sql(epoch_expr(c.change_points, _col("occurred_at")))
        self.con.execute(f"""CREATE OR REPLACE TEMP TABLE recs AS
            SELECT r.*, {epoch} AS epoch FROM records r
            WHERE r.occurred_at <= {lit(as_of)}
              AND NOT EXISTS (SELECT 1 FROM retractions x WHERE x.rkey = r.rkey)""")

    def record_ledger(self, c: Compiled) -> None:
        """Records → ledger rows through the decision tables (the hot path the benchmark measures)."""
        query = to_sql(record_ledger_query(c, "recs"))
        self.con.execute(f"""CREATE OR REPLACE TABLE ledger AS
            SELECT l.ckey, l.jkey, l.epoch, 'record' AS source, l.rkey, l.bkey, NULL::VARCHAR AS characteristic,
                   l.piece, p.points, l.occurred_at AS valid_from,
                   CASE WHEN p.vf_months IS NULL THEN NULL
                        ELSE l.occurred_at + to_months(p.vf_months) + to_days(p.vf_days) END AS valid_to
            FROM ({query}) l JOIN pieces p USING (piece)""")

    def _apply_caps(self, c: Compiled) -> None:
        rows = [
            (s.jkey, s.epoch, self.bkeys[cap.behaviour], cap.per, cap.max, cap.min)
            for s in c.segments
            for cap in s.rulebook.caps
        ]
        if not rows:
            return
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE caps_t(jkey SMALLINT, epoch INT, bkey SMALLINT, per VARCHAR, hi INT, lo INT)"
        )
        self.con.executemany("INSERT INTO caps_t VALUES (?, ?, ?, ?, ?, ?)", rows)
        # running sum inside the cap period (CST calendar), clamped; each row keeps what the clamp lets through
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE capped AS
            WITH x AS (
                SELECT l.rowid AS rid, l.points, c.hi, c.lo,
                       sum(l.points) OVER w AS cum
                FROM ledger l JOIN caps_t c USING (jkey, epoch, bkey)
                WHERE l.source = 'record'
                WINDOW w AS (PARTITION BY l.ckey, l.bkey,
                                 date_trunc(c.per, l.valid_from + INTERVAL 8 HOUR)
                             ORDER BY l.valid_from, l.rkey, l.piece ROWS UNBOUNDED PRECEDING))
            SELECT rid, least(greatest(cum, coalesce(lo, cum)), coalesce(hi, cum))
                      - least(greatest(cum - points, coalesce(lo, cum - points)), coalesce(hi, cum - points)) AS granted
            FROM x""")
        self.con.execute("UPDATE ledger SET points = capped.granted FROM capped WHERE ledger.rowid = capped.rid")

    def _characteristics(self) -> None:
        """State characteristics as intervals: from each setting record to its clearing record or term."""
        cat = self.catalog
        attrs = sorted({a for ch in cat.characteristics.values() for a in ch.attributes})
        typed = {a: cat.attributes[a].type for a in attrs}
        parts = []
        for ch in cat.characteristics.values():
            if ch.kind != "state":
                continue
            sets = ", ".join(str(self.bkeys[b]) for b in ch.set_by)
            clears = ", ".join(str(self.bkeys[b]) for b in ch.cleared_by) or "NULL"
            term = (
                f"CASE WHEN s.{q(ch.term_attribute)} > 0 THEN s.occurred_at + "
                f"to_days(s.{q(ch.term_attribute)}::INT) END"
                if ch.term_attribute
                else "NULL"
            )
            cols = ", ".join(
                (
                    f"s.{q(a)}"
                    if a in ch.attributes and all(a in cat.behaviours[b].attributes for b in ch.set_by)
                    else f"NULL::{_sqltype(typed[a])}"
                )
                + f" AS {q(a)}"
                for a in attrs
            )
            parts.append(f"""
                SELECT s.ckey, s.jkey, {lit(ch.code)} AS characteristic, s.rkey, s.occurred_at AS start,
                       least((SELECT min(c.occurred_at) FROM recs c WHERE c.ckey = s.ckey AND c.bkey IN ({clears})
                              AND c.occurred_at >= s.occurred_at), {term}) AS "end"{", " if cols else ""}{cols}
                FROM recs s WHERE s.bkey IN ({sets})""")
        empty = ", ".join(f"NULL::{_sqltype(typed[a])} AS {q(a)}" for a in attrs)
        parts.append(
            "SELECT NULL::INT AS ckey, NULL::SMALLINT AS jkey, NULL::VARCHAR, NULL::BIGINT, NULL::TIMESTAMP, "
            f"NULL::TIMESTAMP{', ' if empty else ''}{empty} WHERE false"
        )
        self.con.execute("CREATE OR REPLACE TABLE characteristic_intervals AS " + " UNION ALL ".join(parts))

    def _characteristic_ledger(self, c: Compiled) -> None:
        for seg, rule, cond, piece in c.characteristic_rules:
            ch = self.catalog.characteristics[rule.characteristic]
            if ch.kind != "state":
                continue
            where = [f"ci.characteristic = {lit(ch.code)}", f"ci.jkey = {seg.jkey}"]
            if seg.end is not None:
                where.append(f"ci.start < {lit(seg.end)}")
            if seg.start is not None:
                where.append(f'(ci."end" IS NULL OR ci."end" > {lit(seg.start)})')
            if cond is not None:
                where.append(to_sql(qualify(cond, "ci")))
            start = f"greatest(ci.start, {lit(seg.start)})" if seg.start else "ci.start"
            end = f'least(ci."end", {lit(seg.end)})' if seg.end else 'ci."end"'
            self.con.execute(f"""INSERT INTO ledger
                SELECT ci.ckey, ci.jkey, {seg.epoch}, 'characteristic', ci.rkey, NULL, ci.characteristic, {piece},
                       {rule.points}, {start}, {end}
                FROM characteristic_intervals ci WHERE {" AND ".join(where)}""")

    def _trigger_entries(self, c: Compiled) -> None:
        self.con.execute("""CREATE OR REPLACE TABLE list_entries(ckey INTEGER, jkey SMALLINT, list_id VARCHAR,
            kind VARCHAR, start TIMESTAMP, "end" TIMESTAMP, cause VARCHAR, rkey BIGINT, characteristic VARCHAR,
            grade VARCHAR, score INTEGER, version VARCHAR)""")
        for seg in c.segments:
            rb = seg.rulebook
            for lst in rb.lists:
                for i, trig in enumerate(lst.triggers):
                    cond = rb.conditions.get(f"trigger:{lst.id}:{i}")
                    if trig.behaviour is not None:
                        where = [
                            f"r.jkey = {seg.jkey}",
                            f"r.epoch = {seg.epoch}",
                            f"r.bkey = {self.bkeys[trig.behaviour]}",
                        ]
                        if cond is not None:
                            where.append(to_sql(qualify(cond, "r")))
                        self.con.execute(f"""INSERT INTO list_entries
                            SELECT r.ckey, r.jkey, {lit(lst.id)}, {lit(lst.kind)}, r.occurred_at,
                                   r.occurred_at + {interval_sql(trig.duration)}, 'behaviour', r.rkey, NULL, NULL,
                                   NULL, {lit(rb.version)}
                            FROM recs r WHERE {" AND ".join(where)}""")
                    else:
                        where = [f"ci.characteristic = {lit(trig.characteristic)}", f"ci.jkey = {seg.jkey}"]
                        if seg.end is not None:
                            where.append(f"ci.start < {lit(seg.end)}")
                        if seg.start is not None:
                            where.append(f'(ci."end" IS NULL OR ci."end" > {lit(seg.start)})')
                        if cond is not None:
                            where.append(to_sql(qualify(cond, "ci")))
                        start = f"greatest(ci.start, {lit(seg.start)})" if seg.start else "ci.start"
                        end = f'least(ci."end", {lit(seg.end)})' if seg.end else 'ci."end"'
                        self.con.execute(f"""INSERT INTO list_entries
                            SELECT ci.ckey, ci.jkey, {lit(lst.id)}, {lit(lst.kind)}, {start}, {end},
                                   'characteristic', ci.rkey, ci.characteristic, NULL, NULL, {lit(rb.version)}
                            FROM characteristic_intervals ci WHERE {" AND ".join(where)}""")
        # a stay that spans a rulebook change is one stay: join the pieces the clipping made
        self.con.execute("""CREATE OR REPLACE TABLE list_entries AS
            SELECT ckey, jkey, list_id, kind, min(start) AS start,
                   CASE WHEN bool_or("end" IS NULL) THEN NULL ELSE max("end") END AS "end",
                   cause, rkey, characteristic, grade, score, first(version ORDER BY start) AS version
            FROM list_entries GROUP BY ckey, jkey, list_id, kind, cause, rkey, characteristic, grade, score""")

    def _assessments(self, c: Compiled, as_of: dt.datetime, progress: Progress | None) -> int:
        """Monthly assessments: scores → grades → grade lists, with the network rule's one-step lag."""
        con = self.con
        first = con.execute("SELECT min(valid_from) FROM ledger").fetchall()[0][0]
        starts = [s.start for s in c.segments if s.start is not None]
        if first is None and not starts:
            first = None
        if first is None:
            con.execute(
                "CREATE OR REPLACE TABLE score_log(ckey INTEGER, assessed_at TIMESTAMP, score INTEGER, "
                "grade VARCHAR, version VARCHAR)"
            )
            return 0
        t = month_start_utc(max(first, min(starts)) if starts else first)
        periods: list[dt.datetime] = []
        while t <= as_of:
            periods.append(t)
            t = next_month_utc(t)
        if not periods:
            con.execute(
                "CREATE OR REPLACE TABLE score_log(ckey INTEGER, assessed_at TIMESTAMP, score INTEGER, "
                "grade VARCHAR, version VARCHAR)"
            )
            return 0
        con.register(
            "_periods",
            pa.table({"p": pa.array(range(len(periods)), pa.int32()), "t": pa.array(periods, pa.timestamp("us"))}),
        )
        con.execute("CREATE OR REPLACE TEMP TABLE periods AS SELECT * FROM _periods")
        con.unregister("_periods")
        # the change each ledger entry makes to the running sum, at the first assessment that sees it
        con.execute("""CREATE OR REPLACE TEMP TABLE deltas AS
            WITH ev AS (
                SELECT ckey, valid_from AS at, points AS d FROM ledger WHERE points <> 0
                UNION ALL SELECT ckey, valid_to, -points FROM ledger WHERE points <> 0 AND valid_to IS NOT NULL)
            SELECT ev.ckey, p.p, sum(ev.d)::INTEGER AS d
            FROM ev ASOF JOIN periods p ON p.t >= ev.at
            GROUP BY ev.ckey, p.p HAVING sum(ev.d) <> 0""")
        con.execute("""CREATE OR REPLACE TEMP TABLE cur AS SELECT ckey, jkey, 0::INTEGER AS raw, 0::INTEGER AS net,
            NULL::INTEGER AS score, NULL::VARCHAR AS grade FROM citizens""")
        con.execute(
            "CREATE OR REPLACE TABLE score_log(ckey INTEGER, assessed_at TIMESTAMP, score INTEGER, grade VARCHAR, "
            "version VARCHAR)"
        )
        busy = {p for (p,) in con.execute("SELECT DISTINCT p FROM deltas").fetchall()}
        busy |= {
            p
            for (p,) in con.execute(
                "SELECT DISTINCT p.p FROM list_entries e ASOF JOIN periods p ON p.t >= e.start"
            ).fetchall()
        }
        busy |= {
            p
            for (p,) in con.execute(
                'SELECT DISTINCT p.p FROM list_entries e ASOF JOIN periods p ON p.t >= e."end" '
                'WHERE e."end" IS NOT NULL'
            ).fetchall()
        }
        for s in c.segments:
            if s.start is not None:
                busy.add(next((i for i, t in enumerate(periods) if t >= s.start), len(periods)))
        network = any(
            r.characteristic and self.catalog.characteristics[r.characteristic].kind == "network"
            for s in c.segments
            for r in s.rulebook.rules
        )
        wake: set[int] = set()
        done = 0
        listed_any = False
        for p, t in enumerate(periods):
            if progress and p % 12 == 0:
                progress("assessments", p, len(periods))
            if not (p in busy or p in wake or (network and listed_any)):
                continue
            done += 1
            segs = self._segments_at(c, t)
            con.execute(f"UPDATE cur SET raw = raw + d.d FROM deltas d WHERE d.p = {p} AND d.ckey = cur.ckey")
            if network:
                self._network(c, segs, p, t, periods[p + 1] if p + 1 < len(periods) else None)
            score = _case_by_jkey(
                segs, lambda rb: f"least(greatest({rb.scale.base} + raw + net, {rb.scale.min}), {rb.scale.max})"
            )
            con.execute(f"""CREATE OR REPLACE TEMP TABLE nxt AS SELECT ckey, jkey, raw, net, {score} AS score
                FROM cur""")
            grade = _case_by_jkey(segs, lambda rb: _grade_case(rb, "n.score"), "n.jkey")
            version = _case_by_jkey(segs, lambda rb: lit(rb.version), "n.jkey")
            con.execute(f"""INSERT INTO score_log
                SELECT n.ckey, {lit(t)}, n.score, {grade}, {version} FROM nxt n JOIN cur c USING (ckey)
                WHERE n.score IS NOT NULL
                  AND (c.score IS NULL OR c.score <> n.score OR c.grade IS DISTINCT FROM {grade})""")
            con.execute(f"""UPDATE cur SET score = n.score, grade = {grade} FROM nxt n
                WHERE n.ckey = cur.ckey""")
            self._grade_lists(segs, p, t, wake, periods)
            if network and not listed_any:
                listed_any = bool(
                    con.execute("SELECT count(*) FROM list_entries WHERE kind = 'blacklist'").fetchall()[0][0]
                )
        return done

    def _segments_at(self, c: Compiled, t: dt.datetime) -> dict[int, Rulebook]:
        out: dict[int, Rulebook] = {}
        for s in c.segments:
            if (s.start is None or s.start <= t) and (s.end is None or t < s.end):
                out[s.jkey] = s.rulebook
        return out

    def _network(
        self, c: Compiled, segs: dict[int, Rulebook], p: int, t: dt.datetime, t_next: dt.datetime | None
    ) -> None:
        con = self.con
        rules = [
            (jkey, rb, r)
            for jkey, rb in segs.items()
            for r in rb.rules
            if r.characteristic and self.catalog.characteristics[r.characteristic].kind == "network"
        ]
        con.execute("UPDATE cur SET net = 0 WHERE net <> 0")
        if not rules:
            return
        con.execute(f"""CREATE OR REPLACE TEMP TABLE share_t AS
            WITH listed AS (SELECT DISTINCT ckey FROM list_entries WHERE kind = 'blacklist'
                            AND start <= {lit(t)} AND ("end" IS NULL OR "end" > {lit(t)}))
            SELECT r.ckey, c.jkey, count(l.ckey)::DOUBLE / count(*) AS share
            FROM relations r JOIN citizens c ON c.ckey = r.ckey LEFT JOIN listed l ON l.ckey = r.other
            WHERE r.kind = 'contact' GROUP BY r.ckey, c.jkey HAVING count(l.ckey) > 0""")
        piece_of = {(s.jkey, s.epoch, r.id): piece for s, r, _, piece in c.characteristic_rules}
        epoch_of = {
            s.jkey: s.epoch for s in c.segments if (s.start is None or s.start <= t) and (s.end is None or t < s.end)
        }
        for jkey, rb, r in rules:
            cond = rb.conditions.get(f"rule:{r.id}")
            where = f"s.jkey = {jkey}" + (f" AND {to_sql(qualify(cond, 's'))}" if cond is not None else "")
            piece = piece_of[(jkey, epoch_of[jkey], r.id)]
            con.execute(f"""INSERT INTO ledger
                SELECT s.ckey, s.jkey, {epoch_of[jkey]}, 'network', NULL, NULL, {lit(r.characteristic)}, {piece},
                       {r.points}, {lit(t)}, {lit(t_next) if t_next else "NULL"}
                FROM share_t s WHERE {where}""")
        con.execute(f"""UPDATE cur SET net = x.pts FROM (SELECT ckey, sum(points)::INTEGER AS pts FROM ledger
            WHERE source = 'network' AND valid_from = {lit(t)} GROUP BY ckey) x WHERE x.ckey = cur.ckey""")

    def _grade_lists(
        self, segs: dict[int, Rulebook], p: int, t: dt.datetime, wake: set[int], periods: list[dt.datetime]
    ) -> None:
        con = self.con
        for jkey, rb in segs.items():
            for lst in rb.lists:
                if not lst.grades:
                    continue
                grades = ", ".join(lit(g) for g in lst.grades)
                barred = [m.after for m in rb.memory if lst.id in m.never_lists]
                bar = ""
                if barred:
                    after = ", ".join(lit(b) for b in barred)
                    bar = (
                        f" AND NOT EXISTS (SELECT 1 FROM list_entries b WHERE b.ckey = c.ckey AND "
                        f"b.list_id IN ({after}) AND b.start <= {lit(t)})"
                    )
                stay = f" AND e.start + {interval_sql(lst.min_stay)} <= {lit(t)}" if lst.min_stay else ""
                con.execute(f"""UPDATE list_entries e SET "end" = {lit(t)} FROM cur c
                    WHERE e.ckey = c.ckey AND e.list_id = {lit(lst.id)} AND e.cause = 'grade' AND e."end" IS NULL
                      AND c.jkey = {jkey} AND (c.grade NOT IN ({grades}) OR c.grade IS NULL){stay}""")
                opened = con.execute(f"""INSERT INTO list_entries
                    SELECT c.ckey, c.jkey, {lit(lst.id)}, {lit(lst.kind)}, {lit(t)}, NULL, 'grade', NULL, NULL,
                           c.grade, c.score, {lit(rb.version)}
                    FROM cur c WHERE c.jkey = {jkey} AND c.grade IN ({grades}) AND NOT EXISTS (
                        SELECT 1 FROM list_entries e WHERE e.ckey = c.ckey AND e.list_id = {lit(lst.id)}
                        AND e.cause = 'grade' AND e."end" IS NULL){bar}""").fetchall()[0][0]
                if opened and lst.min_stay:
                    from socialcredit.rulebook import add_duration

                    due = add_duration(t, lst.min_stay)
                    wake.update(i for i, x in enumerate(periods) if x >= due)

    def _memory(self, c: Compiled) -> None:
        """Once untrustworthy, always restricted: end barred whitelist stays at the first blacklisting."""
        for seg in c.segments:
            for mem in seg.rulebook.memory:
                for lid in mem.never_lists:
                    self.con.execute(f"""
                        WITH firsts AS (SELECT ckey, min(start) AS first FROM list_entries
                                        WHERE list_id = {lit(mem.after)} AND jkey = {seg.jkey} GROUP BY ckey)
                        UPDATE list_entries SET "end" = f.first FROM firsts f
                        WHERE list_entries.ckey = f.ckey AND list_entries.list_id = {lit(lid)}
                          AND list_entries.start < f.first
                          AND (list_entries."end" IS NULL OR list_entries."end" > f.first)
                    """)
                    self.con.execute(f"""
                        DELETE FROM list_entries WHERE list_id = {lit(lid)} AND jkey = {seg.jkey} AND EXISTS (
                            SELECT 1 FROM list_entries b WHERE b.ckey = list_entries.ckey
                            AND b.list_id = {lit(mem.after)} AND b.start <= list_entries.start)""")

    def _notifications(self, c: Compiled) -> None:
        """Where a city notifies, the citizen is told at entry; elsewhere only a denial tells them."""
        self.con.execute("DELETE FROM notifications WHERE kind = 'listed'")
        for seg in c.segments:
            if not seg.rulebook.disclosure.notify_citizens:
                continue
            cond = [f"e.jkey = {seg.jkey}"]
            if seg.start is not None:
                cond.append(f"e.start >= {lit(seg.start)}")
            if seg.end is not None:
                cond.append(f"e.start < {lit(seg.end)}")
            self.con.execute(f"""INSERT INTO notifications
                SELECT e.ckey, e.start, 'listed', 'You were placed on the ' || e.list_id || ' (' || e.cause || ')'
                FROM list_entries e WHERE {" AND ".join(cond)}""")


def _col(name: str):
    from sqlglot import exp

    return exp.column(name)


def _sqltype(t: str) -> str:
    return {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "str": "VARCHAR"}[t]


def _grade_case(rb: Rulebook, score: str) -> str:
    whens = " ".join(f"WHEN {score} >= {g.min} THEN {lit(g.grade)}" for g in rb.grades)
    return f"CASE {whens} ELSE {lit(rb.grades[-1].grade)} END"


def _case_by_jkey(segs: dict[int, Rulebook], f: Callable[[Rulebook], str], col: str = "jkey") -> str:
    if not segs:
        return "NULL"
    whens = " ".join(f"WHEN {col} = {j} THEN {f(rb)}" for j, rb in segs.items())
    return f"(CASE {whens} ELSE NULL END)"


def is_stale(store: Store) -> bool:
    """Whether facts changed since the last run (then decisions must not trust the derived tables)."""
    has = store.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'engine_run'"
    ).fetchall()[0][0]
    if not has:
        return True
    watermark = store.con.execute(
        "SELECT (SELECT coalesce(max(rkey), -1) FROM records), (SELECT count(*) FROM retractions), "
        "(SELECT count(*) FROM rulebook_versions), (SELECT count(*) FROM citizens), "
        "(SELECT count(*) FROM relations)"
    ).fetchall()[0]
    stored = store.con.execute("SELECT watermark, pin FROM engine_run").fetchall()[0]
    return stored[0] != ",".join(map(str, watermark)) or stored[1] is not None


def last_as_of(store: Store) -> dt.datetime | None:
    try:
        return store.con.execute("SELECT as_of FROM engine_run").fetchall()[0][0]
    except Exception:
        return None


__all__ = ["Engine", "RunSummary", "Segment", "is_stale", "last_as_of"]
