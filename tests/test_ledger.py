"""The record ledger is materialized: each record is scored into `record_entries` once, while the compiled
rulebooks stay the same; a rulebook change or a pin rebuilds it; retractions and caps are applied by the
view over it; and everything read through it equals a from-scratch run over the same facts."""

from __future__ import annotations

import datetime as dt

from conftest import NATIONAL_YAML, city_yaml, cst, rec
from socialcredit.engine import Engine, LedgerUpdate
from socialcredit.store import Store

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
AS_OF = cst(2022, 6, 1)


def run(store: Store, as_of: dt.datetime = AS_OF, pin: str | None = None) -> LedgerUpdate:
    eng = Engine(store)
    eng.run(as_of, pin=pin)
    assert eng.ledger_update is not None
    return eng.ledger_update


def stored(store: Store) -> list[tuple]:
    return store.con.execute("SELECT * FROM record_entries ORDER BY ALL").fetchall()


def derived(store: Store) -> tuple:
    """Everything a reader sees: both ledger views, the scores, the lists, the score log."""
    con = store.con
    out = tuple(
        con.execute(f"SELECT * EXCLUDE (ckey) FROM {t} JOIN citizens USING (ckey) ORDER BY ALL").fetchall()
        for t in ("record_ledger", "ledger", "list_entries", "score_log")
    )
    eng = Engine(store)
    eng.prepare()
    scores = [sorted(zip(*eng.scores(at).to_pydict().values(), strict=True)) for at in (cst(2021, 6, 1), AS_OF)]
    return (*out, scores)


def from_scratch(store: Store) -> tuple:
    """The same facts, with no derived table left: what a first run computes."""
    for t in ("record_entries", "record_entries_built", "engine_grade_stays"):
        store.con.execute(f"DROP TABLE IF EXISTS {t}")
    assert run(store).rebuilt
    return derived(store)


def late(rid: str, cid: str, *day: int, days_late: int = 100) -> dict:
    return rec(rid, cid, "late_bill_payment", cst(*day), days_late=days_late)


def volunteer(rid: str, cid: str, *day: int) -> dict:
    return rec(rid, cid, "volunteer_work", cst(*day), hours=1)


def test_each_record_is_scored_once(store, make_citizens):
    a, b = make_citizens(store, 2)
    store.ingest([late("r1", a, 2021, 3, 1), late("r2", b, 2021, 4, 1, days_late=10),
                  volunteer("v1", a, 2021, 5, 1)], now=NOW)  # fmt: skip
    assert run(store) == LedgerUpdate(rebuilt=True, records=3, entries=2)  # 10 days late scores nothing
    first = stored(store)
    assert run(store) == LedgerUpdate(rebuilt=False, records=0, entries=0)
    assert run(store, cst(2022, 9, 1)) == LedgerUpdate(rebuilt=False, records=0, entries=0)  # a new as_of too
    assert stored(store) == first
    store.ingest([late("r3", b, 2021, 2, 1), volunteer("v2", b, 2022, 1, 1)], now=NOW)  # one back-dated
    assert run(store) == LedgerUpdate(rebuilt=False, records=2, entries=2)
    now = stored(store)
    assert set(first) < set(now) and len(now) == len(first) + 2
    rkeys = [r[3] for r in now]
    assert len(rkeys) == len(set(rkeys))  # one piece per record here: no record was scored twice
    assert derived(store) == from_scratch(store)


def test_the_view_shows_records_not_yet_stored(store, make_citizens):
    """Between an ingest and the next run the view scores the new records itself, as before materializing."""
    (a,) = make_citizens(store, 1)
    store.ingest([late("r1", a, 2021, 3, 1)], now=NOW)
    run(store)
    store.ingest([late("r2", a, 2021, 4, 1, days_late=30)], now=NOW)
    assert len(stored(store)) == 1
    points = store.con.execute("SELECT points FROM record_ledger ORDER BY valid_from").fetchall()
    assert points == [(-40,), (-10,)]
    assert run(store).records == 1
    assert store.con.execute("SELECT points FROM record_ledger ORDER BY valid_from").fetchall() == points


