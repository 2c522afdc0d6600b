"""The engine on tiny custom rulebooks: points, expiry, caps, versions, replay, lists, memory, network,
and order independence."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NATIONAL_YAML, city_yaml, cst, rec
from socialcredit.clock import TimeOutOfBounds
from socialcredit.engine import Engine
from socialcredit.engine.runstate import watermark
from socialcredit.store import Store

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def score(store: Store, cid: str, at: dt.datetime) -> int:
    """clamp(base + active ledger points) with the tiny rulebook's scale (0..200, base 100)."""
    total = store.con.execute(
        "SELECT coalesce(sum(points), 0) FROM ledger l JOIN citizens c USING (ckey) WHERE c.citizen_id = ? "
        "AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
        [cid, utc(at), utc(at)],
    ).fetchall()[0][0]
    return min(max(100 + total, 0), 200)


def entries(store: Store, cid: str) -> list[tuple]:
    return store.con.execute(
        """SELECT list_id, cause, start, "end" FROM list_entries e JOIN citizens c USING (ckey)
           WHERE c.citizen_id = ? ORDER BY start, list_id""",
        [cid],
    ).fetchall()


def run(store: Store, as_of: dt.datetime, pin: str | None = None) -> None:
    Engine(store).run(as_of=as_of, pin=pin)


def test_points_and_expiry(store, make_citizens):
    a, b = make_citizens(store, 2)
    store.ingest(
        [
            rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100),
            rec("r2", a, "late_bill_payment", cst(2021, 6, 1), days_late=30),
            rec("r3", b, "late_bill_payment", cst(2021, 3, 1), days_late=29),
        ],
        now=NOW,
    )
    run(store, cst(2023, 1, 1))
    assert score(store, a, cst(2021, 2, 1)) == 100
    assert score(store, a, cst(2021, 4, 1)) == 60
    assert score(store, a, cst(2021, 7, 1)) == 50
    assert score(store, a, cst(2022, 3, 2)) == 90  # the -40 expired after 1y
    assert score(store, a, cst(2022, 6, 2)) == 100
    assert score(store, b, cst(2021, 7, 1)) == 100  # 29 days is below the 30-day threshold
    pts = store.con.execute("SELECT points, valid_to - valid_from FROM ledger ORDER BY rkey").fetchall()
    assert [p for p, _ in pts] == [-40, -10]


def test_clamp_at_scale_min(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec(f"r{i}", a, "late_bill_payment", cst(2021, 3, 1 + i), days_late=100) for i in range(4)], now=NOW)
    run(store, cst(2021, 8, 1))
    log = store.con.execute("SELECT score FROM score_log ORDER BY assessed_at DESC LIMIT 1").fetchall()[0][0]
    assert log == 0 == score(store, a, cst(2021, 5, 1))


def test_cap_per_year(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest(
        [rec(f"v{i}", a, "volunteer_work", cst(2021, 2 + i, 1), hours=1) for i in range(5)]
        + [rec("v9", a, "volunteer_work", cst(2022, 2, 1), hours=1)],
        now=NOW,
    )
    run(store, cst(2022, 6, 1))
    by_year = dict(
        store.con.execute("SELECT year(valid_from + INTERVAL 8 HOUR), sum(points) FROM ledger GROUP BY 1").fetchall()
    )
    assert by_year == {2021: 10, 2022: 5}
    assert score(store, a, cst(2022, 3, 1)) == 115


def test_version_change_no_retroactive_punishment(make_store, make_citizens):
    store = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2))
    a, b = make_citizens(store, 2)
    store.ingest(
        [
            rec("old", a, "late_bill_payment", cst(2023, 12, 31, 23, 59), days_late=100),
            rec("new", b, "late_bill_payment", cst(2024, 1, 1, 0, 0), days_late=100),
        ],
        now=NOW,
    )
    run(store, cst(2024, 6, 1))
    pts = dict(store.con.execute("SELECT r.record_id, l.points FROM ledger l JOIN records r USING (rkey)").fetchall())
    assert pts == {"old": -40, "new": -80}
    # each assessment logs the versions in force on its day: version 2 from its first day, 1 January 2024
    assert sorted(set(store.con.execute("SELECT assessed_at, version FROM score_log").fetchall())) == [
        (utc(cst(2023, 12, 1)), "testcity@1+national@1"),
        (utc(cst(2024, 1, 1)), "testcity@2+national@1"),
    ]
    # replay: every record under version 2
    run(store, cst(2024, 6, 1), pin="testcity@2")
    pts = dict(store.con.execute("SELECT r.record_id, l.points FROM ledger l JOIN records r USING (rkey)").fetchall())
    assert pts == {"old": -80, "new": -80}
    run(store, cst(2024, 6, 1), pin="testcity@1")
    pts = dict(store.con.execute("SELECT r.record_id, l.points FROM ledger l JOIN records r USING (rkey)").fetchall())
    assert pts == {"old": -40, "new": -40}


