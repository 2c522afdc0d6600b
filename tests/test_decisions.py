"""Decisions and explanations: the bundled sample end to end, and small-rulebook checks."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import NATIONAL_YAML, city_yaml, cst, rec
from socialcredit import decisions
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

AT = cst(2026, 9, 1, 12)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("sample") / "s.duckdb")
    store.init()
    load_sample(store)
    yield store
    store.close()


def test_sample_court_defaulter_denied_flight(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["zhang_wei"], "air.ticket", AT)
    assert d.outcome == "deny"
    assert d.reasons and all(r["effect"] == "deny" for r in d.reasons if r["measure"] in ("air_ban", "spc_no_flights"))


def test_sample_child_denied_private_school_through_parent(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["zhang_xiaoming"], "school.private_admission", AT)
    assert d.outcome == "deny"
    assert any(r["via"].startswith("parent:" + citizen_ids()["zhang_wei"]) for r in d.reasons)
    # the parent himself is not bound by a measure that reaches children
    own = decisions.decide(sample_store, citizen_ids()["zhang_wei"], "school.private_admission", AT)
    assert own.outcome != "deny" or not any(r["via"].startswith("list:") and "children" in r["measure"]
                                            for r in own.reasons)


def test_sample_smoker_denied_rail(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["hu_yan"], "rail.ticket", AT)
    assert d.outcome == "deny"


def test_sample_model_citizen_priority_in_hospital(sample_store):
    outcomes = {k: decisions.decide(sample_store, citizen_ids()[k], "hospital.queue", AT).outcome
                for k in ("chen_jing", "wang_fang")}
    assert "priority" in outcomes.values(), outcomes


def test_sample_ordinary_citizen_allowed(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["xu_hui"], "air.ticket", AT)
    assert d.outcome == "allow"


@pytest.mark.parametrize("key", ["zhang_wei", "chen_jing", "guo_qiang", "wang_fang"])
def test_explain_sums(sample_store, key):
    x = decisions.explain(sample_store, citizen_ids()[key], AT)
    s = x["score"]
    lo, hi = s["scale"]
    assert s["value"] == min(max(s["base"] + s["sum_of_entries"], lo), hi)
    assert s["sum_of_entries"] == sum(e["points"] for e in x["ledger"])
    for e in x["ledger"]:
        assert e["points"] == sum(r["points"] for r in e["rules"]) or e["cap"]["points_before_cap"] == sum(
            r["points"] for r in e["rules"])  # only a cap makes them differ, and it says so


def test_unknown_service_raises_located_error(sample_store):
    with pytest.raises(LocatedError, match="unknown service"):
        decisions.decide(sample_store, citizen_ids()["zhang_wei"], "moon.ticket", AT)


def test_unknown_citizen_raises_located_error(sample_store):
    with pytest.raises(LocatedError):
        sample_store.ckey("110101199001010011")


def test_denial_notifies_where_city_does_not(make_store, make_citizens):
    store = make_store(NATIONAL_YAML, city_yaml(notify=False))
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2026, 5, 5, 12))], now=NOW)
    d = decisions.decide(store, a, "rail.ticket", cst(2026, 6, 1), record=True)  # a provider asked: recorded
    assert d.outcome == "deny"
    kinds = [k for (k,) in store.con.execute("SELECT kind FROM notifications").fetchall()]
    assert kinds == ["learned_by_denial"]
    decisions.decide(store, a, "rail.ticket", cst(2026, 6, 2), record=True)
    assert store.con.execute("SELECT count(*) FROM notifications").fetchall()[0][0] == 1


def test_notifying_city_tells_at_listing(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2026, 5, 5, 12))], now=NOW)
    d = decisions.decide(store, a, "rail.ticket", cst(2026, 6, 1))
    assert d.outcome == "deny"
    kinds = sorted(k for (k,) in store.con.execute("SELECT kind FROM notifications").fetchall())
    assert kinds == ["listed"]


def test_decision_expires_with_trigger(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2026, 1, 5, 12))], now=NOW)
    assert decisions.decide(store, a, "rail.ticket", cst(2026, 2, 1)).outcome == "deny"
    assert decisions.decide(store, a, "rail.ticket", cst(2026, 7, 5)).outcome == "allow"


def test_explain_names_the_cap_that_cut_points(store, make_citizens):
    """volunteer.cap allows +10 a year: the third +5 volunteering of 2021 is cut to 0, and says by what."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec(f"v{i}", a, "volunteer_work", cst(2021, 2 + i, 1), hours=1) for i in range(3)], now=NOW)
    ledger = [e for e in decisions.explain(store, a, cst(2021, 12, 1))["ledger"] if e["source"] == "record"]
    assert [(e["record"]["record_id"], e["points"]) for e in ledger] == [("v0", 5), ("v1", 5), ("v2", 0)]
    assert ["cap" in e for e in ledger] == [False, False, True]
    assert ledger[2]["cap"] == {"id": "volunteer.cap", "per": "year", "max": 10, "min": None, "points_before_cap": 5}
    assert ledger[2]["rules"] == [{"id": "volunteer", "points": 5, "when": None, "label": "", "source": "illustrative"}]