def test_a_new_version_rescores_the_records_from_its_first_day_and_other_changes_rebuild(store, make_citizens):
    a, b = make_citizens(store, 2)
    store.ingest([late("r1", a, 2021, 3, 1), late("r2", b, 2024, 3, 1)], now=NOW)
    run(store, cst(2024, 6, 1))
    before = stored(store)
    store.add_rulebook(city_yaml(2), "test/testcity@2.yaml")  # -80 instead of -40 from 2024
    assert run(store, cst(2024, 6, 1)) == LedgerUpdate(rebuilt=False, records=1, entries=1)  # r2 alone
    after = stored(store)
    assert [r[6] for r in before] == [-40, -40] and [r[6] for r in after] == [-40, -80]
    assert run(store, cst(2024, 6, 1)).records == 0
    # a version changed behind the store's back (not one added): every record is scored again
    store.con.execute("DELETE FROM rulebook_versions WHERE version = 2")
    store.add_rulebook(city_yaml(2).replace("points: -80", "points: -60"), "test/testcity@2b.yaml")
    assert run(store, cst(2024, 6, 1)) == LedgerUpdate(rebuilt=True, records=2, entries=2)
    assert [r[6] for r in stored(store)] == [-40, -60]


def test_a_pin_rebuilds_and_so_does_the_run_after_it(make_store, make_citizens):
    store = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2))
    (a,) = make_citizens(store, 1)
    store.ingest([late("r1", a, 2024, 3, 1)], now=NOW)
    run(store, cst(2024, 6, 1))
    assert [r[6] for r in stored(store)] == [-80]
    assert run(store, cst(2024, 6, 1), pin="testcity@1").rebuilt  # what if version 1 had stayed
    assert [r[6] for r in stored(store)] == [-40]
    assert run(store, cst(2024, 6, 1)).rebuilt
    assert [r[6] for r in stored(store)] == [-80]


def test_a_retraction_removes_its_rows_effect(store, make_citizens):
    a, b = make_citizens(store, 2)
    store.ingest([late("r1", a, 2021, 3, 1), late("r2", a, 2021, 4, 1, days_late=30),
                  volunteer("v1", b, 2021, 3, 1), volunteer("v2", b, 2021, 3, 2), volunteer("v3", b, 2021, 3, 3)],
                 now=NOW)  # fmt: skip
    run(store)
    kept = stored(store)
    agency = {"r1": "state_grid", "v1": "volunteer_association"}
    for rid, who in agency.items():
        store.retract(who, [rid], reason="objection upheld", requested_by="reviewer")
    # the view drops the rows at once; under the cap of 10 a year the third volunteering now counts again
    got = store.con.execute("SELECT rkey, points FROM record_ledger ORDER BY valid_from, rkey").fetchall()
    rkeys = dict(store.con.execute("SELECT record_id, rkey FROM records").fetchall())
    assert got == [(rkeys["v2"], 5), (rkeys["v3"], 5), (rkeys["r2"], -10)]
    assert run(store) == LedgerUpdate(rebuilt=False, records=0, entries=0)
    assert stored(store) == kept  # the stored rows are append-only: the view applies the retraction
    assert derived(store) == from_scratch(store)


