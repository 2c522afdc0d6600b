"""A record's envelope cannot be set from its attributes, and every bad value is refused by row and field.

The envelope (record_id, citizen_id, behaviour, occurred_at, reported_by) decides whose record it is, who
may retract it and which key makes a re-send idempotent; an outside review stored a `state_grid` record
as another agency's, and for another citizen, by naming those fields inside `attributes`. Each case is
tried through every format the store reads; a refusal must leave the store exactly as it was.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import citizen, cst, rec
from socialcredit.catalog import ENVELOPE
from socialcredit.store import BatchRejected, Store
from socialcredit.yamlio import LocatedError

OTHER = {
    "record_id": "zzz",
    "citizen_id": None,
    "behaviour": "volunteer_work",
    "occurred_at": "2021-06-01T00:00",
    "reported_by": "commercial_banks",
}


@pytest.fixture
def two(store: Store) -> tuple[Store, str, str]:
    rows = [citizen(0), citizen(1)]
    store.add_citizens(rows)
    return store, str(rows[0]["citizen_id"]), str(rows[1]["citizen_id"])


def _record(a: str) -> dict[str, object]:
    return rec("r1", a, "late_bill_payment", cst(2021, 1, 1), days_late=40)


def _stored(store: Store) -> list[tuple[object, ...]]:
    return store.con.execute("SELECT record_id, agency, ckey, bkey, occurred_at FROM records").fetchall()


def _write(tmp_path, fmt: str, record: dict[str, object], field: str, value: str):
    """The record with `field` slipped into its attributes, in one format; CSV and Parquet are flat, so
    there the attempt is a second column of the same name (or an `attributes` column)."""
    top = {k: v for k, v in record.items() if k != "attributes"}
    attrs = dict(record["attributes"])  # type: ignore[call-overload]
    if fmt == "jsonl":
        path = tmp_path / "b.jsonl"
        path.write_text(json.dumps({**top, "attributes": {**attrs, field: value}}) + "\n")
    elif fmt == "csv":
        path = tmp_path / "b.csv"
        head = [*top, *attrs, field]
        vals = [*map(str, top.values()), *map(str, attrs.values()), value]
        path.write_text(",".join(head) + "\n" + ",".join(vals) + "\n")
    else:
        path = tmp_path / "b.parquet"
        cols = {**{k: [str(v)] for k, v in top.items()}, **{k: [str(v)] for k, v in attrs.items()}}
        names = [*cols, field]
        arrays = [pa.array(v) for v in cols.values()] + [pa.array([value])]
        pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    return path


@pytest.mark.parametrize("field", ENVELOPE)
def test_no_envelope_field_through_attributes_of_a_list_of_dicts(two, field):
    store, a, b = two
    r = _record(a)
    r["attributes"][field] = OTHER[field] or b  # type: ignore[index]
    with pytest.raises(BatchRejected) as e:
        store.ingest([r])
    assert [(p.row, p.field) for p in e.value.problems] == [(1, f"attributes.{field}")]
    assert "envelope" in e.value.problems[0].message
    assert _stored(store) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("field", ENVELOPE)
def test_no_envelope_field_through_any_file_format(two, tmp_path, fmt, field):
    store, a, b = two
    path = _write(tmp_path, fmt, _record(a), field, OTHER[field] or b)
    with pytest.raises((BatchRejected, LocatedError)) as e:
        store.ingest(path)
    assert field in str(e.value)
    assert _stored(store) == []


def test_a_nested_attributes_column_is_refused_in_flat_formats(two, tmp_path):
    store, a, _ = two
    path = tmp_path / "b.parquet"
    r = _record(a)
    table = pa.table({k: [str(v)] for k, v in r.items() if k != "attributes"})
    table = table.append_column("attributes", pa.array([{"reported_by": "commercial_banks", "days_late": 40}]))
    pq.write_table(table, path)
    with pytest.raises(LocatedError, match="'attributes' is reserved"):
        store.ingest(path)
    assert _stored(store) == []


def test_an_attribute_given_twice_is_refused_not_resolved(two, tmp_path):
    store, a, _ = two
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({**_record(a), "days_late": 100}) + "\n")
    with pytest.raises(BatchRejected, match="days_late given both as a field and in attributes"):
        store.ingest(path)
    path.write_text(
        json.dumps(_record(a)).replace('"reported_by": "state_grid"', '"reported_by": "state_grid", "reported_by": "x"')
        + "\n"
    )
    with pytest.raises(BatchRejected, match="reported_by: given twice"):
        store.ingest(path)
    assert _stored(store) == []


def test_the_same_record_without_tricks_is_stored_as_sent(two):
    store, a, _ = two
    report = store.ingest([_record(a)])
    assert report.accepted == 1 and report.citizens == [a]
    ((rid, agency, ckey, _, _),) = _stored(store)
    assert (rid, agency, ckey) == ("r1", "state_grid", store.ckey(a))


# ---------------------------------------------------------------------------------- values refused by field


@pytest.mark.parametrize(
    ("attrs", "field", "why"),
    [
        ({"days_late": 4.5}, "days_late", "not an int"),
        ({"days_late": 40.7}, "days_late", "not an int"),
        ({"days_late": 40, "amount": float("nan")}, "amount", "not a float"),
        ({"days_late": 40, "amount": float("inf")}, "amount", "not a float"),
        ({"days_late": 40, "amount": 1e308}, "amount", "outside the catalog range"),
        ({"days_late": -3}, "days_late", "outside the catalog range"),
        ({"days_late": 40, "amount": -0.01}, "amount", "outside the catalog range"),
        ({"days_late": "x\ud800y"}, "attributes.days_late", "lone surrogate"),
    ],
)
def test_bad_values_are_refused_by_field_never_coerced(two, attrs, field, why):
    store, a, _ = two
    r = rec("r1", a, "late_bill_payment", cst(2021, 1, 1), **attrs)
    with pytest.raises(BatchRejected) as e:
        store.ingest([r])
    assert [(p.field, why in p.message) for p in e.value.problems] == [(field, True)]
    assert _stored(store) == []


def test_an_integral_number_written_with_a_zero_fraction_is_an_int(two):
    store, a, _ = two
    store.ingest([rec("r1", a, "late_bill_payment", cst(2021, 1, 1), days_late="40.0")])
    assert store.con.execute("SELECT days_late FROM records").fetchall() == [(40,)]


def test_text_is_bounded_by_the_catalog_and_ids_by_their_length(two):
    store, a, _ = two
    with pytest.raises(BatchRejected) as e:
        store.ingest([rec("z" * 201, a, "smoking_on_train", cst(2021, 1, 1), site="s" * 201)])
    assert sorted((p.field, p.message) for p in e.value.problems) == [
        ("record_id", "longer than 200 characters"),
        ("site", "longer than 200 characters"),
    ]
    assert _stored(store) == []


@pytest.mark.parametrize("when", ["-infinity", "0001-01-01T00:00", "1949-12-31T23:59"])
def test_times_before_the_earliest_record_are_refused(two, when):
    store, a, _ = two
    r = _record(a)
    r["occurred_at"] = when
    with pytest.raises(BatchRejected, match=f"occurred_at: before 1950-01-01.*{when}"):
        store.ingest([r])
    assert _stored(store) == []


def test_a_short_csv_row_is_named_by_its_line(two, tmp_path):
    store, a, _ = two
    path = tmp_path / "b.csv"
    path.write_text(
        "record_id,citizen_id,behaviour,occurred_at,reported_by,days_late\n"
        f"r1,{a},late_bill_payment,2021-01-01T00:00,state_grid,40\n"
        f"r2,{a},late_bill_payment,2021-01-01T00:00,state_grid\n"
    )
    with pytest.raises(LocatedError) as e:
        store.ingest(path)
    assert str(e.value) == f"{path}:3: 5 field(s) where the header names 6"
    assert _stored(store) == []


def test_a_catalog_attribute_cannot_take_an_envelope_name():
    from pydantic import ValidationError

    from socialcredit.catalog import Attribute

    with pytest.raises(ValidationError, match="envelope"):
        Attribute(name="reported_by", type="str", description="x")
    with pytest.raises(ValidationError, match="declares its range"):
        Attribute(name="n", type="int", description="x")
