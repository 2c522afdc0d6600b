"""The read model: every question about a citizen or a list at a time, asked one way (SPEC §4, "standings").

Why one module: the engine derives two tables everything else reads — `list_entries` (a stay on a list
from `start` to `"end"`, or open) and `score_log` (a citizen's score and grade at a monthly assessment,
a row only when either changed). Doors, reports and the simulator kept asking them the same few
questions, each in its own hand-written SQL, and the copies drifted: two meanings of "score", the
disclosure policy checked in six places. Each question is said here once:

- a stay in force at a time (`in_force`, `in_force_just_before`, `stays_at`, `listed`);
- a citizen's latest monthly assessment at or before a time (`latest_assessments`, `assessments`);
- the published score (`published`), and the public's view of it (`register`, `board`, the counts);
- the disclosure policy (`publishes`), a Python function the doors apply before showing anything.

**The published score** is a citizen's latest monthly assessment at or before the time asked about: the
score and grade the engine assessed at the start of a CST month, when it was assessed, under which
version. The grade lists follow that assessment (SPEC §5: grades are assessed monthly), so a published
score always agrees with the lists it is shown beside; the running ledger sum at a time (SPEC §2's
clamp(base + active points), `decisions.Standing.running_score`) is what an explanation itemises, and
what the next assessment will publish. A citizen never assessed has no published score.

How: statements are sqlglot trees (`engine.sql.fill`); values enter as bound parameters (`?`) or sqlglot
literals, never pasted as text, so each can be declared as a view or macro later. A condition takes any
time expression — a bound parameter, a literal time, a column such as a report's `p.until`, or
`getvariable('as_of')` — and any table alias. `*_sql` helpers give the DuckDB text for reports, which show
the exact SQL they ran. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import sqlglot
from sqlglot import exp

from socialcredit.clock import CST
from socialcredit.engine import sql as engine_sql
from socialcredit.engine.ledger import SCORED_LEDGER
from socialcredit.engine.sql import fill
from socialcredit.rulebook import Rulebook
from socialcredit.store import Store

DIALECT = "duckdb"  # the read model runs where the store is; reports read Parquet through DuckDB too
At = dt.datetime | exp.Expression | str  # a time: a value (a literal), an expression, or SQL text naming one
Row = dict[str, Any]
AS_OF = "getvariable('as_of')"  # the time a report's queries are about (a DuckDB variable each report sets)
Publication = Literal["scores", "billboard", "honour_roll", "station_monitor"]


# ------------------------------------------------------------------------------------------- conditions


def _time(at: At) -> exp.Expression:
    """A time as an expression: SQL text (a column, `getvariable('as_of')`, `?`) is parsed, never pasted."""
    if isinstance(at, str):
        parsed = sqlglot.parse_one(at, read=DIALECT)
        assert isinstance(parsed, exp.Expression)
        return parsed
    return at if isinstance(at, exp.Expression) else fill("$t", t=at)


def in_force(at: At, alias: str | None = None) -> exp.Expression:
    """A stay in force at `at`: begun at or before it, not yet ended (an end is exclusive).

    Works on any table with `start` and `"end"` (list entries; the engine's characteristic intervals)."""
    return fill(
        "$start <= $at AND ($end IS NULL OR $end > $at)",
        start=exp.column("start", table=alias),
        end=exp.column("end", table=alias, quoted=True),
        at=_time(at),
    )


def valid_at(at: At, alias: str | None = None) -> exp.Expression:
    """A dated row (`valid_from`/`valid_to`: a tie in `relations`, a ledger entry) in force at `at`."""
    return engine_sql.valid_at(_time(at), alias)


def in_force_just_before(at: At, alias: str | None = None) -> exp.Expression:
    """A stay in force at the last instant before `at` — begun before it, ended at or after it: what the
    network rule reads at an assessment (list status just before it, SPEC §5's one-step lag)."""
    return fill(
        "$start < $at AND ($end IS NULL OR $end >= $at)",
        start=exp.column("start", table=alias),
        end=exp.column("end", table=alias, quoted=True),
        at=_time(at),
    )


def not_ended(at: At, alias: str | None = None) -> exp.Expression:
    """The second half of `in_force`, for a query that has already kept only stays begun by `at`."""
    return fill("$end IS NULL OR $end > $at", end=exp.column("end", table=alias, quoted=True), at=_time(at))


def stays_at(at: At, kind: str | None = None, table: str = "list_entries") -> exp.Select:
    """The stays in force at `at` (of one kind, `blacklist` or `whitelist`, if given): a query to use as a table."""
    q: exp.Expression = exp.select("*").from_(exp.to_table(table)).where(in_force(at))
    if kind is not None:
        q = fill("SELECT * FROM __q AS e WHERE e.kind = $kind", q=q, kind=kind)
    assert isinstance(q, exp.Select)
    return q


def latest_assessments(at: At | None = None, table: str = "score_log", of: exp.Expression | None = None) -> exp.Select:
    """Each citizen's latest monthly assessment at or before `at` (all of them without): ckey, score, grade,
    assessed_at, version. `of`, a condition on `ckey`, keeps only some citizens before grouping (DuckDB does not
    push a filter on the result through the aggregate: a whole-log scan per question otherwise)."""
    cond = exp.true() if at is None else fill("assessed_at <= $at", at=_time(at))
    q = fill(
        """SELECT ckey, arg_max(score, assessed_at) AS score, arg_max(grade, assessed_at) AS grade,
                       max(assessed_at) AS assessed_at, arg_max(version, assessed_at) AS version
                FROM score_log WHERE $cond GROUP BY ckey""",
        cond=cond if of is None else exp.and_(cond, of),
    )
    assert isinstance(q, exp.Select)
    return q.from_(exp.to_table(table), copy=False)


def latest_grades(store: Store, at: dt.datetime) -> exp.Expression:
    """Each assessed citizen's latest score and grade at or before `at` (ckey, score, grade): what
    `latest_assessments` says of them, asked of the store as it is now.

    Why: at or after the last run's final assessment they are that run's end state (`engine_carry`, one row a
    citizen, kept for the next run), so a count by grade need not group the whole score log, which grows every
    month (0.2 s at a million citizens after a year, against a read of a million rows). A citizen whose end
    state has no score (a city whose rulebook ended: the log keeps the last one) is read from the log; so is
    every citizen at an earlier time, or in a store whose last run kept no end state."""
    # the month the end state holds (a store scored by an engine older than the column says none: the log then)
    told = store.con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'engine_run' AND column_name = 'carried_at'"
    ).fetchall()[0][0]
    carried = (
        store.con.execute("SELECT max(carried_at) FROM engine_run").fetchall()[0][0]
        if told and store.has_table("engine_carry")
        else None
    )
    latest = fill("SELECT ckey, score, grade FROM __a AS a", a=latest_assessments(at))
    if carried is None or at < carried:
        return latest
    return fill(
        """SELECT ckey, score, grade FROM engine_carry WHERE score IS NOT NULL
           UNION ALL SELECT ckey, score, grade FROM __a AS a""",
        a=latest_assessments(at, of=fill("ckey IN (SELECT ckey FROM engine_carry WHERE score IS NULL)")),
    )