def test_grade_list_entry_and_exit_with_min_stay(store, make_citizens):
    (a,) = make_citizens(store, 1)
    # 100 - 3*40 = -20 → clamped 0 → grade D from the April assessment; the points expire a year later
    store.ingest([rec(f"r{i}", a, "late_bill_payment", cst(2021, 3, 10 + i), days_late=100) for i in range(3)], now=NOW)
    run(store, cst(2022, 12, 1))
    got = [e for e in entries(store, a) if e[0] == "blacklist"]
    assert len(got) == 1
    _, cause, start, end = got[0]
    assert cause == "grade"
    assert start == utc(cst(2021, 4, 1))
    assert end == utc(cst(2022, 4, 1))  # points expire 2022-03-10..12; next assessment 1 Apr


def quick_recovery(a: str) -> list:
    """Down to D for one month: a severe late payment, then a court listing lifted a month later."""
    return [
        rec("l1", a, "late_bill_payment", cst(2021, 3, 5), days_late=100),
        rec("c1", a, "court_defaulter_listing", cst(2021, 3, 10), ground=1, term_days=0),
        rec("d1", a, "court_defaulter_delisting", cst(2021, 4, 10)),
    ]


def test_min_stay_holds_after_quick_recovery(store, make_citizens):
    """Down to D for one month only: the grade list keeps the citizen for its min_stay (3m), not one month.

    By hand: 100 - 40 (late.severe, 5 Mar) - 50 (court defaulter, 10 Mar to 10 Apr) = 10 → D at the
    1 April assessment; on 1 May the listing is gone: 100 - 40 = 60 → B, which alone would end the stay
    then. min_stay 3m holds it to the first assessment at least three months after entry: 1 July.
    """
    (a,) = make_citizens(store, 1)
    store.ingest(quick_recovery(a), now=NOW)
    run(store, cst(2021, 12, 1))
    assert score(store, a, cst(2021, 4, 1)) == 10 and score(store, a, cst(2021, 5, 1)) == 60
    by_grade = [e for e in entries(store, a) if e[0] == "blacklist" and e[1] == "grade"]
    assert by_grade == [("blacklist", "grade", utc(cst(2021, 4, 1)), utc(cst(2021, 7, 1)))]


def test_a_run_as_of_before_the_earliest_time_is_refused_and_writes_nothing(store, make_citizens):
    """A projection is bounded like every named time (socialcredit.clock): 1900 is before the system's time."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100)], now=NOW)
    with pytest.raises(TimeOutOfBounds, match=r"^as_of: 1900-01-01T00:00:00\+08:00 is before "):
        run(store, cst(1900, 1, 1))
    assert store.con.execute("SELECT count(*) FROM score_log").fetchall() == [(0,)]


def test_a_run_keeps_its_working_tables_out_of_the_store_file(store, make_citizens):
    """The month loop's working state (the current and next scores, who moved, the deltas) is temporary: it
    never lands in the store's file beside the facts and derived tables."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100)], now=NOW)
    run(store, cst(2021, 6, 1))
    kept = {
        t
        for (t,) in store.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
    }
    assert "score_log" in kept and not kept & {"cur", "nxt", "moved", "deltas", "recs"}


