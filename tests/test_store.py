"""The store: batches go in whole or not at all, idempotently, from every input format."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cst, held_by_another_process, rec
from socialcredit.decisions import standing
from socialcredit.engine import Engine
from socialcredit.ids import make_id
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import BatchRejected, Store, StoreLocked, connect
from socialcredit.yamlio import LocatedError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _snapshot(store: Store) -> list[tuple]:
    return store.con.execute("SELECT * EXCLUDE (ingested_at) FROM records ORDER BY rkey").fetchall()


def _flat(r: dict) -> dict:
    d = {k: v for k, v in r.items() if k != "attributes"}
    d.update(r["attributes"])
    return d


@pytest.fixture
def ids(store, make_citizens):
    return make_citizens(store, 3)


def test_ingest_list_of_dicts(store, ids):
    rep = store.ingest(
        [
            rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40, amount=12.5),
            rec("r2", ids[1], "volunteer_work", cst(2023, 3, 2), hours=2),
        ],
        now=NOW,
    )
    assert (rep.accepted, rep.duplicates) == (2, 0)
    rows = store.con.execute("SELECT record_id, days_late, amount, hours FROM records ORDER BY rkey").fetchall()
    assert rows == [("r1", 40, 12.5, None), ("r2", None, None, 2.0)]
    # CST 2023-03-01 00:00 is stored as naive UTC 2023-02-28 16:00
    assert store.con.execute("SELECT occurred_at FROM records WHERE record_id = 'r1'").fetchall()[0][0] == dt.datetime(
        2023, 2, 28, 16, 0
    )


def test_ingest_csv(store, ids, tmp_path):
    p = tmp_path / "b.csv"
    p.write_text(
        "record_id,citizen_id,behaviour,occurred_at,reported_by,days_late\n"
        f"c1,{ids[0]},late_bill_payment,2023-03-01T00:00:00+08:00,state_grid,45\n"
        f"c2,{ids[1]},late_bill_payment,2023-03-02T00:00:00+08:00,state_grid,100\n"
    )
    rep = store.ingest(p, now=NOW)
    assert rep.accepted == 2
    assert store.con.execute("SELECT sum(days_late) FROM records").fetchall()[0][0] == 145


def test_ingest_jsonl(store, ids, tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_text(
        "\n".join(
            json.dumps(rec(f"j{i}", ids[i], "volunteer_work", cst(2023, 3, 1 + i), hours=i + 1)) for i in range(3)
        )
        + "\n"
    )
    rep = store.ingest(p, now=NOW)
    assert rep.accepted == 3


def test_ingest_parquet(store, ids, tmp_path):
    rows = [_flat(rec(f"p{i}", ids[i], "late_bill_payment", cst(2023, 3, 1 + i), days_late=30 + i)) for i in range(3)]
    p = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    rep = store.ingest(p, now=NOW)
    assert rep.accepted == 3
    assert store.con.execute("SELECT list(days_late ORDER BY rkey) FROM records").fetchall()[0][0] == [30, 31, 32]


def test_a_jsonl_line_whose_attributes_are_not_an_object_is_named(store, ids, tmp_path):
    p = tmp_path / "b.jsonl"
    good = rec("j1", ids[0], "volunteer_work", cst(2023, 3, 1), hours=1)
    bad = {**rec("j2", ids[1], "volunteer_work", cst(2023, 3, 2)), "attributes": [1, 2]}
    p.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(BatchRejected) as e:
        store.ingest(p, now=NOW)
    assert [str(x) for x in e.value.problems] == ["row 2, attributes: not an object of attribute values"]
    assert _snapshot(store) == []


def test_a_jsonl_field_outside_the_envelope_and_catalog_is_refused_naming_it(store, ids, tmp_path):
    """A key the catalog does not know, at the top or in attributes, is named; nothing is written."""
    p = tmp_path / "u.jsonl"
    top = {**rec("j1", ids[0], "volunteer_work", cst(2023, 3, 1), hours=1), "colour": "red"}
    nested = rec("j2", ids[1], "volunteer_work", cst(2023, 3, 2), hours=1, shoe_size=42)
    p.write_text(json.dumps(top) + "\n" + json.dumps(nested) + "\n")
    with pytest.raises(LocatedError) as e:
        store.ingest(p, now=NOW)
    assert str(e.value).startswith(f"{p}: unknown field(s) colour, shoe_size; records have ")
    assert _snapshot(store) == []


def test_a_parquet_file_with_a_reserved_column_is_refused_naming_the_file(store, ids, tmp_path):
    p = tmp_path / "r.parquet"
    pq.write_table(
        pa.Table.from_pylist([{**_flat(rec("p1", ids[0], "volunteer_work", cst(2023, 3, 1), hours=1)), "row": "1"}]), p
    )
    with pytest.raises(LocatedError) as e:
        store.ingest(p, now=NOW)
    assert str(e.value).startswith(f"{p}: column 'row' is reserved")
    assert _snapshot(store) == []


def test_resend_is_noop_reported_as_duplicates(store, ids):
    batch = [
        rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40),
        rec("r2", ids[1], "volunteer_work", cst(2023, 3, 2), hours=2),
    ]
    store.ingest(batch, now=NOW)
    before = _snapshot(store)
    nbatches = store.con.execute("SELECT count(*) FROM batches").fetchall()[0][0]
    rep = store.ingest(batch, now=NOW)
    assert (rep.accepted, rep.duplicates, sorted(rep.duplicate_ids)) == (0, 2, ["r1", "r2"])
    assert _snapshot(store) == before
    assert store.con.execute("SELECT count(*) FROM batches").fetchall()[0][0] == nbatches


def test_partial_resend_adds_only_new(store, ids):
    a = rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40)
    b = rec("r2", ids[1], "volunteer_work", cst(2023, 3, 2), hours=2)
    store.ingest([a], now=NOW)
    rep = store.ingest([a, b], now=NOW)
    assert (rep.accepted, rep.duplicates) == (1, 1)
    assert store.con.execute("SELECT count(*) FROM records").fetchall()[0][0] == 2


def test_same_record_id_different_content_rejected(store, ids):
    store.ingest([rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40)], now=NOW)
    before = _snapshot(store)
    with pytest.raises(BatchRejected) as e:
        store.ingest([rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=41)], now=NOW)
    assert [(p.row, p.field) for p in e.value.problems] == [(1, "record_id")]
    assert _snapshot(store) == before


def test_same_record_id_twice_in_batch_different_content(store, ids):
    with pytest.raises(BatchRejected) as e:
        store.ingest(
            [
                rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40),
                rec("r1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=41),
            ],
            now=NOW,
        )
    assert {(p.row, p.field) for p in e.value.problems} == {(1, "record_id"), (2, "record_id")}


def _sent(ids, rid="r1", who=0, behaviour="late_bill_payment", day=(2023, 3, 1), **attrs):
    given = {k: v for k, v in ({"days_late": 40, "amount": 12.5} | attrs).items() if v is not None}
    return {**rec(rid, ids[who], "late_bill_payment", cst(*day), **given), "behaviour": behaviour}


@pytest.mark.parametrize(
    "change",
    [
        {"who": 1},  # another citizen
        {"behaviour": "public_fee_arrears"},  # another behaviour (of the same agency: the same id)
        {"day": (2023, 3, 2)},  # another time
        {"days_late": 41},  # one attribute changed
        {"amount": None},  # one attribute left out
        {"utility": "water"},  # one attribute added
    ],
    ids=["citizen", "behaviour", "time", "attribute", "attribute-dropped", "attribute-added"],
)
def test_content_is_compared_field_by_field_with_the_stored_record_and_within_a_batch(store, ids, change):
    """Each part of a record's content counts (citizen, behaviour, time, every attribute): a record sent again
    under its id with any one of them changed is refused, whether the first is stored already or earlier in
    the same batch; the same content (whitespace around the fields aside) is a duplicate, skipped."""
    attrs = {k: v for k, v in change.items() if k not in ("who", "behaviour", "day")}
    other = {k: v for k, v in change.items() if k in ("who", "behaviour", "day")}
    changed = _sent(ids, **other, **attrs)
    with pytest.raises(BatchRejected) as within:
        store.ingest([_sent(ids), changed], now=NOW)
    assert {(p.row, p.field) for p in within.value.problems} == {(1, "record_id"), (2, "record_id")}
    store.ingest([_sent(ids)], now=NOW)
    before = _snapshot(store)
    with pytest.raises(BatchRejected) as stored:
        store.ingest([_sent(ids, rid="r2"), changed], now=NOW)
    assert [(p.row, p.field, p.message) for p in stored.value.problems] == [
        (2, "record_id", "already stored with different content (record r1)")
    ]
    assert _snapshot(store) == before
    padded = {k: f"  {v} " if isinstance(v, str) else v for k, v in _sent(ids).items()}
    again = store.ingest([padded, _sent(ids, rid="r2")], now=NOW)
    assert (again.accepted, again.duplicates, again.duplicate_ids) == (1, 1, ["r1"])


def test_a_store_with_record_digests_loses_the_column_and_still_knows_its_records(make_store, make_citizens):
    """Stores made before the content comparison kept an md5 digest per record: opening one for writing drops
    the column, and a record sent again is still told apart from one sent again with other content."""
    store = make_store(name="old.duckdb")
    path = store.path
    ids = make_citizens(store, 2)
    store.ingest([_sent(ids)], now=NOW)
    Engine(store).run(as_of=cst(2023, 6, 1))  # its views over the records are stored with the store
    store.con.execute("ALTER TABLE records ADD COLUMN digest VARCHAR")
    store.con.execute("UPDATE records SET digest = md5(record_id)")
    store.close()
    store = Store(path)
    cols = [c for (c,) in store.con.execute("SELECT column_name FROM (DESCRIBE records)").fetchall()]
    assert "digest" not in cols and "record_id" in cols
    for query in (
        "SELECT count(*) FROM records_unscored",
        "SELECT count(*) FROM records_batch",
        "SELECT count(*) FROM record_ledger",
        "SELECT count(*) FROM ledger",
    ):
        assert store.con.execute(query).fetchall()[0][0] >= 0, query
    assert standing(store, ids[0], cst(2023, 6, 1)).score is not None
    assert store.ingest([_sent(ids)], now=NOW).duplicate_ids == ["r1"]
    with pytest.raises(BatchRejected, match="already stored with different content"):
        store.ingest([_sent(ids, days_late=41)], now=NOW)
    store.close()


def test_bad_batch_rejected_whole_with_every_problem(store, ids):
    store.ingest([rec("ok0", ids[0], "volunteer_work", cst(2023, 1, 1), hours=1)], now=NOW)
    before = _snapshot(store)
    bad_check = ids[1][:17] + ("0" if ids[1][17] != "0" else "1")
    unknown = make_id("110101", dt.date(1990, 5, 5), 11)
    good = rec("good", ids[2], "volunteer_work", cst(2023, 3, 1), hours=2)
    wrong_agency = rec("b3", ids[0], "volunteer_work", cst(2023, 3, 1), hours=2)
    wrong_agency["reported_by"] = "state_grid"
    unknown_agency = rec("b9", ids[0], "volunteer_work", cst(2023, 3, 1), hours=2)
    unknown_agency["reported_by"] = "ministry_of_nothing"
    batch = [
        good,  # row 1
        rec("b1", unknown, "volunteer_work", cst(2023, 3, 1), hours=1),  # row 2
        rec("b2", bad_check, "volunteer_work", cst(2023, 3, 1), hours=1),  # row 3
        wrong_agency,  # row 4
        rec("b4", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late="abc"),  # row 5
        rec("b5", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=3, hours=2),  # row 6
        rec("b6", ids[0], "late_bill_payment", cst(2023, 3, 1), amount=10),  # row 7
        rec("b7", ids[0], "volunteer_work", cst(2030, 1, 1), hours=1),  # row 8
        unknown_agency,  # row 9
    ]
    with pytest.raises(BatchRejected) as e:
        store.ingest(batch, now=NOW)
    got = {(p.row, p.field) for p in e.value.problems}
    assert got >= {
        (2, "citizen_id"),
        (3, "citizen_id"),
        (4, "behaviour"),
        (5, "days_late"),
        (6, "hours"),
        (7, "days_late"),
        (8, "occurred_at"),
        (9, "reported_by"),
    }
    assert not any(p.row == 1 for p in e.value.problems)
    msgs = {(p.row, p.field): p.message for p in e.value.problems}
    assert "check character" in msgs[(3, "citizen_id")]
    assert "unknown citizen" in msgs[(2, "citizen_id")]
    assert "abc" in msgs[(5, "days_late")]
    assert "future" in msgs[(8, "occurred_at")]
    assert "row 5, days_late" in str(e.value)
    assert _snapshot(store) == before


def test_missing_fields_and_unknown_columns(store, ids):
    r = rec("m1", ids[0], "volunteer_work", cst(2023, 3, 1), hours=1)
    del r["occurred_at"]
    with pytest.raises(BatchRejected) as e:
        store.ingest([r], now=NOW)
    assert (1, "occurred_at") in {(p.row, p.field) for p in e.value.problems}


# --------------------------------------------------------------------------- citizens


def test_add_citizens_validation(store):
    from conftest import citizen

    good = citizen(1)
    bad_check = citizen(2)
    bad_check["citizen_id"] = bad_check["citizen_id"][:17] + ("0" if bad_check["citizen_id"][17] != "0" else "1")
    wrong_sex = citizen(3, sex="M")
    wrong_sex["sex"] = "F"
    wrong_birth = citizen(4)
    wrong_birth["birth_date"] = "1981-02-02"
    orphan = citizen(5, parents=[make_id("110101", dt.date(1950, 1, 1), 1)])
    with pytest.raises(BatchRejected) as e:
        store.add_citizens([good, bad_check, wrong_sex, wrong_birth, orphan])
    got = {(p.row, p.field) for p in e.value.problems}
    assert got == {(2, "citizen_id"), (3, "sex"), (4, "birth_date"), (5, "parents")}
    assert store.con.execute("SELECT count(*) FROM citizens").fetchall()[0][0] == 0
    assert store.add_citizens([good]) == 1
    with pytest.raises(BatchRejected, match="already registered"):
        store.add_citizens([good])


def test_add_citizens_names_each_problem_by_row_field_and_message(store):
    """A second registration, a parents value that is not a list and an unknown spouse: each named exactly."""
    from conftest import citizen

    store.add_citizens([citizen(1)])
    nobody = make_id("110101", dt.date(1950, 1, 1), 1)
    with pytest.raises(BatchRejected) as e:
        store.add_citizens([citizen(1), citizen(2, parents=citizen(1)["citizen_id"]), citizen(3, spouse=nobody)])
    assert [str(p) for p in e.value.problems] == [
        f"row 1, citizen_id: {citizen(1)['citizen_id']} is already registered",
        "row 2, parents: a list of resident IDs",
        f"row 3, spouse: unknown citizen {nobody!r}",
    ]
    assert store.con.execute("SELECT count(*) FROM citizens").fetchall()[0][0] == 1


def test_a_citizen_row_that_is_not_an_object_is_named(store):
    from conftest import citizen

    with pytest.raises(BatchRejected) as e:
        store.add_citizens([citizen(1), "Person 2"])  # type: ignore[list-item]
    assert [str(p) for p in e.value.problems] == ["row 2, citizen: not an object"]
    assert store.con.execute("SELECT count(*) FROM citizens").fetchall()[0][0] == 0


def test_add_citizens_relations_both_ways(store, make_citizens):
    idl = make_citizens(store, 3, contacts={0: [1]}, parents={2: [0]})
    rel = set(
        store.con.execute(
            "SELECT a.citizen_id, b.citizen_id, kind FROM relations r JOIN citizens a ON a.ckey = r.ckey "
            "JOIN citizens b ON b.ckey = r.other"
        ).fetchall()
    )
    assert rel == {
        (idl[0], idl[1], "contact"),
        (idl[1], idl[0], "contact"),
        (idl[2], idl[0], "parent"),
        (idl[0], idl[2], "child"),
    }


def test_batches_are_written_in_citizen_order_and_compact_clusters_all(store, ids):
    from socialcredit.engine import Engine

    batch1 = [
        rec(f"a{i}", ids[2 - i % 3], "late_bill_payment", cst(2023, 3, 1 + i), days_late=30 + i) for i in range(6)
    ]
    batch2 = [rec(f"b{i}", ids[i % 3], "late_bill_payment", cst(2023, 2, 1 + i), days_late=60 + i) for i in range(6)]
    store.ingest(batch1, now=NOW)
    # one batch goes in citizen order; record keys still follow the batch's row order
    physical = store.con.execute("SELECT ckey, rkey FROM records").fetchall()
    assert [c for c, _ in physical] == sorted(c for c, _ in physical)
    assert sorted(r for _, r in physical) == list(range(6))
    store.ingest(batch2, now=NOW)
    before = _snapshot(store)
    Engine(store).run(as_of=cst(2024, 1, 1))
    scores = store.con.execute("SELECT ckey, score FROM score_log ORDER BY ALL").fetchall()
    assert store.compact() is True
    assert _snapshot(store) == before  # the same rows and keys, only the physical order changed
    physical = store.con.execute("SELECT ckey, occurred_at, rkey FROM records").fetchall()
    assert physical == sorted(physical)
    assert store.compact() is False  # nothing new since
    Engine(store).run(as_of=cst(2024, 1, 1))
    assert store.con.execute("SELECT ckey, score FROM score_log ORDER BY ALL").fetchall() == scores
    store.ingest([rec("c0", ids[0], "volunteer_work", cst(2023, 5, 1), hours=3)], now=NOW)
    assert store.compact() is True


def test_a_store_another_process_holds_says_who(tmp_path):
    path = tmp_path / "held.duckdb"
    Store(path).close()
    with held_by_another_process(path) as holder:
        for read_only in (False, True):  # DuckDB refuses readers too
            with pytest.raises(StoreLocked) as caught:
                Store(path) if not read_only else connect(path, read_only=True)
            e = caught.value
            assert (e.path, e.pid) == (path, holder.pid)
            assert "held.duckdb" in e.program  # /proc/PID/cmdline: the holder's own arguments
            assert f"PID {holder.pid}" in str(e) and "Stop that process" in str(e)


def test_a_read_only_store_answers_many_threads_at_once(tmp_path):
    """A reader process of the service answers on a thread pool from one read-only store; DuckDB refuses a
    call on a connection busy with another (ResourceInUseException), so each thread must read on its own."""
    import threading

    path = tmp_path / "r.duckdb"
    with Store(path) as s:
        s.init()
        load_sample(s)
    store = Store(path, read_only=True, views=False)
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def read() -> None:
        barrier.wait()
        try:
            for _ in range(30):
                n = store.con.execute("SELECT count(*) FROM range(200000) a, (SELECT 1 FROM citizens) b").fetchall()
                assert n[0][0] == 200000 * len(citizen_ids())
        except BaseException as e:  # collected and asserted below
            failures.append(e)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    store.close()
    assert failures == []


def test_receipt_stamps_are_utc_like_every_other_stored_time(tmp_path):
    """schema.py says every stored time is UTC; the store's session zone is Asia/Shanghai, so a stamp taken
    with DuckDB's now()::TIMESTAMP would be CST wall time, eight hours off the event times beside it."""
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with Store(tmp_path / "t.duckdb") as s:
        s.init()
        load_sample(s)
        after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        stamps = s.con.execute(
            "SELECT min(received_at), max(received_at) FROM batches UNION ALL "
            "SELECT min(loaded_at), max(loaded_at) FROM rulebook_versions"
        ).fetchall()
    for lo, hi in stamps:
        assert before - dt.timedelta(seconds=1) <= lo <= hi <= after + dt.timedelta(seconds=1)


