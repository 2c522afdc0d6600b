"""Fixtures for the Spark executor's tests: one local Spark session for the whole run (starting one costs
10-30 s, and a process can hold only one), and a DuckDB executor beside it to compare with.

Nothing here skips silently: without PySpark or Java the tests fail and say what to install. A machine
that cannot run Spark at all opts out by name, with SOCIALCREDIT_SKIP_SPARK=1 (the skip then says so).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from socialcredit.engine.executors.duckdb import DuckDBExecutor

OPT_OUT = "SOCIALCREDIT_SKIP_SPARK"


def require_spark() -> None:
    """Fail (or, when opted out, skip) with what is missing, before anything tries to start a JVM."""
    if os.environ.get(OPT_OUT):
        pytest.skip(f"{OPT_OUT} is set: the Spark executor's tests are not run")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail(f"PySpark is not installed: pip install -e '.[spark]' (or `make`), or set {OPT_OUT}=1 to opt out")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail(f"no Java runtime: apt-get install openjdk-17-jre-headless (`make test` does), or set {OPT_OUT}=1")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    require_spark()
    from socialcredit.engine.executors.spark import TINY, session

    s = session("local[2]", "socialcredit-tests", TINY)
    yield s
    s.stop()


@pytest.fixture
def duck() -> Iterator[DuckDBExecutor]:
    """A DuckDB executor on its own in-memory database, with the store's session time zone (naive TIMESTAMPs
    must not care about it)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    yield DuckDBExecutor(con)
    con.close()


@pytest.fixture
def sparkx(spark: Any) -> Iterator[Any]:
    """A Spark executor on the shared session; the names a test made are dropped after it, so no test reads
    another's leftovers."""
    from socialcredit.engine.executors.spark import SparkExecutor

    ex = SparkExecutor(spark)
    yield ex
    ex.drop_all()
