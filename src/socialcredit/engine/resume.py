"""Incremental runs: when a run may keep the last run's assessments, and the state it restarts from.

When only records and relation changes were appended since the last run, or rulebook versions added (and
as_of did not go back), a run keeps the monthly assessments before the earliest new record or change, or
the first day a new version changes what is in force, and redoes the rest from the state they carried; the
result is the same as a full run's (tests/test_incremental.py), at one month's cost instead of all.
Relation changes are dated facts and the network rule reads the contacts in force at each assessment, so a
tie dropped in a later month changes nothing before it. A version scheduled ahead (the service after a
rulebook is scheduled, an impact preview's second run) redoes the months from its first day alone.

It reads the tables the last run left through the executor: in the store for DuckDB, handed over with the
facts for Spark (`executors.spark_run.LAST_RUN`), so a run on either engine resumes from a run on either.
The facts are fingerprinted in the store itself, with DuckDB's hash of the citizen columns that matter
(`facts_fingerprint`), which no other dialect computes the same way. It is still a set of sqlglot
expressions run through the executor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlglot import exp

from socialcredit.compiler import Compiled, Segment, compile_rulebooks
from socialcredit.engine.context import Context
from socialcredit.engine.ledger import prepared
from socialcredit.engine.sql import fill
from socialcredit.rulebook import RulebookSet, stay_due
from socialcredit.schema import TABLES

# bump when the meaning of the stored derived tables changes: the next run then recomputes fully
INCREMENTAL_FORMAT = "4"  # 4: engine_carry is the loop's own state, updated in place
# what a run must find in `engine_run` to resume from it
_RESUMABLE = ("as_of", "pin", "watermark", "facts", "state", "first_assessment", "carried_at", "kept")
# the tables a resumed run reads besides the facts (all declared in socialcredit.schema)
STATE_TABLES = ("record_entries", "engine_grade_stays", "score_log", "state_ledger", "engine_carry", "engine_pending")


def kept_expr() -> exp.Expression:
    """The row counts of the state tables, as one text: the last run stores it, and a run resumes only when
    the tables still hold what it left (a table dropped and recreated empty does not)."""
    counts = [exp.cast(exp.select(exp.func("count", exp.Star())).from_(t).subquery(), "VARCHAR") for t in STATE_TABLES]
    out: exp.Expression = counts[0]
    for c in counts[1:]:
        out = exp.DPipe(this=exp.DPipe(this=out, expression=exp.Literal.string(",")), expression=c)
    return out


def state_fingerprint(ctx: Context) -> str:
    """What the stored derived tables depend on besides the facts: the compiled rulebooks and this code.

    A run resumes from the last one only when this is unchanged, so a new catalog or engine version can
    never mix its results with an older run's.
    """
    c = ctx.compiled
    parts = [
        INCREMENTAL_FORMAT,
        prepared(ctx).ledger,
        repr([(s.jkey, s.epoch, s.rulebook.version, s.start, s.end) for s in c.segments]),
        repr(sorted((k, v.model_dump_json()) for k, v in ctx.catalog.characteristics.items())),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def facts_fingerprint(ctx: Context) -> str:
    """The facts other than records and relation changes: a run resumes only when none of them changed.

    Counts alone miss a citizen moved to another city, which changes past scores; an order-independent sum
    of row hashes costs one scan of the table. The hash covers the citizen's columns that anything derived
    from this fingerprint reads: the key and city the engine scores by, and the ID, city name and birth date
    the decisions' stay index keeps by it (`stays.StayIndex.load`); a name or a portrait seed changes
    neither (hashing the whole row cost 0.037 s a run at a million citizens, these columns 0.013 s).
    Relation changes are not in it: like records they are appended, dated facts, and `resume_from` redoes
    the assessments from the earliest new one. Its three comma-separated parts (retractions, rulebook
    versions, citizens) are read apart by `rulebooks_added`: versions added is the second's growth.
    """
    return str(
        ctx.scalar(
            fill(
                """SELECT CAST((SELECT count(*) FROM retractions) AS VARCHAR) || ',' ||
                  CAST((SELECT count(*) FROM rulebook_versions) AS VARCHAR) || ',' ||
                  (SELECT CAST(count(*) AS VARCHAR) || ':' || CAST(coalesce(sum(CAST(
                          hash(c.ckey, c.jkey, c.citizen_id, c.city, c.birth_date) AS HUGEINT)), 0) AS VARCHAR)
                   FROM citizens AS c)"""
            )
        )
    )


def last_run(ctx: Context) -> dict[str, object] | None:
    """The last run's row, if it has everything resuming reads (stores written by older engines do not)."""
    table = ctx.executor.fetch(fill("SELECT * FROM engine_run"))
    if table.num_rows != 1 or not set(_RESUMABLE) <= set(table.column_names):
        return None
    return {name: table.column(name)[0].as_py() for name in table.column_names}


