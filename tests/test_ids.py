"""Resident IDs: the ISO 7064 MOD 11-2 check character and the fields inside the ID."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socialcredit.ids import birth_date_of, check_char, make_id, problem, sex_of


def test_published_example_validates() -> None:
    # the example ID of the national standard's documentation: check character X
    assert check_char("11010519491231002") == "X"
    assert problem("11010519491231002X") is None


@pytest.mark.parametrize(
    ("resident_id", "why"),
    [
        ("11010519491231002", "18 characters"),
        ("110105194912310021", "check character"),
        ("11010519490231002X", "does not exist"),
        ("A1010519491231002X", "region"),
    ],
)
def test_malformed_ids_say_why(resident_id: str, why: str) -> None:
    message = problem(resident_id)
    assert message is not None and why in message


@given(
    st.sampled_from(["371082", "310101", "110101", "520181", "440106", "440304"]),
    st.dates(dt.date(1920, 1, 1), dt.date(2025, 12, 31)),
    st.integers(0, 999),
)
def test_made_ids_validate_and_carry_their_fields(region: str, born: dt.date, seq: int) -> None:
    rid = make_id(region, born, seq)
    assert problem(rid) is None
    assert birth_date_of(rid) == born
    assert sex_of(rid) == ("M" if seq % 2 else "F")
    assert rid.startswith(region)
