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
from socialcredit.simulate.behaviour import (
    AGES,
    DEFAULT_RATES,
    BehaviourRates,
    Society,
    _citizens,
    _day,
    _rate_factor,
    _weights,
    allowed_agencies,
    citizens_table,
    generate_records,
    propensities,
    seconds_into_month,
    weight_sums,
)
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
    assert pc.all(pc.match_substring_regex(january["occurred_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")).as_py()
    # the month its assessment at February's first instant sees: after January's first instant, up to that one
    times = [dt.datetime.fromisoformat(t) for t in january["occurred_at"].to_pylist()]
    cst = dt.timezone(dt.timedelta(hours=8))
    assert min(times) > JAN.replace(tzinfo=cst) and max(times) <= dt.datetime(2025, 2, 1, tzinfo=cst)
    assert len(set(january["record_id"].to_pylist())) == january.num_rows
    red = january.filter(pc.equal(january["behaviour"], "red_light_crossing"))
    assert red.num_rows > 0
    assert set(red["reported_by"].to_pylist()) == {"traffic_camera_network"}
    assert pc.all(pc.match_substring_regex(red["camera"], r"^(SH|RC)-cam-\d{4,}$")).as_py()


def test_a_month_s_seconds_lie_after_its_first_instant_and_up_to_the_next_month_s():
    """An assessment at a month start sees what happened at or before it: a record drawn at exactly the start
    would belong to the month before, whose assessment already ran."""
    seconds = 31 * 86400
    below_one = np.nextafter(1.0, 0.0)
    assert seconds_into_month(np.array([0.0, 0.5, below_one]), seconds).tolist() == [1, seconds // 2 + 1, seconds]


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


# The draw is by stratum (income decile × age), then by propensity within it (`simulate.strata`). These
# compare it with the model's expectation computed the plain way, citizen by citizen (`_weights`, which
# `weight_sums` and so the calibration's fast model use): first exactly (the mean the strata imply for
# each citizen), then on a drawn month (counts given the fixed propensities are Poisson; a fixed seed, so
# the test is deterministic, and the bound, 5 standard deviations over ~1,000 groups, says how far a
# correct draw may stray).
# age-limited behaviours far more often, so every age bound is seen; band edges at every bound of AGES
SCALED = BehaviourRates(scale=20.0, multipliers=dict.fromkeys(AGES, 20.0))
AGE_BANDS = [0, 15, 18, 19, 22, 23, 30, 40, 51, 61, 70, 81, 200]


@pytest.fixture(scope="module")
def scaled(store: Store) -> pa.Table:
    return generate_records(store, JAN, SCALED, np.random.default_rng(21))


def test_each_citizen_s_mean_in_the_strata_is_the_model_s_rate(store):
    cat = default_catalog()
    c = _citizens(citizens_table(store), JAN.date())
    prop = propensities(c.key, SCALED, cat)
    strata, sums = Society.of(store).strata(SCALED, cat)
    cells = strata.month(_day(JAN.date()))
    stratum = np.repeat(np.arange(cells.age.size), np.diff(cells.starts))  # per citizen, in the strata's order
    for code, b in cat.behaviours.items():
        prefix = sums[(b.polarity, b.category)]
        totals = cells.totals(prefix)
        mean = SCALED.rate(code, JAN.date()) * _rate_factor(cells.age, cells.decile, totals, code, SCALED)
        implied = np.zeros(len(c.ids))
        implied[strata.order] = mean[stratum] * np.diff(prefix) / totals[stratum]
        rate = SCALED.rate(code, JAN.date()) * _weights(c, prop[code], code, SCALED)
        assert np.allclose(implied, rate, rtol=1e-9, atol=0), code
        assert np.isclose(rate.sum(), SCALED.rate(code, JAN.date()) * weight_sums(store, [JAN.date()], code, SCALED)[0])


def test_drawn_records_per_behaviour_age_band_and_income_decile(store, scaled):
    table = citizens_table(store)
    c = _citizens(table, JAN.date())
    prop = propensities(c.key, SCALED, default_catalog())
    band = np.searchsorted(AGE_BANDS, c.age, side="right") - 1
    decile = np.rint(c.decile).astype(np.int64)  # 6 (5.5 rounded) where there is none: children
    where = pc.index_in(scaled["citizen_id"], value_set=table["citizen_id"]).to_numpy()
    behaviour = col(scaled, "behaviour")
    checked = 0
    for code in default_catalog().behaviours:
        rate = SCALED.rate(code, JAN.date()) * _weights(c, prop[code], code, SCALED)
        mine = where[behaviour == code]
        for group, size in ((band, len(AGE_BANDS)), (decile, 11)):
            observed = np.bincount(group[mine], minlength=size)
            expected = np.bincount(group, weights=rate, minlength=size)
            assert np.all(np.abs(observed - expected) <= 5 * np.sqrt(expected) + 2), (code, observed, expected)
            checked += int((expected > 100).sum())
    assert checked >= 100  # many (behaviour, group) cells are large enough here for the bound to bite


def test_records_fall_on_citizens_in_proportion_to_their_own_rate(store, scaled):
    # within a stratum the draw weighs each citizen by propensity: citizens grouped by their own
    # expected rate (quintiles) get their expected share of a behaviour with income and age effects
    table = citizens_table(store)
    c = _citizens(table, JAN.date())
    code = "late_bill_payment"
    rate = SCALED.rate(code) * _weights(c, propensities(c.key, SCALED, default_catalog())[code], code, SCALED)
    adults = np.flatnonzero(rate > 0)
    quintile = np.zeros(rate.size, np.int64)
    quintile[adults] = np.searchsorted(np.quantile(rate[adults], [0.2, 0.4, 0.6, 0.8]), rate[adults]) + 1
    mine = scaled.filter(pc.equal(scaled["behaviour"], code))
    where = pc.index_in(mine["citizen_id"], value_set=table["citizen_id"]).to_numpy()
    observed = np.bincount(quintile[where], minlength=6)
    expected = np.bincount(quintile, weights=rate, minlength=6)
    assert observed[0] == 0  # nobody ineligible
    assert np.all(np.abs(observed[1:] - expected[1:]) <= 5 * np.sqrt(expected[1:]) + 2), (observed, expected)
    assert observed[5] > 3 * observed[1]  # and the spread is real, not flat


def test_a_prepared_society_draws_what_its_source_draws(store, january):
    society = Society.of(store)
    assert generate_records(society, JAN, BehaviourRates(), np.random.default_rng(11)).equals(january)
    # prepared once, it serves later months too (ages move on with the month)
    march = dt.datetime(2025, 3, 1)
    assert generate_records(society, march, BehaviourRates(), np.random.default_rng(4)).equals(
        generate_records(store, march, BehaviourRates(), np.random.default_rng(4))
    )
