"""Tests for the deliberate bugs of issue #18 that the suite let through (mutants that survived it).

Every expected value is worked out by hand from conftest's tiny national rulebook (base 100, grade A from
120, volunteer_work +5 capped at 10 per CST year, court_defaulter -50 and the blacklist trigger, memory
`once`: after `blacklist` never `whitelist`), never recomputed with the code under test.
"""

from __future__ import annotations

import datetime as dt

from conftest import NATIONAL_YAML, city_yaml, cst, rec
from socialcredit.audit import AuditTrail, entry_hash, verify
from socialcredit.decisions import decide, standing
from socialcredit.engine import Engine
from socialcredit.store import Store

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def points_by_record(store: Store) -> dict[str, int]:
    return dict(
        store.con.execute(
            "SELECT r.record_id, sum(l.points) FROM ledger l JOIN records r USING (rkey) GROUP BY 1"
        ).fetchall()
    )


def stays(store: Store, cid: str, list_id: str) -> list[tuple[dt.datetime, dt.datetime | None]]:
    return store.con.execute(
        """SELECT start, "end" FROM list_entries e JOIN citizens c USING (ckey)
           WHERE c.citizen_id = ? AND list_id = ? ORDER BY start""",
        [cid, list_id],
    ).fetchall()


# 1 ------------------------------------------------------------------ the cap's year is the CST calendar year


def test_cap_year_is_the_cst_year_a_record_just_after_cst_midnight_starts_a_new_cap(store, make_citizens):
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("v1", a, "volunteer_work", cst(2023, 12, 31, 14), hours=1),
            rec("v2", a, "volunteer_work", cst(2023, 12, 31, 15), hours=1),
            # 2024-01-01 00:30 CST is 2023-12-31 16:30 UTC: in 2024 by CST, so 2023's full cap does not bind
            rec("v3", a, "volunteer_work", cst(2024, 1, 1, 0, 30), hours=1),
        ],
        now=NOW,
    )
    Engine(store).run(as_of=cst(2024, 2, 1))
    assert points_by_record(store) == {"v1": 5, "v2": 5, "v3": 5}
    st = standing(store, a, cst(2024, 1, 2))
    assert st.running_score == 115  # 100 + 5 + 5 + 5 (the running score: the next assessment publishes it)


def test_cap_still_binds_within_one_cst_year_across_utc_midnight(store, make_citizens):
    """The converse: 2023-01-01 00:30 CST (2022-12-31 16:30 UTC) shares 2023's cap with later 2023 records."""
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("w1", a, "volunteer_work", cst(2023, 1, 1, 0, 30), hours=1),
            rec("w2", a, "volunteer_work", cst(2023, 3, 1), hours=1),
            rec("w3", a, "volunteer_work", cst(2023, 4, 1), hours=1),
        ],
        now=NOW,
    )
    Engine(store).run(as_of=cst(2023, 6, 1))
    assert points_by_record(store) == {"w1": 5, "w2": 5, "w3": 0}


# 2 ------------------------------------------------------------------ memory: once blacklisted, never whitelisted


def _whitelisted_then_blacklisted(store: Store, a: str) -> None:
    """Volunteering 2022 and 2023 (two a year, +10 each, valid 2y) lifts `a` to 120 = A by February 2023, so the
    1 March 2023 assessment whitelists them; a court-defaulter listing 10 May–10 June 2023 blacklists them
    (trigger) and takes 50 points; from 10 June they are back at 120 = A."""
    store.ingest(
        [
            *(rec(f"v{y}{m}", a, "volunteer_work", cst(y, m, 2), hours=1) for y in (2022, 2023) for m in (1, 2)),
            rec("l1", a, "court_defaulter_listing", cst(2023, 5, 10), ground=1, term_days=0),
            rec("d1", a, "court_defaulter_delisting", cst(2023, 6, 10)),
        ],
        now=NOW,
    )
    Engine(store).run(as_of=cst(2023, 9, 1))