NO_NETWORK_YAML = NATIONAL_YAML.replace(
    """  - id: contacts
    characteristic: blacklisted_contacts
    when: "share >= 0.5"
    points: -7
    source: illustrative
""",
    "",
)


def test_a_run_continuing_inside_a_grade_stay_still_ends_it_at_its_min_stay(make_store, make_citizens):
    """The case above, but the first run stops on 15 May 2021, inside the stay (entered 1 April, grade B again
    from 1 May), and the next continues from its carried state. Without a network rule (which assesses every
    month once anyone is listed) nothing else moves the citizen after 1 May, yet the stay still ends at the
    first assessment three months after entry, 1 July."""
    assert NO_NETWORK_YAML != NATIONAL_YAML
    store = make_store(NO_NETWORK_YAML, city_yaml())
    (a,) = make_citizens(store, 1)
    store.ingest(quick_recovery(a), now=NOW)
    run(store, cst(2021, 5, 15))
    assert [e for e in entries(store, a) if e[1] == "grade"] == [("blacklist", "grade", utc(cst(2021, 4, 1)), None)]
    eng = Engine(store)
    eng.run(as_of=cst(2021, 12, 1))
    assert eng.carried
    assert [e for e in entries(store, a) if e[1] == "grade"] == [
        ("blacklist", "grade", utc(cst(2021, 4, 1)), utc(cst(2021, 7, 1)))
    ]


def test_a_run_records_the_watermark_of_the_facts_it_read_and_a_new_fact_moves_it(store, make_citizens):
    """The watermark is what a handover compares to refuse a run of other facts: the run stores the one it
    read, and an ingest after it gives another."""
    (a,) = make_citizens(store, 1)
    store.ingest([rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100)], now=NOW)
    run(store, cst(2021, 6, 1))
    read = watermark(store)
    assert store.con.execute("SELECT watermark FROM engine_run").fetchall() == [(read,)]
    store.ingest([rec("r2", a, "late_bill_payment", cst(2021, 4, 1), days_late=100)], now=NOW)
    assert watermark(store) != read


def test_a_back_dated_record_extends_a_grade_stay_the_last_run_had_ended(store, make_citizens):
    """An incremental run (only records appended) resumes inside a grade stay the last run had ended.

    By hand, as in the test above: D from the 1 April 2021 assessment, B again on 1 May, so the first run
    ends the blacklist stay at its min_stay, 1 July. Then a late payment of 10 May (-40, valid a year) is
    sent late: from 1 June 100 - 40 - 40 = 20 → D until l1 expires (5 March 2022), and on 1 April 2022
    100 - 40 = 60 → B. One stay, 1 April 2021 to 1 April 2022: the resumed run reopens the stay it restored
    (it ended after the resume point), never a second stay beside a closed one.
    """
    (a,) = make_citizens(store, 1)
    store.ingest(quick_recovery(a), now=NOW)
    run(store, cst(2021, 12, 1))
    by_grade = [e for e in entries(store, a) if e[0] == "blacklist" and e[1] == "grade"]
    assert by_grade == [("blacklist", "grade", utc(cst(2021, 4, 1)), utc(cst(2021, 7, 1)))]
    store.ingest([rec("l2", a, "late_bill_payment", cst(2021, 5, 10), days_late=100)], now=NOW)
    eng = Engine(store)
    eng.run(as_of=cst(2022, 6, 1))
    assert eng.resumed_from == utc(cst(2021, 5, 10))  # the incremental path: assessments before it kept
    assert [score(store, a, cst(2021, m, 1)) for m in (5, 6)] == [60, 20]
    assert score(store, a, cst(2022, 4, 1)) == 60
    by_grade = [e for e in entries(store, a) if e[0] == "blacklist" and e[1] == "grade"]
    assert by_grade == [("blacklist", "grade", utc(cst(2021, 4, 1)), utc(cst(2022, 4, 1)))]


