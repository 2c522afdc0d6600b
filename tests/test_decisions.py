"""Decisions and explanations: the bundled sample end to end, and small-rulebook checks."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import NATIONAL_YAML, citizen, city_yaml, cst, rec
from oracle.model import CST as CST_TZ
from oracle.model import Books, Oracle, Person, Record
from socialcredit import decisions, explanations
from socialcredit.catalog import default_catalog
from socialcredit.engine import Engine
from socialcredit.rulebook import shipped_layers
from socialcredit.sample import PEOPLE, RECORDS, citizen_ids, load_sample
from socialcredit.stays import StayIndex
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

AT = cst(2026, 9, 1, 12)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("sample") / "s.duckdb")
    store.init()
    load_sample(store)
    yield store
    store.close()


def test_sample_court_defaulter_denied_flight(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["zhang_wei"], "air.ticket", AT)
    assert d.outcome == "deny"
    # listed 2 June 2025 on both lists: the blacklist's air ban lasted a year, the court's flight ban holds
    assert [(r["measure"], r["via"], r["effect"]) for r in d.reasons] == [
        ("spc_no_flights", "list:dishonest_judgment_defaulters", "deny")
    ]


def test_sample_child_denied_private_school_through_parent(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["zhang_xiaoming"], "school.private_admission", AT)
    assert d.outcome == "deny"
    father = citizen_ids()["zhang_wei"]
    assert sorted((r["measure"], r["via"]) for r in d.reasons) == [
        ("children_education_restriction", f"parent:{father} list:blacklist"),
        ("spc_no_private_school_children", f"parent:{father} list:dishonest_judgment_defaulters"),
    ]
    # the parent himself is not bound by a measure that reaches children: every measure on this service does
    own = decisions.decide(sample_store, citizen_ids()["zhang_wei"], "school.private_admission", AT)
    assert (own.outcome, own.reasons) == ("allow", [])


def test_sample_smoker_denied_rail(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["hu_yan"], "rail.ticket", AT)
    assert d.outcome == "deny"


def test_sample_model_citizen_priority_in_hospital(sample_store):
    outcomes = {
        k: decisions.decide(sample_store, citizen_ids()[k], "hospital.queue", AT).outcome
        for k in ("chen_jing", "wang_fang")
    }
    assert outcomes == {"chen_jing": "priority", "wang_fang": "priority"}  # both on the whitelist


def test_sample_ordinary_citizen_allowed(sample_store):
    d = decisions.decide(sample_store, citizen_ids()["xu_hui"], "air.ticket", AT)
    assert d.outcome == "allow"


@pytest.fixture(scope="module")
def sample_oracle() -> Oracle:
    """The independent model (tests/oracle/model.py) on the same sample: the shipped rulebooks, people, records."""
    ids = citizen_ids()
    people = [
        Person(ids[k], city, [ids[c] for c in contacts], [ids[p] for p in parents], born=dt.date.fromisoformat(born))
        for k, _name, _latin, _sex, born, city, parents, _spouse, contacts in PEOPLE
    ]
    records = []
    for key, behaviour, when, agency, attrs in RECORDS:
        at = dt.datetime.fromisoformat(when).replace(tzinfo=CST_TZ).astimezone(dt.UTC)
        # keyed as explain shows a record: its agency and time (ISO, UTC)
        records.append(Record(at.replace(tzinfo=None).isoformat() + "Z", agency, ids[key], behaviour, at, attrs))
    return Oracle(Books(shipped_layers()), default_catalog(), people, records, AT.astimezone(dt.UTC))


@pytest.mark.parametrize("key", ["zhang_wei", "chen_jing", "guo_qiang", "wang_fang", "liu_yang", "zhao_lei"])
def test_explain_sums(sample_store, sample_oracle, key):
    """The score explain gives, and each record's and characteristic's points behind it, equal the oracle's."""
    cid = citizen_ids()[key]
    x = explanations.explain(sample_store, cid, AT)
    s = x["score"]
    assert s["value"] == sample_oracle.score(cid, AT)
    assert s["grade"] == sample_oracle.grade(cid, AT)
    lo, hi = s["scale"]
    assert s["value"] == min(max(s["base"] + s["sum_of_entries"], lo), hi)
    got: dict[tuple[str, str], int] = {}
    for e in x["ledger"]:
        r = e.get("record")
        k = (r["agency"], r["occurred_at"]) if e["source"] == "record" else ("", e["characteristic"])
        got[k] = got.get(k, 0) + e["points"]
        # an entry's points are its rules' points unless a cap cut them, and then the cap says from what
        assert sum(r["points"] for r in e["rules"]) == (e["cap"]["points_before_cap"] if "cap" in e else e["points"])
    book = sample_oracle.book(cid, AT)
    want = {
        **sample_oracle.record_points(cid, AT),
        **{("", c): p for c, p in sample_oracle.characteristic_points(cid, AT, book).items()},
    }
    assert {k: v for k, v in got.items() if v} == want
    assert s["sum_of_entries"] == sum(want.values())


