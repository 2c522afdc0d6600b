"""Standings, decisions and explanations: what a service provider, a citizen or a reviewer sees.

All three read the engine's derived tables; when facts changed since the last run (or a later time is
asked about) the engine runs first, so there is no second scoring path that could drift from it.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa
from sqlglot import exp

from socialcredit import frames, standings
from socialcredit.catalog import Catalog, Measure
from socialcredit.clock import CST_OFFSET, bounded, cst, shown, stored, utc_naive
from socialcredit.engine import Engine, next_month_utc, next_record_after, run_state, store_clock
from socialcredit.engine.sql import template
from socialcredit.rulebook import Rulebook, add_duration
from socialcredit.stays import Stay, StayIndex, coming_of_age, storable
from socialcredit.store import Store
from socialcredit.store.decisions import append_decisions, notify_learned_by_denials
from socialcredit.yamlio import LocatedError, first_of

OUTCOME_ORDER = ("deny", "throttle", "deprioritise", "publish", "priority", "discount", "deposit_waived")
OUTCOME_NAME = {"deposit_waived": "waive_deposit"}
NO_MEASURE = "No restriction or privilege applies."
FLUSH_ROWS = 2048
_MISSING: Any = object()


@dataclass
class ActiveMeasure:
    measure: str
    label: str
    kind: str
    effect: str
    services: list[str]
    public_reason: str
    via: str  # "list:<id>", "memory:<id>", or "parent:<citizen id> list:<id>"
    since: dt.datetime
    until: dt.datetime | None
    discount_pct: float | None = None
    throttle_pct: float | None = None

    @classmethod
    def of(cls, m: Measure, via: str, since: dt.datetime, until: dt.datetime | None) -> ActiveMeasure:
        return cls(
            m.code,
            m.label,
            m.kind,
            m.effect,
            list(m.services),
            m.public_reason,
            via,
            since,
            until,
            m.discount_pct,
            m.throttle_pct,
        )


@dataclass
class Standing(frames.Tabular):
    """Everything about a citizen as of a time. `score` and `grade` are the published ones (`standings`: the
    latest monthly assessment at or before `as_of`, the one the grade lists follow, assessed at `assessed_at`);
    `running_score` is the ledger's clamp(base + points in force) at `as_of`, which the explanation itemises
    and the next assessment publishes."""

    citizen_id: str
    name: str
    city: str
    as_of: dt.datetime
    score: int | None
    grade: str | None
    rulebook_version: str | None
    list_entries: list[dict[str, Any]]
    measures: list[ActiveMeasure]
    clock: str = "asked"  # whose time `as_of` is (see CLOCKS): every answer says which time it is for
    assessed_at: dt.datetime | None = None  # when the published score was assessed (None: never assessed)
    running_score: int | None = None  # the ledger's score at `as_of` (None: no rulebook in force)

    def to_json(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def _repr_html_(self) -> str:
        head = frames.fields_html(f"{self.name} {self.citizen_id}", [
            ("city", self.city), ("as of (CST)", self.as_of), ("whose time", CLOCKS.get(self.clock, self.clock)),
            ("score", self.score), ("grade", self.grade), ("assessed at (CST)", self.assessed_at),
            ("running score", self.running_score), ("rulebook", self.rulebook_version)])  # fmt: skip
        entries = frames.html_table(
            self.list_entries,
            ["list_id", "kind", "start", "end", "cause", "record_id", "behaviour", "characteristic", "grade"],
            "list entries",
        )
        measures = frames.html_table(
            [asdict(m) for m in self.measures],
            ["measure", "effect", "services", "via", "since", "until"],
            "active measures",
        )
        return head + entries + measures


@dataclass
class Decision(frames.Tabular):
    citizen_id: str
    service: str
    at: dt.datetime
    outcome: str
    public_reason: str
    rulebook_version: str | None
    valid_until: dt.datetime | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    clock: str = "asked"  # whose time `at` is (see CLOCKS)

    def to_json(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def _repr_html_(self) -> str:
        head = frames.fields_html(f"{self.outcome.upper()} {self.service} for {self.citizen_id}", [
            ("at (CST)", self.at), ("whose time", CLOCKS.get(self.clock, self.clock)),
            ("public reason", self.public_reason), ("rulebook", self.rulebook_version),
            ("valid until", self.valid_until)])  # fmt: skip
        return head + frames.html_table(self.reasons, ["measure", "effect", "via", "since", "until"], "reasons")


def jsonable(x: Any) -> Any:
    """Dates as ISO 8601 UTC ("…Z"), recursively: how every door shows times to machines."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, dt.datetime):  # the UTC clock time as it reads, whatever zone it is marked with
        return (x.replace(tzinfo=None) if x.tzinfo is not None else x).isoformat() + "Z"
    return x


