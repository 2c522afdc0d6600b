"""One time rule (SPEC §5): a time without an offset means China Standard Time in the CLI and in the library
alike; a question without a time is asked at the store's own clock (its last engine run), never the wall
clock; every answer says which time it is for; a library what-if writes nothing unless asked.

The bundled sample's court defaulter is listed on 2025-06-02 at 10:30 CST (02:30 UTC): at 09:00 CST he may
still fly, at 11:00 CST he may not. Read as UTC, 09:00 would be 17:00 CST, after the listing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import cst
from socialcredit import decisions, explanations
from socialcredit.cli import app
from socialcredit.engine import Engine
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store

RUN_END = cst(2025, 7, 1)  # as a simulation of the first half of 2025 leaves its store
RUN_END_UTC = dt.datetime(2025, 6, 30, 16, 0)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("time") / "s.duckdb"
    with Store(path) as store:
        store.init()
        load_sample(store)
        Engine(store).run(as_of=RUN_END)
    return path


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("naive", "utc", "outcome"),
    [("2025-06-02 09:00", "2025-06-02T01:00:00Z", "allow"), ("2025-06-02 11:00", "2025-06-02T03:00:00Z", "deny")],
)
def test_the_same_naive_time_gives_the_same_answer_in_the_cli_and_the_library(
    db: Path, naive: str, utc: str, outcome: str
) -> None:
    who = citizen_ids()["zhang_wei"]
    with Store(db) as store:
        library = decisions.decide(store, who, "air.ticket", dt.datetime.fromisoformat(naive))
    answered = json.loads(cli("decide", who, "air.ticket", "--at", naive, "--db", str(db), "--json"))
    assert (library.outcome, answered["outcome"]) == (outcome, outcome)
    assert answered["at"] == library.to_json()["at"] == utc
    assert library.clock == answered["clock"] == "asked"


def test_a_library_what_if_writes_nothing_unless_asked(db: Path) -> None:
    who = citizen_ids()["zhang_wei"]
    with Store(db) as store:
        before = store.counts()["decisions"]
        decisions.decide(store, who, "air.ticket")
        decisions.decide_many(store, [(who, "rail.ticket", None)])
        assert store.counts()["decisions"] == before
        decisions.decide(store, who, "air.ticket", record=True)
        assert store.counts()["decisions"] == before + 1
    cli("decide", who, "air.ticket", "--db", str(db))  # the CLI is a provider's question: recorded
    with Store(db) as store:
        assert store.counts()["decisions"] == before + 2


def test_a_question_without_a_time_is_asked_at_the_stores_clock(db: Path) -> None:
    """The store was last scored as of 2025-07-01 CST: that is when a standing is, whatever today is."""
    who = citizen_ids()["zhang_wei"]
    with Store(db) as store:
        st = decisions.standing(store, who)
        d = decisions.decide(store, who, "air.ticket")
        x = explanations.explain(store, who)
    assert (st.as_of, st.clock) == (RUN_END_UTC, "store")
    assert "dishonest_judgment_defaulters" in {e["list_id"] for e in st.list_entries}
    assert (d.at, d.clock, d.outcome) == (RUN_END_UTC, "store", "deny")
    assert (x["as_of"], x["clock"]) == ("2025-06-30T16:00:00Z", "store")
    shown = cli("citizen", who, "--db", str(db))
    assert "as of 2025-07-01 00:00 CST (the store's clock" in " ".join(shown.split())
    answered = json.loads(cli("citizen", who, "--db", str(db), "--json"))
    assert (answered["as_of"], answered["clock"]) == ("2025-06-30T16:00:00Z", "store")
    assert "dishonest_judgment_defaulters" in {e["list_id"] for e in answered["list_entries"]}
    assert "as of 2025-07-01 00:00 CST" in " ".join(cli("explain", who, "--db", str(db)).split())
    assert "as of 2025-07-01 00:00 CST" in " ".join(cli("decide", who, "air.ticket", "--db", str(db)).split())


def test_a_named_time_says_it_was_asked(db: Path) -> None:
    who = citizen_ids()["zhang_wei"]
    with Store(db) as store:
        st = decisions.standing(store, who, dt.datetime(2025, 6, 2, 11))  # naive: CST
    assert (st.as_of, st.clock) == (dt.datetime(2025, 6, 2, 3), "asked")


@pytest.mark.parametrize("aware", [True, False])
def test_a_door_clock_may_be_aware_or_naive_utc(db: Path, aware: bool) -> None:
    """A service's clock is naive UTC by the store's convention, but a door that says its zone (an aware
    time) means the same instant: the decision is the same, at the same time, and no comparison fails."""
    who = citizen_ids()["zhang_wei"]
    now = dt.datetime(2025, 6, 2, 3, tzinfo=dt.UTC) if aware else dt.datetime(2025, 6, 2, 3)
    with Store(db) as store:
        dec = decisions.Decider(store, check_facts=False, clock=lambda: now)
        unnamed = dec.decide(who, "air.ticket", record=False)
        named = dec.decide(who, "air.ticket", dt.datetime(2025, 6, 2, 11), record=False)  # naive: CST
    assert (unnamed.at, unnamed.clock) == (dt.datetime(2025, 6, 2, 3), "service")
    assert (named.at, named.clock, named.outcome) == (dt.datetime(2025, 6, 2, 3), "asked", "deny")
