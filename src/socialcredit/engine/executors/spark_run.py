"""The whole engine run on Apache Spark, its results brought home to the store.

`score --engine spark` runs `Engine.run` (the same compiled steps DuckDB runs: record ledger, characteristics,
triggers, monthly assessments, memory, notifications, the engine's own state) on a Spark session over the
store's facts as Parquet, and writes the derived tables back through the hand-over's import, so every reader
(`citizen`, `explain`, `decide`, pages, reports) finds the store as after a DuckDB run. The steps are handed
over Parquet both ways (`socialcredit.engine.handover`): the store never has to be reachable from the cluster's
workers, only the directory (on one machine, or a file system the workers share).

A Spark run is always a full run: the incremental path reads the last run's tables in the store, which stay
home. The run it stores carries the store's own facts fingerprint, so the next DuckDB run may resume from it.

Imports PySpark: only `score --engine spark` and the tests import this module (after `spark_missing`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from socialcredit.engine import Engine, Progress, RunSummary, handover, watermark
from socialcredit.engine.executors.spark import TINY, SparkExecutor, session
from socialcredit.schema import TABLES
from socialcredit.store import Store

# below this many records a store is small for Spark: one shuffle partition, no code generation, no adaptive
# re-planning (each costs more than the query on such data; `executors.spark.TINY`)
SMALL = 1_000_000
# the engine's own state tables a run reads before writing them: empty, so every Spark run is a full one
FRESH = ("engine_run", "record_entries_built")


@contextlib.contextmanager
def spark_session(master: str, small: bool) -> Iterator[SparkSession]:
    """A session on `master` for one command, stopped after it; a session already running in this process
    (a process holds one) is used as it is and left running for its owner."""
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    spark = session(master, "socialcredit", TINY if small else None)
    try:
        yield spark
    finally:
        spark.stop()


def run_on_spark(
    store: Store,
    spark: SparkSession,
    as_of: dt.datetime | None = None,
    pin: str | None = None,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> RunSummary:
    """One engine run on `spark` over the store's facts, its derived tables imported into the store (all or
    none); the run's summary. `workdir`: where the Parquet hand-over goes (a temporary directory in it,
    removed after), by default the system's temporary directory; a cluster's workers must be able to read it."""
    store.require_init()
    with tempfile.TemporaryDirectory(prefix="socialcredit-spark-", dir=workdir) as tmp:
        base = Path(tmp)
        facts = base / "facts"
        handover.export_facts(store, facts, pin)
        ex = SparkExecutor(spark)
        try:
            for name in handover.FACTS:
                ex.attach(name, facts / name)
            for name in FRESH:
                ex.materialize(name, TABLES[name].empty())
            summary = Engine(store, ex, handed_over=True).run(as_of, pin, progress)
            save_derived(store, ex, base / "derived")
        finally:
            ex.drop_all()  # the run's names, so a reused session starts clean
        handover.import_derived(store, base / "derived")
    return summary


def save_derived(store: Store, ex: SparkExecutor, directory: Path) -> handover.Manifest:
    """The run's derived tables as a hand-over directory (what `handover.import_derived` reads)."""
    directory.mkdir(parents=True)
    counts: dict[str, int] = {}
    for name in handover.DERIVED:
        ex.save(name, directory / name)
        counts[name] = sum(pq.ParquetFile(p).metadata.num_rows for p in handover.files(directory, name))
    manifest = handover.Manifest("derived", counts, watermark(store))
    manifest.write(directory)
    return manifest


def score_on_spark(
    store: Store,
    master: str,
    as_of: dt.datetime | None = None,
    pin: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """`score --engine spark`: a session on `master` (sized by the store's records), one run, the session
    stopped (unless it was this process's already)."""
    records = int(store.con.execute("SELECT count(*) FROM records").fetchall()[0][0])
    with spark_session(master, records < SMALL) as spark:
        return run_on_spark(store, spark, as_of, pin, progress)
