"""The whole engine run on Spark gives DuckDB's results: every derived table row for row, and every citizen's
standing as `citizen --json` prints it, on a fresh `socialcredit sample` store scored by `score --engine spark`
(in the tests' one local session; the whole sample at full scale, its first seven months at CI's, see AS_OF),
and on generated histories (caps, expiry, triggers with terms, the network
rule, memory, retractions, a rulebook version changing mid-history)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from typer.testing import CliRunner

from conftest import SLOW_SCALE, citizen
from oracle.books import CHANGE, TESTCITY_2
from oracle.model import CST, Person, Record
from oracle.test_oracle import LAYERS, NOW, UNTIL, History, histories
from socialcredit.cli import app
from socialcredit.engine import Engine
from socialcredit.sample import citizen_ids
from socialcredit.store import Store

from .conftest import require_spark
from .derived import but_run, derived, same

SCALE = SLOW_SCALE
# generated histories, each a full run on both engines (at CI's scale of 0.1: one)
HISTORIES = max(1, round(10 * SCALE))
# The sample scored to after its last record (18 months, March 2025 to August 2026); at a reduced scale (CI's
# 0.1) to 1 July 2025, as on the cluster: its court listing, blacklist stays, characteristic and network
# entries, at a quarter of the months (each month of the loop is a dozen statements, a Spark job or two each).
# A fixed time either way, so the wall clock never enters.
AS_OF = "2026-09-01" if SCALE >= 1 else "2025-07-01"
runner = CliRunner()


def cli(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, (r.output, "".join(traceback.format_exception(r.exception))[-4000:])
    return r.output


@dataclass
class Scored:
    duck: Path
    spark: Path
    jobs: int
    """Spark jobs the Spark store's `score` ran"""


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Scored:
    """Two fresh sample stores, one scored by DuckDB and one by `score --engine spark --master local[2]`."""
    base = tmp_path_factory.mktemp("engine")
    tracker = spark.sparkContext.statusTracker()
    jobs = 0
    for name, engine in (("duck", ()), ("spark", ("--engine", "spark", "--master", "local[2]"))):
        db = str(base / f"{name}.duckdb")
        cli("init", "--db", db)
        cli("sample", "--db", db)
        before = len(tracker.getJobIdsForGroup(None))
        cli("score", "--db", db, "--as-of", AS_OF, *engine)
        jobs = len(tracker.getJobIdsForGroup(None)) - before
    return Scored(base / "duck.duckdb", base / "spark.duckdb", jobs)


@pytest.mark.slow
def test_score_on_spark_runs_on_spark(scored: Scored) -> None:
    """The Spark store's run was Spark's (not a DuckDB run behind the option), and wrote a whole run home."""
    assert scored.jobs > 20
    with Store(scored.spark) as store:
        tables = derived(store)
    as_of = dt.datetime.fromisoformat(AS_OF) - dt.timedelta(hours=8)  # AS_OF's CST midnight, as UTC
    assert tables["engine_run"][1][0][0] == as_of
    assert tables["score_log"][1] and tables["list_entries"][1] and tables["state_ledger"][1]


@pytest.mark.slow
def test_every_derived_table_on_spark_is_duckdbs(scored: Scored) -> None:
    with Store(scored.duck) as store:
        duck = derived(store)
    with Store(scored.spark) as store:
        spark = derived(store)
    same(duck, spark)


@pytest.mark.slow
def test_every_sample_citizens_standing_is_the_same(scored: Scored) -> None:
    """`citizen --json` for every sample citizen, read from each store without running the engine again."""
    finished = {}
    for db in (scored.duck, scored.spark):
        with Store(db) as store:
            finished[db] = store.con.execute("SELECT computed_at FROM engine_run").fetchall()
    for cid in citizen_ids().values():
        duck, spark = (json.loads(cli("citizen", cid, "--db", str(db), "--as-of", AS_OF, "--json"))
                       for db in (scored.duck, scored.spark))  # fmt: skip
        assert spark == duck, cid
    for db in (scored.duck, scored.spark):  # the answers were the runs', not a rerun's
        with Store(db) as store:
            assert store.con.execute("SELECT computed_at FROM engine_run").fetchall() == finished[db]