def test_unknown_service_raises_located_error(sample_store):
    with pytest.raises(LocatedError, match="unknown service"):
        decisions.decide(sample_store, citizen_ids()["zhang_wei"], "moon.ticket", AT)


def test_unknown_citizen_raises_located_error(sample_store):
    with pytest.raises(LocatedError):
        sample_store.ckey("110101199001010011")


def test_denial_notifies_where_city_does_not(make_store, make_citizens):
    store = make_store(NATIONAL_YAML, city_yaml(notify=False))
    a, b, c = make_citizens(store, 3)
    store.ingest([rec(f"s{i}", x, "smoking_on_train", cst(2026, 5, 5, 12)) for i, x in enumerate((a, b, c))], now=NOW)
    d = decisions.decide(store, a, "rail.ticket", cst(2026, 6, 1), record=True)  # a provider asked: recorded
    assert d.outcome == "deny"
    kinds = [k for (k,) in store.con.execute("SELECT kind FROM notifications").fetchall()]
    assert kinds == ["learned_by_denial"]
    decisions.decide(store, a, "rail.ticket", cst(2026, 6, 2), record=True)
    assert store.con.execute("SELECT count(*) FROM notifications").fetchall()[0][0] == 1
    # a batch's denials are written in one statement: still one notification per citizen, ever, by the first
    out = decisions.decide_many(
        store,
        [
            (c, "rail.ticket", cst(2026, 6, 3)),
            (b, "rail.ticket", cst(2026, 6, 2)),
            (c, "rail.ticket", cst(2026, 6, 2)),
            (a, "rail.ticket", cst(2026, 6, 2)),
        ],
        record=True,
    )
    assert [x.outcome for x in out] == ["deny"] * 4
    told = store.con.execute(
        "SELECT c.citizen_id, n.sent_at FROM notifications n JOIN citizens c USING (ckey) "
        "WHERE n.kind = 'learned_by_denial' ORDER BY c.citizen_id"
    ).fetchall()
    assert told == sorted([(a, d.at), (b, out[1].at), (c, out[0].at)])


def test_notifying_city_tells_at_listing(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2026, 5, 5, 12))], now=NOW)
    d = decisions.decide(store, a, "rail.ticket", cst(2026, 6, 1))
    assert d.outcome == "deny"
    kinds = sorted(k for (k,) in store.con.execute("SELECT kind FROM notifications").fetchall())
    assert kinds == ["listed"]


def test_decision_expires_with_trigger(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2026, 1, 5, 12))], now=NOW)
    assert decisions.decide(store, a, "rail.ticket", cst(2026, 2, 1)).outcome == "deny"
    assert decisions.decide(store, a, "rail.ticket", cst(2026, 7, 5)).outcome == "allow"


