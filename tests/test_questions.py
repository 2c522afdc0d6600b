"""A question at time T gets the answer a fresh store holding the same facts gives at T, whatever the
store's engine did before: a mid-month `score --as-of`, a replay, ingests in between (SPEC §5).

The oracle is a second store that never ran the engine before the question; it shares the engine but
none of the state the first store carries (its last run, stay index, cached rulebooks or replay pin).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import SLOW_SCALE, cst, rec
from socialcredit import decisions
from socialcredit.clock import TimeOutOfBounds
from socialcredit.engine import Engine
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

NOW = cst(2026, 12, 1)
SCALE = SLOW_SCALE
QUESTIONS = max(5, round(15 * SCALE))
"""Generated histories of runs, ingests and questions: fifteen by hand, five in CI, besides the explicit cases
(the review's mid-month run among them), which run at any scale."""


def test_a_mid_month_run_does_not_hide_a_listing_ingested_before_it(store, make_citizens):
    parent, _child = make_citizens(store, 2, parents={1: [0]})
    store.ingest([rec("c1", parent, "court_defaulter_listing", cst(2024, 3, 15, 9), ground=1, amount=9000)], now=NOW)
    Engine(store).run(as_of=cst(2024, 3, 1))
    d = decisions.decide(store, parent, "air.ticket", cst(2024, 3, 20, 12), record=False)
    assert d.outcome == "deny", d
    before = decisions.decide(store, parent, "air.ticket", cst(2024, 3, 10, 12), record=False)
    assert before.outcome == "allow"


def test_the_service_path_learns_the_same(store, make_citizens):
    """The long-lived door's decider (no per-call fact check) must not reuse an index past a record it
    did not see."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec("c1", a, "court_defaulter_listing", cst(2024, 3, 15, 9), ground=1)], now=NOW)
    Engine(store).run(as_of=cst(2024, 3, 1))
    d = decisions.Decider(store, check_facts=False)
    decisions.install(store, d)
    assert d.decide(a, "air.ticket", cst(2024, 3, 2), record=False).outcome == "allow"
    assert d.decide(a, "air.ticket", cst(2024, 3, 20), record=False).outcome == "deny"


def test_a_replay_stays_a_replay_and_says_so(make_store, make_citizens):
    from conftest import NATIONAL_YAML, city_yaml

    store = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2))
    (a,) = make_citizens(store, 1)
    store.ingest([rec("l1", a, "late_bill_payment", cst(2024, 2, 1), days_late=100)], now=NOW)
    Engine(store).run(as_of=cst(2024, 3, 1), pin="testcity@1+national@1")
    st1 = decisions.standing(store, a, cst(2024, 3, 2))
    assert st1.rulebook_version == "testcity@1+national@1"
    assert st1.score == 100 - 40  # version 1's -40, not version 2's -80
    decisions.decide(store, a, "air.ticket", cst(2024, 3, 2), record=False)
    assert store.con.execute("SELECT pin FROM engine_run").fetchall() == [("testcity@1+national@1",)]
    Engine(store).run(as_of=cst(2024, 3, 1))  # the user asks otherwise: unpinned
    st2 = decisions.standing(store, a, cst(2024, 3, 2))
    assert (st2.score, st2.rulebook_version) == (100 - 80, "testcity@2+national@1")


# --------------------------------------------------------------------------- the property, over histories

DAY = st.integers(0, 75)  # two and a half months: runs, records and questions often share a month
BEHAVIOURS = [
    ("late_bill_payment", {"days_late": 100}),
    ("late_bill_payment", {"days_late": 40}),
    ("volunteer_work", {"hours": 3.0}),
    ("smoking_on_train", {}),
    ("court_defaulter_listing", {"ground": 1}),
    ("court_defaulter_delisting", {}),
]
START = cst(2024, 1, 1)


def _at(day: int, hour: int = 12) -> dt.datetime:
    return START + dt.timedelta(days=day, hours=hour)


RECORD = st.tuples(st.integers(0, 2), st.integers(0, len(BEHAVIOURS) - 1), DAY)
STEP = st.one_of(
    st.tuples(st.just("run"), DAY),
    st.tuples(st.just("ingest"), st.lists(RECORD, min_size=1, max_size=3)),
    st.tuples(st.just("ask"), DAY),
)


def _answers(store: Store, ids: list[str], at: dt.datetime) -> list[object]:
    out: list[object] = []
    for cid in ids:
        s = decisions.standing(store, cid, at).to_json()
        out.append((s["score"], s["grade"], s["rulebook_version"], s["list_entries"], s["measures"]))
        for service in ("air.ticket", "rail.ticket", "hospital.queue"):
            d = decisions.decide(store, cid, service, at, record=False)
            out.append((d.outcome, d.public_reason, d.reasons))
    return out


@pytest.mark.slow
@settings(max_examples=QUESTIONS, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.lists(RECORD, max_size=6), steps=st.lists(STEP, min_size=1, max_size=6))
@example(initial=[(0, 4, 20)], steps=[("run", 10), ("ask", 25)])  # the review's case: a mid-month run
@example(initial=[(1, 3, 40)], steps=[("run", 35), ("ingest", [(2, 0, 36)]), ("ask", 45), ("ask", 30)])
def test_every_answer_equals_a_fresh_stores(make_store, make_citizens, initial, steps):
    store = make_store()
    ids = make_citizens(store, 3, parents={2: [0]})
    sent: list[dict[str, object]] = []
    n = 0

    def ingest(records: list[tuple[int, int, int]]) -> None:
        nonlocal n
        batch = []
        for who, b, day in records:
            code, attrs = BEHAVIOURS[b]
            n += 1
            batch.append(rec(f"r{n}", ids[who], code, _at(day, 9), **attrs))
        store.ingest(batch, now=NOW)
        sent.extend(batch)

    if initial:
        ingest(initial)
    for kind, arg in steps:
        if kind == "run":
            Engine(store).run(as_of=_at(arg, 0))
        elif kind == "ingest":
            ingest(arg)
        else:
            fresh = make_store()
            make_citizens(fresh, 3, parents={2: [0]})
            if sent:
                fresh.ingest(sent, now=NOW)
            assert _answers(store, ids, _at(arg)) == _answers(fresh, ids, _at(arg))
            fresh.close()


# --------------------------------------------------------------------------------------- bounds of time


def test_question_times_are_bounded_before_any_engine_work(store, make_citizens):
    (a,) = make_citizens(store, 1)
    Engine(store).run(as_of=cst(2024, 3, 1))
    ran = store.con.execute("SELECT computed_at FROM engine_run").fetchall()
    odd = dt.timezone(dt.timedelta(hours=17, minutes=44))  # the offset schemathesis found
    for t in (
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        cst(1949, 12, 31),
        dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC),
        dt.datetime(7486, 1, 2, 10, 34, 41, tzinfo=odd),
    ):
        with pytest.raises(TimeOutOfBounds, match="as_of: "):
            decisions.standing(store, a, t)
        with pytest.raises(TimeOutOfBounds, match="request 1: at: "):
            decisions.decide(store, a, "air.ticket", t)
        with pytest.raises(TimeOutOfBounds, match="as_of: "):
            Engine(store).run(as_of=t)
    assert store.con.execute("SELECT computed_at FROM engine_run").fetchall() == ran


def test_an_unknown_citizen_is_refused_before_the_engine_runs(store, make_citizens):
    from conftest import citizen

    make_citizens(store, 1)
    Engine(store).run(as_of=cst(2024, 3, 1))
    ran = store.con.execute("SELECT computed_at FROM engine_run").fetchall()
    absent = str(citizen(99)["citizen_id"])
    for ask in (
        lambda: decisions.standing(store, absent, cst(2024, 9, 1)),
        lambda: decisions.decide(store, absent, "air.ticket", cst(2024, 9, 1)),
        lambda: decisions.decide(store, "x" * 40, "air.ticket", cst(2024, 9, 1)),
    ):
        with pytest.raises(LocatedError, match="citizen"):
            ask()
    assert store.con.execute("SELECT computed_at FROM engine_run").fetchall() == ran


def test_a_longer_id_is_not_truncated_onto_a_real_one(store, make_citizens):
    (a,) = make_citizens(store, 1)
    d = decisions.Decider(store, check_facts=False)
    d.decide(a, "air.ticket", cst(2024, 3, 2), record=False)  # the index is loaded
    with pytest.raises(LocatedError, match="no such citizen"):
        d.decide_many([(a + "XYZ", "air.ticket", cst(2024, 3, 2)), (a, "air.ticket", cst(2024, 3, 2))], record=False)