def test_a_store_an_earlier_version_made_is_upgraded_when_opened_for_writing(tmp_path) -> None:
    """Made when relations were an undated table (and before relation_changes existed): the first door to
    open it — here a question, which reads the store's clock through the declared schema — finds it upgraded,
    its ties kept as in force at every time, instead of failing on a missing table."""
    from socialcredit import decisions
    from socialcredit.engine import Engine

    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        store.init()
        load_sample(store)
        Engine(store).run(as_of=dt.datetime(2025, 7, 1))
        ties = store.con.execute("SELECT ckey, other, kind FROM relations ORDER BY ALL").fetchall()
    con = connect(path)  # back to the earlier shape
    con.execute("DROP VIEW relations")
    con.execute("DROP TABLE relation_changes")
    con.execute("CREATE TABLE relations(ckey INTEGER, other INTEGER, kind VARCHAR)")
    con.executemany("INSERT INTO relations VALUES (?, ?, ?)", ties)
    con.close()
    assert ties
    with Store(path) as store:
        st = decisions.standing(store, citizen_ids()["zhang_wei"])
        assert st.clock == "store"
        assert store.con.execute("SELECT ckey, other, kind FROM relations ORDER BY ALL").fetchall() == ties
        assert store.con.execute("SELECT count(*) FROM relation_changes WHERE change = 'start'").fetchall()[0][
            0
        ] == len(ties)


