"""Relations are dated facts: contact avoidance ends ties by appending facts, the network rule reads the
contacts in force at each assessment (so a later drop leaves earlier months as they were, and a run resumes
from it), and a parent's measure reaches a child only while the child is a minor and the tie is in force."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from conftest import NATIONAL_YAML, citizen, city_yaml, cst, rec
from socialcredit import decisions, schema
from socialcredit.clock import stored
from socialcredit.engine import Engine, utc_naive
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.simulate.contacts import avoid_listed_contacts
from socialcredit.stays import coming_of_age
from socialcredit.store import UNDATED, BatchRejected, Store

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
APRIL = utc_naive(cst(2024, 4, 1))  # the third assessment after the listing's month: contact avoidance then
AS_OF = cst(2024, 6, 1)
TABLES = ("score_log", "list_entries", "state_ledger")


def _derived(store: Store) -> dict[str, list[tuple]]:
    return {t: store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def _network(rows: list[tuple]) -> list[tuple]:
    """The network rule's ledger entries (state_ledger rows with source 'network')."""
    return [r for r in rows if r[3] == "network"]


@pytest.fixture(scope="module")
def avoided(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Citizen 0 is a court defaulter from January 2024; 1 knows only 0, 2 knows 0 and 3 (share 1 and 0.5:
    both meet the network rule). The engine runs to June; then both drop 0 on 1 April (contact avoidance,
    certain), and the engine runs again (resuming), and once more from scratch in a twin store."""
    path = tmp_path_factory.mktemp("relations")
    out: dict[str, object] = {}
    stores = []
    for name in ("avoid", "full"):
        store = Store(path / f"{name}.duckdb")
        store.init(load_shipped_rulebooks=False)
        for i, text in enumerate((NATIONAL_YAML, city_yaml(1))):
            store.add_rulebook(text, f"layer{i}.yaml")
        rows = [citizen(i) for i in range(4)]
        ids = [r["citizen_id"] for r in rows]
        rows[1]["contacts"] = [ids[0]]
        rows[2]["contacts"] = [ids[0], ids[3]]
        store.add_citizens(rows)
        store.ingest([rec("l0", ids[0], "court_defaulter_listing", cst(2024, 1, 5), ground=1, term_days=0)], now=NOW)
        Engine(store).run(stored(utc_naive(AS_OF)))
        stores.append(store)
    inc, full = stores
    out["before"] = _derived(inc)
    out["changes_before"] = inc.con.execute("SELECT * FROM relation_changes ORDER BY seq").fetchall()
    for store in stores:
        graph = avoid_listed_contacts(store, APRIL, APRIL.date(), 1.0, 0.0, np.random.default_rng(1))
        assert graph.dropped == 2
    eng = Engine(inc)
    eng.run(stored(utc_naive(AS_OF)))
    out["resumed_from"] = eng.resumed_from
    out["after"] = _derived(inc)
    out["changes_after"] = inc.con.execute("SELECT * FROM relation_changes ORDER BY seq").fetchall()
    out["relations"] = inc.con.execute(
        "SELECT ckey, other, kind, valid_from, valid_to FROM relations WHERE kind = 'contact' ORDER BY ALL"
    ).fetchall()
    full.con.execute("DELETE FROM engine_run")  # nothing to resume from: every month computed again
    eng = Engine(full)
    eng.run(stored(utc_naive(AS_OF)))
    assert eng.resumed_from is None
    out["full"] = _derived(full)
    for store in stores:
        store.close()
    return out


def test_contact_avoidance_leaves_the_months_before_it_as_they_were(avoided: dict) -> None:
    """Recomputed from scratch after the avoidance (and resumed), February and March are what they were."""
    before = avoided["before"]
    for run in ("full", "after"):
        for table, at in (("score_log", 1), ("state_ledger", 9)):  # assessed_at, valid_from
            early = [r for r in before[table] if r[at] < APRIL]
            assert early == [r for r in avoided[run][table] if r[at] < APRIL], (run, table)
        assert [r for r in _network(avoided[run]["state_ledger"]) if r[9] >= APRIL] == [], run
    # the rule did give points in February and March (to 1 and 2), and from April on only before avoidance
    assert {(r[0], r[9]) for r in _network(before["state_ledger"]) if r[9] < APRIL} == {
        (k, utc_naive(cst(2024, m, 1))) for k in (1, 2) for m in (2, 3)
    }
    assert [r for r in _network(before["state_ledger"]) if r[9] >= APRIL] != []


def test_a_run_after_a_later_contact_change_resumes_and_equals_a_full_run(avoided: dict) -> None:
    assert avoided["resumed_from"] == APRIL
    assert avoided["after"] == avoided["full"]


def test_a_dropped_contact_is_ended_by_a_fact_never_deleted(avoided: dict) -> None:
    first, then = avoided["changes_before"], avoided["changes_after"]
    assert then[: len(first)] == first  # every earlier fact is still there, unchanged
    ends = then[len(first) :]
    starts = {r[0]: r for r in first}
    # (1, 0) and (2, 0), both ways: each end names the start it ends, dated at the avoidance
    assert sorted((r[1], r[2], r[4], r[5]) for r in ends) == sorted(
        (a, b, "end", APRIL) for a, b in ((0, 1), (1, 0), (0, 2), (2, 0))
    )
    assert all(starts[r[6]][1:4] == r[1:4] for r in ends)
    assert (1, 0, "contact", UNDATED, APRIL) in avoided["relations"]  # in force until the avoidance
    assert (2, 3, "contact", UNDATED, None) in avoided["relations"]  # the other tie holds


def test_no_module_deletes_or_updates_relations() -> None:
    src = Path(__file__).parents[1] / "src" / "socialcredit"
    for path in src.rglob("*.py"):
        text = path.read_text(encoding="utf-8").upper()
        for verb in ("DELETE FROM RELATION", "UPDATE RELATION", "INSERT INTO RELATIONS"):
            assert verb not in text, (path, verb)


def test_the_store_refuses_a_change_that_does_not_fit_and_writes_nothing(make_store, make_citizens) -> None:
    store = make_store(memory=True)
    make_citizens(store, 3, contacts={0: [1]})
    facts = store.con.execute("SELECT count(*) FROM relation_changes").fetchall()
    with pytest.raises(BatchRejected) as e:
        store.end_relations([0, 1], [2, 2], "contact", cst(2024, 1, 1))
    assert [(p.row, p.field) for p in e.value.problems] == [(1, "other"), (1, "other"), (2, "other"), (2, "other")]
    with pytest.raises(BatchRejected, match="already in force"):
        store.add_relations([1], [0], "contact", cst(2024, 1, 1))
    store.end_relations([0], [1], "contact", cst(2024, 3, 1))
    with pytest.raises(BatchRejected, match="last changed at 2024-02-29 16:00:00 UTC, after this"):
        store.add_relations([0], [1], "contact", cst(2024, 2, 1))
    with pytest.raises(BatchRejected) as e:
        store.add_relations([0], [2], "friend", cst(2024, 4, 1))
    assert [str(p) for p in e.value.problems] == ["row 0, kind: 'friend' is not one of parent, child, spouse, contact"]
    with pytest.raises(BatchRejected) as e:
        store.add_relations([0, 1], [2], "contact", cst(2024, 4, 1))
    assert [str(p) for p in e.value.problems] == ["row 0, other: 1 others for 2 citizens"]
    for change in (store.add_relations, store.end_relations):  # the checks every change gets, then its own
        with pytest.raises(BatchRejected) as e:
            change([2], [2], "contact", cst(2024, 4, 1))
        assert "row 1, other: a citizen is not their own relation" in [str(p) for p in e.value.problems]
    assert store.con.execute("SELECT count(*) FROM relation_changes").fetchall()[0][0] == facts[0][0] + 2


# --------------------------------------------------------------------------- children's measures

AT = cst(2026, 9, 1, 12)


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory):
    """The sample (Zhang Wei blacklisted, his son Zhang Xiaoming born 2013) and three more children of his: a
    56-year-old son, a daughter who turns 18 on 1 September 2026, and a son whose tie to him ended on 1 July
    2026."""
    store = Store(tmp_path_factory.mktemp("family") / "s.duckdb")
    store.init()
    load_sample(store)
    father = citizen_ids()["zhang_wei"]
    rows = [
        citizen(300, born=dt.date(1970, 3, 1), city="rongcheng", parents=[father]),
        citizen(301, sex="F", born=dt.date(2008, 9, 1), city="rongcheng", parents=[father]),
        citizen(302, born=dt.date(2015, 2, 2), city="rongcheng", parents=[father]),
    ]
    store.add_citizens(rows)
    store.end_relations([store.ckey(rows[2]["citizen_id"])], [store.ckey(father)], "parent", cst(2026, 7, 1))
    yield store, [r["citizen_id"] for r in rows]
    store.close()


def _school(store: Store, cid: str, at: dt.datetime) -> tuple[str, list[str]]:
    d = decisions.decide(store, cid, "school.private_admission", at, record=False)
    return d.outcome, sorted(r["measure"] for r in d.reasons)


def test_a_parent_s_measure_reaches_a_minor_not_a_56_year_old_son(family) -> None:
    store, (old, _, _) = family
    assert _school(store, citizen_ids()["zhang_xiaoming"], AT)[0] == "deny"
    assert _school(store, old, AT) == ("allow", [])


def test_a_child_is_reached_until_the_day_she_turns_the_measure_s_age(family) -> None:
    """The court's private-school bar reaches a minor (under 18); the fewer educational opportunities reach a
    child in education (the measure's `children_under: 25`), so a university applicant of 18 is reached too."""
    store, (_, daughter, _) = family
    assert _school(store, daughter, cst(2026, 8, 31, 23, 59)) == (
        "deny",
        ["children_education_restriction", "spc_no_private_school_children"],
    )
    assert _school(store, daughter, cst(2026, 9, 1, 0, 0)) == ("deprioritise", ["children_education_restriction"])
    uni = decisions.decide(store, daughter, "university.admission", cst(2026, 9, 1), record=False)
    assert (uni.outcome, [r["measure"] for r in uni.reasons]) == ("deprioritise", ["children_education_restriction"])
    old = family[1][0]  # 56: no longer a child any measure reaches
    assert decisions.decide(store, old, "university.admission", AT, record=False).outcome == "allow"
    # she is no longer reached from her 25th birthday, CST midnight (a question that far ahead is out of bounds)
    assert coming_of_age(dt.date(2008, 9, 1), 25) == dt.datetime(2033, 8, 31, 16, 0)
    assert store.catalog.measures["children_education_restriction"].children_under == 25


def test_the_simulator_counts_every_child_a_measure_reaches_up_to_the_oldest_age_it_names(tmp_path) -> None:
    """The simulator's monthly children count (`simulate.run._children`) first keeps the children born late
    enough for some measure reaching children (by calendar year, the oldest such age: 25, the fewer educational
    opportunities), then asks the decision path. A son of Zhang Wei who is still 24 on 30 June 2026 (born 1 July
    2001) counts; one who turned 25 the day before does not, nor a son of 40."""
    from socialcredit.simulate.run import _children

    store = Store(tmp_path / "s.duckdb")
    store.init()
    load_sample(store)
    at = utc_naive(cst(2026, 6, 30, 12))
    Engine(store).run(stored(at))  # as the simulator has, before it counts
    before = _children(store, at)
    father = citizen_ids()["zhang_wei"]
    store.add_citizens(
        [
            citizen(400, born=dt.date(2001, 7, 1), city="rongcheng", parents=[father]),
            citizen(401, born=dt.date(2001, 6, 29), city="rongcheng", parents=[father]),
            citizen(402, born=dt.date(1986, 1, 1), city="rongcheng", parents=[father]),
        ]
    )
    Engine(store).run(stored(at))
    assert before >= 1  # Zhang Xiaoming, 13
    assert _children(store, at) == before + 1
    store.close()


def test_a_parent_s_measure_reaches_a_child_only_while_the_tie_is_in_force(family) -> None:
    store, (_, _, son) = family
    assert _school(store, son, cst(2026, 6, 30))[0] == "deny"
    assert _school(store, son, cst(2026, 7, 1)) == ("allow", [])


def test_a_store_made_before_dated_relations_keeps_its_ties_from_the_start(tmp_path: Path) -> None:
    """Opening (initialising) a store whose `relations` is the old undated table moves its ties into
    relation_changes as starts at UNDATED, where the engine read them (in force at every time)."""
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        store.init(load_shipped_rulebooks=False)
        store.con.execute("DROP VIEW relations")
        store.con.execute("CREATE TABLE relations (ckey INTEGER, other INTEGER, kind VARCHAR)")
        store.con.execute("INSERT INTO relations VALUES (0, 1, 'contact'), (1, 0, 'contact'), (2, 0, 'parent')")
    with Store(path) as store:
        store.init(load_shipped_rulebooks=False)
        assert store.con.execute("SELECT * FROM relations ORDER BY ALL").fetchall() == [
            (0, 1, "contact", UNDATED, None),
            (1, 0, "contact", UNDATED, None),
            (2, 0, "parent", UNDATED, None),
        ]
        assert store.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = 'relations'"
        ).fetchall() == [("VIEW",)]
        assert store.con.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'relations'").fetchall() == [
            (schema.RELATIONS.comment,)
        ]