def test_records_after_the_last_run_continue_from_its_carried_state(store, make_citizens):
    """Records dated after the last run's as_of: the next run continues from the state that run carried
    (running sums, the expiry it left pending) and assesses only the months after it.

    By hand: 100 - 40 (late.severe, 5 March 2021, valid a year) + 5 (volunteer, 1 June 2021) = 65 at the
    first run (as of 15 December 2021). Sent later: volunteering on 20 December 2021, 10 January and
    10 April 2022 (+5 each; 2022's two stay within its cap of 10). Assessments: 1 January 2022 70 (B),
    1 February 75, 1 April 115 (the -40 expired on 5 March), 1 May 120 = A, so the whitelist from 1 May.
    """
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("l1", a, "late_bill_payment", cst(2021, 3, 5), days_late=100),
            rec("v1", a, "volunteer_work", cst(2021, 6, 1), hours=1),
        ],
        now=NOW,
    )
    run(store, cst(2021, 12, 15))
    # the carried state is the end state of the last month assessed, 1 December, and says so
    assert store.con.execute("SELECT carried_at FROM engine_run").fetchall() == [(utc(cst(2021, 12, 1)),)]
    # and holds every citizen's state then, in place: the running sum of the points in force (-40 + 5), 65
    assert store.con.execute("SELECT raw, net, score FROM engine_carry").fetchall() == [(-35, 0, 65)]
    store.ingest(
        [
            rec("v2", a, "volunteer_work", cst(2021, 12, 20), hours=1),
            rec("v3", a, "volunteer_work", cst(2022, 1, 10), hours=1),
            rec("v4", a, "volunteer_work", cst(2022, 4, 10), hours=1),
        ],
        now=NOW,
    )
    eng = Engine(store)
    eng.run(as_of=cst(2022, 6, 1))
    assert eng.carried  # the path under test: continued from the carried state
    log = store.con.execute(
        "SELECT assessed_at, score, grade FROM score_log WHERE assessed_at >= ? ORDER BY 1", [utc(cst(2021, 12, 1))]
    ).fetchall()
    assert log == [
        (utc(cst(2022, 1, 1)), 70, "B"),
        (utc(cst(2022, 2, 1)), 75, "B"),
        (utc(cst(2022, 4, 1)), 115, "B"),
        (utc(cst(2022, 5, 1)), 120, "A"),
    ]
    assert [e for e in entries(store, a) if e[0] == "whitelist"] == [("whitelist", "grade", utc(cst(2022, 5, 1)), None)]


def test_behaviour_trigger_list_with_duration(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec("s1", a, "smoking_on_train", cst(2021, 5, 5, 12))], now=NOW)
    run(store, cst(2022, 1, 1))
    assert entries(store, a) == [
        ("rail_list", "behaviour", utc(cst(2021, 5, 5, 12)), utc(cst(2021, 5, 5, 12)) + dt.timedelta(days=180))
    ]


def test_characteristic_points_and_trigger_while_it_holds(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("l1", a, "court_defaulter_listing", cst(2021, 5, 5), ground=1, term_days=0),
            rec("d1", a, "court_defaulter_delisting", cst(2021, 9, 5)),
        ],
        now=NOW,
    )
    run(store, cst(2022, 6, 1))
    assert score(store, a, cst(2021, 5, 4)) == 100
    assert score(store, a, cst(2021, 6, 1)) == 50
    assert score(store, a, cst(2021, 9, 6)) == 100
    trig = [e for e in entries(store, a) if e[1] == "characteristic"]
    assert trig == [("blacklist", "characteristic", utc(cst(2021, 5, 5)), utc(cst(2021, 9, 5)))]