def test_behaviours_a_newer_catalog_adds_get_keys_of_their_own(tmp_path):
    """A store made with an older catalog (two behaviours fewer) and opened again with today's: each behaviour
    keeps one key and no two share one, so no record is ever scored as another behaviour."""
    from socialcredit.catalog import default_catalog

    full = default_catalog()
    codes = list(full.behaviours)
    older = full.model_copy(update={"behaviours": {c: full.behaviours[c] for c in codes[:-2]}})
    path = tmp_path / "s.duckdb"
    with Store(path, catalog=older) as s:
        s.init(load_shipped_rulebooks=False)
        before = dict(s.con.execute("SELECT code, bkey FROM behaviours").fetchall())
    with Store(path) as s:
        s.init(load_shipped_rulebooks=False)
        keys = dict(s.con.execute("SELECT code, bkey FROM behaviours").fetchall())
    assert sorted(keys) == sorted(codes) and len(set(keys.values())) == len(codes)
    assert {c: keys[c] for c in before} == before


def test_a_store_not_yet_initialised_shows_so_in_a_notebook(tmp_path):
    """A notebook shows a freshly opened, empty store as not initialised (it has no tables to count yet)."""
    with Store(tmp_path / "empty.duckdb") as s:
        shown = s._repr_html_()
        assert not s.initialised
    assert ">initialised</th><td>no</td>" in shown and "citizens" not in shown