def assessed_asof_join(
    left: str, instant: str, alias: str = "s", table: str = "score_log", outer: bool = True
) -> exp.Join:
    """`[LEFT] ASOF JOIN score_log AS s ON …`: for each row of `left`, the citizen's latest assessment at or
    before its `instant` column — the latest-assessment question asked at many times at once (a join to add
    to a report's select; ASOF is DuckDB's)."""
    on = exp.and_(
        exp.column("ckey", table=alias).eq(exp.column("ckey", table=left)),
        exp.column(instant, table=left) >= exp.column("assessed_at", table=alias),
    )
    return exp.Join(this=exp.to_table(table).as_(alias), on=on, method="ASOF", side="LEFT" if outer else None)


def sql(e: exp.Expression) -> str:
    """The DuckDB text of a read-model expression, for a report's SQL (which shows what it ran)."""
    return e.sql(DIALECT)


@lru_cache(maxsize=64)
def _bound(builder: Callable[[], exp.Expression]) -> str:
    """A statement's text with `?` parameters, generated once per process (the hot doors ask it often)."""
    return builder().sql(DIALECT)


P = exp.Placeholder  # a bound parameter, `?`


# ------------------------------------------------------------------------------------------- disclosure


def publishes(rb: Rulebook | None, what: Publication) -> bool:
    """What a city's rulebook in force lets the public see (SPEC §6): `scores` (searchable on the register),
    `billboard` (the blacklist billboard), `honour_roll` (the whitelist board: where it publishes scores or a
    billboard), `station_monitor`. No rulebook publishes nothing. Every door asks here, so the API and the
    pages can never disagree about what is public."""
    if rb is None:
        return False
    d = rb.disclosure
    if what == "scores":
        return d.publish_scores
    if what == "billboard":
        return d.billboard
    if what == "honour_roll":
        return d.billboard or d.publish_scores
    return d.station_monitor


