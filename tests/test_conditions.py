"""The condition language: what parses, what is refused, and which shapes are bounds."""

from __future__ import annotations

import pytest

from socialcredit.conditions import Bounds, ConditionError, as_bounds, parse_condition

ATTRS = {"days_late": "int", "amount": "float", "judged": "bool", "utility": "str", "severity": "int"}
NUMERIC = {"days_late", "amount", "severity"}


@pytest.mark.parametrize(
    "text",
    [
        "days_late >= 90",
        "days_late >= 30 and days_late < 90",
        "amount between 1000 and 5000",
        "not judged",
        "coalesce(judged, false) = false",
        "utility in ('water', 'gas')",
        "utility <> 'heating' or severity > 3",
        "abs(amount - 10) < 5",
        "greatest(days_late, severity * 10) >= 40",
        "amount / 2 + days_late % 7 > 3",
        "judged is null",
        "(days_late > 1)",
        "true",
    ],
)
def test_allowed(text):
    assert parse_condition(text, ATTRS) is not None


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("days_late in (select 1)", "IN may only list literal values"),
        ("exists (select 1)", "function 'exists' is not allowed"),
        ("random() > 0.5", "function"),
        ("upper(utility) = 'X'", "not allowed"),
        ("salary > 10", "unknown attribute 'salary'"),
        ("days_late > 1; drop table records", "must be a single expression"),
        ("records.days_late > 1", "qualified"),
        ("days_late + 1", "true or false"),
        ("amount", "true or false"),
        ("days_late >", "cannot parse"),
    ],
)
def test_refused(text, fragment):
    assert fragment  # an empty fragment is in every message: it would test nothing
    with pytest.raises(ConditionError) as e:
        parse_condition(text, ATTRS)
    assert fragment in str(e.value)


def _b(text: str) -> Bounds | None:
    return as_bounds(parse_condition(text, ATTRS), NUMERIC)


def test_as_bounds_shapes():
    assert _b("days_late >= 90") == Bounds("days_late", 90, True, None, False)
    assert _b("days_late >= 30 and days_late < 90") == Bounds("days_late", 30, True, 90, False)
    assert _b("amount between 1000 and 5000") == Bounds("amount", 1000, True, 5000, True)
    assert _b("90 < days_late") == Bounds("days_late", 90, False, None, False)
    assert _b("days_late > -5") == Bounds("days_late", -5, False, None, False)
    # the tighter of two bounds on the same side wins; strict beats inclusive at the same value
    assert _b("days_late > 10 and days_late >= 20") == Bounds("days_late", 20, True, None, False)
    assert _b("days_late <= 10 and days_late < 10") == Bounds("days_late", None, False, 10, False)
    assert as_bounds(None, NUMERIC) == Bounds("", None, False, None, False)


@pytest.mark.parametrize(
    "text",
    [
        "days_late >= 30 or days_late < 5",
        "days_late >= 30 and amount < 5",
        "days_late = 30",
        "not days_late > 3",
        "utility = 'gas'",
        "coalesce(judged, false) = false",
        "days_late + 1 > 3",
        "days_late > severity",
    ],
)
def test_as_bounds_none_for_other_shapes(text):
    assert _b(text) is None