def test_memory_ends_the_whitelist_at_the_first_blacklisting_and_bars_it_after(store, make_citizens):
    (a,) = make_citizens(store, 1)
    _whitelisted_then_blacklisted(store, a)
    assert stays(store, a, "blacklist") == [(utc(cst(2023, 5, 10)), utc(cst(2023, 6, 10)))]
    # the whitelist stay ends at the blacklisting itself (not at the 1 June assessment), and none follows
    # although the grade is A again from 10 June (July and August assessments)
    assert stays(store, a, "whitelist") == [(utc(cst(2023, 3, 1)), utc(cst(2023, 5, 10)))]
    assert standing(store, a, cst(2023, 8, 15)).grade == "A"
    codes = {m.measure for m in standing(store, a, cst(2023, 8, 15)).measures}
    assert "hospital_priority" not in codes
    assert "hospital_priority" in {m.measure for m in standing(store, a, cst(2023, 4, 15)).measures}
    d = decide(store, a, "hospital.queue", cst(2023, 8, 15), record=False)
    assert d.outcome == "allow" and d.reasons == []


TRIGGERED_WHITELIST_YAML = NATIONAL_YAML.replace(
    "    grades: [A]\n    measures: [hospital_priority]\n",
    "    grades: [A]\n    triggers:\n      - behaviour: volunteer_work\n        duration: 30d\n"
    "    measures: [hospital_priority]\n",
)


def test_memory_removes_a_whitelist_stay_that_begins_after_the_blacklisting(make_store, make_citizens):
    """A whitelist entered by a trigger (not by grade, whose entry checks the bar itself) after a past
    blacklisting is removed by memory; a citizen never blacklisted keeps the same stay."""
    assert TRIGGERED_WHITELIST_YAML != NATIONAL_YAML
    store = make_store(TRIGGERED_WHITELIST_YAML, city_yaml())
    a, b = make_citizens(store, 2)
    store.ingest(
        [
            rec("l1", a, "court_defaulter_listing", cst(2021, 5, 5), ground=1, term_days=0),
            rec("d1", a, "court_defaulter_delisting", cst(2021, 9, 5)),
            rec("va", a, "volunteer_work", cst(2022, 3, 1), hours=1),
            rec("vb", b, "volunteer_work", cst(2022, 3, 1), hours=1),
        ],
        now=NOW,
    )
    Engine(store).run(as_of=cst(2022, 6, 1))
    assert stays(store, a, "blacklist") == [(utc(cst(2021, 5, 5)), utc(cst(2021, 9, 5)))]
    assert stays(store, b, "whitelist") == [(utc(cst(2022, 3, 1)), utc(cst(2022, 3, 31)))]  # 1 March + 30 days
    assert stays(store, a, "whitelist") == []
    assert "hospital_priority" not in {m.measure for m in standing(store, a, cst(2022, 3, 10)).measures}
    assert "hospital_priority" in {m.measure for m in standing(store, b, cst(2022, 3, 10)).measures}
    d = decide(store, a, "hospital.queue", cst(2022, 3, 10), record=False)
    assert d.outcome == "allow" and d.reasons == []


# 3 ------------------------------------------------------------------ memory's lasting measures reach decisions

LASTING_YAML = NATIONAL_YAML.replace(
    "    never_lists: [whitelist]\n", "    never_lists: [whitelist]\n    measures: [rail_ban]\n"
)


def test_a_memory_entry_s_lasting_measure_binds_decisions_after_the_stay_ended(make_store, make_citizens):
    assert LASTING_YAML != NATIONAL_YAML
    store = make_store(LASTING_YAML, city_yaml())
    (a,) = make_citizens(store, 1)
    store.ingest(
        [
            rec("l1", a, "court_defaulter_listing", cst(2021, 5, 5), ground=1, term_days=0),
            rec("d1", a, "court_defaulter_delisting", cst(2021, 9, 5)),
        ],
        now=NOW,
    )
    Engine(store).run(as_of=cst(2022, 6, 1))
    assert stays(store, a, "blacklist") == [(utc(cst(2021, 5, 5)), utc(cst(2021, 9, 5)))]
    # off the blacklist since 5 September 2021, but `once` keeps rail_ban for good from the first stay
    d = decide(store, a, "rail.ticket", cst(2022, 3, 1), record=False)
    assert d.outcome == "deny"
    assert [(r["measure"], r["via"]) for r in d.reasons] == [("rail_ban", "memory:once")]
    ms = [(m.measure, m.via, m.since, m.until) for m in standing(store, a, cst(2022, 3, 1)).measures]
    assert ms == [("rail_ban", "memory:once", utc(cst(2021, 5, 5)), None)]
    # before the first stay nothing binds
    assert decide(store, a, "rail.ticket", cst(2021, 5, 1), record=False).outcome == "allow"


