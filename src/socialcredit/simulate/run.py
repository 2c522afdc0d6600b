"""Run a scenario month by month and write a run directory: the store and Parquet time series.

Why this shape: the simulator is a client of the engine (SPEC §4). Each month it generates records,
ingests them through `Store.ingest` (the same validation agencies face), runs the one engine path as
of the month's end, and sends every simulated service attempt through `decisions.decide`, so a
blocked attempt is counted exactly as the real system counts it: a row in the store's `decisions`
table with its reasons. The Parquet files are per-step aggregates read back from the store, so they
can be compared across runs and policies without opening DuckDB.

Reproducibility: the population, each month's records and each month's attempts draw from streams
derived from the scenario's seed, and attempt times are simulated times, never the wall clock; the
same scenario gives the same Parquet tables (only `run.json`'s timings differ).

Service attempts go through `decisions.decide_many` in time order, a month's attempts in one call
(one look-up pass over the engine's list stays and one insert), so every attempt is a recorded
decision with its reasons, as a single `decide` would record it.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from sqlglot import exp

from socialcredit import decisions, standings
from socialcredit.catalog import default_catalog
from socialcredit.clock import cst, cst_midnight_utc, stored
from socialcredit.engine import Engine, next_month_utc
from socialcredit.engine.sql import fill
from socialcredit.simulate.behaviour import Society, generate_records
from socialcredit.simulate.contacts import SCHEMA as CONTACTS_SCHEMA
from socialcredit.simulate.contacts import avoid_listed_contacts
from socialcredit.simulate.incentives import blacklisted, near_threshold, respond
from socialcredit.simulate.policy import apply_policy
from socialcredit.simulate.population import generate_population, regions_of
from socialcredit.simulate.scenario import Scenario
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

MonthProgress = Callable[[int, int, str], None]  # (months done, months, label)
ASKED_BY = "simulator"
DECIDE_BATCH = 50_000  # attempts per set-wise decision call: bounds the memory of one call

SCHEMAS = {
    "scores": pa.schema(
        [("month", pa.date32()), ("city", pa.string()), ("grade", pa.string()), ("citizens", pa.int64())]
    ),
    "lists": pa.schema(
        [
            ("month", pa.date32()),
            ("list_id", pa.string()),
            ("on_list", pa.int64()),
            ("entries", pa.int64()),
            ("exits", pa.int64()),
        ]
    ),
    "decisions": pa.schema(
        [("month", pa.date32()), ("service", pa.string()), ("outcome", pa.string()), ("n", pa.int64())]
    ),
    "children": pa.schema([("month", pa.date32()), ("children", pa.int64())]),
    "responses": pa.schema([("month", pa.date32()), ("behaviour", pa.string()), ("n", pa.int64())]),
    "contacts": CONTACTS_SCHEMA,  # written only when citizens avoid blacklisted contacts
}
RESPONSES = ("court_defaulter_delisting", "guarantee_settled")


@dataclass
class RunResult:
    """Where the run went and what it amounted to (totals over all months)."""

    out_dir: Path
    citizens: int
    records: int
    decisions: dict[str, int]  # outcome → attempts
    seconds: float
    months: list[dict[str, Any]] = field(default_factory=list)  # per-month counts and timings


def _utc(day: dt.date) -> dt.datetime:
    """The first instant of a CST calendar day, as the naive UTC the store keeps."""
    return cst_midnight_utc(day)


def _cst_day(t_utc: dt.datetime) -> dt.date:
    return cst(t_utc).date()


def _rng(scenario: Scenario, purpose: int, month: int) -> np.random.Generator:
    """One stream per (purpose, month), so changing service rates leaves the records unchanged; a
    partition's streams also carry its city and district, so partitions never draw alike."""
    words = [scenario.seed, purpose, month]
    if scenario.district is not None:
        city = int.from_bytes(hashlib.sha256(next(iter(scenario.cities)).encode()).digest()[:4], "little")
        words += [scenario.district.index, scenario.district.of, city]
    return np.random.default_rng(words)


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    progress: MonthProgress | None = None,
    settings: dict[str, str] | None = None,
) -> RunResult:
    """Simulate `scenario` into `out_dir` (created; must not hold a run already).

    `settings` are DuckDB settings for the run's store (e.g. threads and memory_limit for one of several
    partitions running side by side)."""
    began = time.perf_counter()
    step = progress or (lambda *_: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "store.duckdb").exists():
        raise LocatedError(f"{out_dir}: already holds a run (store.duckdb); choose a new --out directory")
    # the run directory is self-contained: the scenario's own rulebook layers are copied beside it
    copied = []
    for path in map(Path, scenario.rulebooks):
        (out_dir / "rulebooks").mkdir(exist_ok=True)
        (out_dir / "rulebooks" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        copied.append(f"rulebooks/{path.name}")
    saved = scenario.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if copied:
        saved["rulebooks"] = copied
    (out_dir / "scenario.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, allow_unicode=True), encoding="utf-8")
    store = Store(out_dir / "store.duckdb")
    # DuckDB's own bar would print through Rich's (and from every worker of a partitioned run)
    store.con.execute("SET enable_progress_bar = false")
    # no checkpoint at nearly every commit, only once the population is stored and at the end of the run (both
    # in `_run`): a month's ingest and engine run
    # pass DuckDB's 16 MB default, and at a million citizens after a year a checkpoint took 0.44 s of an engine
    # run's 1.3 s, where one after two months took 0.17 s (the WAL keeps every commit durable meanwhile)
    store.con.execute("SET checkpoint_threshold = '1GB'")
    for key, value in (settings or {}).items():  # the setting's name an identifier, its value bound
        item = exp.SetItem(this=exp.EQ(this=exp.column(key), expression=exp.Placeholder()))
        store.con.execute(exp.Set(expressions=[item], unset=False, tag=False).sql("duckdb"), [value])
    frozen = gc.get_freeze_count()  # a caller's own frozen objects stay frozen; ours go back after the run
    try:
        return _run(scenario, store, out_dir, step, began)
    finally:
        store.close()
        if not frozen:
            gc.unfreeze()


def _run(scenario: Scenario, store: Store, out_dir: Path, step: MonthProgress, began: float) -> RunResult:
    step(0, scenario.months, "population")
    store.init(load_shipped_rulebooks=scenario.shipped_rulebooks)
    for path in map(Path, scenario.rulebooks):
        store.add_rulebook(path.read_text(encoding="utf-8"), f"scenario:{path.name}")
    apply_policy(store, scenario.policy, scenario.start)
    rulebooks = store.rulebooks()
    unknown = [c for c in scenario.cities if c not in rulebooks.cities]
    if unknown:
        raise LocatedError(f"unknown cities {', '.join(unknown)} (cities in the store: {', '.join(rulebooks.cities)})")
    t0 = time.perf_counter()
    district = (scenario.district.index, scenario.district.of) if scenario.district else None
    pop = generate_population(
        scenario.cities, scenario.seed, scenario.start, regions=regions_of(rulebooks), district=district
    )
    store.add_population(pop.citizens, pop.relations, source=f"scenario {scenario.name} seed {scenario.seed}")
    # the population is a bulk load: checkpointed now, with the setup, not with the run's last month (the
    # run's other checkpoint, after the loop's last month). Measured at a million citizens: that last
    # checkpoint 2.4 -> 1.3 s, and every month's engine run and decisions cheaper too (they read the citizens
    # and ties)
    store.con.execute("CHECKPOINT")
    society = Society.of(store)  # read and prepared once: each month's draw then costs its records
    society.strata(scenario.rates, default_catalog())  # population-sized: counted with the setup, not month one
    people = _People.of(store, society)
    _settle()
    setup = time.perf_counter() - t0

    # one decider for the run: the month's attempts and the children count share its stay index, which is
    # dropped after each engine run (the simulator runs the engine itself, so no per-call fact check)
    decider = decisions.Decider(store, check_facts=False)
    decisions.install(store, decider)
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in SCHEMAS}
    months: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    records = 0
    start = _utc(scenario.start)
    previous: dt.datetime | None = None
    for m in range(scenario.months):
        end = next_month_utc(start)
        label = _cst_day(start)
        step(m, scenario.months, f"{label:%Y-%m}: records")
        timing: dict[str, float] = {}
        t = time.perf_counter()
        inc = scenario.incentives
        if inc is not None and inc.avoid_listed_contacts > 0:  # standing as of the month's start
            graph = avoid_listed_contacts(
                store, start, label, inc.avoid_listed_contacts, inc.rewire, _rng(scenario, 4, m)
            )
            rows["contacts"].append(graph.row())
            timing["contacts"] = time.perf_counter() - t
            t = time.perf_counter()
        listed = blacklisted(store, start) if inc is not None else None
        cautious = near_threshold(store, start, inc.threshold_band) if inc is not None else None
        batch = generate_records(
            society, label, scenario.rates, _rng(scenario, 1, m), first=records,
            blacklisted=listed, deterrence=inc.deterrence if inc is not None else 1.0,
            cautious=cautious, caution=inc.threshold_caution if inc is not None else 1.0,
        )  # fmt: skip
        timing["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        if batch.num_rows:
            store.ingest(batch, name=f"simulated {label:%Y-%m}", now=end.replace(tzinfo=dt.UTC))
        records += batch.num_rows
        timing["ingest"] = time.perf_counter() - t
        if inc is not None:  # responses to standing as of the month's start, ingested before the engine run
            t = time.perf_counter()
            answers = respond(store, start, end, inc, _rng(scenario, 3, m), first_record_number=records)
            if answers.num_rows:
                store.ingest(answers, name=f"responses {label:%Y-%m}", now=end.replace(tzinfo=dt.UTC))
            records += answers.num_rows
            counts = Counter(answers["behaviour"].to_pylist())
            rows["responses"] += [{"month": label, "behaviour": b, "n": counts.get(b, 0)} for b in RESPONSES]
            timing["respond"] = time.perf_counter() - t
        step(m, scenario.months, f"{label:%Y-%m}: engine")
        t = time.perf_counter()
        Engine(store).run(as_of=stored(end))
        decider.invalidate()
        timing["engine"] = time.perf_counter() - t
        step(m, scenario.months, f"{label:%Y-%m}: services")
        t = time.perf_counter()
        outcomes = _use_services(store, scenario, m, start, end, people)
        timing["decide"] = time.perf_counter() - t
        t = time.perf_counter()
        rows["decisions"] += [
            {"month": label, "service": s, "outcome": o, "n": n} for (s, o), n in sorted(outcomes.items())
        ]
        rows["scores"] += [{"month": label, **r} for r in _scores(store, scenario, end)]
        rows["lists"] += [{"month": label, **r} for r in _lists(store, scenario, previous, end)]
        rows["children"].append({"month": label, "children": _children(store, end)})
        for name, schema in SCHEMAS.items():  # rewritten every month, so a stopped run keeps what it did
            if name != "contacts" or rows[name]:
                pq.write_table(pa.Table.from_pylist(rows[name], schema=schema), out_dir / f"{name}.parquet")
        timing["aggregate"] = time.perf_counter() - t
        attempts = sum(outcomes.values())
        for (_, o), n in outcomes.items():
            totals[o] += n
        if m == scenario.months - 1:  # the run's checkpoint, timed as the last month's
            t = time.perf_counter()
            store.con.execute("CHECKPOINT")
            timing["checkpoint"] = time.perf_counter() - t
        months.append({"month": str(label), "records": batch.num_rows, "attempts": attempts,
                       "seconds": {k: round(v, 3) for k, v in timing.items()}})  # fmt: skip
        previous, start = end, end
        _settle()
        step(m + 1, scenario.months, f"{label:%Y-%m}: {batch.num_rows:,} records, {attempts:,} attempts")

    seconds = time.perf_counter() - began
    result = RunResult(out_dir, len(pop), records, dict(sorted(totals.items())), seconds, months)
    (out_dir / "run.json").write_text(
        json.dumps(
            {
                **summary(scenario, len(pop), records, result.decisions),
                "timings": {
                    "population_seconds": round(setup, 3),
                    "total_seconds": round(seconds, 3),
                    "months": months,
                },
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return result


def _settle() -> None:
    """Collect once, then move what survived out of the cyclic collector's reach (`gc.freeze`).

    Why: a run keeps a large heap of long-lived Python objects (the rulebooks, compiled statements and
    their trees, the stay index, the people), and every full collection the month's allocations trigger
    scanned all of it again. Settling after the setup and after each month made the monthly loop at a
    million citizens × 12 months 8-16% faster (decisions a third cheaper, the engine a tenth). The
    collection first means no garbage is frozen; a frozen object is still freed when the last reference
    to it goes. `run_scenario` unfreezes at the end, so a caller's heap is collected as before.
    """
    gc.collect()
    gc.freeze()


def summary(scenario: Scenario, citizens: int, records: int, decisions: dict[str, int]) -> dict[str, Any]:
    """The head of run.json, the same for a run and a partitioned run (readers such as the calibration
    table need only these)."""
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "start": str(scenario.start),
        "months": scenario.months,
        "citizens": citizens,
        "records": records,
        "decisions": decisions,
    }


@dataclass(frozen=True)
class _People:
    """Who may try a service, read once per run (the population does not change during one): citizen
    ids and birth days in ckey order, and whether each has a parent in the registry."""

    ids: pa.Array
    born: np.ndarray  # int64 day numbers
    has_parent: np.ndarray  # bool

    @classmethod
    def of(cls, store: Store, society: Society) -> _People:
        found = store.con.execute(
            "SELECT ckey IN (SELECT ckey FROM relations WHERE kind = 'parent') FROM citizens ORDER BY ckey"
        ).fetchnumpy()
        has_parent = np.asarray(next(iter(found.values())), bool)
        return cls(society.citizens.ids, society.born, has_parent)


def _use_services(
    store: Store, scenario: Scenario, m: int, start: dt.datetime, end: dt.datetime, people: _People
) -> Counter[tuple[str, str]]:
    """Draw this month's attempts (Poisson per eligible citizen and service) and decide each one.

    Each service's attempts are drawn as a Poisson total over its eligible citizens, each attempt on
    one of them uniformly: the same independent Poisson count per citizen, in O(attempts) draws."""
    if not scenario.services:
        return Counter[tuple[str, str]]()
    rng = _rng(scenario, 2, m)
    adult_day = _cst_day(start).replace(year=_cst_day(start).year - 18)
    adult = people.born <= int(np.datetime64(adult_day, "D").astype(np.int64))
    ids = people.ids
    eligible = {"adults": np.flatnonzero(adult), "children": np.flatnonzero(~adult & people.has_parent)}
    if any(use.for_ == "listed" for use in scenario.services.values()):
        on = pc.is_in(ids, value_set=blacklisted(store, start))
        eligible["listed"] = np.flatnonzero(on.to_numpy(zero_copy_only=False))
    seconds = int((end - start).total_seconds())
    who, what, when = [], [], []
    for si, service in enumerate(sorted(scenario.services)):
        use = scenario.services[service]
        pool = eligible[use.for_]
        k = int(rng.poisson(use.rate * pool.size)) if pool.size else 0
        citizens = np.sort(pool[rng.integers(0, pool.size, k)]) if k else np.zeros(0, np.int64)
        who.append(citizens)
        what.append(np.full(citizens.size, si))
        when.append(rng.integers(0, seconds, citizens.size))
    citizen, service_ix, offset = np.concatenate(who), np.concatenate(what), np.concatenate(when)
    order = np.lexsort((citizen, service_ix, offset))  # chronological, ties by service then citizen
    services = sorted(scenario.services)
    asking = ids.take(pa.array(citizen[order])).to_pylist()
    names = [services[i] for i in service_ix[order].tolist()]
    times = [
        stored(t)
        for t in (  # naive UTC, as the store keeps it: marked, so the library does not read it as CST
            np.datetime64(start, "us") + offset[order].astype("timedelta64[s]")
        )
        .astype("datetime64[us]")
        .tolist()
    ]
    requests: list[tuple[str, str, dt.datetime | None]] = list(zip(asking, names, times, strict=True))
    outcomes: Counter[tuple[str, str]] = Counter()
    for lo in range(0, len(requests), DECIDE_BATCH):  # set-wise: one look-up pass and one insert per batch
        for d in decisions.decide_many(store, requests[lo : lo + DECIDE_BATCH], asked_by=ASKED_BY, record=True):
            outcomes[(d.service, d.outcome)] += 1
    return outcomes


def _scores(store: Store, scenario: Scenario, at: dt.datetime) -> list[dict[str, Any]]:
    """Citizens by city and grade at the assessment at `at`; those never logged keep the base grade."""
    day = _cst_day(at)
    base = []
    for city in sorted(scenario.cities):
        rb = store.rulebooks().resolve(city, day)
        base.append((city, rb.grade_of(rb.scale.base) if rb else None))
    store.con.register("_base", pa.table({"city": [b[0] for b in base], "grade": [b[1] for b in base]}))
    try:
        found = store.con.execute(
            fill(
                """SELECT c.city, coalesce(l.grade, b.grade, '-') AS grade, count(*) AS citizens
               FROM citizens AS c LEFT JOIN __last AS l ON l.ckey = c.ckey LEFT JOIN _base AS b ON b.city = c.city
               GROUP BY 1, 2 ORDER BY 1, 2, 3""",
                last=standings.latest_grades(store, at),
            ).sql(standings.DIALECT)
        ).fetchall()
    finally:
        store.con.unregister("_base")
    return [{"city": c, "grade": g, "citizens": n} for c, g, n in found]


def _lists(store: Store, scenario: Scenario, previous: dt.datetime | None, at: dt.datetime) -> list[dict[str, Any]]:
    """Per list: citizens on it at `at`, stays begun and ended in (previous, at] (all earlier, in month one)."""
    day = _cst_day(at)
    ids = {lst.id for city in scenario.cities if (rb := store.rulebooks().resolve(city, day)) for lst in rb.lists}
    since = previous or dt.datetime(1900, 1, 1)
    found = {
        list_id: (on, entries, exits)
        for list_id, on, entries, exits in store.con.execute(
            fill(
                """SELECT list_id,
                      count(DISTINCT ckey) FILTER (WHERE $on),
                      count(*) FILTER (WHERE start > $since AND start <= $at),
                      count(*) FILTER (WHERE "end" > $since AND "end" <= $at)
               FROM list_entries GROUP BY list_id""",
                on=standings.in_force(at),
                since=since,
                at=at,
            ).sql(standings.DIALECT)
        ).fetchall()
    }
    return [
        {"list_id": x, "on_list": found.get(x, (0, 0, 0))[0], "entries": found.get(x, (0, 0, 0))[1],
         "exits": found.get(x, (0, 0, 0))[2]}
        for x in sorted(ids | set(found))
    ]  # fmt: skip


def _children(store: Store, at: dt.datetime) -> int:
    """Children reached at `at` by a parent's measure, asked of the decision path itself.

    Only children with a parent on some list, and young enough for some measure reaching children, are
    candidates (one query; the age bound is the oldest any such measure reaches, by calendar year, so it
    never leaves out a child `decide` would reach); each candidate is then checked with the decider's
    `reaching_measures`, the function `decide` uses, so the count cannot drift from the decisions. (The
    bound keeps the adults whose parents are listed out of that Python loop: at a million citizens, 20,000
    candidates a month, three quarters of them adults.)
    """
    ages = [m.children_under for m in store.catalog.measures.values() if m.reach == "children"]
    if not ages:
        return 0
    # a child reached at `at` turns that age after its CST day, so was born in that day's year minus the age, or
    # later: a bound by calendar years, loose by up to a year, never too tight (29 February included)
    born_after = dt.date(_cst_day(at).year - max(ages), 1, 1) - dt.timedelta(days=1)
    candidates = store.con.execute(
        fill(
            """SELECT DISTINCT r.ckey FROM relations AS r JOIN __on AS e ON e.ckey = r.other
               JOIN citizens AS c ON c.ckey = r.ckey
           WHERE r.kind = 'parent' AND c.birth_date > $born_after ORDER BY 1""",
            on=standings.stays_at(at),
            born_after=born_after,
        ).sql(standings.DIALECT)
    ).fetchall()
    decider = decisions.decider(store)  # the run's: its index is the one the month's decisions used
    index = decider.index(at)
    return sum(
        1
        for (ckey,) in candidates
        if any(
            store.catalog.measures[m.measure].reach == "children" and m.via.startswith("parent:")
            for m in decider.reaching_measures(index, ckey, at)
        )
    )


# --------------------------------------------------------------------------- the door


__all__ = ["RunResult", "run_scenario", "summary"]
