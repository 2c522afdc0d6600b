"""Monthly assessments: scores → grades → grade lists, with the network rule's one-step lag (SPEC §5).

Grades are assessed at the start of every CST month. Each ledger entry changes a citizen's running sum at
the first assessment that sees it (`deltas`); months in which nothing can change are skipped (their
assessment would repeat the last). The loop is Python over months; every month is a handful of
statements over whole tables (`grades.py`), run through the executor.

A month's index is arithmetic on the calendar (months since the first assessment, rounded up to the next
month start), so no executor needs DuckDB's ASOF join to find it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from socialcredit.clock import cst, month_start_utc, next_month_utc
from socialcredit.engine import grades
from socialcredit.engine.context import Context
from socialcredit.engine.executors import step
from socialcredit.engine.sql import cst_shift, fill
from socialcredit.rulebook import Rulebook, add_duration
from socialcredit.schema import TABLES

Progress = Callable[[str, int, int], None]
FAR = dt.datetime(9999, 12, 31)


def months(begin: dt.datetime | None, as_of: dt.datetime) -> list[dt.datetime]:
    """The assessments from the month `begin` falls in to as_of: CST month starts, as naive UTC."""
    out: list[dt.datetime] = []
    if begin is None:
        return out
    t = month_start_utc(begin)
    while t <= as_of:
        out.append(t)
        t = next_month_utc(t)
    return out


def period_of(at: exp.Expression, first: dt.datetime) -> exp.Expression:
    """The index of the first assessment at or after `at` (0 for any time before the first, `first`):
    the CST month number of `at`, one more unless `at` is exactly a month's start, minus the first's."""
    local = cst(first)
    return fill(
        """greatest(year($at + $cst) * 12 + month($at + $cst)
                    + CASE WHEN $at + $cst > date_trunc('month', $at + $cst) THEN 1 ELSE 0 END - $m0, 0)""",
        at=at,
        m0=local.year * 12 + local.month,
        cst=cst_shift(),
    )


def run_ledger(records: exp.Expression, as_of: dt.datetime) -> exp.Expression:
    """What the full deltas read (`run_ledger`): the ledger up to as_of without the network entries the month loop
    adds, from the record ledger `records`. A view, not a copy: copying the stored record entries costs more than
    reading them; made only for a full run's deltas, which read it."""
    return fill(
        """SELECT * FROM __records AS r WHERE valid_from <= $as_of
           UNION ALL SELECT * FROM state_ledger WHERE valid_from <= $as_of AND source <> 'network'""",
        records=records,
        as_of=as_of,
    )


def deltas_full(periods: list[dt.datetime]) -> exp.Expression:
    """Each ledger entry's change to its citizen's running sum (its points from valid_from, minus them from
    valid_to), summed by the assessment that first sees it."""
    ev = fill(
        """SELECT ckey, valid_from AS at, points AS d FROM run_ledger WHERE points <> 0
           UNION ALL SELECT ckey, valid_to AS at, -points AS d FROM run_ledger
           WHERE points <> 0 AND valid_to IS NOT NULL"""
    )
    return _by_period(ev, "at", periods)


def _by_period(events: exp.Expression, at: str, periods: list[dt.datetime]) -> exp.Expression:
    return fill(
        """SELECT ckey, p, CAST(sum(d) AS INT) AS d
           FROM (SELECT ckey, CAST($p AS INT) AS p, d FROM __events AS ev WHERE $at_col <= $last) AS e
           GROUP BY ckey, p HAVING sum(d) <> 0""",
        events=events,
        p=period_of(exp.column(at), periods[0]),
        at_col=exp.column(at),
        last=periods[-1],
    )


def pending_full(periods: list[dt.datetime]) -> exp.Expression:
    """The record entries' expiries after the last month, for the next run (`engine_pending`)."""
    return fill(
        """SELECT ckey, valid_to AS due, -points AS d, valid_from AS vf FROM run_ledger
           WHERE source = 'record' AND points <> 0 AND valid_from <= $last AND valid_to > $last""",
        last=periods[-1],
    )


def events_carried(recent: exp.Expression, as_of: dt.datetime, carried: dt.datetime) -> exp.Expression:
    """The changes after the carried month, without reading the history (`_deltas` in the runner says why):
    `expiry` marks a record entry's end, `pending` one the last run left in `engine_pending` (only those due
    by as_of: the others wait there for a later run)."""
    return fill(
        """WITH src AS (
               SELECT ckey, source, points, valid_from, valid_to FROM __recent AS r
               WHERE valid_from <= $as_of AND points <> 0
               UNION ALL SELECT ckey, source, points, valid_from, valid_to FROM state_ledger
               WHERE source <> 'network' AND valid_from <= $as_of AND points <> 0)
           SELECT ckey, valid_from AS due, points AS d, valid_from AS vf, FALSE AS expiry, FALSE AS pending FROM src
           WHERE valid_from > $t
           UNION ALL SELECT ckey, valid_to, -points, valid_from, source = 'record', FALSE FROM src WHERE valid_to > $t
           UNION ALL SELECT ckey, due, d, vf, TRUE, TRUE FROM engine_pending WHERE due <= $as_of""",
        recent=recent,
        as_of=as_of,
        t=carried,
    )


def deltas_carried(periods: list[dt.datetime]) -> exp.Expression:
    return _by_period(fill("SELECT ckey, due, d FROM ev"), "due", periods)