# 4, 5 ------------------------------------------------------------------ duplicates: (agency, record_id)


def test_an_identical_record_twice_in_one_batch_is_stored_once(store, make_citizens):
    (a,) = make_citizens(store, 1)
    r = rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=40)
    report = store.ingest([r, dict(r)], now=NOW)
    assert (report.accepted, report.duplicates, report.duplicate_ids) == (1, 1, ["r1"])
    assert store.con.execute("SELECT count(*) FROM records").fetchall() == [(1,)]
    Engine(store).run(as_of=cst(2021, 6, 1))
    assert points_by_record(store) == {"r1": -10}


def test_the_same_record_id_from_another_agency_is_another_record(store, make_citizens):
    (a,) = make_citizens(store, 1)
    first = store.ingest([rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=40)], now=NOW)
    assert (first.accepted, first.duplicates) == (1, 0)
    other = store.ingest([rec("r1", a, "volunteer_work", cst(2021, 4, 1), hours=2)], now=NOW)
    assert (other.accepted, other.duplicates, other.duplicate_ids) == (1, 0, [])
    assert sorted(store.con.execute("SELECT agency, record_id FROM records").fetchall()) == [
        ("state_grid", "r1"),
        ("volunteer_association", "r1"),
    ]


def test_the_same_record_id_from_two_agencies_in_one_batch_is_two_records(store, make_citizens):
    """Within one batch too: the in-batch repeat and conflict checks key on (agency, record_id). Two utilities
    both report a late bill `r1` (40 and 100 days late): two records, -10 and -40."""
    (a,) = make_citizens(store, 1)
    grid = rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=40)
    water = {**rec("r1", a, "late_bill_payment", cst(2021, 3, 2), days_late=100), "reported_by": "city_utilities"}
    report = store.ingest([grid, water], now=NOW)
    assert (report.accepted, report.duplicates, report.duplicate_ids) == (2, 0, [])
    Engine(store).run(as_of=cst(2021, 6, 1))
    assert sorted(
        store.con.execute(
            "SELECT r.agency, sum(l.points) FROM ledger l JOIN records r USING (rkey) GROUP BY 1"
        ).fetchall()
    ) == [("city_utilities", -40), ("state_grid", -10)]


# 7 ------------------------------------------------------------------ the audit hash chains over `prev`


def test_rehashing_an_edited_entry_and_relinking_the_next_still_fails_verify(make_store):
    store = make_store()
    trail = AuditTrail(store)
    for i in range(3):
        trail.append("admin", "citizen.standing", None, i=i)
    trail.flush()
    assert verify(store).ok
    con = store.con
    cols = "seq, logged_at, principal, action, citizen_id, detail, prev"
    # the tamperer edits entry 2, gives it a hash that matches its new content, and points entry 3 at it
    con.execute("""UPDATE audit_log SET detail = '{"i": 99}' WHERE seq = 2""")
    (row,) = con.execute(f"SELECT {cols} FROM audit_log WHERE seq = 2").fetchall()
    forged = entry_hash(*row)
    con.execute("UPDATE audit_log SET hash = ? WHERE seq = 2", [forged])
    con.execute("UPDATE audit_log SET prev = ? WHERE seq = 3", [forged])
    v = verify(store)
    assert not v.ok
    # entry 2 now matches its hash and entry 3 follows it, but entry 3's hash covered the old link
    assert v.problems == ["entry 3: content does not match its hash (altered)"]
