"""The compiler: golden SQL for a tiny rulebook (DuckDB and Spark), and the engine's record ledger
against a small pure-Python reference evaluator on random histories."""

from __future__ import annotations

import datetime as dt
import operator
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import cst, rec
from socialcredit.compiler import compile_rulebooks, record_ledger_query, to_sql
from socialcredit.engine import Engine
from socialcredit.rulebook import RulebookSet, parse_layer

GOLDEN = Path(__file__).parent / "golden"

TINY = """\
jurisdiction: national
name: Nation
level: national
version: 1
effective_from: 2020-01-01
source: illustrative
scale: {base: 100, min: 0, max: 1000}
grades: [{grade: A, min: 0}]
rules:
  - {id: a, behaviour: late_bill_payment, when: "days_late >= 30 and days_late < 90", points: -10,
     valid_for: 1y, source: illustrative}
  - {id: b, behaviour: late_bill_payment, when: "days_late >= 90", points: -40, source: illustrative}
  - {id: c, behaviour: late_bill_payment, when: "days_late = 7 or amount > 500", points: -3, source: illustrative}
  - {id: d, behaviour: volunteer_work, points: 5, source: illustrative}
"""
CITY = """\
jurisdiction: testcity
name: Test City
level: city
extends: national
region_code: "371082"
version: 1
effective_from: 2020-01-01
source: illustrative
"""


def _compiled():
    rbs = RulebookSet([parse_layer(TINY, "n.yaml"), parse_layer(CITY, "c.yaml")])
    return compile_rulebooks(rbs, {"national": 0, "testcity": 1}, {"late_bill_payment": 3, "volunteer_work": 4})