def history_store(h: History, layers: tuple[str, ...] = LAYERS) -> Store:
    """The oracle's generated society and history, as a store (its rulebooks, citizens, batches, retractions)."""
    store = Store(":memory:")
    store.init(load_shipped_rulebooks=False)
    for i, text in enumerate(layers):
        store.add_rulebook(text, f"oracle{i}.yaml")
    store.add_citizens(h.rows)
    for batch in h.batches:
        ingest(store, batch)
    for agency in sorted({r.agency for r in h.retracted}):
        store.retract(agency, [r.record_id for r in h.retracted if r.agency == agency], "oracle", "test")
    return store


def ingest(store: Store, batch: list[Record]) -> None:
    if batch:
        store.ingest([{"record_id": r.record_id, "citizen_id": r.citizen, "behaviour": r.behaviour,
                       "occurred_at": r.at.isoformat(), "reported_by": r.agency, "attributes": r.attrs}
                      for r in batch], now=NOW)  # fmt: skip


def rich_history() -> History:
    """One history with every case in it, whatever the generator draws first: a court listing with a term
    (blacklist, its points end with the term) whose contacts feel the network rule, another listing cleared
    after the rulebook version changed, capped volunteering (one record retracted) and donations, capped
    gaming, a 180-day trigger, late payments either side of the change."""
    cities = ["testcity", "testcity", "othercity", "testcity"]
    rows = [citizen(i, city=cities[i], born=dt.date(1960 + 10 * i, 1, 1)) for i in range(4)]
    ids = [str(r["citizen_id"]) for r in rows]
    people = [Person(ids[i], cities[i]) for i in range(4)]
    for i, j in ((0, 1), (1, 2), (1, 3), (0, 3)):
        people[i].contacts.append(ids[j])
        people[j].contacts.append(ids[i])
    people[3].parents.append(ids[1])
    for r, p in zip(rows, people, strict=True):
        r["contacts"] = list(p.contacts)
        if p.parents:
            r["parents"] = list(p.parents)

    def at(y: int, m: int, d: int, h: int = 10) -> dt.datetime:
        return dt.datetime(y, m, d, h, tzinfo=CST).astimezone(dt.UTC)

    court, vol, pay = "local_peoples_court", "volunteer_association", "payment_platform"
    records = [
        Record(
            "c1",
            court,
            ids[0],
            "court_defaulter_listing",
            at(2022, 2, 10),
            {"ground": 1, "term_days": 120, "amount": 2_000_000},
        ),
        Record("c2", court, ids[3], "court_defaulter_listing", at(2022, 3, 5), {"ground": 2, "term_days": 0}),
        Record("c3", court, ids[3], "court_defaulter_delisting", at(2022, 9, 1), {}),
        *[Record(f"v{k}", vol, ids[1], "volunteer_work", at(2022, 2 + k, 3), {"hours": 8}) for k in range(4)],
        Record("d1", pay, ids[2], "charity_donation", at(2022, 5, 1, 0), {"amount": 5000}),
        Record("d2", pay, ids[2], "charity_donation", at(2022, 5, 2), {"amount": 5000}),
        *[
            Record(f"g{k}", "gaming_platform", ids[3], "excessive_gaming", at(2022, 4, 1 + 9 * k), {"hours": 10})
            for k in range(3)
        ],
        Record("s1", "china_railway", ids[2], "smoking_on_train", at(2022, 3, 1), {}),
        Record("l1", "state_grid", ids[1], "late_bill_payment", at(2022, 6, 20), {"days_late": 200}),
        Record("l2", "city_utilities", ids[2], "late_bill_payment", at(2022, 8, 1), {"days_late": 90}),
    ]
    retracted = [records[4]]
    return History(people, rows, records, retracted, [records[:7], records[7:]])


