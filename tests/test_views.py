"""The analyst's way in: a store opened read-only, and readable views over the integer keys.

The views name citizens by resident ID, jurisdictions by city, behaviours by code and label, records by
their own ID, and give times as TIMESTAMPTZ (the stored UTC instant, shown in CST); a decision's reasons
are a typed list of structs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from conftest import cst
from socialcredit import decisions
from socialcredit.engine import Engine
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("views") / "s.duckdb"
    with Store(path) as store:
        store.init()
        load_sample(store)
        Engine(store).run(as_of=cst(2025, 7, 1))
        decisions.decide(store, citizen_ids()["zhang_wei"], "air.ticket", record=True)
    return path


def test_a_read_only_store_answers_from_its_last_run_and_writes_nothing(db: Path) -> None:
    who = citizen_ids()["zhang_wei"]
    with Store(db, read_only=True) as store:
        st = decisions.standing(store, who)  # at the store's clock: the last run answers, no engine needed
        assert st.as_of == dt.datetime(2025, 6, 30, 16) and st.list_entries
        with pytest.raises(duckdb.Error):
            store.con.execute("INSERT INTO meta VALUES ('x', 'y')")
        with pytest.raises(LocatedError, match="opened read-only"):
            decisions.standing(store, who, cst(2025, 8, 2))  # the engine would run: refused, with why
        with pytest.raises(duckdb.Error):
            store.ingest(
                [
                    {
                        "record_id": "x",
                        "citizen_id": who,
                        "behaviour": "heroic_act",
                        "occurred_at": "2025-06-01T00:00:00+08:00",
                        "reported_by": "neighbourhood_committee",
                    }
                ]
            )
    with Store(db) as store:
        assert store.counts()["records"] == 33


def test_a_read_only_open_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocatedError, match="no store here"):
        Store(tmp_path / "absent.duckdb", read_only=True)
    assert not (tmp_path / "absent.duckdb").exists()


def test_views_name_things_and_give_cst_times(db: Path) -> None:
    who = citizen_ids()["zhang_wei"]
    with Store(db, read_only=True) as store:
        con = store.con
        row = con.execute("""SELECT citizen_id, city, behaviour, behaviour_label, occurred_at, amount
                             FROM records_view WHERE record_id = 'sample-002'""").fetchall()[0]
        assert row[:4] == (who, "rongcheng", "court_defaulter_listing", "Listed as a dishonest judgment defaulter")
        assert row[4] == dt.datetime(2025, 6, 2, 10, 30, tzinfo=CST)  # the sample's CST time, as written
        listed = con.execute(
            """SELECT list_id, start, record_id, behaviour FROM list_entries_view
                                WHERE citizen_id = ? AND list_id = 'dishonest_judgment_defaulters'""",
            [who],
        ).fetchall()
        assert listed == [
            (
                "dishonest_judgment_defaulters",
                dt.datetime(2025, 6, 2, 10, 30, tzinfo=CST),
                "sample-002",
                "court_defaulter_listing",
            )
        ]
        rules = con.execute(
            "SELECT rule_ids FROM ledger_view WHERE citizen_id = ? AND record_id = 'sample-002'", [who]
        ).fetchall()
        assert rules and all(isinstance(r, list) and r for (r,) in rules)
        reasons = con.execute("SELECT reasons FROM decisions_view WHERE citizen_id = ?", [who]).fetchall()[0][0]
        assert {"measure", "effect", "via", "since", "until"} <= set(reasons[0])
        assert reasons[0]["since"] == dt.datetime(2025, 6, 2, 10, 30, tzinfo=CST)
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'decisions_view'"
            ).fetchall()
        )
        assert types["reasons"].startswith("STRUCT(") and types["reasons"].endswith("[]")
        assert types["asked_at"] == "TIMESTAMP WITH TIME ZONE"
        names = {
            c
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name LIKE '%\\_view' ESCAPE '\\'"
            ).fetchall()
        }
        assert not names & {"ckey", "jkey", "bkey", "rkey"}
