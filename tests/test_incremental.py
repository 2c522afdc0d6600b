"""Incremental engine runs equal full ones: records arrive month by month, some back-dated, some ahead of
the run's as_of, and after every run the derived tables match a from-scratch run over the same facts."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NATIONAL_YAML, SLOW_SCALE, citizen, city_yaml, cst, rec
from socialcredit.clock import stored
from socialcredit.engine import Engine, month_start_utc, next_month_utc, utc_naive
from socialcredit.store import Store

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
START = utc_naive(cst(2023, 7, 1))  # the city's version 2 takes over on 2024-01-01, mid-run
MONTHS = [START]
for _ in range(13):
    MONTHS.append(next_month_utc(MONTHS[-1]))
BEHAVIOURS = [
    "late_bill_payment",
    "late_bill_payment",
    "volunteer_work",
    "smoking_on_train",
    "court_defaulter_listing",
    "court_defaulter_delisting",
]
CONTACTS = {0: [1, 2], 1: [0, 3], 2: [0], 3: [1, 4], 4: [3, 5], 5: [4]}
SCALE = SLOW_SCALE
HISTORIES = max(2, round(5 * SCALE))
"""Generated histories for the month-by-month property: five by hand, two in CI (each is twelve months of an
incremental run beside a full one, ~17 s on two shared cores); the fixed cases below run whole at any scale."""


def _records(rnd: random.Random, ids: list[str], n: int) -> list[tuple[int, dict]]:
    """(month index at which the record arrives, record): most arrive in their month, some late, a few early."""
    out = []
    for i in range(n):
        b = rnd.choice(BEHAVIOURS)
        m = rnd.randrange(0, 12)
        at = MONTHS[m] + dt.timedelta(days=rnd.randrange(0, 28), hours=rnd.randrange(24))
        if rnd.random() < 0.05:
            at = MONTHS[m]  # exactly at an assessment
        attrs = {
            "late_bill_payment": {"days_late": rnd.choice([0, 30, 90, 200])},
            "volunteer_work": {"hours": 1},
            "court_defaulter_listing": {"ground": 1, "term_days": rnd.choice([0, 45])},
        }.get(b, {})
        arrive = m + rnd.choice([0, 0, 0, 0, 1, 2, 5, -1])
        out.append((min(max(arrive, 0), 11), rec(f"x{i}", rnd.choice(ids), b, at.replace(tzinfo=dt.UTC), **attrs)))
    return out


def _derived(store: Store, as_of: dt.datetime) -> tuple:
    con = store.con
    got = tuple(
        con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
        # and the state the next run starts from: the loop's end state and the expiries it has yet to count
        for t in ("score_log", "list_entries", "notifications", "ledger", "engine_carry", "engine_pending")
    )
    eng = Engine(store)
    eng.prepare()
    scores = [
        sorted(zip(*eng.scores(at).to_pydict().values(), strict=True))
        for at in (as_of, month_start_utc(as_of), START + dt.timedelta(days=40))
    ]
    return (*got, scores)


def _full(store: Store, as_of: dt.datetime) -> Engine:
    eng = Engine(store)  # a from-scratch run: nothing of the last run kept, the record ledger scored anew
    assert eng.run(stored(as_of), full=True).resumed_from is None
    assert eng.ledger_update is not None and eng.ledger_update.rebuilt
    return eng


def _contact_change(rnd: random.Random, stores: tuple[Store, ...], m: int) -> None:
    """Maybe end one contact in force or start a new one, dated in month `m` (at its start, or later in it),
    the same in every store: the network rule reads the contacts in force at each assessment."""
    if rnd.random() < 0.5:
        return
    at = MONTHS[m] + (dt.timedelta(0) if rnd.random() < 0.3 else dt.timedelta(days=rnd.randrange(1, 27)))
    ties = (
        stores[0]
        .con.execute(
            "SELECT ckey, other FROM relations"
            " WHERE kind = 'contact' AND valid_to IS NULL AND ckey < other ORDER BY ALL"
        )
        .fetchall()
    )
    n = stores[0].con.execute("SELECT count(*) FROM citizens").fetchall()[0][0]
    a, b = sorted(rnd.sample(range(n), 2))
    for s in stores:
        if (a, b) in ties:
            s.end_relations([a], [b], "contact", at)
        else:
            s.add_relations([a], [b], "contact", at)


def _month_by_month(make_store, make_citizens, seed: int, n: int, mid_month: bool) -> int:
    rnd = random.Random(seed)
    graph = random.Random(seed + 1)  # its own draws: the records are those the seed always gave
    inc = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2), memory=True)
    full = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2), memory=True)
    ids = make_citizens(inc, 6, contacts=CONTACTS)
    assert make_citizens(full, 6, contacts=CONTACTS) == ids
    # an early record with points fixes the first assessment (else it sits at the rulebook's 2020 start
    # until one arrives, which only makes the runs slow; the move itself is tested below)
    records = [(0, rec("first", ids[0], "late_bill_payment", MONTHS[0] + dt.timedelta(hours=5), days_late=30))]
    records += _records(rnd, ids, n)
    resumed = 0
    for m in range(12):
        batch = [r for k, r in records if k == m]
        rnd.shuffle(batch)
        for s in (inc, full):
            if batch:
                s.ingest(batch, now=NOW)
        _contact_change(graph, (inc, full), m)
        as_of = MONTHS[m + 1]
        if mid_month and rnd.random() < 0.4:
            as_of = MONTHS[m] + dt.timedelta(days=rnd.randrange(1, 27))
        eng = Engine(inc)
        eng.run(stored(as_of))
        resumed += eng.resumed_from is not None
        if rnd.random() < 0.2:  # again, with nothing new: every assessment is kept
            eng = Engine(inc)
            eng.run(stored(as_of))
            assert eng.resumed_from is not None
        _full(full, as_of)
        assert _derived(inc, as_of) == _derived(full, as_of), f"month {m}, as_of {as_of}"
    return resumed


@pytest.mark.slow
@settings(max_examples=HISTORIES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 60), mid_month=st.booleans())
def test_month_by_month_equals_full(make_store, make_citizens, seed, n, mid_month):
    _month_by_month(make_store, make_citizens, seed, n, mid_month)


def test_month_by_month_seeded_resumes(make_store, make_citizens):
    """A larger fixed case that must take the incremental path most months (and still equal full runs)."""
    assert _month_by_month(make_store, make_citizens, 20261126, 150, mid_month=False) >= 6


def test_changes_other_than_appended_records_recompute_fully(make_store, make_citizens):
    store = make_store(memory=True)
    a, b = make_citizens(store, 2, contacts={0: [1]})
    Engine(store).run(cst(2021, 5, 1))  # no ledger yet: assessments from the rulebook's start
    store.ingest(
        [
            rec("r1", a, "late_bill_payment", cst(2021, 3, 1), days_late=100),
            rec("r2", b, "late_bill_payment", cst(2021, 4, 1), days_late=100),
        ],
        now=NOW,
    )

    def resumed(as_of: dt.datetime, pin: str | None = None) -> dt.datetime | None:
        eng = Engine(store)
        eng.run(stored(as_of), pin=pin)
        return eng.resumed_from

    assert resumed(cst(2021, 6, 1)) is None  # the first assessment moved to the first ledger entry's month
    assert resumed(cst(2021, 7, 1)) == utc_naive(cst(2021, 6, 1)) + dt.timedelta(microseconds=1)  # after the last
    assert resumed(cst(2021, 5, 1)) is None  # earlier as_of
    assert resumed(cst(2021, 6, 1), pin="testcity@1") is None  # a replay …
    assert resumed(cst(2021, 7, 1)) is None  # … and the run after it
    store.ingest([rec("r3", a, "late_bill_payment", cst(2021, 4, 15), days_late=100)], now=NOW)
    assert resumed(cst(2021, 7, 1)) == utc_naive(cst(2021, 4, 15))  # back-dated: from its time
    store.retract("state_grid", ["r3"], "wrong", "test")
    assert resumed(cst(2021, 7, 1)) is None
    # a contact ended: a dated fact, so the assessments before it stand and the run resumes from its time
    store.end_relations([store.ckey(a)], [store.ckey(b)], "contact", cst(2021, 5, 10))
    assert resumed(cst(2021, 7, 1)) == utc_naive(cst(2021, 5, 10))
    store.con.execute("DELETE FROM relation_changes WHERE change = 'end'")  # facts removed behind the store's back
    assert resumed(cst(2021, 7, 1)) is None
    assert resumed(cst(2021, 8, 1)) is not None
    # a citizen edited behind the store's back: what scores or the stay index read recomputes fully, the rest not
    for edit in ("UPDATE citizens SET name = 'Another Name'", "UPDATE citizens SET avatar_seed = avatar_seed + 1"):
        store.con.execute(edit)
        assert resumed(cst(2021, 8, 1)) is not None, edit
    for edit in (
        "UPDATE citizens SET jkey = jkey + 1 WHERE ckey = 0",
        "UPDATE citizens SET city = 'elsewhere' WHERE ckey = 0",
        "UPDATE citizens SET birth_date = birth_date + 1 WHERE ckey = 0",
    ):
        store.con.execute(edit)
        assert resumed(cst(2021, 8, 1)) is None, edit


@pytest.mark.parametrize("per", ["year", "quarter", "month"])
def test_carried_state_equals_full_with_expiries_caps_and_clearing(make_store, make_citizens, per):
    """Runs that start from the stored end state (`engine_carry`) equal full ones when entries from before
    the carried month expire in the new months, a cap's period (a year, a quarter or a month) spans the
    carry, and a characteristic set before it is cleared after it; a back-dated record falls back to summing
    the history."""
    national = NATIONAL_YAML.replace("    per: year\n", f"    per: {per}\n")
    assert national.count(f"per: {per}") >= 1
    inc = make_store(national, city_yaml(1), city_yaml(2), memory=True)
    full = make_store(national, city_yaml(1), city_yaml(2), memory=True)
    ids = make_citizens(inc, 6, contacts=CONTACTS)
    assert make_citizens(full, 6, contacts=CONTACTS) == ids
    months = [START]
    for _ in range(20):
        months.append(next_month_utc(months[-1]))
    at = [m.replace(tzinfo=dt.UTC) + dt.timedelta(days=3) for m in months]
    batches = {
        0: [
            rec("a0", ids[0], "late_bill_payment", at[0], days_late=100),
            rec("a1", ids[1], "volunteer_work", at[0], hours=1),
            rec("a2", ids[2], "court_defaulter_listing", at[0], ground=1, term_days=0),
        ],
        1: [
            rec("b0", ids[1], "volunteer_work", at[1], hours=1),
            rec("b1", ids[3], "late_bill_payment", at[1], days_late=30),
        ],
        5: [rec("c0", ids[1], "volunteer_work", at[5], hours=1), rec("c1", ids[4], "volunteer_work", at[5], hours=1)],
        8: [rec("d0", ids[2], "court_defaulter_delisting", at[8])],
        13: [rec("e0", ids[5], "late_bill_payment", at[13], days_late=100)],
        15: [rec("f0", ids[0], "late_bill_payment", at[9], days_late=30)],  # back-dated
    }
    carried = 0
    for m in range(19):
        for s in (inc, full):
            if m in batches:
                s.ingest(batches[m], now=NOW)
        as_of = months[m + 1]
        eng = Engine(inc)
        eng.run(stored(as_of))
        carried += eng.carried
        assert not (eng.carried and m == 15)
        _full(full, as_of)
        assert _derived(inc, as_of) == _derived(full, as_of), f"month {m}"
    assert carried >= 15


def test_assessing_only_who_moved_equals_assessing_everyone(make_store, make_citizens, monkeypatch):
    """A month after the run's first assesses only the citizens whose running sum or network points moved
    (and those a minimum stay holds on a list); the score log, lists and ledger are those of assessing
    everyone every month, whether the months come in one run or month by month."""
    outcomes = []
    for everyone in (False, True):
        if everyone:
            monkeypatch.setattr(Engine, "_assess_everyone", lambda self, needed: True)
        rnd = random.Random(7)
        whole = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2), memory=True)
        monthly = make_store(NATIONAL_YAML, city_yaml(1), city_yaml(2), memory=True)
        ids = make_citizens(whole, 7, contacts=CONTACTS)
        assert make_citizens(monthly, 7, contacts=CONTACTS) == ids
        records = [(0, rec("first", ids[0], "late_bill_payment", MONTHS[0] + dt.timedelta(hours=5), days_late=30))]
        records += _records(rnd, ids[:6], 80)
        # the seventh falls to D in August (blacklisted from 1 September, 3 months at least), is B again when
        # the court listing ends on 18 September, and has nothing new after: the exit on 1 December is due
        # to the minimum stay alone
        records += [
            (1, rec("d1", ids[6], "late_bill_payment", MONTHS[1] + dt.timedelta(days=2), days_late=100)),
            (1, rec("d2", ids[6], "court_defaulter_listing", MONTHS[1] + dt.timedelta(days=3), ground=1, term_days=45)),
        ]
        seen = []
        for m in range(12):
            batch = [r for k, r in records if k == m]
            if batch:
                monthly.ingest(batch, now=NOW)
            Engine(monthly).run(stored(MONTHS[m + 1]))
            seen.append(_derived(monthly, MONTHS[m + 1]))
        whole.ingest([r for _, r in records], now=NOW)
        _full(whole, MONTHS[12])
        seen.append(_derived(whole, MONTHS[12]))
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    keys = dict(whole.con.execute("SELECT citizen_id, ckey FROM citizens").fetchall())
    stays = whole.con.execute(
        "SELECT start, \"end\" FROM list_entries WHERE ckey = ? AND cause = 'grade'", [keys[ids[6]]]
    ).fetchall()
    assert stays == [(MONTHS[2], MONTHS[5])]
    assert any(row[6] == "grade" for row in outcomes[0][-1][1])  # a grade list stay: the lists were exercised


NATIONAL_V2 = (
    NATIONAL_YAML.replace("version: 1", "version: 2", 1)
    .replace("effective_from: 2020-01-01", "effective_from: 2024-03-01", 1)
    .replace("{grade: A, min: 120}", "{grade: A, min: 105}", 1)
)


@pytest.mark.parametrize(
    ("scored_to", "added", "first_day"),
    [
        (6, (city_yaml(2),), cst(2024, 1, 1)),  # scored to the version's first day, as a preview does
        (10, (city_yaml(2),), cst(2024, 1, 1)),  # back-dated into the assessed months
        (10, (NATIONAL_V2,), cst(2024, 3, 1)),  # the parent layer: every city's chain changes then
        # two at once (the last run's rulebooks are the store's without both): from the earlier first day
        (10, (NATIONAL_V2, city_yaml(2)), cst(2024, 1, 1)),
    ],
    ids=["preview", "back-dated", "parent", "two-at-once"],
)
def test_a_run_after_a_new_rulebook_version_redoes_only_the_months_from_its_first_day(
    make_store, make_citizens, scored_to, added, first_day
):
    """A version (or two) added since the last run changes nothing before its first day (a record is scored by the
    version in force when it happened, a month assessed by the one in force then): the next run keeps the
    assessments before it and redoes the rest, and its tables are a full run's over the same facts. (The last
    run's rulebooks are compiled again from the versions without the new one, and resumed over only when
    that gives its fingerprint.)"""
    inc = make_store(NATIONAL_YAML, city_yaml(1), memory=True)
    full = make_store(NATIONAL_YAML, city_yaml(1), memory=True)
    ids = make_citizens(inc, 6, contacts=CONTACTS)
    assert make_citizens(full, 6, contacts=CONTACTS) == ids
    records = [r for _, r in _records(random.Random(11), ids, 60)]
    for s in (inc, full):
        s.ingest(records, now=NOW)
    Engine(inc).run(stored(MONTHS[scored_to]))
    for s in (inc, full):
        for i, text in enumerate(added):
            s.add_rulebook(text, f"added{i}.yaml")
    as_of = MONTHS[scored_to]
    eng = Engine(inc)
    eng.run(stored(as_of))
    assert eng.resumed_from == utc_naive(first_day)
    _full(full, as_of)
    assert _derived(inc, as_of) == _derived(full, as_of)
    # and versions changed behind the store's back (the added ones removed, others added): no resuming
    inc.con.execute("DELETE FROM rulebook_versions WHERE version = 2")
    for i, text in enumerate(added):
        inc.add_rulebook(text.replace("version: 2", "version: 3", 1), f"again{i}.yaml")
    eng = Engine(inc)
    eng.run(stored(as_of))
    assert eng.resumed_from is None


# a second city, from the test city's layer, with pieces of its own (not the national rules')
OTHERCITY = city_yaml(1).replace("testcity", "othercity").replace("Test City", "Other City").replace(
    '"371082"', '"371083"'
) + (
    "rules:\n"
    '  - {id: late.mild, behaviour: late_bill_payment, when: "days_late >= 30 and days_late < 90", points: -15,\n'
    "     valid_for: 6m, source: illustrative}\n"
    "  - {id: volunteer, behaviour: volunteer_work, points: 7, valid_for: 1y, source: illustrative}\n"
)
OTHERCITY_V2 = (
    OTHERCITY.replace("version: 1", "version: 2", 1)
    .replace("effective_from: 2020-01-01", "effective_from: 2024-01-01", 1)
    .replace("points: -15", "points: -25", 1)
)


@pytest.mark.parametrize("added", [city_yaml(2), OTHERCITY_V2], ids=["testcity", "othercity"])
def test_a_new_version_rescores_only_the_records_from_its_first_day(make_store, added):
    """The stored record ledger keeps the rows of the records before a new version's first day and scores the
    rest again, and it is then a full rebuild's, row for row: in two cities each with pieces of its own, so that
    the version's new piece, in either, renumbers neither city's earlier rows."""
    inc, full = (make_store(NATIONAL_YAML, city_yaml(1), OTHERCITY, memory=True) for _ in range(2))
    rows = [citizen(i, city=("testcity", "othercity")[i % 2]) for i in range(6)]
    for i, js in CONTACTS.items():  # across the cities: the network rule's entries name their month's epoch
        rows[i]["contacts"] = [rows[j]["citizen_id"] for j in js]
    as_of, first_day = MONTHS[10], utc_naive(cst(2024, 1, 1))
    # and one record at the first day's very start: scored again, not kept (nor both)
    edge = rec("edge", str(rows[0]["citizen_id"]), "late_bill_payment", first_day.replace(tzinfo=dt.UTC), days_late=90)
    for s in (inc, full):
        s.add_citizens(rows)
        s.ingest([r for _, r in _records(random.Random(13), [str(r["citizen_id"]) for r in rows], 80)], now=NOW)
        s.ingest([edge], now=NOW)
    Engine(inc).run(stored(as_of))
    for s in (inc, full):
        s.add_rulebook(added, "added.yaml")
    eng = Engine(inc)
    eng.run(stored(as_of))
    assert eng.resumed_from == first_day
    later = inc.con.execute("SELECT count(*) FROM records WHERE occurred_at >= ?", [first_day]).fetchall()[0][0]
    assert eng.ledger_update is not None and not eng.ledger_update.rebuilt
    assert eng.ledger_update.records == later < len(inc.con.execute("SELECT rkey FROM records").fetchall())
    _full(full, as_of)
    assert _derived(inc, as_of) == _derived(full, as_of)
    # what the comparison covered: the other city's network entries before the first day, kept
    kept = """SELECT count(*) FROM state_ledger AS s JOIN jurisdictions AS j ON j.jkey = s.jkey
              WHERE s.source = 'network' AND j.code = 'othercity' AND s.valid_from < ?"""
    assert full.con.execute(kept, [first_day]).fetchall()[0][0] > 0


def test_a_version_that_changes_no_city_in_force_still_renumbers_the_epochs_after_its_day(make_store, make_citizens):
    """A national version dated before any city's first version is in force nowhere, but its day is a change
    point: every later epoch is numbered one higher, so the stored rows are scored again from it (here: all)."""
    inc, full = (make_store(NATIONAL_YAML, city_yaml(1), memory=True) for _ in range(2))
    ids = make_citizens(inc, 6, contacts=CONTACTS)
    assert make_citizens(full, 6, contacts=CONTACTS) == ids
    records = [r for _, r in _records(random.Random(14), ids, 40)]
    for s in (inc, full):
        s.ingest(records, now=NOW)
    Engine(inc).run(stored(MONTHS[8]))
    early = NATIONAL_V2.replace("effective_from: 2024-03-01", "effective_from: 2019-06-01", 1)
    for s in (inc, full):
        s.add_rulebook(early, "early.yaml")
    eng = Engine(inc)
    eng.run(stored(MONTHS[8]))
    assert eng.ledger_update is not None and not eng.ledger_update.rebuilt
    assert eng.ledger_update.records == len(records) and eng.resumed_from is None
    _full(full, MONTHS[8])
    assert _derived(inc, MONTHS[8]) == _derived(full, MONTHS[8])


def test_a_new_version_in_force_before_the_first_assessment_recomputes_everything(make_store, make_citizens):
    inc = make_store(NATIONAL_YAML, city_yaml(1), memory=True)
    ids = make_citizens(inc, 6, contacts=CONTACTS)
    inc.ingest([r for _, r in _records(random.Random(12), ids, 30)], now=NOW)
    Engine(inc).run(stored(MONTHS[8]))
    inc.add_rulebook(NATIONAL_V2.replace("effective_from: 2024-03-01", "effective_from: 2021-01-01", 1), "early.yaml")
    eng = Engine(inc)
    eng.run(stored(MONTHS[8]))
    assert eng.resumed_from is None