# the rich history's run ends a month after its last record (the oracle's UNTIL is nine months later): every
# case has happened by then. Its records sit in the eight months around the rulebook change (1 July 2022):
# once a citizen is blacklisted the network rule assesses every month, and on Spark each month of the loop
# costs a dozen statements' worth of jobs
RICH_AS_OF = dt.datetime(2022, 10, 1, tzinfo=CST)


@pytest.mark.slow
@settings(max_examples=HISTORIES, derandomize=True)
@given(h=histories())
def test_generated_histories_on_spark_are_duckdbs(spark: Any, h: History) -> None:
    histories_agree(spark, h)


# the rich history's records before this time are scored on Spark first; the rest arrive after
SPLIT = dt.datetime(2022, 5, 1, tzinfo=CST)


def test_a_history_of_every_case_on_spark_is_duckdbs(spark: Any) -> None:
    """The rich history scored in four runs, each equal, table by table, to one full DuckDB run over the facts
    it had (the carried state and the pending expiries included; the run row says how a run was made):

    1. its records up to 1 May on Spark, a full run;
    2. those up to 1 August appended, none back-dated, and a Spark run that goes on from the state the
       first left in place (`engine_carry` attached from Parquet, updated as a rewrite; across the rulebook
       change of 1 July, when everyone is assessed);
    3. the rest appended, one back-dated into a month Spark assessed, and a Spark run that redoes the months
       from it (the state restored from the score log and the deltas);
    4. a record after its as_of, and a DuckDB run that goes on from the state Spark handed home;
    5. one more back-dated into the months Spark assessed, and a DuckDB run that redoes them from the score
       log Spark wrote.

    Why carried in 2 and 4: the run before ended at a month start (1 May; 1 October) and every new record
    falls after it, so the month before the first one redone is the month the state holds."""
    from socialcredit.engine.executors.spark_run import run_on_spark

    h = rich_history()
    mid = dt.datetime(2022, 8, 1, tzinfo=CST)
    first = [r for r in h.records if r.at <= SPLIT]
    second = [r for r in h.records if SPLIT < r.at <= mid]
    third = [r for r in h.records if r.at > mid]
    back = Record("v9", "volunteer_association", h.rows[0]["citizen_id"], "volunteer_work",
                  dt.datetime(2022, 4, 20, 2, tzinfo=dt.UTC), {"hours": 8})  # fmt: skip
    after = Record("v10", "volunteer_association", h.rows[2]["citizen_id"], "volunteer_work",
                   dt.datetime(2022, 10, 10, 2, tzinfo=dt.UTC), {"hours": 8})  # fmt: skip
    again = Record("v11", "volunteer_association", h.rows[1]["citizen_id"], "volunteer_work",
                   dt.datetime(2022, 6, 5, 2, tzinfo=dt.UTC), {"hours": 8})  # fmt: skip
    later = dt.datetime(2022, 11, 1, tzinfo=CST)
    assert second and third
    made: list[tuple[list[Record], dt.datetime, dict[str, Any]]] = []
    with history_store(History(h.people, h.rows, first, h.retracted, [first])) as store:
        split = SPLIT.astimezone(dt.UTC).replace(tzinfo=None)
        assert run_on_spark(store, spark, SPLIT).resumed_from is None  # nothing to resume from
        assert store.con.execute("SELECT carried_at FROM engine_run").fetchall() == [(split,)]
        made.append((first, SPLIT, derived(store)))
        ingest(store, second)
        # redone from the first assessment after the last as_of: the month after the one the state holds
        assert run_on_spark(store, spark, mid).resumed_from == split + dt.timedelta(microseconds=1)
        made.append(([*first, *second], mid, derived(store)))
        ingest(store, [*third, back])
        assert run_on_spark(store, spark, RICH_AS_OF).resumed_from == back.at.replace(tzinfo=None)
        made.append(([*first, *second, *third, back], RICH_AS_OF, derived(store)))
        ingest(store, [after])
        engine = Engine(store)
        engine.run(later)
        assert engine.carried
        made.append(([*first, *second, *third, back, after], later, derived(store)))
        ingest(store, [again])
        engine = Engine(store)
        assert engine.run(later).resumed_from == again.at.replace(tzinfo=None) and not engine.carried
        made.append(([*first, *second, *third, back, after, again], later, derived(store)))
    for records, as_of, got in made:
        full = full_run(History(h.people, h.rows, records, h.retracted, [records]), as_of)
        same(but_run(full), but_run(got))
    # what the comparisons covered: network and characteristic entries, lists, capped and retracted rows
    assert {row[3] for row in full["state_ledger"][1]} >= {"network", "characteristic"}
    assert {row[3] for row in full["list_entries"][1]} >= {"blacklist"}
    assert len({row[0] for row in full["score_log"][1]}) == 4
    assert full["engine_carry"][1] and full["engine_pending"][1]