def test_copy_file_copies_the_checkpointed_store_and_close_releases_it(store, ids, tmp_path):
    """copy_file gives a byte-for-byte copy of the checkpointed file and its size, through a descriptor the
    store keeps open until it is closed (closing one early would drop DuckDB's lock)."""
    store.con.execute("CHECKPOINT")
    size = store.copy_file(tmp_path / "copy.duckdb")
    assert size == store.path.stat().st_size > 0
    assert (tmp_path / "copy.duckdb").read_bytes() == store.path.read_bytes()
    store.close()  # closes the kept descriptor too
    with Store(tmp_path / "copy.duckdb", read_only=True) as c:
        assert sorted(r for (r,) in c.con.execute("SELECT citizen_id FROM citizens").fetchall()) == sorted(ids)


def test_new_records_are_keyed_in_row_order_from_the_next_key_whether_or_not_rows_are_duplicates(store, ids):
    """A batch's new records take the next keys in the batch's row order; a batch with duplicates (stored
    already, or repeated within it) skips them without leaving a gap."""
    store.ingest([rec("s1", ids[0], "volunteer_work", cst(2023, 3, 1), hours=1)], now=NOW)
    rows = [rec(f"n{i}", ids[2 - i % 3], "late_bill_payment", cst(2023, 3, 10 - i), days_late=30 + i) for i in range(4)]
    store.ingest(rows, now=NOW)  # no duplicates: keys 1..4 in row order, though stored in citizen order
    mixed = [rows[1], rec("m1", ids[1], "volunteer_work", cst(2023, 4, 2), hours=2), rows[3],
             rec("m2", ids[0], "volunteer_work", cst(2023, 4, 1), hours=3), rows[0]]  # fmt: skip
    mixed.append(mixed[1])  # sent twice in this batch, the same content
    store.ingest(mixed, now=NOW)
    keyed = store.con.execute("SELECT rkey, record_id FROM records ORDER BY rkey").fetchall()
    assert keyed == list(enumerate(["s1", "n0", "n1", "n2", "n3", "m1", "m2"]))