def test_characteristic_term_days_ends_it(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest([rec("l1", a, "court_defaulter_listing", cst(2021, 5, 5), ground=2, term_days=30)], now=NOW)
    run(store, cst(2022, 6, 1))
    assert score(store, a, cst(2021, 5, 6)) == 50
    assert score(store, a, cst(2021, 6, 5)) == 100


def test_a_characteristic_carries_only_its_own_attributes(tmp_path):
    """A catalog whose court_defaulter carries `ground` alone: the listing's `amount` (which another
    characteristic carries, so the intervals have the column) stays out of court_defaulter's interval."""
    from conftest import citizen
    from socialcredit.catalog import default_catalog

    full = default_catalog()
    chars = {
        **full.characteristics,
        "court_defaulter": full.characteristics["court_defaulter"].model_copy(update={"attributes": ["ground"]}),
    }
    with Store(tmp_path / "c.duckdb", catalog=full.model_copy(update={"characteristics": chars})) as store:
        store.init(load_shipped_rulebooks=False)
        for i, text in enumerate((NATIONAL_YAML, city_yaml())):
            store.add_rulebook(text, f"layer{i}.yaml")
        a = citizen(1)["citizen_id"]
        store.add_citizens([citizen(1)])
        store.ingest(
            [rec("l1", a, "court_defaulter_listing", cst(2021, 5, 5), ground=1, term_days=0, amount=5000)], now=NOW
        )
        run(store, cst(2021, 9, 1))
        assert store.con.execute("SELECT characteristic, ground, amount FROM characteristic_intervals").fetchall() == [
            ("court_defaulter", 1, None)
        ]


def test_memory_no_whitelist_after_blacklist(store, make_citizens):
    a, b = make_citizens(store, 2)
    vol = [rec(f"v{c}{i}", c, "volunteer_work", cst(2022, 1 + i, 2), hours=1) for c in (a, b) for i in range(2)]
    # a was blacklisted (court defaulter) in 2021 and delisted; b never was. Both then volunteer up
    # to 110 … not enough for A (120): add the caps' two years.
    vol += [rec(f"w{c}{i}", c, "volunteer_work", cst(2023, 1 + i, 2), hours=1) for c in (a, b) for i in range(2)]
    store.ingest(
        [
            rec("l1", a, "court_defaulter_listing", cst(2021, 3, 1), ground=1, term_days=0),
            rec("d1", a, "court_defaulter_delisting", cst(2021, 4, 1)),
            *vol,
        ],
        now=NOW,
    )
    run(store, cst(2023, 6, 1))
    assert score(store, b, cst(2023, 3, 1)) == 120 == score(store, a, cst(2023, 3, 1))
    assert any(e[0] == "whitelist" for e in entries(store, b))
    assert not any(e[0] == "whitelist" for e in entries(store, a))
    assert any(e[0] == "blacklist" for e in entries(store, a))


def test_network_rule_one_month_lag(store, make_citizens):
    a, b = make_citizens(store, 2, contacts={0: [1]})
    store.ingest([rec("l1", b, "court_defaulter_listing", cst(2021, 5, 10), ground=1, term_days=0)], now=NOW)
    run(store, cst(2021, 9, 1))
    net = store.con.execute(
        "SELECT valid_from, points FROM ledger l JOIN citizens c USING (ckey) WHERE c.citizen_id = ? "
        "AND source = 'network' ORDER BY valid_from",
        [a],
    ).fetchall()
    # b listed 10 May; a's first month with a blacklisted contact at the start of the period is June
    assert net and net[0] == (utc(cst(2021, 6, 1)), -7)
    assert score(store, a, cst(2021, 5, 20)) == 100
    assert score(store, a, cst(2021, 6, 15)) == 93


# --------------------------------------------------------------------------- order independence

BEHAVIOURS = [
    "late_bill_payment",
    "volunteer_work",
    "smoking_on_train",
    "court_defaulter_listing",
    "court_defaulter_delisting",
]


def _random_records(rnd: random.Random, ids: list[str], n: int) -> list[dict]:
    out = []
    for i in range(n):
        b = rnd.choice(BEHAVIOURS)
        at = cst(2021, 1, 1) + dt.timedelta(days=rnd.randrange(0, 300), hours=rnd.randrange(24))
        attrs = {
            "late_bill_payment": {"days_late": rnd.choice([0, 29, 30, 31, 89, 90, 200])},
            "volunteer_work": {"hours": 1},
            "court_defaulter_listing": {"ground": 1, "term_days": rnd.choice([0, 60])},
        }.get(b, {})
        out.append(rec(f"x{i}", rnd.choice(ids), b, at, **attrs))
    return out


def _standings(store: Store) -> tuple:
    ledger = store.con.execute(
        "SELECT c.citizen_id, sum(points) FROM ledger JOIN citizens c USING (ckey) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    lists = store.con.execute(
        """SELECT c.citizen_id, list_id, cause, start, "end" FROM list_entries JOIN citizens c USING (ckey)
           ORDER BY ALL"""
    ).fetchall()
    scores = store.con.execute(
        "SELECT c.citizen_id, assessed_at, score, grade FROM score_log JOIN citizens c USING (ckey) ORDER BY ALL"
    ).fetchall()
    return ledger, lists, scores


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 25), batches=st.integers(1, 3))
def test_order_and_batching_do_not_matter(make_store, make_citizens, seed, n, batches):
    rnd = random.Random(seed)
    s1, s2 = make_store(memory=True), make_store(memory=True)
    ids1 = make_citizens(s1, 4, contacts={0: [1, 2], 3: [1]})
    ids2 = make_citizens(s2, 4, contacts={0: [1, 2], 3: [1]})
    assert ids1 == ids2
    records = _random_records(rnd, ids1, n)
    s1.ingest(records, now=NOW)
    shuffled = records[:]
    rnd.shuffle(shuffled)
    cut = -(-len(shuffled) // batches)
    for i in range(0, len(shuffled), cut):
        s2.ingest(shuffled[i : i + cut], now=NOW)
    as_of = cst(2021, 12, 1)
    run(s1, as_of)
    run(s2, as_of)
    first = _standings(s1)
    assert first == _standings(s2)
    rep = s1.ingest(records, now=NOW)
    assert rep.accepted == 0 and rep.duplicates == len(records)
    run(s1, as_of)
    assert _standings(s1) == first


def test_scores_for_everyone_from_both_halves_of_the_ledger(store, make_citizens):
    """Engine.scores: every citizen, records and characteristics in force, clamped; the same as the ledger says."""
    a, b, c = make_citizens(store, 3)
    store.ingest(
        [
            rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100),
            rec("l1", b, "court_defaulter_listing", cst(2021, 5, 5), ground=1, term_days=0),
        ]
        + [rec(f"x{i}", a, "late_bill_payment", cst(2021, 4, 1 + i), days_late=100) for i in range(3)],
        now=NOW,
    )
    run(store, cst(2022, 6, 1))
    eng = Engine(store)
    eng.prepare()
    eng.load_compiled()  # the ledger view, and an empty state ledger that the next steps fill again
    eng.records_table(utc(cst(2022, 6, 1)))
    eng.characteristics()
    for at in (cst(2021, 2, 1), cst(2021, 6, 1), cst(2022, 5, 1)):
        got = dict(zip(*eng.scores(at).to_pydict().values(), strict=True))
        keys = dict(store.con.execute("SELECT citizen_id, ckey FROM citizens").fetchall())
        assert len(got) == 3
        assert {cid: got[keys[cid]] for cid in (a, b, c)} == {cid: score(store, cid, at) for cid in (a, b, c)}
    assert got[keys[c]] == 100 and got[keys[b]] == 50
