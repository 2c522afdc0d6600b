"""The calibrated court-defaulter scenario: its parameters are what the fit gives, the fast model keeps
every listed person accounted for, and a reduced run through the engine and `decide` reproduces the
fast model's expectation (so the fit's shortcut is the simulator's own mechanics), table included."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest

from socialcredit.simulate import calibrate as cal
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import Scenario, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "china-defaulters.yaml"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO)


def test_scenario_parameters_are_the_fit(scenario: Scenario) -> None:
    months, weights, scale = cal.scenario_weights(scenario)
    assert scale == cal.NATIONAL_POPULATION / sum(scenario.cities.values())
    fitted, stated = cal.fit(months, weights, scale), cal.params_of(scenario)
    for name in ("listing_rate", "width_months", "backlog_rate", "repay", "halflife", "air", "hsr"):
        assert getattr(stated, name) == pytest.approx(getattr(fitted, name), rel=2e-3), name  # 4 significant digits
    assert abs((stated.midpoint - fitted.midpoint).days) <= 1
    # the fit reaches the published figures it was fitted to, within a few per cent on the fast model
    flows = cal.expected(fitted, months, weights)
    for t in cal.TARGETS:
        if t.series in ("listed", "paid"):
            assert cal.cumulative(flows, months, t) * scale == pytest.approx(t.value, rel=0.08), t


def test_the_finer_scenario_differs_only_in_size(scenario: Scenario) -> None:
    finer = load_scenario(SCENARIO.with_name("china-defaulters-1000.yaml"))
    assert finer.cities == {"china": 1_410_000}
    same = {"name", "cities"}
    assert finer.model_dump(exclude=same) == scenario.model_dump(exclude=same)


def test_fast_model_accounts_for_everyone() -> None:
    months = cal._months(dt.date(2013, 10, 1), 60)
    p = cal.Params(3e-4, dt.date(2015, 1, 1), 4.0, 2e-5, 0.2, 2.0, 0.1, 0.03)
    flows = cal.expected(p, months, np.full(60, 1e6))
    # everyone listed before the last month is on the list at its start, or has paid or reached the end of
    # the term in an earlier month
    left = flows["paid"][:-1].sum() + flows["expired"][:-1].sum()
    assert flows["listed"][:-1].sum() == pytest.approx(flows["on_list"][-1] + left)
    assert flows["expired"][: cal.TERM_MONTHS].sum() == 0 and flows["expired"].sum() > 0
    # blocked purchases: the attempt rate times listed person-months, less half a month for each leaver
    exposed = flows["on_list"] - 0.5 * (flows["paid"] + flows["expired"])
    assert flows["air_blocked"] == pytest.approx(p.air * exposed)
    assert p.repay_base + p.repay_when_sanctioned * p.denied_share == pytest.approx(p.repay)


def test_nelder_mead_finds_a_quadratic_minimum() -> None:
    best = cal.nelder_mead(lambda x: float((x[0] - 3) ** 2 + 10 * (x[1] + 1) ** 2), np.zeros(2), np.ones(2))
    assert best == pytest.approx([3, -1], abs=1e-4)


def test_reduced_run_end_to_end_matches_the_fast_model(scenario: Scenario, tmp_path: Path) -> None:
    """18 months of the scenario on 1,500 citizens; listings ×150 and purchases ×5 so counts can be compared."""
    rates = scenario.rates.model_copy(update={"multipliers": {cal.CODE: 150.0}})
    services = {k: v.model_copy(update={"rate": 5 * v.rate}) for k, v in scenario.services.items()}
    small = scenario.model_copy(update={"cities": {"china": 1500}, "months": 18, "rates": rates, "services": services})
    run_scenario(small, tmp_path / "run")
    run = cal.read_run(tmp_path / "run")
    assert run.months[0] == dt.date(2013, 10, 1) and len(run.months) == 18
    months, weights, scale = cal.scenario_weights(small)
    assert scale == run.scale == cal.NATIONAL_POPULATION / 1500
    fast = cal.expected(cal.params_of(small), months, weights)
    for series in ("listed", "paid", "air_blocked", "hsr_blocked"):
        got, want = run.flows[series].sum(), fast[series].sum()
        assert want > 40, series
        assert abs(got - want) < 4 * math.sqrt(want) + 0.1 * want, (series, got, want)
    got, want = run.flows["on_list"][-1], fast["on_list"][-1]
    assert abs(got - want) < 4 * math.sqrt(want) + 0.1 * want, ("on_list", got, want)

    # conservation: every blocked purchase is a denial in the store, with the court list as its reason
    with duckdb.connect(str(tmp_path / "run" / "store.duckdb"), read_only=True) as con:
        denials = con.execute(
            "SELECT service, reasons FROM decisions WHERE asked_by = 'simulator' AND outcome = 'deny'"
        ).fetchall()
        attempts = con.execute("SELECT count(DISTINCT ckey) FROM decisions").fetchall()[0][0]
        listed_ever = con.execute("SELECT count(DISTINCT ckey) FROM list_entries").fetchall()[0][0]
    assert len(denials) == run.flows["air_blocked"].sum() + run.flows["hsr_blocked"].sum()
    assert all("list:dishonest_judgment_defaulters" in {r["via"] for r in json.loads(x)} for _, x in denials)
    assert 0 < attempts <= listed_ever  # only listed people try to buy (`for: listed`)

    # the table: one row per published figure, those after the run's end left empty
    rows = cal.table_rows(run, cal.params_of(small), weights)
    assert [r["as_of"] for r in rows] == [t.as_of for t in cal.TARGETS]
    for r, t in zip(rows, cal.TARGETS, strict=True):
        if t.as_of <= dt.date(2015, 4, 1):
            assert r["run"] is not None and r["fast_model"] is not None
        else:
            assert r["run"] is None and r["error_pct"] is None
    assert "| as of | series | published |" in cal.markdown_table(rows)


def test_table_command_prints_the_comparison(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = scenario.model_copy(update={"cities": {"china": 800}, "months": 4})
    run_scenario(small, tmp_path / "run")
    assert cal.main(["table", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "china-defaulters: 800 citizens = 1:1,762,500" in out
    assert "| 2013-11-01 | people listed (cumulative) | 30,000 |" in out
