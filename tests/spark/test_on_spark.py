"""The compiled record ledger on Spark gives DuckDB's rows in the tests' local session, over the bundled
sample's facts exported as Parquet (the hand-over a user with a cluster makes). The whole engine on a real
standalone cluster is in test_cluster.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from socialcredit.compiler import Compiled, record_ledger_query
from socialcredit.engine import Engine, handover
from socialcredit.engine.executors.duckdb import DuckDBExecutor
from socialcredit.sample import load_sample
from socialcredit.store import Store


@dataclass
class Sample:
    db: Path
    facts: Path
    compiled: Compiled
    expected: pa.Table
    """the record ledger as DuckDB computes it in the store"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    base = tmp_path_factory.mktemp("sample")
    with Store(base / "sample.duckdb") as store:
        store.init()
        load_sample(store)
        compiled = Engine(store).prepare()
        handover.export_facts(store, base / "facts")
        duck = DuckDBExecutor(store.con)
        for name, table in handover.compiled_tables(store).items():
            duck.load(name, table)
        expected = duck.fetch(record_ledger_query(compiled, "records"))
    return Sample(base / "sample.duckdb", base / "facts", compiled, expected)


def same_rows(got: pa.Table, expected: pa.Table) -> None:
    assert got.column_names == expected.column_names
    assert got.schema.field("occurred_at").type == pa.timestamp("us")
    key = lambda r: tuple((v is not None, v) for v in r.values())  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(expected.to_pylist(), key=key)


def test_the_sample_ledger_uses_every_kind_of_rule(sample: Sample) -> None:
    """What the comparisons below cover: decision tables on an attribute, rules without one, general rules."""
    assert sample.compiled.general and "" in sample.compiled.dims and len(sample.compiled.dims) > 1
    pieces = set(sample.expected["piece"].to_pylist())
    assert sample.expected.num_rows >= 30 and len(pieces) >= 10


def test_the_record_ledger_on_spark_is_duckdbs(sample: Sample, sparkx: Any) -> None:
    for name in handover.Manifest.read(sample.facts).tables:
        sparkx.attach(name, sample.facts / name)
    same_rows(sparkx.fetch(record_ledger_query(sample.compiled, "records")), sample.expected)