def _golden(name: str, sql: str) -> None:
    """The SQL must equal the checked-in file; a missing file is a failure, never written by the test (a
    test that writes its own expectation passes whatever it is given). Refresh on purpose with
    SOCIALCREDIT_UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get("SOCIALCREDIT_UPDATE_GOLDEN"):
        path.write_text(sql + "\n", encoding="utf-8")
    assert path.exists(), f"{path} is missing: generate it with SOCIALCREDIT_UPDATE_GOLDEN=1 and review it"
    assert sql + "\n" == path.read_text(encoding="utf-8")


def test_golden_duckdb():
    _golden("record_ledger.duckdb.sql", to_sql(record_ledger_query(_compiled()), "duckdb"))


def test_golden_spark():
    _golden("record_ledger.spark.sql", to_sql(record_ledger_query(_compiled()), "spark"))


# --------------------------------------------------------------------------- reference evaluator

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq}


def _rule_yaml(i: int, lo: int | None, lo_op: str, hi: int | None, hi_op: str, pts: int) -> str:
    parts = []
    if lo is not None:
        parts.append(f"days_late {lo_op} {lo}")
    if hi is not None:
        parts.append(f"days_late {hi_op} {hi}")
    when = f'when: "{" and ".join(parts)}", ' if parts else ""
    return f"  - {{id: r{i}, behaviour: late_bill_payment, {when}points: {pts}, source: illustrative}}\n"


def _ref_points(rules: list[tuple], days: int) -> int:
    total = 0
    for lo, lo_op, hi, hi_op, pts in rules:
        if lo is not None and not OPS[lo_op](days, lo):
            continue
        if hi is not None and not OPS[hi_op](days, hi):
            continue
        total += pts
    return total


bound = st.one_of(st.none(), st.integers(0, 120))
rule_st = st.tuples(
    bound, st.sampled_from([">", ">="]), bound, st.sampled_from(["<", "<="]), st.integers(-50, 50).filter(bool)
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    v1=st.lists(rule_st, min_size=1, max_size=5),
    v2=st.lists(rule_st, min_size=1, max_size=5),
    days=st.lists(st.integers(0, 130), min_size=1, max_size=15),
    data=st.data(),
)
def test_ledger_matches_reference(make_store, make_citizens, v1, v2, days, data):
    national = TINY.split("rules:")[0] + "rules:\n" + "".join(_rule_yaml(i, *r) for i, r in enumerate(v1))
    v2_text = (
        CITY.replace("version: 1\neffective_from: 2020-01-01", "version: 2\neffective_from: 2022-01-01")
        + "rules:\n"
        + "".join(_rule_yaml(i, *r) for i, r in enumerate(v2))
    )
    store = make_store(national, CITY, v2_text, memory=True)
    (a,) = make_citizens(store, 1)
    # values exactly on the thresholds too
    edges = [b for r in v1 + v2 for b in (r[0], r[2]) if b is not None]
    values = days + data.draw(st.lists(st.sampled_from(edges), max_size=5)) if edges else days
    recs = []
    expected = {}
    for i, d in enumerate(values):
        at = cst(2021, 12, 31, 23) if i % 2 else cst(2022, 1, 1, 0, 30)
        recs.append(rec(f"x{i}", a, "late_bill_payment", at + dt.timedelta(minutes=i), days_late=d))
        rules = v1 if i % 2 else v2
        # v2 overrides rules with the same id and inherits the others
        if not i % 2:
            merged = {f"r{j}": r for j, r in enumerate(v1)}
            merged.update({f"r{j}": r for j, r in enumerate(v2)})
            rules = list(merged.values())
        expected[f"x{i}"] = _ref_points(rules, d)
    store.ingest(recs, now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    Engine(store).run(as_of=cst(2022, 2, 1))
    got = dict(
        store.con.execute(
            "SELECT r.record_id, sum(l.points) FROM ledger l JOIN records r USING (rkey) GROUP BY 1"
        ).fetchall()
    )
    got = {k: got.get(k, 0) for k in expected}
    assert got == expected


def test_decision_table_buckets_exact_at_every_bound(make_store, make_citizens):
    """Float bounds of every kind, crowded and far apart (buckets refined, several cuts per bucket), checked
    at each bound and the doubles just beside it against direct evaluation."""
    import math

    bounds = [0.01, 0.02, 0.03, 0.035, 1.5, 123.45, 123.46, 5000.0, 1e6, 1e6 + 0.01, 2.5e7]
    ops = [">", ">=", "<", "<="]
    rules = []
    for i, v in enumerate(bounds):
        rules.append((f"amount {ops[i % 4]} {v!r}", i + 1, lambda x, v=v, op=ops[i % 4]: OPS[op](x, v)))
    rules.append(("amount > 0.02 and amount <= 123.45", 100, lambda x: 0.02 < x <= 123.45))
    rules.append(("amount between 1.5 and 1e6", 1000, lambda x: 1.5 <= x <= 1e6))
    text = (
        TINY.split("rules:")[0]
        + "rules:\n"
        + "".join(
            f'  - {{id: q{i}, behaviour: late_bill_payment, when: "{w}", points: {p}, source: illustrative}}\n'
            for i, (w, p, _) in enumerate(rules)
        )
    )
    store = make_store(text, CITY, memory=True)
    (a,) = make_citizens(store, 1)
    values = sorted(
        {y for v in bounds for y in (v, math.nextafter(v, -math.inf), math.nextafter(v, math.inf))} | {0.0, 50.0, 3e7}
    )  # amounts are at least 0 (the catalog range)
    at = cst(2023, 1, 1)
    store.ingest(
        [
            rec(f"v{i}", a, "late_bill_payment", at + dt.timedelta(minutes=i), amount=x, days_late=0)
            for i, x in enumerate(values)
        ],
        now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    Engine(store).run(as_of=cst(2024, 1, 1))
    got = dict(
        store.con.execute(
            "SELECT r.record_id, sum(l.points) FROM ledger l JOIN records r USING (rkey) GROUP BY 1"
        ).fetchall()
    )
    for i, x in enumerate(values):
        assert got.get(f"v{i}", 0) == sum(p for _, p, f in rules if f(x)), x