def segments_contiguous(ctx: Context) -> bool:
    """Each city's rulebook, once in force, stays in force: then a citizen's last logged score is their
    current one (the log never records a score turning NULL), which resuming relies on."""
    by_j: dict[int, list] = {}
    for seg in ctx.compiled.segments:
        by_j.setdefault(seg.jkey, []).append(seg)
    for segs in by_j.values():
        segs.sort(key=lambda s: (s.start is not None, s.start))
        if segs[-1].end is not None or any(a.end != b.start for a, b in itertools.pairwise(segs)):
            return False
    return True


Earlier = Callable[[int], tuple[str, Compiled] | None]
"""The state fingerprint and compilation of the store's rulebooks without its `k` newest versions."""


def earlier_rulebooks(before_newest: Callable[[int], RulebookSet | None], ctx: Context) -> Earlier:
    """`Earlier` for a store (`Store.rulebooks_before_newest`): the versions but the newest `k`, compiled for
    the same cities and behaviours as `ctx`'s (compiled only when asked: a run asks once, and only when the
    fingerprints say versions were added)."""

    def made(k: int) -> tuple[str, Compiled] | None:
        rulebooks = before_newest(k)
        if rulebooks is None:
            return None
        compiled = compile_rulebooks(rulebooks, ctx.jkeys, ctx.bkeys, None)
        return state_fingerprint(replace(ctx, compiled=compiled, memo={})), compiled

    return made


def first_difference(old: list[Segment], new: list[Segment]) -> dt.datetime | None:
    """The first time the rulebook version in force differs between two compilations in some city, or None
    when they differ from the start (or in their cities): before it, both score and assess alike."""

    def timeline(segments: list[Segment]) -> dict[int, list[tuple[dt.datetime | None, dt.datetime | None, str]]]:
        out: dict[int, list[tuple[dt.datetime | None, dt.datetime | None, str]]] = {}
        for g in segments:
            out.setdefault(g.jkey, []).append((g.start, g.end, g.rulebook.version))
        return out

    a, b = timeline(old), timeline(new)
    if a.keys() != b.keys():
        return None

    def at(line: list[tuple[dt.datetime | None, dt.datetime | None, str]], t: dt.datetime | None) -> str | None:
        for start, end, version in line:
            if (start is None or (t is not None and start <= t)) and (end is None or (t is not None and t < end)):
                return version
        return None

    bounds = sorted({x for line in (*a.values(), *b.values()) for g in line for x in g[:2] if x is not None})
    for t in [None, *bounds]:
        if any(at(a[j], t) != at(b[j], t) for j in a):
            return t
    return dt.datetime.max  # the same in force throughout: nothing to redo for the rulebooks


@dataclass(frozen=True)
class Added:
    """Rulebook versions added since the last run, and all that changed: what is in force, or the numbering of
    the epochs, differs from `since` on (datetime.max when never), and `ledger` is the record ledger
    fingerprint of the last run's rulebooks (the stored record ledger's rows before `since` stand when it
    was built with it)."""

    since: dt.datetime
    ledger: str


def rulebooks_added(
    ctx: Context, last: dict[str, object] | None, facts: str, state: str, earlier: Earlier | None
) -> Added | None:
    """When only rulebook versions were added since the last run (none of the other facts the fingerprints
    cover changed): from when they change what is in force; else None.

    The last run's rulebooks are not stored, only their fingerprint: they are compiled again from the
    store's versions without the ones added since (how many: the count in the facts fingerprint), and used
    only when that gives the last run's fingerprint exactly."""
    if last is None or earlier is None or (last["state"] == state and last["facts"] == facts):
        return None
    old_facts, new_facts = str(last["facts"]).split(",", 2), facts.split(",", 2)
    if old_facts[0] != new_facts[0] or old_facts[2] != new_facts[2]:
        return None
    added = int(new_facts[1]) - int(old_facts[1])
    if added <= 0 or (made := earlier(added)) is None or made[0] != last["state"]:
        return None
    since = first_difference(made[1].segments, ctx.compiled.segments)
    if since is None:
        return None
    # a version's day is a change point even where it changes no city's version in force (a parent layer's
    # version dated before a city's first day): every epoch from it on is numbered one higher, and the rows and
    # entries stored with the old numbers stand only before it
    moved = set(made[1].change_points) ^ set(ctx.compiled.change_points)
    return Added(min([since, *moved]), prepared(replace(ctx, compiled=made[1], memo={})).ledger)


