"""Retractions: an upheld objection withdraws a record; its points and the lists it caused disappear,
while the record itself stays in the append-only store."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import cst, rec
from socialcredit.engine import Engine
from socialcredit.yamlio import LocatedError

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def test_retracted_record_stops_counting_but_stays_stored(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100),
            rec("r2", a, "late_bill_payment", cst(2021, 4, 1), days_late=30),
        ],
        now=NOW,
    )
    Engine(store).run(as_of=cst(2021, 6, 1))
    before = store.con.execute("SELECT sum(points) FROM ledger").fetchall()[0][0]
    agency = store.con.execute("SELECT agency FROM records WHERE record_id = 'r1'").fetchall()[0][0]
    store.retract(agency, ["r1"], reason="objection upheld", requested_by="reviewer")
    # the ledger is a view over the records: the withdrawal shows at once, without a rerun
    after = store.con.execute("SELECT sum(points) FROM ledger").fetchall()[0][0]
    assert before == -50 and after == -10
    assert store.con.execute("SELECT count(*) FROM records").fetchall()[0][0] == 2
    # retracting twice is harmless, and an unknown id is refused with its name
    store.retract(agency, ["r1"], reason="again", requested_by="reviewer")
    assert store.con.execute("SELECT count(*) FROM retractions").fetchall()[0][0] == 1
    with pytest.raises(LocatedError, match="nope"):
        store.retract(agency, ["nope"], reason="x", requested_by="reviewer")
