"""An independent reference model of the rulebook semantics, in plain Python, one citizen and one instant at a time.

It is written from SPEC §2/§5, docs/rulebooks.md and the comments of the shipped rulebook files, not from
the engine: it reads its inputs with the rulebook and catalog models (`parse_layer`, `default_catalog`) and
nothing else of the package — its own inheritance, its own condition evaluator (over sqlglot's parse
tree), its own calendar arithmetic in China Standard Time, and loops where the engine has set-wise SQL.
Slow and obvious on purpose: a disagreement with the engine is a question about one of the two.

What it models (each numbered item is one sentence of the sources):
1. A record collects the points of every rule on its behaviour whose condition holds, under the city's
   rulebook in force on the record's CST date (no retroactive punishment); they count from the record's
   time for the rule's `valid_for` (a CST calendar duration), or for good.
2. A cap bounds the points a behaviour gains (max) or loses (min) per CST year, quarter or month; records
   are taken in time order and each gets what is left of the period's allowance.
3. A state characteristic holds from a `set_by` record until a `cleared_by` record or the end of its term
   (`term_attribute` days; 0 = no term), with the setting record's attributes; its rules give their points
   while it holds, under the rulebook in force at each instant.
4. The network characteristic `blacklisted_contacts` holds for a month with `share` = the part of one's
   contacts on a blacklist at the start of that month (a one-month lag: status just before the month's
   assessment), and gives its rules' points for that month. The contacts are those in force at the month's
   start: a tie counts from when it began until (not at) when it ended.
5. score(t) = clamp(base + points in force at t) with the scale in force at t; grade = its band.
6. On the first of every CST month each citizen is assessed: a grade list is entered when the grade is one
   of its grades (unless memory bars it) and left at the first assessment with another grade at least
   `min_stay` after entry.
7. Trigger lists: a behaviour trigger lists the citizen for its `duration` from the record; a characteristic
   trigger for as long as the characteristic holds.
8. Memory: from the first stay on `after`, the lists in `never_lists` end and are never entered again, and
   the memory's measures apply for good.
9. Measures: a list's measures apply during a stay (`for`: only that long from entry); a measure that
   reaches children binds the children of the listed citizen, not the citizen, while the child is under 18
   on the CST calendar day asked about (a minor); a decision's outcome is the strongest effect among the
   measures binding the service.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from socialcredit.catalog import Catalog
from socialcredit.rulebook import Layer

CST = dt.timezone(dt.timedelta(hours=8))
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# strongest first: a denial beats a throttle beats … beats a waived deposit (SPEC §2 "decision")
STRENGTH = ("deny", "throttle", "deprioritise", "publish", "priority", "discount", "deposit_waived")
OUTCOME = {"deposit_waived": "waive_deposit"}


# --------------------------------------------------------------------------- time, in CST


def cst_date(t: dt.datetime) -> dt.date:
    return t.astimezone(CST).date()


def plus(t: dt.datetime, duration: str, calendar_tz: dt.tzinfo = CST) -> dt.datetime:
    """`t` + a rulebook duration (`30d`, `6m`, `1y`), counted on the CST calendar (a month from 31 March is
    30 April, clipped to the month's last day)."""
    n, unit = int(duration[:-1]), duration[-1]
    if unit == "d":
        return t + dt.timedelta(days=n)
    local = t.astimezone(calendar_tz)
    months = local.month - 1 + n * (12 if unit == "y" else 1)
    year, month = local.year + months // 12, months % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(dt.UTC)


def month_start(t: dt.datetime) -> dt.datetime:
    local = t.astimezone(CST)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def next_month(m: dt.datetime) -> dt.datetime:
    return plus(month_start(m), "1m")


def period_key(t: dt.datetime, per: str) -> tuple[int, int]:
    local = t.astimezone(CST)
    return (local.year, {"year": 0, "quarter": (local.month - 1) // 3, "month": local.month}[per])


# --------------------------------------------------------------------------- conditions


def holds(condition: str | None, attrs: dict[str, Any]) -> bool:
    """Evaluate a rule's `when` on a record's attributes (SQL semantics: a comparison with a missing value is
    unknown, and unknown is not true)."""
    if condition is None:
        return True
    return _eval(_parsed(condition), attrs) is True


@functools.cache
def _parsed(condition: str) -> exp.Expression:
    return sqlglot.parse_one(condition)


def _eval(node: exp.Expression, attrs: dict[str, Any]) -> Any:
    if isinstance(node, exp.Paren):
        return _eval(node.this, attrs)
    if isinstance(node, exp.Column):
        return attrs.get(node.name)
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else float(node.this)
    if isinstance(node, exp.Neg):
        v = _eval(node.this, attrs)
        return None if v is None else -v
    if isinstance(node, exp.Not):
        v = _eval(node.this, attrs)
        return None if v is None else not v
    if isinstance(node, exp.And):
        a, b = _eval(node.this, attrs), _eval(node.expression, attrs)
        return False if a is False or b is False else (None if a is None or b is None else True)
    if isinstance(node, exp.Or):
        a, b = _eval(node.this, attrs), _eval(node.expression, attrs)
        return True if a is True or b is True else (None if a is None or b is None else False)
    if isinstance(node, exp.Coalesce):
        return next((v for e in [node.this, *node.expressions] if (v := _eval(e, attrs)) is not None), None)
    if isinstance(node, exp.Is):
        return _eval(node.this, attrs) is None
    if isinstance(node, exp.In):
        v = _eval(node.this, attrs)
        return None if v is None else any(v == _eval(e, attrs) for e in node.expressions)
    if isinstance(node, exp.Between):
        v, lo, hi = (_eval(node.this, attrs), _eval(node.args["low"], attrs), _eval(node.args["high"], attrs))
        return None if None in (v, lo, hi) else lo <= v <= hi
    binary = {
        exp.EQ: lambda a, b: a == b,
        exp.NEQ: lambda a, b: a != b,
        exp.GT: lambda a, b: a > b,
        exp.GTE: lambda a, b: a >= b,
        exp.LT: lambda a, b: a < b,
        exp.LTE: lambda a, b: a <= b,
        exp.Add: lambda a, b: a + b,
        exp.Sub: lambda a, b: a - b,
        exp.Mul: lambda a, b: a * b,
        exp.Div: lambda a, b: a / b,
    }
    for kind, f in binary.items():
        if isinstance(node, kind):
            a, b = _eval(node.this, attrs), _eval(node.expression, attrs)
            return None if a is None or b is None else f(a, b)
    raise ValueError(f"the oracle does not know {type(node).__name__} in a condition")


# --------------------------------------------------------------------------- rulebooks in force


@dataclass
class Book:
    """One city's rulebook as in force on one day: the layers stacked national first, later ids win."""

    version: str
    base: int
    lo: int
    hi: int
    grades: list[tuple[str, int]]
    rules: list[Any]
    caps: list[Any]
    lists: list[Any]
    memory: list[Any]

    def score(self, points: int) -> int:
        return min(max(self.base + points, self.lo), self.hi)

    def grade(self, score: int) -> str:
        return next((g for g, floor in self.grades if score >= floor), self.grades[-1][0])


class Books:
    def __init__(self, layers: list[Layer]) -> None:
        self.layers: dict[str, list[Layer]] = defaultdict(list)
        for layer in layers:
            self.layers[layer.jurisdiction].append(layer)
        for vs in self.layers.values():
            vs.sort(key=lambda v: v.effective_from)

    def at(self, city: str, day: dt.date) -> Book | None:
        chain: list[Layer] = []
        j: str | None = city
        while j is not None:
            in_force = [v for v in self.layers[j] if v.effective_from <= day]
            if not in_force:
                break
            chain.append(in_force[-1])
            j = in_force[-1].extends
        if not chain:
            return None
        chain.reverse()
        scale = grades = None
        items: dict[str, dict[str, Any]] = {"rules": {}, "caps": {}, "lists": {}, "memory": {}}
        for layer in chain:
            scale = layer.scale or scale
            grades = layer.grades or grades
            for coll, known in items.items():
                for gone in getattr(layer.remove, coll):
                    known.pop(gone)
                for item in getattr(layer, coll):
                    known[item.id] = item
        assert scale is not None and grades is not None
        return Book(
            "+".join(f"{x.jurisdiction}@{x.version}" for x in reversed(chain)),
            scale.base,
            scale.min,
            scale.max,
            [(g.grade, g.min) for g in grades],
            *(list(v.values()) for v in items.values()),
        )

    def at_time(self, city: str, t: dt.datetime) -> Book | None:
        return self.at(city, cst_date(t))


# --------------------------------------------------------------------------- the facts


@dataclass(frozen=True)
class Record:
    record_id: str
    agency: str
    citizen: str
    behaviour: str
    at: dt.datetime  # aware
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Person:
    cid: str
    city: str
    contacts: list[str] = field(default_factory=list)  # registered ties, in force from the start
    parents: list[str] = field(default_factory=list)
    born: dt.date | None = None  # None: an adult for good
    dropped: dict[str, dt.datetime] = field(default_factory=dict)  # a registered contact that ended then (aware)
    later: dict[str, dt.datetime] = field(default_factory=dict)  # a contact that began then (aware)

    def contacts_at(self, t: dt.datetime) -> list[str]:
        """The contacts in force at `t`."""
        kept = [c for c in self.contacts if c not in self.dropped or t < self.dropped[c]]
        return kept + [c for c, since in self.later.items() if since <= t]

    def under_on(self, age: int, day: dt.date) -> bool:
        """Under `age` on this CST calendar day (a birthday on 29 February comes on 1 March in a common year)."""
        if self.born is None:
            return False
        try:
            birthday = self.born.replace(year=self.born.year + age)
        except ValueError:
            birthday = dt.date(self.born.year + age, 3, 1)
        return day < birthday


@dataclass(frozen=True)
class Entry:
    """A ledger entry of a record: the points it gives from `start` until `end` (None: for good)."""

    record_id: str
    agency: str
    points: int
    start: dt.datetime
    end: dt.datetime | None


@dataclass(frozen=True)
class Stay:
    list_id: str
    kind: str
    cause: str  # grade | behaviour | characteristic
    start: dt.datetime
    end: dt.datetime | None

    def at(self, t: dt.datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class Held:
    """A state characteristic held over [start, end) with the setting record's attributes."""

    code: str
    start: dt.datetime
    end: dt.datetime | None
    attrs: tuple[tuple[str, Any], ...]

    def at(self, t: dt.datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


# --------------------------------------------------------------------------- the model


class Oracle:
    def __init__(
        self, books: Books, catalog: Catalog, people: list[Person], records: list[Record], until: dt.datetime
    ) -> None:
        self.books, self.catalog, self.until = books, catalog, until
        self.people = {p.cid: p for p in people}
        self.records = sorted(records, key=lambda r: (r.at, r.agency, r.record_id))
        self.entries: dict[str, list[Entry]] = defaultdict(list)
        self.held: dict[str, list[Held]] = defaultdict(list)
        self.network: dict[tuple[str, dt.datetime], dict[str, Any]] = {}  # (citizen, month) → share
        self.stays: dict[str, list[Stay]] = defaultdict(list)
        self._record_ledger()
        self._characteristics()
        self._lists()

    def book(self, cid: str, t: dt.datetime) -> Book | None:
        return self.books.at_time(self.people[cid].city, t)

    # 1, 2
    def _record_ledger(self) -> None:
        used: dict[tuple[str, str, tuple[int, int]], int] = defaultdict(int)
        for r in self.records:
            book = self.book(r.citizen, r.at)
            if book is None:
                continue
            by_term: dict[str | None, int] = defaultdict(int)
            for rule in book.rules:
                if rule.behaviour == r.behaviour and holds(rule.when, r.attrs):
                    by_term[rule.valid_for] += rule.points
            cap = next((c for c in book.caps if c.behaviour == r.behaviour), None)
            for term, points in by_term.items():
                if cap is not None:
                    key = (r.citizen, r.behaviour, period_key(r.at, cap.per))
                    if cap.max is not None and points > 0:
                        points = max(0, min(points, cap.max - used[key]))
                    if cap.min is not None and points < 0:
                        points = min(0, max(points, cap.min - used[key]))
                    used[key] += points
                if points:
                    end = plus(r.at, term) if term else None
                    self.entries[r.citizen].append(Entry(r.record_id, r.agency, points, r.at, end))

    # 3
    def _characteristics(self) -> None:
        for code, ch in self.catalog.characteristics.items():
            if ch.kind != "state":
                continue
            for r in self.records:
                if r.behaviour not in ch.set_by:
                    continue
                end: dt.datetime | None = None
                term = r.attrs.get(ch.term_attribute) if ch.term_attribute else None
                if term:
                    end = r.at + dt.timedelta(days=int(term))
                cleared = [
                    c.at
                    for c in self.records
                    if c.citizen == r.citizen and c.behaviour in ch.cleared_by and c.at > r.at
                ]
                if cleared and (end is None or min(cleared) < end):
                    end = min(cleared)
                attrs = tuple(sorted((k, v) for k, v in r.attrs.items() if k in ch.attributes))
                self.held[r.citizen].append(Held(code, r.at, end, attrs))

    def characteristic_points(self, cid: str, t: dt.datetime, book: Book) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for h in self.held[cid]:
            if h.at(t):
                out[h.code] += sum(
                    r.points for r in book.rules if r.characteristic == h.code and holds(r.when, dict(h.attrs))
                )
        share = self.network.get((cid, month_start(t)))
        if share is not None:
            pts = sum(
                r.points
                for r in book.rules
                if r.characteristic == "blacklisted_contacts" and holds(r.when, {"share": share})
            )
            if pts:
                out["blacklisted_contacts"] += pts
        return {k: v for k, v in out.items() if v}

    def record_points(self, cid: str, t: dt.datetime) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = defaultdict(int)
        for e in self.entries[cid]:
            if e.start <= t and (e.end is None or t < e.end):
                out[(e.agency, e.record_id)] += e.points
        return {k: v for k, v in out.items() if v}

    # 5
    def score(self, cid: str, t: dt.datetime) -> int | None:
        book = self.book(cid, t)
        if book is None:
            return None
        points = sum(self.record_points(cid, t).values()) + sum(self.characteristic_points(cid, t, book).values())
        return book.score(points)

    def grade(self, cid: str, t: dt.datetime) -> str | None:
        book, s = self.book(cid, t), self.score(cid, t)
        return None if book is None or s is None else book.grade(s)

    def published(self, cid: str, t: dt.datetime) -> tuple[int | None, str | None]:
        """The published score and grade at `t`: the monthly assessment at the last CST month start at or before
        `t` (assessments run from the first record's month on), else the base under the book in force at `t`."""
        first = min((r.at for r in self.records), default=self.until)
        m = month_start(t)
        book = self.book(cid, m) if m >= month_start(first) else None
        if book is not None:
            s = self.score(cid, m)
            return s, None if s is None else book.grade(s)
        book = self.book(cid, t)
        return (None, None) if book is None else (book.score(0), book.grade(book.score(0)))

    # 4, 6, 7, 8
    def _lists(self) -> None:
        first = min((r.at for r in self.records), default=self.until)
        trig: dict[str, list[Stay]] = defaultdict(list)
        for cid in self.people:
            trig[cid] = self._trigger_stays(cid)
        open_: dict[tuple[str, str], dt.datetime] = {}
        grade_stays: dict[str, list[Stay]] = defaultdict(list)
        m = next_month(first)
        while m <= self.until:
            # 4: the month's network share, from list status just before this month's assessment
            for cid, p in self.people.items():
                contacts = p.contacts_at(m)
                if not contacts:
                    continue
                listed = 0
                for other in contacts:
                    before = [*trig[other], *grade_stays[other]]
                    before += [
                        Stay(lid, self._kind(other, lid, m), "grade", s, None)
                        for (c, lid), s in open_.items()
                        if c == other
                    ]
                    if any(s.kind == "blacklist" and s.start < m and (s.end is None or m <= s.end) for s in before):
                        listed += 1
                self.network[(cid, m)] = listed / len(contacts)
            # 6: the assessment
            for cid in self.people:
                book = self.book(cid, m)
                if book is None:
                    continue
                g = book.grade(self.score(cid, m))  # type: ignore[arg-type]
                for lst in book.lists:
                    if not lst.grades:
                        continue
                    key = (cid, lst.id)
                    if key in open_:
                        start = open_[key]
                        if g not in lst.grades and (lst.min_stay is None or m >= plus(start, lst.min_stay)):
                            grade_stays[cid].append(Stay(lst.id, lst.kind, "grade", start, m))
                            del open_[key]
                    elif g in lst.grades and not self._barred(
                        cid,
                        lst.id,
                        m,
                        [*trig[cid], *grade_stays[cid]],
                        {k[1]: s for k, s in open_.items() if k[0] == cid},
                    ):
                        open_[key] = m
            m = next_month(m)
        for (cid, lid), start in open_.items():
            grade_stays[cid].append(Stay(lid, self._kind(cid, lid, start), "grade", start, None))
        for cid in self.people:
            self.stays[cid] = self._remembered(cid, [*trig[cid], *grade_stays[cid]])

    def _kind(self, cid: str, list_id: str, t: dt.datetime) -> str:
        book = self.book(cid, t)
        assert book is not None
        return next(x.kind for x in book.lists if x.id == list_id)

    def _trigger_stays(self, cid: str) -> list[Stay]:
        out = []
        for r in self.records:
            if r.citizen != cid or (book := self.book(cid, r.at)) is None:
                continue
            for lst in book.lists:
                for t in lst.triggers:
                    if t.behaviour == r.behaviour and holds(t.when, r.attrs):
                        out.append(Stay(lst.id, lst.kind, "behaviour", r.at, plus(r.at, t.duration)))
        for h in self.held[cid]:
            book = self.book(cid, h.start)
            if book is None:
                continue
            for lst in book.lists:
                if any(t.characteristic == h.code and holds(t.when, dict(h.attrs)) for t in lst.triggers):
                    out.append(Stay(lst.id, lst.kind, "characteristic", h.start, h.end))
        return out

    def _barred(self, cid: str, list_id: str, t: dt.datetime, stays: list[Stay], open_: dict[str, dt.datetime]) -> bool:
        book = self.book(cid, t)
        assert book is not None
        for mem in book.memory:
            if list_id in mem.never_lists:
                starts = [s.start for s in stays if s.list_id == mem.after] + [
                    s for lid, s in open_.items() if lid == mem.after
                ]
                if any(s <= t for s in starts):
                    return True
        return False

    def _remembered(self, cid: str, stays: list[Stay]) -> list[Stay]:
        """8: a barred list's stays end at the first stay on the memory's list; later ones never happen."""
        out = stays
        for mem_book_t in sorted({s.start for s in stays}):
            book = self.book(cid, mem_book_t)
            if book is None:
                continue
            for mem in book.memory:
                first = min((s.start for s in out if s.list_id == mem.after), default=None)
                if first is None:
                    continue
                kept = []
                for s in out:
                    if s.list_id in mem.never_lists:
                        if s.start >= first:
                            continue
                        if s.end is None or s.end > first:
                            s = Stay(s.list_id, s.kind, s.cause, s.start, first)
                    kept.append(s)
                out = kept
        return out

    def stays_at(self, cid: str, t: dt.datetime) -> list[Stay]:
        return [s for s in self.stays[cid] if s.at(t)]

    # 9
    def measures(self, cid: str, t: dt.datetime) -> list[tuple[str, str, dt.datetime, dt.datetime | None]]:
        """(measure, via, since, until) in force for `cid` at `t`, its own and its parents' that reach it."""
        out = [(m, via, since, until) for m, via, since, until in self._own(cid, t)]
        child = self.people[cid]
        for parent in child.parents:
            for m, via, since, until in self._own(parent, t):
                measure = self.catalog.measures[m]  # a measure says until what age it reaches a child (18 if not)
                if measure.reach == "children" and child.under_on(measure.children_under, cst_date(t)):
                    out.append((m, f"parent:{parent} {via}", since, until))
        return sorted(out, key=lambda x: (x[2], x[0], x[1]))

    def _own(self, cid: str, t: dt.datetime) -> list[tuple[str, str, dt.datetime, dt.datetime | None]]:
        book = self.book(cid, t)
        if book is None:
            return []
        out = []
        for s in self.stays_at(cid, t):
            lst = next((x for x in book.lists if x.id == s.list_id), None)
            for lm in lst.list_measures() if lst else []:
                until = plus(s.start, lm.for_) if lm.for_ else s.end
                if until is None or t < until:
                    out.append((lm.measure, f"list:{s.list_id}", s.start, until))
        for mem in book.memory:
            first = min((s.start for s in self.stays[cid] if s.list_id == mem.after and s.start <= t), default=None)
            if first is not None:
                out += [(code, f"memory:{mem.id}", first, None) for code in mem.measures]
        return out

    def decide(self, cid: str, service: str, t: dt.datetime) -> tuple[str, set[tuple[str, str]]]:
        binding = [
            (m, via)
            for m, via, _, _ in self.measures(cid, t)
            if service in self.catalog.measures[m].services
            and (via.startswith("parent:") or self.catalog.measures[m].reach != "children")
        ]
        effects = sorted({self.catalog.measures[m].effect for m, _ in binding}, key=STRENGTH.index)
        outcome = OUTCOME.get(effects[0], effects[0]) if effects else "allow"
        return outcome, set(binding)
