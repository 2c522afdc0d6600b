"""`text.plain`: values from the core written as a rulebook author writes them, never as Python prints them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from socialcredit.text import plain


@pytest.mark.parametrize(("value", "expected"), [
    ({"days_late": 45, "amount": 1200.0}, "days_late=45 amount=1200"),
    ({"hours": 1.5, "note": None}, "hours=1.5"),
    ({"label": "Honour roll", "public": False}, 'label="Honour roll" public=false'),
    (["C", "D"], "C, D"),
    ([], "none"),
    (None, "—"),
    ("", '""'),
    (True, "true"),
    (dt.date(2024, 1, 1), "2024-01-01"),
    ([{"behaviour": "smoking_on_train", "duration": "180d"}, {"characteristic": "court_defaulter"}],
     "(behaviour=smoking_on_train duration=180d), (characteristic=court_defaulter)"),
    ({"never_lists": ["whitelist"], "when": "share >= 0.5"}, 'never_lists=[whitelist] when="share >= 0.5"'),
])  # fmt: skip
def test_plain(value: Any, expected: str) -> None:
    assert plain(value) == expected
