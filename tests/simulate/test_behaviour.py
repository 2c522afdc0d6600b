"""Generated behaviour: every row passes the store's own validation, determinism by seed, rates and
correlations as configured, and the engine runs on three simulated months and lists someone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from socialcredit.catalog import default_catalog
from socialcredit.engine import Engine
from socialcredit.simulate import generate_population
from socialcredit.simulate.behaviour import DEFAULT_RATES, BehaviourRates, allowed_agencies, generate_records
from socialcredit.store import Store

CITIES = {"rongcheng": 2000, "shanghai": 3000}
JAN = dt.datetime(2025, 1, 1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    s = Store(Path(tmp_path_factory.mktemp("behaviour")) / "sim.duckdb")
    s.init()
    pop = generate_population(CITIES, seed=1)
    s.add_population(pop.citizens, pop.relations)
    return s


@pytest.fixture(scope="module")
def january(store: Store) -> pa.Table:
    return generate_records(store, JAN, BehaviourRates(), np.random.default_rng(11))


def col(t: pa.Table, name: str) -> np.ndarray:
    return t[name].to_numpy(zero_copy_only=False)


def test_every_catalog_behaviour_has_a_default_rate_and_a_reporter():
    cat = default_catalog()
    assert set(DEFAULT_RATES) == set(cat.behaviours)
    assert all(allowed_agencies(b, cat) for b in cat.behaviours)


def test_records_are_declared_typed_and_required_attributes_present(january):
    cat = default_catalog()
    assert january.num_rows > 500
    behaviour = col(january, "behaviour")
    for code, b in cat.behaviours.items():
        mine = behaviour == code
        if not mine.any():
            continue
        for a in cat.attributes:
            values = january[a].filter(pa.array(mine))
            if a not in b.attributes:
                assert values.null_count == len(values), (code, a)
            elif a in b.required:
                assert values.null_count == 0, (code, a)
    assert pc.all(pc.match_substring_regex(january["occurred_at"], r"^2025-01-\d\dT\d\d:\d\d:\d\d\+08:00$")).as_py()
    assert len(set(january["record_id"].to_pylist())) == january.num_rows
    red = january.filter(pc.equal(january["behaviour"], "red_light_crossing"))
    assert red.num_rows > 0
    assert set(red["reported_by"].to_pylist()) == {"traffic_camera_network"}
    assert pc.all(pc.match_substring_regex(red["camera"], r"^(SH|RC)-cam-\d{4,}$")).as_py()


def test_children_report_nothing_but_exam_cheating_at_15_to_18(store):
    rates = BehaviourRates(multipliers={"exam_cheating": 100})
    t = generate_records(store, JAN, rates, np.random.default_rng(3))
    born = dict(store.con.execute("SELECT citizen_id, birth_date FROM citizens").fetchall())
    ages = np.array([(JAN.date() - born[c]).days / 365.2425 for c in t["citizen_id"].to_pylist()])
    behaviour = col(t, "behaviour")
    assert (ages[behaviour != "exam_cheating"] >= 18).all()
    cheats = ages[behaviour == "exam_cheating"]
    assert cheats.size > 0 and (cheats >= 15).all() and (cheats < 19).all()


def test_deterministic_by_seed(store, january):
    again = generate_records(store, JAN, BehaviourRates(), np.random.default_rng(11))
    assert again.equals(january)
    other = generate_records(store, JAN, BehaviourRates(), np.random.default_rng(12))
    assert not other.equals(january)


def test_rates_roughly_respected(store):
    adults = store.con.execute("""SELECT count(*) FROM citizens
        WHERE birth_date <= DATE '2007-01-01'""").fetchall()[0][0]
    rates = BehaviourRates(rates={"volunteer_work": 0.5}, income_gradient={}, propensity_sigma=0.3, category_sigma=0.3)
    t = generate_records(store, JAN, rates, np.random.default_rng(5))
    n = int(pc.sum(pc.equal(t["behaviour"], "volunteer_work")).as_py())
    assert abs(n - 0.5 * adults) < 0.1 * 0.5 * adults
    off = generate_records(store, JAN, BehaviourRates(scale=0.0), np.random.default_rng(5))
    assert off.num_rows == 0


def test_unpaid_debt_concentrates_at_low_income(store):
    rates = BehaviourRates(multipliers={"unpaid_debt": 30})
    t = generate_records(store, JAN, rates, np.random.default_rng(8))
    debtors = t.filter(pc.equal(t["behaviour"], "unpaid_debt"))["citizen_id"].to_pylist()
    decile = dict(
        store.con.execute("""SELECT citizen_id, income_decile FROM citizens JOIN citizen_profiles USING (ckey)
            WHERE income_decile IS NOT NULL""").fetchall()
    )
    per = np.bincount([decile[c] for c in debtors], minlength=11)
    size = np.bincount(list(decile.values()), minlength=11)
    rate = per[1:] / np.maximum(size[1:], 1)
    assert rate[:3].mean() > 2 * rate[-3:].mean()


def test_online_posts_concentrate_at_young_ages(store):
    t = generate_records(
        store, JAN, BehaviourRates(multipliers={"undesirable_online_post": 50}), np.random.default_rng(9)
    )
    posters = t.filter(pc.equal(t["behaviour"], "undesirable_online_post"))["citizen_id"].to_pylist()
    born = dict(store.con.execute("SELECT citizen_id, year(birth_date) FROM citizens").fetchall())
    years = np.array([2025 - born[c] for c in posters])
    everyone = np.array([2025 - y for y in born.values()])
    young = ((years >= 18) & (years < 35)).sum() / ((everyone >= 18) & (everyone < 35)).sum()
    old = (years >= 60).sum() / (everyone >= 60).sum()
    assert young > 3 * old


def test_bad_rates_are_rejected():
    with pytest.raises(ValidationError, match="unknown behaviour"):
        BehaviourRates(rates={"flying": 0.1})
    with pytest.raises(ValidationError, match="at least 0"):
        BehaviourRates(multipliers={"unpaid_debt": -1})


def test_three_months_ingest_cleanly_and_the_engine_lists_citizens(store):
    # a higher defaulter rate so a 5,000-person society has court listings within three months
    rates = BehaviourRates(multipliers={"court_defaulter_listing": 10})
    store.ingest(generate_records(store, JAN, rates, np.random.default_rng(1)), name="2025-01")
    for month in (2, 3):
        report = store.ingest(
            generate_records(store, dt.datetime(2025, month, 1), rates, np.random.default_rng(month)),
            name=f"2025-0{month}",
        )
        assert report.accepted > 500 and report.duplicates == 0
    summary = Engine(store).run(as_of=dt.datetime(2025, 4, 1, tzinfo=dt.UTC))
    assert summary.records > 1500 and summary.ledger_entries > 0
    listed = store.con.execute("SELECT count(DISTINCT ckey) FROM list_entries WHERE kind = 'blacklist'").fetchall()
    assert listed[0][0] > 0
