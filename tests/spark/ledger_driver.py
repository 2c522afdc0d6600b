"""The record ledger of a facts directory, computed on a Spark master and saved as Parquet: run by
test_on_spark in a process of its own (a process holds one Spark context, and the tests' is local)."""

from __future__ import annotations

import sys
from pathlib import Path

from socialcredit.compiler import record_ledger_query
from socialcredit.engine import Engine
from socialcredit.executors.spark import TINY, SparkExecutor, session
from socialcredit.handover import Manifest
from socialcredit.store import Store


def main(db: Path, facts: Path, out: Path, master: str) -> None:
    with Store(db) as store:
        compiled = Engine(store).prepare()
    spark = session(master, "socialcredit-ledger", {**TINY, "spark.executor.memory": "512m", "spark.cores.max": "2"})
    try:
        ex = SparkExecutor(spark)
        for name in Manifest.read(facts).tables:
            ex.attach(name, facts / name)
        ex.materialize("ledger", record_ledger_query(compiled, "records"))
        ex.save("ledger", out)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