def public_lists(rb: Rulebook, kind: str) -> list[str]:
    """The rulebook's lists of one kind that may be shown at all (never one marked `public: false`), in its order."""
    return [x.id for x in rb.lists if x.kind == kind and x.public]


def rulebook_at(store: Store, city: str, at: dt.datetime) -> Rulebook | None:
    """The city's rulebook in force on `at`'s CST calendar day (naive UTC in), unpinned."""
    return store.rulebooks().resolve(city, at.replace(tzinfo=dt.UTC).astimezone(CST).date())


# ------------------------------------------------------------------------------------------- questions


def _rows(store: Store, text: str, args: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    cur = store.con.execute(text, args if isinstance(args, dict) else list(args))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def ledger_table(store: Store) -> str:
    """The view to read ledger entries from now: `scored_ledger` (the stored rows) while every record is
    scored, else `ledger`, whose compiled on-the-fly part covers records appended since the last run.

    Both give the same rows when no record is unscored; the difference is planning: DuckDB plans `ledger`'s
    compiled query (~20 ms) at every statement that reads it, even when it yields nothing, and a door asks
    for one citizen's ledger at a time. A store made before `scored_ledger` existed reads `ledger`."""
    made = store.con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [SCORED_LEDGER]).fetchall()
    if not made[0][0]:
        return "ledger"
    unscored = store.con.execute("SELECT EXISTS (SELECT 1 FROM records_unscored)").fetchall()[0][0]
    return "ledger" if unscored else SCORED_LEDGER


@dataclass(frozen=True)
class Assessment:
    """A monthly assessment: the published score and grade, when assessed, under which rulebook version."""

    score: int
    grade: str
    assessed_at: dt.datetime | None  # None: never assessed yet, so the base score (`published`)
    version: str

    def as_row(self) -> Row:
        return {"score": self.score, "grade": self.grade, "assessed_at": self.assessed_at, "version": self.version}


def _assessments_of_ckeys() -> exp.Expression:
    return latest_assessments(P(), of=fill("ckey IN (SELECT unnest($k))", k=P()))


def _assessment_of_ckey() -> exp.Expression:
    return latest_assessments(P(), of=fill("ckey = $k", k=P()))


def assessments(store: Store, ckeys: Sequence[int], at: dt.datetime) -> dict[int, Assessment]:
    """Each citizen's (by ckey) latest monthly assessment at or before `at`; the never assessed are absent."""
    if not ckeys or not store.has_table("score_log"):
        return {}
    if len(ckeys) == 1:  # a standing, a citizen's page: an equality the scan can skip blocks with
        rows = store.con.execute(_bound(_assessment_of_ckey), [at, ckeys[0]]).fetchall()
    else:
        rows = store.con.execute(_bound(_assessments_of_ckeys), [at, list(ckeys)]).fetchall()
    return {ckey: Assessment(score, grade, when, version) for ckey, score, grade, when, version in rows}


def published_scores(
    store: Store, citizens: Sequence[tuple[int, Rulebook | None]], at: dt.datetime
) -> dict[int, Assessment]:
    """The published score of each (ckey, rulebook in force at `at`): the latest monthly assessment at or before
    `at`; for a citizen never assessed yet, the base score (clamp(base + 0), graded) under that rulebook, which
    is what the first assessment would log and what the simulator assumes. (A month in which nothing changed
    logs nothing, so "never assessed" and "assessed at the base" must read the same, or a store that ran
    before the first record would answer otherwise than a fresh one.) Absent: no assessment and no rulebook."""
    found = assessments(store, [k for k, _ in citizens], at)
    out: dict[int, Assessment] = {}
    for ckey, rb in citizens:
        a = found.get(ckey)
        if a is None and rb is not None:
            base = rb.scale.score(0)
            a = Assessment(base, rb.grade_of(base), None, rb.version)
        if a is not None:
            out[ckey] = a
    return out


