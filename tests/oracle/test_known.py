"""Disagreements the oracle found, each reduced to one citizen and worked out by hand.

Durations in months count on the CST calendar (SPEC §5: a rule's dates are CST calendar dates; caps and
assessments already use CST months). A time in the first eight hours of a CST day lies on the previous UTC
day, so counting months on UTC dates ends a month early when that UTC day does not exist a month later.
"""

from __future__ import annotations

import datetime as dt

from conftest import NATIONAL_YAML, city_yaml, cst, rec
from socialcredit.decisions import standing
from socialcredit.engine import Engine

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


# conftest's rulebook with a one-month rail ban on the rail list: smoking lists for 180 days
RAIL_FOR_A_MONTH = NATIONAL_YAML.replace("    measures: [rail_ban]\n", "    measures: [{measure: rail_ban, for: 1m}]\n")
VOLUNTEER_FOR_A_MONTH = NATIONAL_YAML.replace(
    "    points: 5\n    valid_for: 2y\n", "    points: 5\n    valid_for: 1m\n"
)


def test_a_measure_s_for_counts_cst_calendar_months(make_store, make_citizens):
    """Listed at 00:30 CST on 1 July (30 June 16:30 UTC): a one-month measure binds until 1 August 00:30 CST,
    not 31 July (30 June + 1 month on the UTC calendar)."""
    assert RAIL_FOR_A_MONTH != NATIONAL_YAML
    store = make_store(RAIL_FOR_A_MONTH, city_yaml())
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2022, 7, 1, 0, 30))], now=NOW)
    Engine(store).run(as_of=cst(2022, 9, 1))
    rail = [m for m in standing(store, a, cst(2022, 7, 31, 12)).measures if m.measure == "rail_ban"]
    assert [(m.since, m.until) for m in rail] == [(utc(cst(2022, 7, 1, 0, 30)), utc(cst(2022, 8, 1, 0, 30)))]


def test_valid_for_counts_cst_calendar_months(make_store, make_citizens):
    assert VOLUNTEER_FOR_A_MONTH != NATIONAL_YAML
    store = make_store(VOLUNTEER_FOR_A_MONTH, city_yaml())
    (a,) = make_citizens(store, 1)
    store.ingest([rec("v1", a, "volunteer_work", cst(2022, 5, 1, 0, 30), hours=1)], now=NOW)
    Engine(store).run(as_of=cst(2022, 7, 1))
    assert standing(store, a, cst(2022, 5, 31, 12)).running_score == 105  # still within the month from 1 May
    assert standing(store, a, cst(2022, 6, 1, 1)).running_score == 100