def test_explain_names_the_cap_that_cut_points(store, make_citizens):
    """volunteer.cap allows +10 a year: the third +5 volunteering of 2021 is cut to 0, and says by what."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec(f"v{i}", a, "volunteer_work", cst(2021, 2 + i, 1), hours=1) for i in range(3)], now=NOW)
    ledger = [e for e in explanations.explain(store, a, cst(2021, 12, 1))["ledger"] if e["source"] == "record"]
    assert [(e["record"]["record_id"], e["points"]) for e in ledger] == [("v0", 5), ("v1", 5), ("v2", 0)]
    assert ["cap" in e for e in ledger] == [False, False, True]
    assert ledger[2]["cap"] == {"id": "volunteer.cap", "per": "year", "max": 10, "min": None, "points_before_cap": 5}
    assert ledger[2]["rules"] == [{"id": "volunteer", "points": 5, "when": None, "label": "", "source": "illustrative"}]


def test_explain_shows_each_rule_as_the_version_that_scored_it_wrote_it(make_store, make_citizens):
    """A record of December 2023 was scored under testcity@1: explain shows that version's rule (no label),
    not version 2's relabelled one; a characteristic's entry names the record that set it."""
    v2 = city_yaml(2).replace("    points: -80\n", "    points: -80\n    label: Severe, doubled from 2024\n")
    assert v2 != city_yaml(2)
    store = make_store(NATIONAL_YAML, city_yaml(1), v2)
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("old", a, "late_bill_payment", cst(2023, 12, 1), days_late=100),
            rec("c1", a, "court_defaulter_listing", cst(2023, 12, 2), ground=1, term_days=0),
        ],
        now=NOW,
    )
    x = explanations.explain(store, a, cst(2024, 2, 15))
    by_source = {e["source"]: e for e in x["ledger"]}
    old = by_source["record"]
    assert old["rulebook_version"] == "testcity@1+national@1"
    assert [(r["id"], r["points"], r["label"]) for r in old["rules"]] == [("late.severe", -40, "")]
    (held,) = [e for e in x["ledger"] if e["source"] != "record"]
    assert held["characteristic"] == "court_defaulter"
    assert held["set_by_record"] == {
        "record_id": "c1",
        "agency": "local_peoples_court",
        "behaviour": "court_defaulter_listing",
    }


# ------------------------------------------------------------------ small-store answers, worked out by hand
# conftest's tiny rulebook (in force from 2020): `listed` smoked on a train on 1 March 2026 (rail_list for 180
# days, rail_ban), `late` smoked on 20 May 2026, after the engine's run as of 10 May; `other` has no record.


@pytest.fixture(scope="module")
def small_base(tmp_path_factory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("small") / "base.duckdb"
    with Store(path) as store:
        store.init(load_shipped_rulebooks=False)
        store.add_rulebook(NATIONAL_YAML, "national.yaml")
        store.add_rulebook(city_yaml(), "city.yaml")
        ids = [c["citizen_id"] for c in (citizen(0), citizen(1), citizen(2))]
        store.add_citizens([citizen(0), citizen(1), citizen(2)])
        store.ingest(
            [
                rec("s1", ids[0], "smoking_on_train", cst(2026, 3, 1)),
                rec("s2", ids[1], "smoking_on_train", cst(2026, 5, 20, 12)),
            ],
            now=NOW,
        )
        Engine(store).run(as_of=cst(2026, 5, 10))
    return path, ids


@pytest.fixture
def small(small_base, tmp_path) -> tuple[Store, list[str]]:
    """A copy of the base store for one test (answers may rerun the engine and record decisions)."""
    copy = tmp_path / "small.duckdb"
    shutil.copyfile(small_base[0], copy)
    with Store(copy) as store:
        yield store, small_base[1]


VERSION = "testcity@1+national@1"


def test_a_question_without_a_time_is_answered_at_the_store_s_clock(small):
    store, (listed, _, _) = small
    st = decisions.standing(store, listed)
    assert (st.as_of, st.clock, st.score, st.grade) == (utc(cst(2026, 5, 10)), "store", 100, "B")
    assert [(m.measure, m.via, m.since, m.until) for m in st.measures] == [
        ("rail_ban", "list:rail_list", utc(cst(2026, 3, 1)), utc(cst(2026, 3, 1)) + dt.timedelta(days=180))
    ]
    assert [(e["list_id"], e["start"], e["end"], e["cause"]) for e in st.list_entries] == [
        ("rail_list", utc(cst(2026, 3, 1)), utc(cst(2026, 3, 1)) + dt.timedelta(days=180), "behaviour")
    ]


def test_nothing_binds_before_any_rulebook_is_in_force(small):
    store, (listed, _, _) = small
    d = decisions.decide(store, listed, "rail.ticket", cst(2019, 6, 1))
    assert (d.outcome, d.rulebook_version, d.reasons) == ("allow", None, [])
    assert decisions.decide(store, listed, "rail.ticket", cst(2026, 5, 5)).outcome == "deny"


def test_a_record_the_last_run_did_not_see_is_seen_by_a_later_question(small):
    """The run as of 10 May did not see the smoking of 20 May: a decision on 15 May may answer from that run,
    one on 25 May (after the record, in the same month) may not."""
    store, (_, late, _) = small
    assert decisions.decide(store, late, "rail.ticket", cst(2026, 5, 15)).outcome == "allow"
    d = decisions.decide(store, late, "rail.ticket", cst(2026, 5, 25))
    assert (d.outcome, [r["via"] for r in d.reasons]) == ("deny", ["list:rail_list"])


def test_an_unlisted_citizen_s_decision_names_the_version_and_who_asked_is_recorded(small):
    store, (_, _, other) = small
    d = decisions.decide(store, other, "rail.ticket", cst(2026, 5, 5), asked_by="railway_gate", record=True)
    assert (d.outcome, d.public_reason, d.rulebook_version, d.valid_until, d.reasons) == (
        "allow",
        decisions.NO_MEASURE,
        VERSION,
        None,
        [],
    )
    recorded = store.con.execute("SELECT service, asked_at, outcome, asked_by, rulebook_version FROM decisions")
    assert recorded.fetchall() == [("rail.ticket", utc(cst(2026, 5, 5)), "allow", "railway_gate", VERSION)]


def test_a_read_only_store_answers_within_its_last_run_and_refuses_past_it(small_base):
    """Opened read-only (an analyst, a served store's snapshot), the store answers what its run as of 10 May
    can answer, and refuses a question after the record of 20 May that run did not see (no engine may run)."""
    with Store(small_base[0], read_only=True) as store:
        listed, late, _ = small_base[1]
        assert decisions.decide(store, listed, "rail.ticket", cst(2026, 5, 19)).outcome == "deny"
        with pytest.raises(decisions.SnapshotCannotAnswer, match="cannot answer about"):
            decisions.decide(store, late, "rail.ticket", cst(2026, 5, 25))


def test_a_stay_no_longer_in_force_does_not_hide_a_later_one_in_force():
    """A citizen's stays are all looked at: an ended stay listed before the one in force must not stop the
    scan (a mutation survivor turned the skip into the end of the loop, and the citizen's measure vanished).
    Expected by hand: the stay begun in 2021 binds in March 2021, with its own start; the 2020 one does not."""
    from socialcredit.catalog import default_catalog
    from socialcredit.decisions import MeasurePlan, _stay_measures

    catalog = default_catalog()
    measure = catalog.measures["hospital_priority"]
    plan = MeasurePlan({"whitelist": [(measure, None)]}, [])
    ended = ("whitelist", dt.datetime(2020, 1, 1), dt.datetime(2020, 6, 1))
    in_force = ("whitelist", dt.datetime(2021, 1, 1), None)
    at = dt.datetime(2021, 3, 1)
    for stays in ([ended, in_force], [in_force, ended]):
        found = _stay_measures(plan, stays, at, "hospital.queue")
        assert [(m.measure, m.via, m.since, m.until) for m in found] == [
            ("hospital_priority", "list:whitelist", dt.datetime(2021, 1, 1), None)
        ], stays
    assert _stay_measures(plan, [ended], at, "hospital.queue") == []
    assert _stay_measures(plan, [in_force], at, "taxi.dispatch") == []  # only the service asked about


def test_a_parents_measures_reach_a_child_only_for_the_service_asked_about(sample_store):
    """`reaching_measures` with a service gives only the measures that bind it: the father's measures that
    reach his son bind private schools, none binds an air ticket (a mutation survivor asked the father's
    measures without the service, and the son's air ticket then carried the school bans)."""
    son = citizen_ids()["zhang_xiaoming"]
    (ckey,) = sample_store.con.execute("SELECT ckey FROM citizens WHERE citizen_id = ?", [son]).fetchone()
    dec = decisions.decider(sample_store)
    at = utc(AT)
    idx = dec.index(at)
    school = {m.measure for m in dec.reaching_measures(idx, ckey, at, "school.private_admission")}
    assert school == {"children_education_restriction", "spc_no_private_school_children"}
    assert dec.reaching_measures(idx, ckey, at, "air.ticket") == []


def test_a_refused_batch_names_twenty_unknown_citizens_and_counts_the_rest(sample_store):
    """Twenty-five unknown citizens: the error shows the first twenty and says how many it left out, on
    the path that checks the store's facts and on the index's own look-up."""
    ghosts = [f"ghost{i:02d}" for i in range(25)]
    requests = [(g, "air.ticket", AT) for g in ghosts]
    with pytest.raises(LocatedError) as checked:
        decisions.decide_many(sample_store, requests)
    assert [g for g in ghosts if repr(g) in str(checked.value)] == ghosts[:20]
    assert str(checked.value).endswith("and 5 more (25 in all)")
    idx = decisions.decider(sample_store).index(utc(AT))
    with pytest.raises(LocatedError) as looked_up:
        idx.locate_many([*citizen_ids().values(), *ghosts])
    assert [g for g in ghosts if repr(g) in str(looked_up.value)] == ghosts[:20]
    assert str(looked_up.value).endswith("and 5 more (25 in all)")


def test_a_replay_reruns_under_its_own_pin_when_a_question_needs_a_run(make_store, make_citizens):
    """A question the last (pinned) run cannot answer reruns the engine under the same pin: the answer
    keeps the replayed version's points, and the store stays a replay."""
    store = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2))
    (a,) = make_citizens(store, 1)
    store.ingest([rec("l1", a, "late_bill_payment", cst(2024, 2, 1), days_late=100)], now=NOW)
    pin = "testcity@1+national@1"
    Engine(store).run(as_of=cst(2024, 3, 1), pin=pin)
    store.ingest([rec("l2", a, "late_bill_payment", cst(2024, 3, 5), days_late=100)], now=NOW)  # a new fact
    st = decisions.standing(store, a, cst(2024, 4, 2))  # needs a run: a fact it has not seen, a new month
    assert store.con.execute("SELECT pin FROM engine_run").fetchall() == [(pin,)]
    assert (st.score, st.rulebook_version) == (100 - 2 * 40, pin)  # version 1's -40 each, not version 2's -80


def test_a_recorded_decision_keeps_its_reasons(store, make_citizens):
    """The decision log holds what the answer said: each reason's measure, effect, list and dates, as JSON
    (a mutation survivor wrote `null` for every decision that had reasons, and no test read the log back)."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec("c1", a, "court_defaulter_listing", cst(2024, 3, 15, 9), ground=1)], now=NOW)
    denied = decisions.decide(store, a, "air.ticket", cst(2024, 3, 20, 12), record=True)
    allowed = decisions.decide(store, a, "air.ticket", cst(2024, 3, 2, 12), record=True)
    assert denied.outcome == "deny" and denied.reasons and allowed.reasons == []
    logged = store.con.execute("SELECT outcome, reasons FROM decisions ORDER BY decision_id").fetchall()
    assert [(o, json.loads(r)) for o, r in logged] == [
        ("deny", decisions.jsonable(denied.reasons)),
        ("allow", []),
    ]


def test_decisions_answered_elsewhere_take_the_next_ids_after_this_deciders_own(store, make_citizens):
    """A reader's shipped decisions go into the log after the writer's own buffered ones, numbered on from
    them, with every column as shipped (the service's writer calls this for each shipment)."""
    (a,) = make_citizens(store, 1)
    d = decisions.Decider(store, check_facts=False, buffered=True)
    own = d.decide(a, "air.ticket", cst(2024, 3, 2, 12), asked_by="writer")
    at = utc(cst(2024, 3, 3, 12))
    shipped = pa.table(
        {
            "ckey": pa.array([store.ckey(a)] * 2, pa.int32()),
            "service": ["rail.ticket", "hotel.booking"],
            "asked_at": [at, at],
            "outcome": ["allow", "allow"],
            "reasons": ["[]", "[]"],
            "asked_by": ["reader-1", "reader-1"],
            "rulebook_version": [own.rulebook_version] * 2,
        }
    )
    d.record_elsewhere_decided(shipped, [])
    logged = store.con.execute("SELECT decision_id, service, asked_at, asked_by FROM decisions ORDER BY 1").fetchall()
    assert logged == [
        (1, "air.ticket", utc(cst(2024, 3, 2, 12)), "writer"),
        (2, "rail.ticket", at, "reader-1"),
        (3, "hotel.booking", at, "reader-1"),
    ]


def test_the_stay_index_keeps_its_citizens_across_runs_until_the_citizens_change(small):
    """A new engine run rebuilds the stays, but reads and sorts every citizen again only when the run's
    fingerprint of the citizens changed: a citizen added (and scored) is found, one who was not is kept."""
    store, (listed, _, _) = small
    decider = decisions.Decider(store)
    first = decider.index(utc(cst(2026, 5, 5)))
    store.ingest([rec("s3", listed, "smoking_on_train", cst(2026, 5, 25))], now=NOW)
    Engine(store).run(as_of=cst(2026, 6, 1))
    decider.invalidate()  # as the simulator and the service do after a run
    again = decider.index(utc(cst(2026, 5, 30)))
    assert again is not first and again.ids is first.ids  # new stays, the same citizens
    assert len(again.stays[again.locate(listed)[0]]) == len(first.stays[first.locate(listed)[0]]) + 1
    newcomer = citizen(7)
    store.add_citizens([newcomer])
    Engine(store).run(as_of=cst(2026, 6, 1))
    fresh = decider.index(utc(cst(2026, 5, 30)))
    assert fresh.ids is not first.ids and fresh.locate(newcomer["citizen_id"])[1] == "testcity"


def test_the_stay_index_reads_only_the_newly_listed_citizens_ties_until_the_ties_change(make_store, make_citizens):
    """A later index keeps the ties it read and reads those of the newly listed only; it equals a full read
    after a listing (a child's second parent sorted among its ties), a listing undone (a run as of before
    it) and a new tie (which makes it read everything again)."""
    store = make_store()
    ids = make_citizens(store, 6, parents={1: [0], 2: [0, 3], 4: [3]})
    key = {cid: store.ckey(cid) for cid in ids}
    store.ingest([rec("p3", ids[3], "smoking_on_train", cst(2026, 3, 1))], now=NOW)
    Engine(store).run(as_of=cst(2026, 4, 1))
    first = StayIndex.load(store)
    assert [r[0] for r in first.relatives[key[ids[2]]]] == [key[ids[3]]]
    as_made = {k: list(v) for k, v in first.relatives.items()}, dict(first.tied_to)

    def same_as_a_full_read(index: StayIndex) -> None:
        full = StayIndex.load(store)
        assert (index.relatives, index.born, index.stays) == (full.relatives, full.born, full.stays)
        assert index.tied_to == full.tied_to

    store.ingest([rec("p0", ids[0], "smoking_on_train", cst(2026, 4, 10))], now=NOW)
    Engine(store).run(as_of=cst(2026, 5, 1))
    later = StayIndex.load(store, first)
    same_as_a_full_read(later)
    assert later.relatives[key[ids[4]]] is first.relatives[key[ids[4]]]  # kept, not read again
    assert [r[0] for r in later.relatives[key[ids[2]]]] == [key[ids[0]], key[ids[3]]]
    assert set(later.born) == {key[ids[1]], key[ids[2]], key[ids[4]]}
    # an index is never changed once made (a decision may still be reading the one before)
    assert ({k: list(v) for k, v in first.relatives.items()}, first.tied_to) == as_made

    Engine(store).run(as_of=cst(2026, 4, 1))  # the second listing undone
    undone = StayIndex.load(store, later)
    same_as_a_full_read(undone)
    assert key[ids[1]] not in undone.relatives and key[ids[1]] not in undone.born
    assert undone.relatives[key[ids[4]]] is first.relatives[key[ids[4]]]  # untouched by the listing undone

    store.add_relations(key[ids[5]], key[ids[3]], "parent", utc(cst(2026, 3, 15)))
    Engine(store).run(as_of=cst(2026, 4, 1))
    tied = StayIndex.load(store, undone)
    same_as_a_full_read(tied)
    assert [r[0] for r in tied.relatives[key[ids[5]]]] == [key[ids[3]]]