def published(store: Store, ckey: int, rb: Rulebook | None, at: dt.datetime) -> Assessment | None:
    """The published score of one citizen at `at` (see `published_scores`)."""
    return published_scores(store, [(ckey, rb)], at).get(ckey)


def _stays_of() -> exp.Expression:
    return fill(
        """SELECT e.list_id, e.kind, e.start, e."end", e.cause, r.record_id, r.agency, b.code AS behaviour,
                  e.characteristic, e.grade, e.score, e.version
           FROM list_entries AS e LEFT JOIN records AS r ON r.rkey = e.rkey LEFT JOIN behaviours AS b ON b.bkey = r.bkey
           WHERE e.ckey = $k AND $cond
           ORDER BY e.start, e.list_id, e.cause, r.agency, r.record_id, e.characteristic, e.grade""",
        k=P(),
        cond=in_force(P(), "e"),
    )


def stays_of(store: Store, ckey: int, at: dt.datetime) -> list[Row]:
    """One citizen's stays in force at `at`, with what caused each (record, behaviour, characteristic, grade).

    Natural keys break ties, never rkey: the same facts in another arrival order list the same way."""
    return _rows(store, _bound(_stays_of), [ckey, at, at])


def listed(store: Store, at: dt.datetime, kind: str = "blacklist") -> list[int]:
    """The ckeys on any list of `kind` at `at`, ascending; none before the engine's first run."""
    if not store.has_table("list_entries"):
        return []
    q = fill("SELECT DISTINCT e.ckey FROM __s AS e ORDER BY 1", s=stays_at(P(), kind))
    return [k for (k,) in store.con.execute(q.sql(DIALECT), [at, at]).fetchall()]


def listed_citizens(store: Store, at: dt.datetime, kind: str = "blacklist") -> list[str]:
    """The resident IDs on any list of `kind` at `at`, ascending; none before the engine's first run."""
    if not store.has_table("list_entries"):
        return []
    q = fill(
        "SELECT DISTINCT c.citizen_id FROM __s AS e JOIN citizens AS c ON c.ckey = e.ckey ORDER BY 1",
        s=stays_at(P(), kind),
    )
    return [c for (c,) in store.con.execute(q.sql(DIALECT), [at, at]).fetchall()]


