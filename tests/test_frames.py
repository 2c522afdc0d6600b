"""Answers in a notebook: Jupyter HTML (every value escaped, times in CST) and Arrow / pandas / polars tables
for Standing, Explanation, Decision, RunSummary, Store and RulebookSet; a missing extra names itself."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import cst
from socialcredit import Decision, Explanation, RunSummary, Standing, decisions, explanations
from socialcredit.engine import Engine
from socialcredit.frames import MissingExtra
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store

EVIL = "<script>alert('x')</script>[/]王"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("frames") / "<b>frames" / "s.duckdb"
    path.parent.mkdir()
    with Store(path) as s:
        s.init()
        load_sample(s)
        s.summary = Engine(s).run(as_of=cst(2025, 7, 1))  # type: ignore[attr-defined]
        yield s


def answers(store: Store) -> tuple[Standing, Explanation, Decision, RunSummary]:
    who = citizen_ids()["zhang_wei"]
    return (
        decisions.standing(store, who),
        explanations.explain(store, who),
        decisions.decide(store, who, "air.ticket"),
        store.summary,
    )  # type: ignore[attr-defined]


def test_every_answer_renders_escaped_html_with_cst_times(store: Store) -> None:
    st, x, d, run = answers(store)
    for thing in (st, x, d, run, store, store.rulebooks()):
        shown = thing._repr_html_()
        assert shown.startswith("<") and "<script" not in shown
    assert "dishonest_judgment_defaulters" in st._repr_html_() and "2025-07-01 00:00" in st._repr_html_()
    assert "2025-06-02 10:30" in x._repr_html_()  # the listing's record, in CST
    assert "DENY air.ticket" in d._repr_html_() and "spc_no_flights" in d._repr_html_()
    assert "&lt;b&gt;frames" in store._repr_html_()
    evil = Standing(
        EVIL,
        EVIL,
        EVIL,
        dt.datetime(2025, 1, 1),
        None,
        None,
        None,
        [{"list_id": EVIL, "kind": "blacklist", "start": dt.datetime(2025, 1, 1)}],
        [],
    )
    shown = evil._repr_html_()
    assert EVIL not in shown and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;[/]王" in shown


def test_answers_convert_to_arrow_and_pandas(store: Store) -> None:
    st, x, d, run = answers(store)
    one = st.to_arrow()
    assert one.num_rows == 1 and one["citizen_id"][0].as_py() == st.citizen_id
    assert one.schema.field("as_of").type == pa.timestamp("us", tz="UTC")
    ledger = x.to_arrow()
    assert ledger.num_rows == len(x["ledger"]) and sum(ledger["points"].to_pylist()) == x["score"]["sum_of_entries"]
    assert d.to_arrow()["reasons"][0].as_py()[0]["measure"]
    assert run.to_arrow()["records"][0].as_py() == run.records
    records = store.to_arrow("records")
    assert records.num_rows == store.counts()["records"] and "citizen_id" in records.column_names
    versions = store.rulebooks().to_arrow()
    assert versions.num_rows == sum(len(v) for v in store.rulebooks().layers.values())
    frame = x.to_pandas()
    assert list(frame["points"]) == ledger["points"].to_pylist()
    assert str(st.to_pandas()["as_of"].dtype).startswith("datetime64") and "UTC" in str(st.to_pandas()["as_of"].dtype)
    assert store.to_pandas("list_entries")["citizen_id"].notna().all()
    assert d.to_polars().height == 1


def test_a_missing_extra_names_what_to_install(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    st, *_ = answers(store)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(MissingExtra, match=r"pip install 'socialcredit\[pandas\]'"):
        st.to_pandas()
    with pytest.raises(MissingExtra, match=r"socialcredit\[polars\]"):
        store.to_polars("records")
    assert st.to_arrow().num_rows == 1  # Arrow needs no extra


def test_an_unknown_table_is_named(store: Store) -> None:
    from socialcredit.yamlio import LocatedError

    with pytest.raises(LocatedError, match="'ckeys': no such readable table"):
        store.to_arrow("ckeys")


def test_explanation_is_still_the_mapping_every_door_reads(store: Store, tmp_path: Path) -> None:
    x = explanations.explain(store, citizen_ids()["zhang_wei"])
    assert isinstance(x, dict) and x["clock"] == "store" and x["ledger"]


def test_each_answer_s_heading_names_its_fields(store: Store) -> None:
    """The two-column head of each answer's HTML: which fields, in which order, and whose time it is (asked
    without a time: the store's clock, its last run)."""
    st, x, d, _ = answers(store)
    head = re.compile(r"<tr><th style='text-align:left'>(.*?)</th><td>(.*?)</td></tr>")
    store_clock = "the store&#x27;s clock: its last engine run, or a simulation&#x27;s end"
    for answer, labels in [
        (st, ["city", "as of (CST)", "whose time", "score", "grade", "assessed at (CST)", "running score", "rulebook"]),
        (x, ["city", "as of (CST)", "whose time", "rulebook", "score"]),
        (d, ["at (CST)", "whose time", "public reason", "rulebook", "valid until"]),
    ]:
        fields = dict(head.findall(answer._repr_html_().split("</table>")[0]))
        assert list(fields) == labels
        assert fields["whose time"] == store_clock