def ensure_fresh(store: Store, at: dt.datetime) -> None:
    """Run the engine unless its last run can answer a question at `at` as a fresh store would.

    The last run (as of R) answers for `at` when no fact was added since, no record occurred in (R, at]
    (one ingested before the run but dated after R was not seen by it: a mid-month run), and `at` lies in
    R's assessment month: stays were computed with their ends and grade lists change only at the next
    monthly assessment. Otherwise the engine reruns as of the later of R and `at` — never the wall clock
    — and a replay reruns under its own pin, so it stays a replay until someone scores unpinned.
    """
    if store.read_only:  # an analyst's read-only open or a served store's snapshot: its engine output is all there is
        last, due, _ = _due(store, at)
        if due:
            raise SnapshotCannotAnswer(store.path, last, at)
        return
    with store.engine_lock:  # asked after a run beside this connection (`Store.beside`) has ended
        last, due, pin = _due(store, at)
        if due:
            Engine(store).run(as_of=stored(at if last is None else max(last, at)), pin=pin)  # no run: no pin


def run_needed(store: Store, at: dt.datetime) -> bool:
    """Whether a question at `at` needs an engine run first (`ensure_fresh` would run one)."""
    return _due(store, at)[1]


def _due(store: Store, at: dt.datetime) -> tuple[dt.datetime | None, bool, str | None]:
    """The last run's time, whether a question at `at` needs a run first, and the last run's pin."""
    last, changed, pin = run_state(store)
    return last, last is None or changed or at >= answers_until(store, last), pin


class SnapshotCannotAnswer(LocatedError):
    """A question a read-only store (a served store's published snapshot) cannot answer without an engine
    run, which only the store's writer may do: the service forwards it to its writer; the CLI says so."""

    def __init__(self, path: object, last: dt.datetime | None, at: dt.datetime) -> None:
        self.at = at
        until = "it has no engine run" if last is None else f"its last engine run is as of {shown(last)}"
        super().__init__(
            f"{path}: opened read-only, so it cannot answer about {shown(at)} ({until}); ask without "
            "a time (the store's clock), ask the running service (its writer reruns the engine), or "
            "open it writable so the engine can run"
        )


def answers_until(store: Store, last: dt.datetime) -> dt.datetime:
    """Until when a run as of `last` answers questions: its next monthly assessment, or the first record
    dated after it, whichever comes first."""
    after = next_record_after(store, last)
    month = next_month_utc(last)
    return month if after is None else min(month, after)


# what an answer's `clock` says about its time
CLOCKS = {
    "asked": "the time asked about",
    "store": "the store's clock: its last engine run, or a simulation's end",
    "service": "the service's clock",
    "now": "now: the store has no engine run yet, so the first question scores it as of now",
}


def default_time(store: Store) -> tuple[dt.datetime, str]:
    """The time a question without one is asked at, and whose clock that is: the door's (a service's), else
    the store's own — its last engine run, which a simulation leaves at its end — never the wall clock, so a
    store simulated in 2025 answers about 2025. Only a store never scored is asked about now (that first
    question scores it, and sets its clock)."""
    d = _DECIDERS.get(store)
    if d is not None and d.clock is not None:
        return utc_naive(d.clock()), "service"
    last, _, _ = run_state(store)
    return (store_clock(store), "now") if last is None else (last, "store")


def question_clock(store: Store) -> dt.datetime:
    """The clock a question's time is bounded by: the door's (a service's), else the later of the store's
    last run and today (so a store scored in the past can still be asked about the present)."""
    d = _DECIDERS.get(store)
    return utc_naive(d.clock()) if d is not None and d.clock is not None else store_clock(store)