def _arrow_batch(records: list[dict[str, object]], typed: bool) -> pa.Table:
    """Records as one Arrow table, a column per field: each attribute of the catalog's own kind (`typed`),
    or every value as text, as a file would give it."""
    kinds = {"days_late": pa.int64(), "amount": pa.float64(), "hours": pa.float64(), "judged": pa.bool_()}
    flat = [_flat(r) for r in records]
    names = list(dict.fromkeys(k for f in flat for k in f))
    columns = {}
    for n in names:
        values = [f.get(n) for f in flat]
        if typed and n in kinds:
            columns[n] = pa.array(values, kinds[n])
        else:
            columns[n] = pa.array([None if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                                   for v in values], pa.string())  # fmt: skip
    return pa.table(columns)


def _typed_batch(ids: list[str]) -> list[dict[str, object]]:
    def debt(rid: str, cid: str, at: dt.datetime, **attrs: object) -> dict[str, object]:  # a bank's report
        return {
            **rec(rid, cid, "late_bill_payment", at, **attrs),
            "behaviour": "unpaid_debt",
            "reported_by": "commercial_banks",
        }

    return [
        rec("t1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40, amount=12.5),
        rec("t2", ids[1], "volunteer_work", cst(2023, 3, 2), hours=2.5),
        debt("t3", ids[2], cst(2023, 3, 3), amount=900.0, judged=True),
        debt("t4", ids[0], cst(2023, 3, 4), days_late=7, judged=False),
    ]


def _records(store: Store) -> list[tuple]:
    q = "SELECT * EXCLUDE (batch, ingested_at) FROM records ORDER BY rkey"
    return store.con.execute(q).fetchall()


def test_a_typed_arrow_batch_is_stored_as_the_same_batch_as_text(make_store, make_citizens, monkeypatch):
    """Attribute columns of the catalog's kind (int, float, bool) are staged as they are, not printed and
    parsed back; the records are those the same batch gives as text, and a re-send in the other form is the
    same record (a duplicate), whatever form stored it."""
    from socialcredit.store import ingest

    seen: list[frozenset[str]] = []
    real = ingest._typing
    monkeypatch.setattr(ingest, "_typing", lambda attrs, typed=frozenset(): seen.append(typed) or real(attrs, typed))
    stores = []
    for typed in (True, False):
        store = make_store()
        ids = make_citizens(store, 3)
        assert store.ingest(_arrow_batch(_typed_batch(ids), typed), now=NOW).accepted == 4
        stores.append((store, ids))
    assert seen == [frozenset({"days_late", "amount", "hours", "judged"}), frozenset()]
    assert _records(stores[0][0]) == _records(stores[1][0])
    for (store, ids), typed in zip(stores, (False, True), strict=True):  # the other form, sent again
        report = store.ingest(_arrow_batch(_typed_batch(ids), typed), now=NOW)
        assert (report.accepted, report.duplicates) == (0, 4)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("amount", pa.array([float("nan")], pa.float64()), "amount: not a float: nan"),
        ("amount", pa.array([float("inf")], pa.float64()), "amount: not a float: inf"),
        ("amount", pa.array([-1.0], pa.float64()), "amount: outside the catalog range [0, 1e+12]: -1.0"),
        ("days_late", pa.array([40000], pa.int64()), "days_late: outside the catalog range [0, 36500]: 40000"),
        ("days_late", pa.array([4.5], pa.float64()), "days_late: not an int: 4.5"),  # not its kind: as text
        ("hours", pa.array([2.0], pa.float64()), "hours: behaviour late_bill_payment has no attribute hours"),
        ("judged", pa.array([True], pa.bool_()), "judged: behaviour late_bill_payment has no attribute judged"),
    ],
)
def test_a_typed_value_meets_every_check_a_text_one_does(store, ids, column, values, message):
    """A typed column skips the parsing, never the checks on values: a non-finite float, a number outside the
    catalog range, an attribute the behaviour does not declare are refused by row and field, and the batch
    is refused whole (the good row beside it is not stored)."""
    good = _arrow_batch([rec("g1", ids[0], "late_bill_payment", cst(2023, 3, 1), days_late=40)], typed=True)
    attrs = {} if column == "days_late" else {"days_late": 40}  # required: given, unless the column under test
    bad = _arrow_batch([rec("b1", ids[1], "late_bill_payment", cst(2023, 3, 2), **attrs)], typed=True)
    bad = bad.append_column(column, values)
    batch = pa.concat_tables([good, bad], promote_options="permissive")
    with pytest.raises(BatchRejected) as e:
        store.ingest(batch, name="typed", now=NOW)
    assert [str(p) for p in e.value.problems] == [f"row 2, {message}"]
    assert _records(store) == []


def test_a_typed_required_attribute_left_null_is_missing(store, ids):
    batch = _arrow_batch([rec("v1", ids[0], "volunteer_work", cst(2023, 3, 2), hours=None)], typed=True)
    batch = batch.set_column(batch.schema.get_field_index("hours"), "hours", pa.array([None], pa.float64()))
    with pytest.raises(BatchRejected, match="row 1, hours: required for volunteer_work"):
        store.ingest(batch, now=NOW)
    assert _records(store) == []