def test_a_spark_run_after_a_version_was_added_is_duckdbs(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rich history without the test city's second version, scored to 1 August (by DuckDB: a Spark run
    resumes from either engine's, and one Spark run is the cost here); then the version (from 1 July) is added,
    and the Spark run keeps the assessments and the stored record ledger's rows before 1 July and redoes the
    rest (those rows deleted and scored again on Spark): the same tables as one full DuckDB run over all the
    versions."""
    from socialcredit.engine import entries
    from socialcredit.engine.executors.spark_run import run_on_spark

    h = rich_history()
    mid = dt.datetime(2022, 8, 1, tzinfo=CST)
    updates: list[Any] = []
    update = entries.update
    monkeypatch.setattr(entries, "update", lambda *a, **k: updates.append(update(*a, **k)) or updates[-1])
    with history_store(h, tuple(t for t in LAYERS if t != TESTCITY_2)) as store:
        Engine(store).run(mid)
        store.add_rulebook(TESTCITY_2, "added.yaml")
        change = dt.datetime.combine(CHANGE, dt.time(), CST).astimezone(dt.UTC).replace(tzinfo=None)
        assert run_on_spark(store, spark, mid).resumed_from == change
        later = store.con.execute("SELECT count(*) FROM records WHERE occurred_at >= ?", [change]).fetchall()[0][0]
        got = derived(store)
    assert not updates[-1][0].rebuilt and updates[-1][0].records == later > 0
    same(but_run(full_run(h, mid)), but_run(got))


def full_run(h: History, as_of: dt.datetime) -> dict[str, Any]:
    """The history's derived tables after one full DuckDB run as of `as_of`."""
    with history_store(h) as store:
        Engine(store).run(as_of)
        return derived(store)


def histories_agree(spark: Any, h: History, until: dt.datetime = UNTIL) -> dict[str, Any]:
    """The history's store scored by DuckDB, then by Spark (imported over it, a full run: it would otherwise
    resume from DuckDB's run and recompute nothing), both as of `until`: the same derived tables."""
    from socialcredit.engine.executors.spark_run import run_on_spark

    as_of = until.astimezone(dt.UTC).replace(tzinfo=None)
    with history_store(h) as store:
        Engine(store).run(as_of)
        duck = derived(store)
        assert run_on_spark(store, spark, as_of, full=True).resumed_from is None
        same(duck, derived(store))
    return duck


DEMO_YEAR = Path(__file__).resolve().parents[2] / "scenarios" / "demo-year.yaml"


@pytest.mark.slow
def test_a_demo_year_on_spark_is_duckdbs(spark: Any, tmp_path: Path) -> None:
    """`make demo`'s simulated year (its five cities at SOCIALCREDIT_SLOW_SCALE of their size: the whole 4,000
    citizens by hand, 400 in CI) scored again from its facts by each engine, each a full run as of the year's
    end (`score --full`: the simulator's month-by-month runs left state both would otherwise resume from):
    every derived table the same. At a reduced scale, its first half year (both lists, characteristic and
    network entries are there by then): Spark's time grows with the months, not the citizens."""
    scenario = yaml.safe_load(DEMO_YEAR.read_text(encoding="utf-8"))
    scenario["cities"] = {city: max(20, round(n * SCALE)) for city, n in scenario["cities"].items()}
    if SCALE < 1:
        scenario["months"] = 6
    start = dt.date.fromisoformat(str(scenario["start"]))  # the first of a month
    months = start.month - 1 + scenario["months"]
    end = dt.date(start.year + months // 12, months % 12 + 1, 1)  # the month after the simulated ones
    (tmp_path / "demo-year.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    cli("simulate", str(tmp_path / "demo-year.yaml"), "--out", str(tmp_path / "run"))
    stores = {}
    for name, engine in (("duck", ()), ("spark", ("--engine", "spark", "--master", "local[2]"))):
        stores[name] = tmp_path / f"{name}.duckdb"
        shutil.copy(tmp_path / "run" / "store.duckdb", stores[name])
        cli("score", "--db", str(stores[name]), "--as-of", end.isoformat(), "--full", *engine)
    with Store(stores["duck"]) as store:
        duck = derived(store)
        kinds = {k for (k,) in store.con.execute("SELECT DISTINCT kind FROM list_entries").fetchall()}
        sources = {k for (k,) in store.con.execute("SELECT DISTINCT source FROM state_ledger").fetchall()}
        assert kinds == {"blacklist", "whitelist"} and sources == {"characteristic", "network"}, (kinds, sources)
    with Store(stores["spark"]) as store:
        same(duck, derived(store))


@pytest.mark.parametrize(
    ("lacking", "said"),
    [
        ("pyspark", "pip install 'socialcredit[spark]'"),
        ("java", "apt-get install openjdk-17-jre-headless"),
    ],
)
def test_score_on_spark_without_pyspark_or_java_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lacking: str, said: str
) -> None:
    """No traceback and no run: one line naming the package, and the store as it was."""
    import importlib.util

    db = str(tmp_path / "s.duckdb")
    cli("init", "--db", db)
    if lacking == "pyspark":
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    else:
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv("JAVA_HOME", raising=False)
    r = runner.invoke(app, ["score", "--db", db, "--engine", "spark"])
    assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    with Store(Path(db)) as store:
        assert store.con.execute("SELECT count(*) FROM engine_run").fetchall() == [(0,)]


def test_score_refuses_an_unknown_engine(tmp_path: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    cli("init", "--db", db)
    r = runner.invoke(app, ["score", "--db", db, "--engine", "duckdbb"])
    assert r.exit_code == 2 and "--engine 'duckdbb': use duckdb or spark" in r.output, r.output


# the driver JVM's own flags, read by a process that starts a one-command session (this one holds the tests')
JVM_FLAGS = """
import json
from socialcredit.engine.executors.spark_run import spark_session
with spark_session("local[1]", small=True) as spark:
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    print(json.dumps(list(bean.getInputArguments())))
"""


def test_a_small_stores_session_compiles_quickly_and_keeps_the_users_java_options(tmp_path: Path) -> None:
    """`score --engine spark` on a small store starts its JVMs with the quick compiler only, as default options:
    a user's own `extraJavaOptions` (here from spark-defaults.conf) are kept, after ours, so a flag of theirs
    wins. Theirs name a garbage collector: the JVM starts (HotSpot refuses two, so ours name none)."""
    require_spark()
    (tmp_path / "spark-defaults.conf").write_text(
        "spark.driver.extraJavaOptions -Dsocialcredit.probe=kept -XX:+UseParallelGC\n", encoding="utf-8"
    )
    env = {**os.environ, "SPARK_CONF_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", JVM_FLAGS], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    flags = json.loads(done.stdout.strip().splitlines()[-1])
    assert "-XX:TieredStopAtLevel=1" in flags and "-Dsocialcredit.probe=kept" in flags, flags
    assert flags.index("-XX:TieredStopAtLevel=1") < flags.index("-Dsocialcredit.probe=kept"), flags
    assert "-XX:+UseParallelGC" in flags, flags