def test_back_dated_capped_records_equal_a_full_run(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([volunteer("v1", a, 2021, 5, 1), volunteer("v2", a, 2021, 6, 1)], now=NOW)
    run(store)
    store.ingest([volunteer("v0", a, 2021, 4, 1)], now=NOW)  # moves v2 over the cap
    assert run(store).records == 1
    points = store.con.execute("SELECT points FROM record_ledger ORDER BY valid_from").fetchall()
    assert points == [(5,), (5,), (0,)]
    assert derived(store) == from_scratch(store)


def test_compaction_keeps_the_stored_rows(store, make_citizens):
    """Compaction rewrites the records table in citizen order; the rkeys, and so the stored rows, stay."""
    a, b = make_citizens(store, 2)
    store.ingest([late("r1", b, 2021, 3, 1), late("r2", a, 2021, 4, 1)], now=NOW)
    run(store)
    store.ingest([late("r3", a, 2021, 5, 1)], now=NOW)
    store.compact()
    assert run(store) == LedgerUpdate(rebuilt=False, records=1, entries=1)
    assert derived(store) == from_scratch(store)


def test_a_reading_that_stores_nothing_leaves_the_stored_rows(store, make_citizens):
    """load_compiled(store_ledger=False): the view scores what the stored rows do not cover on the fly, the
    stored rows stay as they were, and rows made under other rulebooks are never read."""
    a, b = make_citizens(store, 2)
    store.ingest([late("r1", a, 2021, 3, 1), late("r2", b, 2024, 3, 1)], now=NOW)
    run(store, cst(2024, 6, 1))
    kept = stored(store)
    store.ingest([late("r3", a, 2021, 5, 1, days_late=30)], now=NOW)

    def reading() -> list[tuple]:
        eng = Engine(store)
        eng.prepare()
        eng.load_compiled(store_ledger=False)
        assert eng.ledger_update is None
        return store.con.execute("SELECT rkey, points FROM record_ledger ORDER BY rkey").fetchall()

    rkeys = dict(store.con.execute("SELECT record_id, rkey FROM records").fetchall())
    assert reading() == [(rkeys["r1"], -40), (rkeys["r2"], -40), (rkeys["r3"], -10)]
    assert stored(store) == kept  # r3 is not written
    store.add_rulebook(city_yaml(2), "test/testcity@2.yaml")  # -80 from 2024: the stored -40 of r2 is stale
    assert reading() == [(rkeys["r1"], -40), (rkeys["r2"], -80), (rkeys["r3"], -10)]
    assert stored(store) == kept
    # a run still brings the stored rows up to date: r2 again (it lies after the new version's first day), and r3
    assert run(store, cst(2024, 6, 1)) == LedgerUpdate(rebuilt=False, records=2, entries=2)
    assert store.con.execute("SELECT rkey, points FROM record_entries ORDER BY rkey").fetchall() == reading()


def test_the_run_counts_the_ledger_it_reads(store, make_citizens):
    """The summary's count comes from the stored rows; it must equal the view's, caps and retractions applied."""
    a, b = make_citizens(store, 2)
    store.ingest([late("r1", a, 2021, 3, 1), volunteer("v1", b, 2021, 3, 1), volunteer("v2", b, 2021, 3, 2),
                  volunteer("v3", b, 2021, 3, 3), late("r9", a, 2023, 1, 1)], now=NOW)  # fmt: skip
    store.retract("state_grid", ["r1"], reason="objection upheld", requested_by="reviewer")
    summary = Engine(store).run(AS_OF)
    viewed = store.con.execute("SELECT count(*) FROM ledger WHERE valid_from <= ?", [summary.as_of]).fetchall()[0][0]
    assert summary.ledger_entries == viewed == 3  # v1..v3 (the cap moves points, not rows); r1 withdrawn; r9 later


def test_the_stored_ledger_view_reads_no_stored_rows_before_any_are_stored(make_store) -> None:
    """`scored_ledger` (the stored rows, see standings.ledger_table) of an engine that has stored no record's
    rows is the state ledger alone: an executor handed only the facts has no `record_entries` to read (the
    Spark benchmark's cold row failed on it), and after a run it reads the stored rows."""
    from socialcredit.engine.ledger import ledger_views

    store = make_store()
    engine = Engine(store)
    engine.prepare()
    engine.ctx.through = -1
    before = dict(ledger_views(engine.ctx))["scored_ledger"].sql("duckdb")
    assert "record_entries" not in before and "state_ledger" in before
    engine.ctx.through = 0
    assert "record_entries" in dict(ledger_views(engine.ctx))["scored_ledger"].sql("duckdb")