def question_time(store: Store, t: dt.datetime | None, field: str) -> tuple[dt.datetime, str]:
    """The time a question is about (naive UTC) and whose clock it is: `default_time` when none is named,
    else `t` (naive = CST) within the bounds."""
    return default_time(store) if t is None else (bounded(t, field, question_clock(store)), "asked")


def _citizen(store: Store, citizen_id: str) -> tuple[int, str, str, int]:
    ckey = store.ckey(citizen_id)
    name, city, jkey = store.con.execute("SELECT name, city, jkey FROM citizens WHERE ckey = ?", [ckey]).fetchall()[0]
    return ckey, name, city, jkey


@lru_cache(maxsize=8)
def on_ledger(text: str, ledger: str) -> str:
    """`text` (DuckDB SQL reading the view `ledger`) reading the ledger view `ledger` instead: the one the read
    model says to read now (`standings.ledger_table`), named by sqlglot, never pasted."""

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name == "ledger":
            return exp.Table(this=exp.to_identifier(ledger), alias=node.args.get("alias"))
        return node

    return template(text).copy().transform(swap).sql("duckdb")


_RUNNING_TOTAL = """SELECT coalesce(sum(points), 0) FROM ledger
                    WHERE ckey = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"""


def score_at(store: Store, ckey: int, rb: Rulebook | None, at: dt.datetime) -> int | None:
    if rb is None:
        return None
    running = on_ledger(_RUNNING_TOTAL, standings.ledger_table(store))
    total = store.con.execute(running, [ckey, at, at]).fetchall()[0][0]
    return rb.scale.score(int(total))


@dataclass(frozen=True)
class MeasurePlan:
    """A rulebook's list → measures map, resolved once: `list_measures()` builds models on every call."""

    lists: dict[str, list[tuple[Measure, str | None]]]  # list_id → (measure, for duration)
    memory: list[tuple[str, str, list[Measure]]]  # (memory id, after list, lasting measures)

    @classmethod
    def of(cls, cat: Catalog, rb: Rulebook) -> MeasurePlan:
        return cls(
            {x.id: [(cat.measures[lm.measure], lm.for_) for lm in x.list_measures()] for x in rb.lists},
            [(mem.id, mem.after, [cat.measures[c] for c in mem.measures]) for mem in rb.memory],
        )


def _stay_measures(
    plan: MeasurePlan | None,
    stays: list[Stay],
    at: dt.datetime,
    service: str | None = None,
    reach: frozenset[str] | None = None,
) -> list[ActiveMeasure]:
    """Measures of the lists a citizen is on at `at`, and the lasting ones of any past stay (memory).

    With `service`, only the measures that bind it: a decision needs no others, and a listed citizen
    carries twenty or more. With `reach`, only measures of those reaches (a relative's: those that reach
    past the citizen; most of a listed parent's measures bind the parent alone).
    """
    if plan is None or not stays:
        return []
    out: list[ActiveMeasure] = []
    for list_id, start, end in stays:
        measures = plan.lists.get(list_id)
        if measures is None or start > at or (end is not None and end <= at):
            continue
        for m, for_ in measures:
            if (service is not None and service not in m.services) or (reach is not None and m.reach not in reach):
                continue
            # `for` counts on the CST calendar (SPEC §5): a month from 1 July 00:30 CST ends 1 August 00:30 CST
            until = add_duration(start + CST_OFFSET, for_) - CST_OFFSET if for_ else end
            if for_ and until is not None and until <= at:
                continue
            out.append(ActiveMeasure.of(m, f"list:{list_id}", start, until))
    for mem_id, after, lasting in plan.memory:
        first = next((start for list_id, start, _ in stays if list_id == after and start <= at), None)
        if first is None:
            continue
        for m in lasting:
            if (service is None or service in m.services) and (reach is None or m.reach in reach):
                out.append(ActiveMeasure.of(m, f"memory:{mem_id}", first, None))
    return out


REACHING = frozenset({"children", "household"})  # the reaches of measures that bind a listed citizen's relatives


