"""The whole engine run on Apache Spark, its results brought home to the store.

`score --engine spark` runs `Engine.run` (the same compiled steps DuckDB runs: record ledger, characteristics,
triggers, monthly assessments, memory, notifications, the engine's own state) on a Spark session over the
store's facts as Parquet, and writes the derived tables back through the hand-over's import, so every reader
(`citizen`, `explain`, `decide`, pages, reports) finds the store as after a DuckDB run. The steps are handed
over Parquet both ways (`socialcredit.engine.handover`): the store never has to be reachable from the cluster's
workers, only the directory (on one machine, or a file system the workers share).

A Spark run resumes as a DuckDB run does: the last run's own tables (its row in `engine_run`, the scored
record entries, the carried state; `resume.STATE_TABLES`) go over with the facts, and the same resume step
decides from them whether to keep the assessments before the earliest new record or relation change. The run
it stores carries the store's own facts fingerprint, so the next run on either engine may resume from it.

Imports PySpark: only `score --engine spark` and the tests import this module (after `spark_missing`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from socialcredit.engine import Engine, Progress, RunSummary, handover, resume, watermark
from socialcredit.engine.executors.spark import ONE_RUN, TINY, SparkExecutor, session
from socialcredit.engine.ledger import prepared
from socialcredit.schema import TABLES
from socialcredit.store import Store

# below this many records a store is small for Spark: one shuffle partition, no code generation, no adaptive
# re-planning (each costs more than the query on such data; `executors.spark.TINY`), and JVMs that compile
# quickly rather than well (`executors.spark.ONE_RUN`)
SMALL = 1_000_000
# what a run reads of the last run, besides the facts: its row, what the record ledger was built from, and the
# tables it carries (a store that has not run yet has none of them: they start empty, and the run is full)
LAST_RUN = ("engine_run", "record_entries_built", *resume.STATE_TABLES)


@contextlib.contextmanager
def spark_session(master: str, small: bool) -> Iterator[SparkSession]:
    """A session on `master` for one command, stopped after it; a session already running in this process
    (a process holds one) is used as it is and left running for its owner."""
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    spark = session(master, "socialcredit", {**TINY, **ONE_RUN} if small else None)
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
    full: bool = False,
) -> RunSummary:
    """One engine run on `spark` over the store's facts, its derived tables imported into the store (all or
    none); the run's summary. `workdir`: where the Parquet hand-over goes (a temporary directory in it,
    removed after), by default the system's temporary directory; a cluster's workers must be able to read it.
    `full`: as `Engine.run`'s (the last run's tables are not even handed over)."""
    store.require_init()
    with tempfile.TemporaryDirectory(prefix="socialcredit-spark-", dir=workdir) as tmp:
        base = Path(tmp)
        facts = base / "facts"
        handover.export_facts(store, facts, pin)
        kept = set() if full else handover.export_tables(store, base / "last", LAST_RUN)
        ex = SparkExecutor(spark)
        try:
            for name in handover.FACTS:
                ex.attach(name, facts / name)
            for name in LAST_RUN:
                if name in kept:
                    ex.attach(name, base / "last" / name)
                else:
                    ex.materialize(name, TABLES[name].empty())
            engine = Engine(store, ex, handed_over=True)
            summary = engine.run(as_of, pin, progress, full)
            save_derived(store, ex, base / "derived", prepared(engine.ctx).tables)
        finally:
            ex.drop_all()  # the run's names, so a reused session starts clean
        handover.import_derived(store, base / "derived")
    return summary


def save_derived(store: Store, ex: SparkExecutor, directory: Path, loaded: Mapping[str, pa.Table]) -> handover.Manifest:
    """The run's derived tables as a hand-over directory (what `handover.import_derived` reads).

    `loaded`: the compiled rulebook tables the run loaded into Spark, as the driver holds them (Arrow); they
    are written from there, unchanged, instead of each by a Spark job (seven jobs, about 1.5 s of the sample's
    run on this machine)."""
    directory.mkdir(parents=True)
    counts: dict[str, int] = {}
    for name in handover.DERIVED:
        if name in loaded:
            counts[name] = handover.write_arrow(loaded[name], name, directory)
            continue
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
    full: bool = False,
) -> RunSummary:
    """`score --engine spark`: a session on `master` (sized by the store's records), one run, the session
    stopped (unless it was this process's already)."""
    records = int(store.con.execute("SELECT count(*) FROM records").fetchall()[0][0])
    with spark_session(master, records < SMALL) as spark:
        return run_on_spark(store, spark, as_of, pin, progress, full=full)
