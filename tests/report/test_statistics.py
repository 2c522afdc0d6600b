"""The report's two statistics, checked against worked textbook examples: Kaplan–Meier survival with censoring
(time on a list) and the risk ratio with its log (Katz) interval (who is listed).

Each is computed in the SQL the report prints, so the examples are run through that very SQL on a store made
for them, and through the plain numpy/Python reference in stats_reference.py; both must give the textbook's
numbers. The KM example is the 6-MP arm of Freireich et al.'s leukaemia trial (21 patients, 12 censored), as
worked in Kleinbaum & Klein, Survival Analysis, ch. 2: S(6) = 18/21, then ×16/17, ×14/15, ×11/12, ×10/11,
×6/7, ×5/6 at weeks 7, 10, 13, 16, 22, 23.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from socialcredit.report.disparity import RISK_SQL
from socialcredit.report.lists import SURVIVAL_SQL

from .stats_reference import kaplan_meier, katz_interval

# weeks in remission; False = censored (still in remission when last seen)
SIX_MP = [(6, True), (6, True), (6, True), (6, False), (7, True), (9, False), (10, True), (10, False), (11, False),
          (13, True), (16, True), (17, False), (19, False), (20, False), (22, True), (23, True), (25, False),
          (32, False), (32, False), (34, False), (35, False)]  # fmt: skip
# S(t) after each event time, by hand: 18/21 = 0.857143; ×16/17 = 0.806723; ×14/15 = 0.752941; ×11/12 = 0.690196;
# ×10/11 = 0.627451; ×6/7 = 0.537815; ×5/6 = 0.448179
TEXTBOOK = {6: 0.857143, 7: 0.806723, 10: 0.752941, 13: 0.690196, 16: 0.627451, 22: 0.537815, 23: 0.448179}
AS_OF = dt.datetime(2025, 12, 31, 16)


def test_the_reference_kaplan_meier_gives_the_textbook_curve() -> None:
    km = kaplan_meier([t for t, _ in SIX_MP], [e for _, e in SIX_MP])
    at = dict(zip(km.times.tolist(), km.survival.tolist(), strict=True))
    for t, s in TEXTBOOK.items():
        assert at[t] == pytest.approx(s, abs=5e-7), t
    assert at[35] == pytest.approx(TEXTBOOK[23], abs=5e-7)  # flat after the last event: only censoring follows
    assert km.at_risk.tolist()[:3] == [21, 17, 16]  # the stay censored at 6 is at risk at 6, gone by 7


def survival_store(stays: list[tuple[int, bool]]) -> duckdb.DuckDBPyConnection:
    """A store holding only list stays: an ended stay of t days began well before as_of; a censored one began
    t days before as_of and is still running (no end, or an end after as_of)."""
    con = duckdb.connect()
    con.execute(
        'CREATE TABLE list_entries (ckey INTEGER, list_id VARCHAR, kind VARCHAR, start TIMESTAMP, "end" TIMESTAMP)'
    )
    rows = []
    for i, (days, ended) in enumerate(stays):
        if ended:
            start = AS_OF - dt.timedelta(days=400 + i)
            rows.append((i, "x", "blacklist", start, start + dt.timedelta(days=days)))
        else:
            start = AS_OF - dt.timedelta(days=days)
            rows.append((i, "x", "blacklist", start, None if i % 2 else AS_OF + dt.timedelta(days=30)))
    con.executemany("INSERT INTO list_entries VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("SET VARIABLE as_of = ?", [AS_OF])
    return con


def test_the_reports_survival_sql_gives_the_textbook_curve_and_interval() -> None:
    with survival_store(SIX_MP) as con:
        got = {r[2]: r for r in con.execute(SURVIVAL_SQL).fetchall()}  # list_id, kind, days, at_risk, ended, ...
    for t, s in TEXTBOOK.items():
        assert got[t][6] == round(s, 4), t
    assert got[6][3:6] == (21, 3, 1) and got[9][3:6] == (16, 0, 1)  # at risk, ended, censored
    km = kaplan_meier([t for t, _ in SIX_MP], [e for _, e in SIX_MP])
    low = km.survival * np.exp(-1.959964 * np.sqrt(km.greenwood))
    high = np.minimum(1, km.survival * np.exp(1.959964 * np.sqrt(km.greenwood)))
    for t, lo, hi in zip(km.times.tolist(), low.tolist(), high.tolist(), strict=True):
        assert (got[t][7], got[t][8]) == (round(lo, 4), round(hi, 4)), t
    # by hand at week 6: Greenwood Σ = 3 / (21·18) = 0.0079365, so S·exp(±1.96·0.089087) = 0.7198 … 1.0
    assert (got[6][7], got[6][8]) == (0.7198, 1.0)


def test_a_stay_still_running_is_censored_not_ended() -> None:
    """Three 30-day stays ended, two still running at 10 days: the curve stays at 1 until day 30, then falls to 0
    — it does not fall at day 10 as a histogram of lengths so far would suggest."""
    with survival_store([(30, True), (30, True), (30, True), (10, False), (10, False)]) as con:
        got = con.execute(SURVIVAL_SQL).fetchall()
    assert [(r[2], r[3], r[4], r[5], r[6]) for r in got] == [(10, 5, 0, 2, 1.0), (30, 3, 3, 0, 0.0)]


def risk_store(groups: dict[str, tuple[int, int]], regions: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """Citizens of one city, `groups` sex → (citizens, of whom listed), all adults in one income decile; `regions`
    gives some citizens (by sex) another resident-ID region code."""
    con = duckdb.connect()
    con.execute("CREATE TABLE citizens (ckey INTEGER, citizen_id VARCHAR, sex VARCHAR, birth_date DATE, city VARCHAR)")
    con.execute("CREATE TABLE citizen_profiles (ckey INTEGER, income_decile TINYINT)")
    con.execute(
        'CREATE TABLE list_entries (ckey INTEGER, list_id VARCHAR, kind VARCHAR, start TIMESTAMP, "end" TIMESTAMP)'
    )
    k = 0
    for sex, (n, listed) in groups.items():
        for i in range(n):
            region = (regions or {}).get(sex, "371082")
            con.execute(
                "INSERT INTO citizens VALUES (?, ?, ?, DATE '1980-05-01', 'testcity')", [k, f"{region}-{k}", sex]
            )
            con.execute("INSERT INTO citizen_profiles VALUES (?, 5)", [k])
            if i < listed:
                con.execute("INSERT INTO list_entries VALUES (?, 'x', 'blacklist', TIMESTAMP '2025-03-01', NULL)", [k])
            k += 1
    con.execute("SET VARIABLE as_of = ?", [AS_OF])
    con.register("list_scope", pa.table({"city": ["testcity"], "list_id": ["x"], "kind": ["blacklist"]}))
    return con


def test_the_risk_ratio_and_its_interval_are_the_textbooks() -> None:
    """20 of 100 women listed, 10 of 100 men. By hand: RR = (20/100)/(10/100) = 2; SE(ln RR) = √(1/20 − 1/100 +
    1/10 − 1/100) = √0.13 = 0.360555; 1.959964 × 0.360555 = 0.706675, e^0.706675 = 2.027240; so 2/2.027240 =
    0.987 to 2 × 2.027240 = 4.054. Men: the reciprocal, 0.5 (0.247 to 1.014)."""
    with risk_store({"F": (100, 20), "M": (100, 10)}) as con:
        cols = [d[0] for d in con.execute(RISK_SQL).description]
        rows = {(r["dimension"], r["grp"]): r for r in (dict(zip(cols, x, strict=True)) for x in con.fetchall())}
    women, men = rows[("sex", "F")], rows[("sex", "M")]
    assert (women["listed"], women["citizens"], women["others_listed"], women["others"]) == (20, 100, 10, 100)
    assert (women["risk_ratio"], women["ci_low"], women["ci_high"]) == (2.0, 0.987, 4.054)
    assert (men["risk_ratio"], men["ci_low"], men["ci_high"]) == (0.5, 0.247, 1.014)
    assert katz_interval(20, 100, 10, 100) == pytest.approx((2.0, 0.98656, 4.05448), abs=5e-6)
    assert rows[("everyone", "all")]["listed"] == 30 and rows[("everyone", "all")]["risk_ratio"] is None
    assert not any(d == "district" for d, _ in rows)  # one region code per city: the district is the city


def test_districts_are_broken_down_where_a_city_has_several() -> None:
    with risk_store({"F": (100, 20), "M": (100, 10)}, regions={"M": "371083"}) as con:
        cols = [d[0] for d in con.execute(RISK_SQL).description]
        rows = {(r["dimension"], r["grp"]): r for r in (dict(zip(cols, x, strict=True)) for x in con.fetchall())}
    district = rows[("district", "371083 testcity")]
    assert (district["listed"], district["citizens"], district["risk_ratio"]) == (10, 100, 0.5)
    assert rows[("district", "371082 testcity")]["risk_ratio"] == 2.0
