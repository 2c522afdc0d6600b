"""Text that no UTF-8 encoder accepts, at every door that takes text: a clear error naming the field."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from conftest import citizen
from socialcredit.cli import app
from socialcredit.store import BatchRejected

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "t.duckdb"
    assert runner.invoke(app, ["init", "--db", str(path)]).exit_code == 0
    return path


def test_a_lone_surrogate_in_a_citizens_file_is_refused_by_row_and_field(db, tmp_path):
    row = {**citizen(1, city="rongcheng"), "name": "x\ud800y"}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(row) + "\n")  # json.dumps writes the escape "\ud800"
    r = runner.invoke(app, ["citizens", str(path), "--db", str(db)])
    assert r.exit_code == 2, r.output
    assert "row 1, name: not valid Unicode text" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("name", "王" * 65, "longer than 64 characters"),
        ("name", 7, "not text"),
        ("nickname", "x", "unknown field(s) nickname"),
        ("contacts", "371082198001010011", "a list of resident IDs"),
    ],
)
def test_citizen_fields_are_bounded_and_declared(make_store, field, value, why):
    store = make_store()
    with pytest.raises(BatchRejected, match=re.escape(why)):
        store.add_citizens([{**citizen(1), field: value}])
    assert store.con.execute("SELECT count(*) FROM citizens").fetchall() == [(0,)]


@pytest.mark.parametrize(
    "args",
    [
        ["citizen", "\udcff\udcfe"],
        ["decide", "371082198001010012", "rail\udcff"],
        ["rulebook", "show", "\udcff"],
        ["explain", "x\udcff"],
    ],
)
def test_an_undecodable_argument_exits_2_naming_it(db, args):
    r = runner.invoke(app, [*args, "--db", str(db)])
    assert r.exit_code == 2, r.output
    assert "not valid Unicode text" in r.output or "a resident ID has 18 characters" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    ("reason", "why"),
    [("x" * 4001, "reason: longer than 4000 characters"), ("x\ud800", "reason: not valid Unicode text")],
)
def test_case_texts_are_bounded_at_the_core_for_every_door(reason, why):
    """The API's models bound the reason too, but the pages' forms and the library reach the core directly."""
    from socialcredit import objections
    from socialcredit.sample import citizen_ids, load_sample
    from socialcredit.store import Store
    from socialcredit.yamlio import LocatedError

    store = Store(":memory:")
    store.init()
    load_sample(store)
    with pytest.raises(LocatedError, match=re.escape(why)):
        objections.file_objection(store, citizen_ids()["zhang_wei"], "commercial_banks", "sample-001", reason)
    with pytest.raises(LocatedError, match=re.escape(why)):
        objections.apply_repair(store, citizen_ids()["zhang_wei"], "dishonest_judgment_defaulters", reason)
    assert objections.cases(store) == []
