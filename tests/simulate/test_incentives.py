"""Incentives: listed defaulters who repay are delisted (so the court list shrinks), responses are
deterministic by seed and reported by allowed agencies, and blacklisted citizens are deterred."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from socialcredit.catalog import default_catalog
from socialcredit.simulate.behaviour import BehaviourRates, allowed_agencies, generate_records
from socialcredit.simulate.run import RunResult, run_scenario
from socialcredit.simulate.scenario import parse_scenario
from socialcredit.yamlio import LocatedError

# Listings are raised far above their base rate so a tiny society has many defaulters within months;
# deterrence is 1 in both runs so the generated records are identical and only the repayments differ.
TINY = """\
name: tiny-incentives
seed: 5
start: 2025-01-01
months: 4
cities:
  rongcheng: 600
rates:
  multipliers: {{court_defaulter_listing: 300, guarantee_default: 300}}
services:
  air.ticket: 0.05
  rail.high_speed: 0.05
incentives:
  repay_base: {base}
  repay_when_sanctioned: {sanctioned}
  settle_guarantee: {settle}
  deterrence: 1.0
"""
LIST = "dishonest_judgment_defaulters"


def _on_list_at_end(run: RunResult) -> int:
    lists = pq.read_table(run.out_dir / "lists.parquet").to_pylist()
    last = max(r["month"] for r in lists)
    return next(r["on_list"] for r in lists if r["month"] == last and r["list_id"] == LIST)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    base = tmp_path_factory.mktemp("incentives")
    repay = parse_scenario(TINY.format(base=0.3, sanctioned=0.3, settle=0.3), "repay.yaml")
    never = parse_scenario(TINY.format(base=0, sanctioned=0, settle=0), "never.yaml")
    return {
        "repay": run_scenario(repay, base / "repay"),
        "again": run_scenario(repay, base / "again"),
        "never": run_scenario(never, base / "never"),
    }


def test_repaying_defaulters_are_delisted_and_the_list_shrinks(runs: dict[str, RunResult]) -> None:
    responses = pq.read_table(runs["repay"].out_dir / "responses.parquet").to_pylist()
    delisted = sum(r["n"] for r in responses if r["behaviour"] == "court_defaulter_delisting")
    settled = sum(r["n"] for r in responses if r["behaviour"] == "guarantee_settled")
    assert delisted > 0 and settled > 0
    never = pq.read_table(runs["never"].out_dir / "responses.parquet").to_pylist()
    assert never and sum(r["n"] for r in never) == 0
    assert 0 < _on_list_at_end(runs["repay"]) < _on_list_at_end(runs["never"])
    catalog = default_catalog()
    with duckdb.connect(str(runs["repay"].out_dir / "store.duckdb"), read_only=True) as con:
        rows = con.execute(
            """SELECT b.code, r.agency, count(*) FROM records r JOIN behaviours b USING (bkey)
               WHERE r.record_id LIKE 'resp-%' GROUP BY ALL"""
        ).fetchall()
        clashes = con.execute("SELECT count(*) - count(DISTINCT record_id) FROM records").fetchall()[0][0]
    assert sum(n for _, _, n in rows) == delisted + settled
    assert all(agency in allowed_agencies(code, catalog) for code, agency, _ in rows)
    assert clashes == 0


def test_responses_are_deterministic_by_seed(runs: dict[str, RunResult]) -> None:
    for name in ("responses", "lists", "decisions"):
        a = pq.read_table(runs["repay"].out_dir / f"{name}.parquet")
        b = pq.read_table(runs["again"].out_dir / f"{name}.parquet")
        assert a.equals(b), name


def test_deterrence_lowers_undesirable_records_of_blacklisted_citizens() -> None:
    n = 3000
    citizens = pa.table(
        {
            "citizen_id": [f"c{i:05d}" for i in range(n)],
            "birth_date": pa.array([dt.date(1985, 1, 1)] * n, pa.date32()),
            "city": ["rongcheng"] * n,
            "avatar_seed": pa.array(np.arange(n), pa.int64()),
        }
    )
    listed = [f"c{i:05d}" for i in range(0, n, 2)]
    rates = BehaviourRates(scale=5.0)
    undesirable = {c for c, b in default_catalog().behaviours.items() if b.polarity == "undesirable"}

    def counts(table: pa.Table) -> tuple[int, int]:
        rows = [(c, b) for c, b in zip(table["citizen_id"].to_pylist(), table["behaviour"].to_pylist(), strict=True)]
        on = set(listed)
        bad = [c for c, b in rows if b in undesirable]
        return sum(c in on for c in bad), sum(c not in on for c in bad)

    month = dt.date(2025, 3, 1)
    plain = generate_records(citizens, month, rates, np.random.default_rng(1))
    unchanged = generate_records(citizens, month, rates, np.random.default_rng(1), blacklisted=None, deterrence=0.5)
    deterred = generate_records(citizens, month, rates, np.random.default_rng(1), blacklisted=listed, deterrence=0.5)
    assert plain.equals(unchanged)  # no set, no change
    on_plain, off_plain = counts(plain)
    on_deterred, off_deterred = counts(deterred)
    assert on_plain > 200
    assert on_deterred < 0.65 * on_plain  # expected 0.5×
    assert abs(off_deterred - off_plain) < 0.15 * off_plain  # others are not deterred


def test_incentives_are_optional_and_validated() -> None:
    plain = parse_scenario(TINY.split("incentives:")[0].replace("{{", "{").replace("}}", "}"), "plain.yaml")
    assert plain.incentives is None  # no responses, no deterrence: runs as before incentives existed
    with pytest.raises(LocatedError, match=r"bad\.yaml:13: incentives\.repay_base"):
        parse_scenario(TINY.format(base=1.5, sanctioned=0, settle=0), "bad.yaml")