def grade_counts(store: Store, at: dt.datetime) -> dict[str, dict[str, int]]:
    """City → grade → citizens, by each citizen's published (latest assessed) grade at `at`."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    q = fill(
        """SELECT c.city, a.grade, count(*) FROM __a AS a JOIN citizens AS c ON c.ckey = a.ckey
                GROUP BY c.city, a.grade ORDER BY c.city, a.grade""",
        a=latest_assessments(P()),
    )
    for city, grade, n in store.con.execute(q.sql(DIALECT), [at]).fetchall():
        out[city][grade] = n
    return dict(out)


def list_counts(store: Store, at: dt.datetime) -> dict[str, list[Row]]:
    """City → lists with the number of citizens on each at `at`."""
    out: dict[str, list[Row]] = defaultdict(list)
    q = fill(
        """SELECT c.city, e.list_id, e.kind, count(DISTINCT e.ckey) AS citizens
                FROM __s AS e JOIN citizens AS c ON c.ckey = e.ckey GROUP BY c.city, e.list_id, e.kind
                ORDER BY c.city, e.kind, citizens DESC, e.list_id""",
        s=stays_at(P()),
    )
    for r in _rows(store, q.sql(DIALECT), [at, at]):
        out[r.pop("city")].append(r)
    return dict(out)


def list_totals(store: Store, at: dt.datetime) -> list[tuple[str, int, int]]:
    """(list, stays in force at `at`, stays ever) per list id."""
    q = fill(
        "SELECT list_id, count(*) FILTER (WHERE $cond), count(*) FROM list_entries GROUP BY 1 ORDER BY 1",
        cond=in_force(P()),
    )
    return [(a, b, c) for a, b, c in store.con.execute(q.sql(DIALECT), [at, at]).fetchall()]


# ------------------------------------------------------------------------------------------- the public


def search(store: Store, text: str, limit: int = 50) -> list[Row]:
    """Citizens whose resident ID is `text`, or whose Chinese or Latin name contains it; exact matches first."""
    text = text.strip()
    return _rows(
        store,
        """SELECT ckey, citizen_id, name, name_latin, sex, birth_date, city FROM citizens
           WHERE citizen_id = upper($t) OR contains(name, $t) OR contains(lower(name_latin), lower($t))
           ORDER BY citizen_id = upper($t) OR name = $t OR lower(name_latin) = lower($t) DESC, name_latin, citizen_id
           LIMIT $n""",
        {"t": text, "n": limit},
    )


@dataclass(frozen=True)
class RegisterRow:
    """One citizen found on the public register, with their published score where their city publishes it."""

    citizen: Row  # citizen_id, name, name_latin, sex, birth_date, city (no ckey)
    rulebook: Rulebook | None
    published: bool  # whether the city's rulebook in force publishes scores (`publishes(rb, "scores")`)
    assessment: Assessment | None  # None where not published, or never assessed


def register(
    store: Store,
    text: str,
    at: dt.datetime,
    rulebook_of: Callable[[str, dt.datetime], Rulebook | None],
    limit: int = 50,
) -> list[RegisterRow]:
    """The public register: search, then the disclosure policy, then the published score — in that order, so no
    score of a city that does not publish is ever read. `rulebook_of(city, at)` is the door's rulebook in force
    (a service's decider honours a replay's pin)."""
    found = search(store, text, limit)
    books = {city: rulebook_of(city, at) for city in {r["city"] for r in found}}
    shown = {r["ckey"] for r in found if publishes(books[r["city"]], "scores")}
    scores = published_scores(store, [(r["ckey"], books[r["city"]]) for r in found if r["ckey"] in shown], at)
    out = []
    for r in found:
        ckey = r.pop("ckey")
        out.append(RegisterRow(r, books[r["city"]], ckey in shown, scores.get(ckey)))
    return out


def _board() -> exp.Expression:
    return fill(
        """SELECT c.citizen_id, c.name, c.name_latin, c.sex, c.birth_date, c.avatar_seed, e.list_id, e.start, e.cause,
                  e.characteristic, e.grade, b.code AS behaviour
           FROM __s AS e JOIN citizens AS c ON c.ckey = e.ckey
           LEFT JOIN records AS r ON r.rkey = e.rkey LEFT JOIN behaviours AS b ON b.bkey = r.bkey
           WHERE c.city = $city AND e.list_id IN (SELECT unnest(CAST($lists AS VARCHAR[])))
           ORDER BY e.start DESC, c.citizen_id, e.list_id""",
        s=stays_at(P()),
        city=P(),
        lists=P(),
    )


def board(store: Store, city: str, rb: Rulebook, kind: str, at: dt.datetime) -> list[Row]:
    """The stays a city's board shows at `at`: on the rulebook's public lists of `kind` only, one row per stay
    (citizen, face, list, cause), newest first. The caller has checked `publishes` for the board."""
    lists = public_lists(rb, kind)
    if not lists:
        return []
    return _rows(store, _bound(_board), [at, at, city, lists])


def reason_code(row: Row) -> str | None:
    """What put a board's stay there, as a code: the behaviour, else the characteristic, else the grade."""
    if row["behaviour"] is not None:
        return str(row["behaviour"])
    if row["characteristic"] is not None:
        return str(row["characteristic"])
    return None if row["grade"] is None else f"grade {row['grade']}"


__all__ = [
    "Assessment",
    "Publication",
    "RegisterRow",
    "assessed_asof_join",
    "assessments",
    "board",
    "grade_counts",
    "in_force",
    "in_force_just_before",
    "latest_assessments",
    "latest_grades",
    "list_counts",
    "list_totals",
    "listed",
    "not_ended",
    "public_lists",
    "published",
    "published_scores",
    "publishes",
    "reason_code",
    "register",
    "rulebook_at",
    "search",
    "sql",
    "stays_at",
    "stays_of",
]