class Decider:
    """Decisions for one store, read from an in-memory index of the engine's list stays.

    `check_facts=True` (the library default) asks the store before every call whether facts changed
    since the last engine run (a few ms); a long-lived door that sees every write itself (the HTTP
    service) passes False and calls `invalidate()` after its writes, so a decision costs microseconds.
    `buffered=True` (that door again) keeps recorded decisions in memory until `FLUSH_ROWS` gather or
    the door calls `flush()` (it does so at least every half second): one insert per request would
    cost a DuckDB commit, a hundred times the decision itself.
    Either way the engine reruns when a decision falls in a later assessment month than its last run.
    """

    def __init__(
        self,
        store: Store,
        check_facts: bool = True,
        buffered: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.check_facts = check_facts
        self.buffered = buffered
        self._pending: list[tuple[Any, ...]] = []
        self._pending_rows = 0
        self._next_id: int | None = None
        self._index: StayIndex | None = None
        self._last: StayIndex | None = None  # the index before `invalidate`, whose citizens a new one may keep
        self._valid_until: dt.datetime | None = None
        self._rulebooks: dict[tuple[str, dt.date], Rulebook | None] = {}
        self._plans: dict[int, MeasurePlan] = {}
        self._by_hour: dict[tuple[str, int, int, int, int], Rulebook | None] = {}
        self._pin: dict[str, int] | None = None  # a replay's versions: its answers use them, not the dates'

    def invalidate(self) -> None:
        """Read the index again at the next decision (the engine ran); its citizens may be kept (`StayIndex.load`)."""
        self._last = self._index or self._last
        self._index = None

    def valid_for(self, at: dt.datetime) -> bool:
        """Whether the index read last answers at `at` with no engine run and no question to the store: a door
        that sees every write (`check_facts=False`) invalidates it on each, and `at` is before what its run
        answers (`answers_until`)."""
        return (
            self._index is not None
            and not self.check_facts
            and self._valid_until is not None
            and at < self._valid_until
        )

    def index(self, at: dt.datetime) -> StayIndex:
        """The stay index, valid for decisions at `at` (running the engine first if needed)."""
        idx = self._index
        if idx is not None and self.valid_for(at):
            return idx
        with self.store.engine_lock:  # the run's output read whole: no run beside it commits meanwhile
            ensure_fresh(self.store, at)
            computed = self.store.con.execute("SELECT computed_at, as_of, pin FROM engine_run").fetchall()
            if idx is None or not computed or idx.computed_at != computed[0][0]:
                idx = self._index = StayIndex.load(self.store, idx or self._last)
                if self.buffered:
                    # a long-lived door: move the index (and everything loaded so far) out of the cyclic
                    # collector's reach, or each full collection rescans it and stalls requests for ~100 ms
                    gc.freeze()
                self._rulebooks.clear()
                self._by_hour.clear()
                self._plans.clear()
            self._valid_until = answers_until(self.store, computed[0][1]) if computed else None
        pin = computed[0][2] if computed else None
        self._pin = self.store.rulebooks().parse_version(pin)[1] if pin else None
        return idx

    def rulebook(self, city: str, at: dt.datetime) -> Rulebook | None:
        """The version in force on `at`'s CST calendar day, cached per (city, hour) to keep it off the hot path."""
        hour = (city, at.year, at.month, at.day, at.hour)
        rb = self._by_hour.get(hour, _MISSING)
        if rb is _MISSING:
            key = (city, cst(at).date())  # times here are naive UTC
            if key not in self._rulebooks:
                self._rulebooks[key] = self.store.rulebooks().resolve(city, key[1], self._pin)
            rb = self._by_hour[hour] = self._rulebooks[key]
        return rb  # type: ignore[no-any-return]

    def plan(self, rb: Rulebook | None) -> MeasurePlan | None:
        if rb is None:
            return None
        plan = self._plans.get(id(rb))
        if plan is None:
            plan = self._plans[id(rb)] = MeasurePlan.of(self.store.catalog, rb)
        return plan

    def own_measures(
        self,
        idx: StayIndex,
        ckey: int,
        city: str,
        at: dt.datetime,
        service: str | None = None,
        reach: frozenset[str] | None = None,
    ) -> list[ActiveMeasure]:
        stays = idx.stays.get(ckey)
        return _stay_measures(self.plan(self.rulebook(city, at)), stays, at, service, reach) if stays else []

    def reaching_measures(
        self, idx: StayIndex, ckey: int, at: dt.datetime, service: str | None = None
    ) -> list[ActiveMeasure]:
        """Measures of parents (reach children) and of household members (reach household), through the ties
        in force at `at`; a parent's measure reaches a child only while the child is under the measure's
        `children_under` (18 unless it says otherwise) on `at`'s CST calendar day (a 56-year-old son is not a
        child the measure is about)."""
        out: list[ActiveMeasure] = []
        born = idx.born.get(ckey)
        for other, kind, other_id, city, since, until in idx.relatives.get(ckey, []):
            if since > at or (until is not None and until <= at):
                continue
            for m in self.own_measures(idx, other, city, at, service, REACHING):
                measure = self.store.catalog.measures[m.measure]
                if measure.reach == "household" or (
                    kind == "parent" and born is not None and at < coming_of_age(born, measure.children_under)
                ):
                    m.via = f"{kind}:{other_id} {m.via}"
                    out.append(m)
        return out

    def measures(
        self, idx: StayIndex, ckey: int, city: str, at: dt.datetime, service: str | None = None
    ) -> list[ActiveMeasure]:
        found = self.own_measures(idx, ckey, city, at, service) + self.reaching_measures(idx, ckey, at, service)
        # in an order of their own (stays in the index follow arrival order): same facts, same answer
        return sorted(found, key=lambda m: (m.since, m.measure, m.via, m.until or dt.datetime.max))

    def _decision(
        self, idx: StayIndex, citizen_id: str, ckey: int, city: str, service: str, t: dt.datetime
    ) -> tuple[Decision, Rulebook | None]:
        rb = self.rulebook(city, t)
        version = rb.version if rb else None
        cat = self.store.catalog

        def applies(m: ActiveMeasure) -> bool:
            # a measure that reaches children binds the children, not the listed parent
            own = m.via.startswith(("list:", "memory:"))
            return not own or cat.measures[m.measure].reach != "children"

        binding = [m for m in self.measures(idx, ckey, city, t, service) if applies(m)]
        effects = sorted({m.effect for m in binding}, key=OUTCOME_ORDER.index)
        outcome = OUTCOME_NAME.get(effects[0], effects[0]) if effects else "allow"
        chosen = [m for m in binding if effects and m.effect == effects[0]]
        public = " ".join(dict.fromkeys(m.public_reason for m in chosen)) or NO_MEASURE  # each is a sentence
        untils = [m.until for m in chosen if m.until is not None]
        reasons = [
            {
                "measure": m.measure,
                "effect": m.effect,
                "via": m.via,
                "since": m.since,
                "until": m.until,
                "discount_pct": m.discount_pct,
                "throttle_pct": m.throttle_pct,
            }
            for m in binding
        ]
        return Decision(citizen_id, service, t, outcome, public, version, min(untils) if untils else None, reasons), rb

    def decide(
        self, citizen_id: str, service: str, at: dt.datetime | None = None, asked_by: str = "cli", record: bool = True
    ) -> Decision:
        """May this citizen use this service at `at`? The answer carries its reasons and the version used."""
        return self.decide_many([(citizen_id, service, at)], asked_by=asked_by, record=record)[0]

    def decide_many(
        self, requests: Sequence[tuple[str, str, dt.datetime | None]], asked_by: str = "cli", record: bool = True
    ) -> list[Decision]:
        """Many decisions in one call (a railway checks a whole train): one look-up pass, one insert.

        A batch with any unknown citizen or service is refused whole, every problem named.
        """
        services = self.store.catalog.services
        bad = [f"request {i + 1}: unknown service {s!r}" for i, (_, s, _) in enumerate(requests) if s not in services]
        if bad:
            raise LocatedError(first_of(bad, "; ") + " (see `socialcredit catalog`)")
        if not requests:
            return []
        clock = question_clock(self.store) if self.clock is None else utc_naive(self.clock())
        default, whose = (clock, "service") if self.clock is not None else default_time(self.store)
        times = [
            default if t is None else bounded(t, f"request {i + 1}: at", clock) for i, (_, _, t) in enumerate(requests)
        ]
        if self._index is None or self.check_facts:  # the engine may run: refuse unknown citizens first
            self._check_citizens([c for c, _, _ in requests])
        idx = self.index(max(times))
        if len(requests) == 1:
            ckey, city = idx.locate(requests[0][0])
            ckeys, cities = [ckey], [city]
        else:
            ck, ci = idx.locate_many([c for c, _, _ in requests])
            ckeys, cities = ck.tolist(), [idx.cities[i] for i in ci.tolist()]
        out: list[Decision] = []
        denied: list[tuple[int, Decision, Rulebook | None]] = []
        affected = idx.affected
        # a batch allocates one small acyclic object per decision; the cyclic collector would otherwise
        # rescan the whole heap (stay index included) every few hundred of them: 3× the batch's cost
        paused = gc.isenabled()
        gc.disable()
        try:
            self._decide_all(idx, requests, times, ckeys, cities, affected, out, denied)
        finally:
            if paused:
                gc.enable()
        for (_, _, t), d in zip(requests, out, strict=True):
            if t is None:
                d.clock = whose
        if record:
            self._record(out, ckeys, asked_by, denied)
        return out

    def _check_citizens(self, citizen_ids: list[str]) -> None:
        shaped = [c for c in citizen_ids if storable(c)]
        unknown = [c for c in citizen_ids if not storable(c)]
        unknown += [
            c
            for (c,) in self.store.con.execute(
                "SELECT DISTINCT u.id FROM unnest(?::VARCHAR[]) AS u(id) ANTI JOIN citizens c ON c.citizen_id = u.id",
                [shaped],
            ).fetchall()
        ]
        if unknown:
            raise LocatedError(f"no such citizen in the store: {first_of([repr(c) for c in unknown])}")

    def _decide_all(
        self,
        idx: StayIndex,
        requests: Sequence[tuple[str, str, dt.datetime | None]],
        times: list[dt.datetime],
        ckeys: list[int],
        cities: list[str],
        affected: frozenset[int],
        out: list[Decision],
        denied: list[tuple[int, Decision, Rulebook | None]],
    ) -> None:
        for (cid, service, _), t, ckey, city in zip(requests, times, ckeys, cities, strict=True):
            if ckey in affected:
                d, rb = self._decision(idx, cid, ckey, city, service, t)
                if d.outcome == "deny":
                    denied.append((ckey, d, rb))
            else:  # no stay of one's own or of a relative: nothing can bind (most of any population)
                rb = self.rulebook(city, t)
                d = Decision(cid, service, t, "allow", NO_MEASURE, rb.version if rb else None, None, [])
            out.append(d)

    def _record(
        self, out: list[Decision], ckeys: list[int], asked_by: str, denied: list[tuple[int, Decision, Rulebook | None]]
    ) -> None:
        con = self.store.con
        if self._next_id is None or not self.buffered:
            self._next_id = con.execute("SELECT coalesce(max(decision_id), 0) + 1 FROM decisions").fetchall()[0][0]
        first = self._next_id
        self._next_id = first + len(out)
        reasons = [json.dumps(jsonable(d.reasons), ensure_ascii=False) if d.reasons else "[]" for d in out]
        self._pending.extend(
            (first + i, ckey, d.service, d.at, d.outcome, r, asked_by, d.rulebook_version)
            for i, (ckey, d, r) in enumerate(zip(ckeys, out, reasons, strict=True))
        )
        self._pending_rows += len(out)
        if not self.buffered or self._pending_rows >= FLUSH_ROWS:
            self.flush()
        # where the city does not notify, a citizen learns of a listing only when a decision denies them
        notify_learned_by_denials(
            self.store,
            [
                (ckey, d.at, f"Denied {d.service}: {d.public_reason}")
                for ckey, d, rb in denied
                if rb is not None and not rb.disclosure.notify_citizens
            ],
        )

    def record_elsewhere_decided(self, decided: pa.Table, learned: Sequence[tuple[int, dt.datetime, str]]) -> None:
        """Record decisions another process answered (a reader of the service, from a published snapshot), in
        the caller's transaction: `decided` has the `decisions` table's columns but the ID (ckey, service,
        asked_at, outcome, reasons JSON, asked_by, rulebook_version), and takes the next decision IDs of this
        store, after this decider's own buffered ones (written first); `learned` are the (ckey, at, message)
        of denials that told a citizen of a listing the city does not notify. One insert each: the rows
        arrive as columns and go in as they came, no row passing through Python."""
        self.flush()
        con = self.store.con
        if self._next_id is None or not self.buffered:
            self._next_id = con.execute("SELECT coalesce(max(decision_id), 0) + 1 FROM decisions").fetchall()[0][0]
        first = self._next_id
        self._next_id = first + decided.num_rows
        ids = pa.array(range(first, first + decided.num_rows), pa.int64())
        append_decisions(self.store, decided.add_column(0, "decision_id", ids))
        notify_learned_by_denials(self.store, learned)

    def resync(self) -> None:
        """Take the next decision ID from the store again: a transaction that wrote decisions was rolled back.
        (With rows of its own still buffered, their IDs stay taken and the rolled-back ones are left a gap.)"""
        if not self._pending:
            self._next_id = None

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Write the buffered decisions (one insert for all of them)."""
        if not self._pending:
            return
        cols = list(zip(*self._pending, strict=True))
        rows = pa.table(
            {
                "decision_id": pa.array(cols[0], pa.int64()),
                "ckey": pa.array(cols[1], pa.int32()),
                "service": pa.array(cols[2], pa.string()),
                "asked_at": pa.array(cols[3], pa.timestamp("us")),
                "outcome": pa.array(cols[4], pa.string()),
                "reasons": pa.array(cols[5], pa.string()),
                "asked_by": pa.array(cols[6], pa.string()),
                "rulebook_version": pa.array(cols[7], pa.string()),
            }
        )
        self._pending, self._pending_rows = [], 0
        append_decisions(self.store, rows)


_DECIDERS: weakref.WeakKeyDictionary[Store, Decider] = weakref.WeakKeyDictionary()


def decider(store: Store) -> Decider:
    """The store's decider: the library's (checks facts on every call), unless a door installed its own."""
    d = _DECIDERS.get(store)
    if d is None:
        d = _DECIDERS[store] = Decider(store)
    return d


def install(store: Store, d: Decider) -> None:
    """Make `d` the decider `standing`, `explain` and `decide` use for `store`: a long-lived door keeps one
    stay index, not a second one beside the library's, and skips the per-call fact check it does not need."""
    _DECIDERS[store] = d


def standing(store: Store, citizen_id: str, as_of: dt.datetime | None = None) -> Standing:
    """Everything about a citizen as of a time (naive = CST; none: the store's clock, see `default_time`)."""
    ckey, name, city, _ = _citizen(store, citizen_id)  # an unknown ID is refused before any engine work
    at, whose = question_time(store, as_of, "as_of")
    dec = decider(store)
    idx = dec.index(at)
    rb = dec.rulebook(city, at)
    shown = standings.published(store, ckey, rb, at)
    return Standing(
        citizen_id,
        name,
        city,
        at,
        shown.score if shown else None,
        shown.grade if shown else None,
        rb.version if rb else None,
        standings.stays_of(store, ckey, at),
        dec.measures(idx, ckey, city, at),
        whose,
        shown.assessed_at if shown else None,
        score_at(store, ckey, rb, at),
    )


def reaching_measures(store: Store, ckey: int, at: dt.datetime) -> list[ActiveMeasure]:
    """Measures of parents (reach children) and of household members (reach household)."""
    dec = decider(store)
    return dec.reaching_measures(dec.index(at), ckey, at)


def decide(
    store: Store,
    citizen_id: str,
    service: str,
    at: dt.datetime | None = None,
    asked_by: str = "cli",
    record: bool = False,
) -> Decision:
    """May this citizen use this service at `at` (naive = CST; none: the store's clock)? The answer carries
    its reasons, the time and the version used. A what-if writes nothing: `record=True` appends the decision
    to the store's `decisions` (as a service provider's question through the CLI or HTTP is)."""
    return decider(store).decide(citizen_id, service, at, asked_by=asked_by, record=record)


def decide_many(
    store: Store,
    requests: Sequence[tuple[str, str, dt.datetime | None]],
    asked_by: str = "cli",
    record: bool = False,
) -> list[Decision]:
    """Decisions for many (citizen, service, time) requests in one pass; refused whole on any bad request.
    Written to the store only with `record=True`."""
    return decider(store).decide_many(requests, asked_by=asked_by, record=record)