def pending_spent(last: dt.datetime) -> exp.Expression:
    """The pending expiries a run through the month at `last` has counted: they leave `engine_pending`."""
    return fill("due <= $last", last=last)


def pending_new(last: dt.datetime) -> exp.Expression:
    """The expiries after the month at `last` of record entries that run saw first: they join `engine_pending`
    (those already there stay where they are)."""
    return fill(
        "SELECT ckey, due, d, vf FROM ev WHERE expiry AND NOT pending AND vf <= $last AND due > $last", last=last
    )


def busy_stays(periods: list[dt.datetime]) -> exp.Expression:
    """The months in which a stay starts or ends."""
    at = exp.column("at")
    return fill(
        """SELECT DISTINCT CAST($p AS INT) AS p FROM (
               SELECT start AS at FROM stays UNION ALL SELECT "end" FROM stays WHERE "end" IS NOT NULL) AS e
           WHERE at <= $last""",
        p=period_of(at, periods[0]),
        last=periods[-1],
    )


@dataclass
class MonthLoop:
    """The loop's driver state: which months to assess and what the last assessment left."""

    ctx: Context
    periods: list[dt.datetime]
    network: bool
    assess_everyone: Callable[[bool], bool]
    wake: set[int] = field(default_factory=set)
    listed_any: bool = False

    def busy(self) -> set[int]:
        """Months in which anything can change."""
        ctx = self.ctx
        moving = {int(p) for (p,) in ctx.rows(fill("SELECT DISTINCT p FROM deltas"))}
        busy = moving | {int(p) for (p,) in ctx.rows(busy_stays(self.periods))}
        for s in ctx.compiled.segments:
            if s.start is not None:
                busy.add(next((i for i, t in enumerate(self.periods) if t >= s.start), len(self.periods)))
        busy.add(0)
        return busy

    def wake_at(self, due: dt.datetime | None) -> None:
        """Look at every month from `due` on again (a minimum stay is reached then)."""
        if due is not None:
            self.wake.update(i for i, x in enumerate(self.periods) if x >= due)

    def run(
        self,
        p0: int,
        kept_segs: dict[int, Rulebook] | None,
        progress: Progress | None,
        busy: set[int],
    ) -> int:
        """Assess months p0.. (the busy ones, those a minimum stay wakes, and every month once the network
        rule has a listed contact to read); how many were assessed."""
        ctx, ex, periods = self.ctx, self.ctx.executor, self.periods
        last_segs: dict[int, Rulebook] | None = None
        last_epochs: dict[int, int] | None = None
        rules: tuple[pa.Table, exp.Expression] | None = None
        first_end = ctx.scalar(grades.first_tie_end()) if self.network else None
        done = 0
        for p in range(p0, len(periods)):
            t = periods[p]
            if progress and p % 12 == 0:
                progress("assessments", p, len(periods))
            if not (p in busy or p in self.wake or (self.network and self.listed_any)):
                continue
            segs = ctx.segments_at(t)
            # everyone is assessed when no state is kept (a full run's first month) and when a rulebook
            # version changes (scale, grades and lists with it); otherwise only the citizens who moved
            everyone = self.assess_everyone(segs != (last_segs if done else kept_segs))
            done += 1
            if segs != last_segs:
                for name, table in grades.grade_list_tables(segs).items():
                    ex.load(name, table, temporary=True)
                last_segs = segs
            if self.network and (epochs := ctx.epochs_at(t)) != last_epochs:
                rules = grades.network_rules(ctx, epochs)
                if rules is not None:
                    ex.load("net_rules", rules[0], temporary=True)
                last_epochs = epochs
            if self.network and rules is not None:
                ended = first_end is not None and first_end <= t
                ex.materialize("share_t", step(grades.network_share, t, ended), temporary=True)
                ex.load("month_t", grades.month_table(t, next_month_utc(t)), temporary=True)
                ex.extend("state_ledger", rules[1].copy())
            ex.materialize("nxt", grades.assessed(segs, everyone, p, t, self.network), temporary=True)
            ex.extend("score_log", step(grades.score_changes, t))
            if everyone:
                ex.materialize("engine_carry", step(grades.after_assessment, everyone))
            else:
                ex.update("engine_carry", "ckey", step(grades.after_assessment, everyone))
            ex.materialize("grade_stays", step(grades.grade_stays_after, t, everyone), temporary=True)
            # a stay with a minimum length must be looked at again when that minimum is reached
            for n_months, n_days in ctx.rows(step(grades.minimum_stays_entered, t)):
                due = add_duration(t, f"{n_months}m") if n_months else t
                self.wake_at(due + dt.timedelta(days=n_days))
            if self.network and not self.listed_any:
                self.listed_any = int(ctx.scalar(step(grades.blacklisted_any))) > 0
        return done


def start_state() -> exp.Expression:
    """Every citizen before any assessment: nothing summed, no score, no grade."""
    return fill("""SELECT ckey, jkey, CAST(0 AS INT) AS raw, CAST(0 AS INT) AS net, CAST(NULL AS INT) AS score,
                          CAST(NULL AS VARCHAR) AS grade FROM citizens""")


def periods_table(periods: list[dt.datetime]) -> pa.Table:
    return pa.table({"p": pa.array(range(len(periods)), pa.int32()), "t": pa.array(periods, pa.timestamp("us"))})


def empty(name: str) -> exp.Expression:
    return TABLES[name].empty()
