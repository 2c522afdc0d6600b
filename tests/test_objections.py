"""Cases in the core: one open application per stay, and a decided one leaves room for the next."""

from __future__ import annotations

import pytest

from socialcredit import objections
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

LIST = "dishonest_judgment_defaulters"


@pytest.fixture(scope="module")
def store() -> Store:
    s = Store(":memory:")
    s.init()
    load_sample(s)
    return s


def test_a_second_open_repair_for_the_same_stay_is_refused_until_the_first_is_decided(store):
    zhang = citizen_ids()["zhang_wei"]
    first = objections.apply_repair(store, zhang, LIST, "debt settled")
    with pytest.raises(LocatedError, match=f"repair application {first} is already open"):
        objections.apply_repair(store, zhang, LIST, "debt settled, again")
    assert [c["case_id"] for c in objections.cases(store, status="open")] == [first]
    objections.review(store, first, uphold=False, reviewer="reviewer", note="no receipt")
    second = objections.apply_repair(store, zhang, LIST, "debt settled, receipt attached")
    assert second != first
    assert [c["case_id"] for c in objections.cases(store, status="open")] == [second]