def resume_from(
    ctx: Context,
    last: dict[str, object] | None,
    as_of: dt.datetime,
    pin: str | None,
    facts: str,
    state: str,
    added: Added | None = None,
) -> dt.datetime | None:
    """A time before which no assessment can change (the first one at or after it is redone), or None for
    a full recompute.

    Only appended records (higher rkeys), appended relation changes (higher seqs), added rulebook versions
    and a later as_of are resumable. A new record changes ledger entries from its own time on (a cap's
    running sum only after it; a clearing record only ends an interval at its time; a trigger's stay starts
    then), so assessments before it stand; records that existed but lay after the last as_of enter after
    it, where the last run stopped. A relation change at `changed_at` changes the contacts in force from
    then on, so the network rule's shares (and all that follows from them) only from the first assessment
    at or after it. A rulebook version changes what is in force from its first day (a record is scored by
    the version in force when it happened, a month assessed by the one in force then), so assessments before
    the first day any city's rulebook differs stand (`added`, see `rulebooks_added`; the record ledger's
    rows for records before that day stand too, see `entries.update`).
    """
    if pin is not None or last is None:
        return None
    last_as_of = last["as_of"]
    assert isinstance(last_as_of, dt.datetime)
    if last["pin"] is not None or last_as_of > as_of:
        return None
    changed = dt.datetime.max  # nothing in the rulebooks to redo
    if last["state"] != state or last["facts"] != facts:
        if added is None:
            return None
        changed = added.since
    if ctx.scalar(exp.select(kept_expr())) != last["kept"]:
        return None
    mark = str(last["watermark"]).split(",")
    top, seen = int(mark[0]), int(mark[4])  # the last rkey, and the next relation change's seq then
    if int(ctx.scalar(fill("SELECT coalesce(max(rkey), -1) FROM records"))) < top:
        return None
    if int(ctx.scalar(fill("SELECT coalesce(max(seq) + 1, 0) FROM relation_changes"))) < seen:
        return None
    if not segments_contiguous(ctx):
        return None
    first_new = ctx.scalar(
        fill(
            """SELECT min(t) FROM (SELECT occurred_at AS t FROM records WHERE rkey > $top
                               UNION ALL SELECT changed_at AS t FROM relation_changes WHERE seq >= $seen) AS n
           WHERE t <= $as_of""",
            top=top,
            seen=seen,
            as_of=as_of,
        )
    )
    # an assessment at t sees what happened at or before t (and the contacts in force at t), so the first one
    # to redo is the first at or after the earliest new record or relation change, or the first after the
    # last as_of (those the last run did not do)
    resume = last_as_of + dt.timedelta(microseconds=1)
    return min(resume, changed) if first_new is None else min(resume, first_new, changed)


def kept_network() -> exp.Expression:
    """The network entries of the last run (load_compiled recreates the state ledger)."""
    return fill("SELECT * FROM state_ledger WHERE source = 'network'")


def restored_state(p0: int) -> exp.Expression:
    """`engine_carry` at the start of period `p0` when the last run did not end at the month before it (a
    back-dated record): running sums are the deltas before p0, and current score and grade the last ones
    logged (the log has a row whenever either changed). When it did, its end state is in place and is the
    start state as it is, and the run reads none of the history.

    Network points (`net`) start at none here, and in place they are the last month's: the same for the
    month loop, which gives every citizen with network points, then or now, this month's before assessing them
    (`grades.assessed`)."""
    return fill(
        """SELECT c.ckey, c.jkey, CAST(coalesce(d.raw, 0) AS INT) AS raw, CAST(0 AS INT) AS net, s.score, s.grade
           FROM citizens AS c
           LEFT JOIN (SELECT ckey, CAST(sum(d) AS INT) AS raw FROM deltas WHERE p < $p0 GROUP BY ckey) AS d
             ON d.ckey = c.ckey
           LEFT JOIN (SELECT ckey, arg_max(score, assessed_at) AS score, arg_max(grade, assessed_at) AS grade
                      FROM score_log GROUP BY ckey) AS s ON s.ckey = c.ckey""",
        p0=p0,
    )


def restored_network(t0: dt.datetime) -> exp.Expression:
    return fill("SELECT * FROM kept_network WHERE valid_from < $t0", t0=t0)


def restored_grade_stays(t0: dt.datetime) -> exp.Expression:
    """The loop's own grade stays (before memory rewrote them) that began before `t0`, open if they ended at
    `t0` or later."""
    cols = [exp.column(c) for c in TABLES["list_entries"].names]
    ends = fill('CASE WHEN "end" < $t0 THEN "end" END', t0=t0).as_("end", quoted=True)
    return (
        exp.select(*[ends if c.name == "end" else c for c in cols])
        .from_("engine_grade_stays")
        .where(fill("start < $t0", t0=t0))
    )


def minimum_stays_due(ctx: Context, t0: dt.datetime) -> list[dt.datetime]:
    """When the restored stays with a minimum length reach it: those months wake, as when they were entered."""
    out = []
    for jkey, list_id, start in ctx.rows(
        fill("SELECT DISTINCT jkey, list_id, start FROM engine_grade_stays WHERE start < $t0", t0=t0)
    ):
        rb = ctx.segments_at(start).get(jkey)
        lst = next((x for x in rb.lists if x.id == list_id), None) if rb else None
        due = stay_due(start, lst.min_stay) if lst is not None else None
        if due is not None:
            out.append(due)
    return out


def score_log_before(t0: dt.datetime) -> exp.Expression:
    """The score log the kept assessments wrote (those before `t0`)."""
    return fill("SELECT * FROM score_log WHERE assessed_at < $t0", t0=t0)


def score_log_from(t0: dt.datetime) -> exp.Expression:
    """Whether the score log has rows the run redoes (at or after `t0`). A month's run resumes after the last
    assessment, so usually none: the log is then kept as it is, not copied (a copy grows with every month:
    0.09 s at a million citizens after three months)."""
    return fill("SELECT count(*) > 0 FROM score_log WHERE assessed_at >= $t0", t0=t0)
