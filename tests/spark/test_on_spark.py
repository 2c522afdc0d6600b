"""The compiled record ledger on Spark gives DuckDB's rows in the tests' local session, over the bundled
sample's facts exported as Parquet (the hand-over a user with a cluster makes); and the whole engine run on
a real standalone cluster (a master and two workers on 127.0.0.1) gives DuckDB's derived tables."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from socialcredit import handover
from socialcredit.compiler import Compiled, record_ledger_query
from socialcredit.engine import Engine
from socialcredit.executors.duckdb import DuckDBExecutor
from socialcredit.sample import load_sample
from socialcredit.store import Store

from .cluster import master_state, standalone
from .conftest import require_spark
from .derived import derived, same

AS_OF = dt.datetime(2026, 9, 1)  # the library reads a time without an offset as CST, as `--as-of 2026-09-01` is


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


def test_the_engine_on_a_standalone_cluster_is_duckdbs(sample: Sample, tmp_path: Path) -> None:
    """`score --engine spark --master spark://…` (its own process: the tests' is local) runs the whole engine on
    the cluster, and the store it writes home holds DuckDB's derived tables."""
    require_spark()
    duck, spark = tmp_path / "duck.duckdb", tmp_path / "spark.duckdb"
    for db in (duck, spark):
        shutil.copy(sample.db, db)
    with Store(duck) as store:
        Engine(store).run(AS_OF)
        expected = derived(store)
    with standalone(tmp_path, workers=2) as (master, ui):
        done = subprocess.run([sys.executable, "-c", "from socialcredit.cli import app; app()", "score", "--db",
                               str(spark), "--as-of", "2026-09-01", "--engine", "spark", "--master", master],
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        state = master_state(ui)
    # the work ran on the cluster: one application, finished, that held both workers' cores
    apps = state["completedapps"]
    assert [a["name"] for a in apps] == ["socialcredit"] and apps[0]["cores"] == 2
    with Store(spark) as store:
        same(expected, derived(store))
