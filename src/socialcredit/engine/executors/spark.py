"""The distributed executor: steps run on Apache Spark, over the store's facts as Parquet.

Spark is an optional extra (`pip install socialcredit[spark]`, plus a Java 17 runtime); nothing else in
the package imports this module, so DuckDB stays the embedded default. Names are Spark temporary views:

* `materialize` computes the query now and cuts its lineage (a local checkpoint), so a table the engine
  replaces every month (its running state) does not drag every earlier month's plan along, nor its size
  estimate (`_checkpoint` says why the estimate needs cutting too);
* `view` is a SQL temporary view, which Spark resolves by name when it is read, as DuckDB does, so a view
  over a name that is materialized again later sees the new rows on both executors;
* `load` and `fetch` are Arrow both ways (small tables: compiled rulebooks, control results);
* `attach` and `save` read and write Parquet directories, the hand-over with the store (`handover`).

The store keeps naive UTC TIMESTAMPs. The session is set so that they stay naive and unshifted everywhere:
TIMESTAMP means TIMESTAMP_NTZ (in SQL casts, in Arrow without a zone, in Parquet written by DuckDB, which
marks them not adjusted to UTC), and the session time zone is UTC for anything that still converts.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructField, StructType, TimestampNTZType, TimestampType
from sqlglot import exp

from socialcredit.engine.executors import TEXTS, Query, sql, tree, updated_columns

# Small, test-friendly settings: a handful of shuffle partitions (the default 200 makes every shuffle of a small
# store cost seconds), no web UI, no console progress bars. A master on this machine also gets LOOPBACK.
SETTINGS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.executor.memory": "1g",
    "spark.driver.memory": "2g",  # local mode: the driver is the executor too
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # constraint propagation infers predicates through every operator; over a union of appended parts it fails
    # (`key not found` in Union.rewriteConstraints, the month loop's grade stays) and on the compiled record
    # ledger's wide plans it costs seconds of planning for filters the steps never need
    "spark.sql.constraintPropagation.enabled": "false",
    # the compiled rulebook tables are a few MB at most: joined by broadcast, never by shuffling the records
    "spark.sql.autoBroadcastJoinThreshold": "64MB",
}
# For stores of a few thousand rows (the tests, the bundled sample): whole-stage code generation and adaptive
# re-planning cost more than such a query (measured: the sample's record ledger 2-3 times faster without)
TINY: dict[str, str] = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    # a broadcast of a checkpointed table is a job of its own, in every statement that joins it; with one
    # shuffle partition a sort-merge join is one task in the statement's own job (the sample: 637 jobs -> 345)
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    # expressions interpreted instead of compiled to Java: on a few thousand rows, compiling each statement's
    # projections and predicates (Janino) costs more than evaluating them (the sample's run: 140 s -> 74 s).
    # Spark marks this setting internal; NO_CODEGEN is the path its own test suite runs every expression on,
    # and the one it falls back to when generated code fails to compile
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # by default Spark prunes a join's larger side with a Bloom filter built from the other by a job of its own,
    # sized for a million keys (8,388,608 bits); the network share's semi join got one every month. On a few
    # thousand rows that is a job to skip a few hundred (the sample's run: 120 jobs -> 115)
    "spark.sql.optimizer.runtime.bloomFilter.enabled": "false",
}
# For a session started for one command on a small store (`score --engine spark`): its JVMs (the driver's, and
# a cluster's executors) live for one run of some seconds, over before the optimising compiler's work pays back,
# and on two cores that compiler competes with the run for them. The quick compiler alone: the sample's run on
# a fresh two-worker cluster 57 s -> 40 s (its test, `score` in a process of its own, 75 s -> 58 s), and on a
# fresh local session 63 s -> 43 s. A session that serves many runs (the tests' one) is better off without it
# (its later runs are up to a tenth slower). Set as the JVMs' default options, which Spark puts before their
# extra ones: a user's own `extraJavaOptions` (spark-defaults.conf, --conf) are kept, and a flag of theirs
# comes later and wins (set as extra options, ours replaced theirs). Only the compiler: a collector chosen here
# would stop the JVM from starting wherever the user chose another (HotSpot refuses two)
ONE_RUN_JAVA = "-XX:TieredStopAtLevel=1"
ONE_RUN: dict[str, str] = {
    "spark.driver.defaultJavaOptions": ONE_RUN_JAVA,
    "spark.executor.defaultJavaOptions": ONE_RUN_JAVA,
}

# everything the driver listens on stays on 127.0.0.1 when the master is local (a remote cluster's workers must
# reach the driver, so there Spark's own choice of address stands)
LOOPBACK: dict[str, str] = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}


def session(
    master: str = "local[2]", app: str = "socialcredit", settings: dict[str, str] | None = None
) -> SparkSession:
    """A Spark session on `master` (`local[N]` in this process's JVM, or `spark://HOST:PORT`, a standalone
    cluster), with SETTINGS and then `settings` on top. The workers run this same Python."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    here = master.startswith("local") or master.split("://")[-1].split(":")[0] in ("127.0.0.1", "localhost")
    if here:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(app)
    for key, value in {**SETTINGS, **(LOOPBACK if here else {}), **(settings or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # PySpark logs every failed query's Java stack to stderr before raising; the exception says it all
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return spark


APPEND_PARTS = 8


class SparkExecutor:
    """Runs steps on a Spark session; every name is a temporary view of that session."""

    dialect = "spark"

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        # A session of one shuffle partition (TINY's: a small store) runs each shuffled part of a statement as
        # one task anyway. There every table is held as one partition, which Spark knows satisfies any grouping,
        # ordering and join key: a join of two such tables, a left join onto one, a grouping or a sort over one
        # is planned without a shuffle (on this machine a stage costs ~40 ms however few its rows; a join and a
        # grouping over two tables, 147 ms -> 39 ms). An inner join's output is not said to be one partition, so
        # a second join after one still shuffles. The sample's run (to 1 July 2025) took 37-39 s instead of
        # 45-47 s in a fresh session, 15-22 s instead of 19-25 s in a warm one.
        self.single = str(spark.conf.get("spark.sql.shuffle.partitions")) == "1"
        # the checkpointed frames behind materialized names: dropping the reference lets Spark free the blocks
        self._held: dict[str, DataFrame] = {}
        self._parts: dict[str, int] = {}  # how many checkpointed parts an appended name is the union of

    def _frame(self, query: Query) -> DataFrame:
        text = TEXTS.text(query, (self.dialect, "SELECT"), lambda q: sql(_spark_intervals(q), self.dialect))
        return _naive(self.spark.sql(text))

    def _one(self, frame: DataFrame) -> DataFrame:
        """The frame as one partition (a narrow coalesce, no shuffle) in a session of one shuffle partition."""
        return frame.coalesce(1) if self.single else frame

    def _register(self, name: str, frame: DataFrame) -> None:
        self.drop(name)
        frame.createOrReplaceTempView(name)
        self._held[name] = frame

    def materialize(self, name: str, query: Query, temporary: bool = False) -> None:
        # analysed before `name` is replaced, so a query may read the name it replaces (the month loop does);
        # every name is a temporary view of the session here, so `temporary` changes nothing
        self._register(name, _checkpoint(self._one(self._frame(query))))
        self._parts.pop(name, None)

    def append(self, name: str, query: Query) -> int:
        """As INSERT INTO: the new rows take the table's column names and types by position. The table becomes
        the union of its checkpointed parts; every APPEND_PARTS appends they are checkpointed into one, so
        neither the plan nor the copying grows with the number of months."""
        new = self._part(name, query)
        count = new.count()  # one job: computes the new rows, holds them (the checkpoint) and counts them
        self._add(name, new)
        return count

    def extend(self, name: str, query: Query) -> None:
        """As `append`, without the count: the new part is checkpointed lazily, so its rows are computed (and
        held) by the first job that reads the table, not by a job of their own. The part's query was analysed
        now, against the names as they are now, so a name replaced before that job does not change it."""
        self._add(name, self._part(name, query))

    def _part(self, name: str, query: Query) -> DataFrame:
        """The rows `query` adds to `name`, typed as its columns by position, to be checkpointed when first
        computed."""
        old = self.spark.table(name)
        new = self._frame(query)
        new = new.select(*[new[i].cast(f.dataType).alias(f.name) for i, f in enumerate(old.schema.fields)])
        return self._one(new).localCheckpoint(eager=False)

    def _add(self, name: str, new: DataFrame) -> None:
        both = self._one(self.spark.table(name).union(_sized(new)))
        parts = self._parts.get(name, 1) + 1
        if parts > APPEND_PARTS:
            both, parts = _checkpoint(both), 1
        self._register(name, both)
        self._parts[name] = parts

    def delete(self, name: str, condition: Query) -> None:
        """A rewrite keeping the other rows: a session's temporary views take no DELETE."""
        kept = exp.not_(exp.func("coalesce", tree(condition), exp.false()))
        self.materialize(name, exp.select("*").from_(exp.to_table(name)).where(kept))

    def update(self, name: str, key: str, query: Query) -> None:
        """A rewrite: each row joined to its update by key, a column taken from the update where one matched
        (a session's temporary views take no UPDATE)."""
        change = tree(query)
        columns = set(updated_columns(name, key, change))
        matched = exp.column(key, table="u", quoted=True).is_(exp.null()).not_()

        def column(c: str) -> exp.Expression:
            old = exp.column(c, table="t", quoted=True)
            if c not in columns:
                return exp.Alias(this=old, alias=exp.to_identifier(c, quoted=True))
            new = exp.column(c, table="u", quoted=True)
            case = exp.Case(ifs=[exp.If(this=matched.copy(), true=new)], default=old)
            return exp.Alias(this=case, alias=exp.to_identifier(c, quoted=True))

        kept = [column(c) for c in self.spark.table(name).columns]
        rewrite = (
            exp.select(*kept)
            .from_(exp.to_table(name).as_("t"))
            .join(
                exp.Subquery(this=change, alias=exp.TableAlias(this=exp.to_identifier("u"))),
                on=exp.EQ(
                    this=exp.column(key, table="t", quoted=True), expression=exp.column(key, table="u", quoted=True)
                ),
                join_type="LEFT",
            )
        )
        self.materialize(name, rewrite)

    def view(self, name: str, query: Query, temporary: bool = False) -> None:
        create = exp.Create(
            this=exp.to_table(name),
            kind="VIEW",
            replace=True,
            expression=_spark_intervals(tree(query)),
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        self._held.pop(name, None)
        self.spark.sql(sql(create, self.dialect))

    def load(self, name: str, table: pa.Table, temporary: bool = False) -> None:
        inline = _inline(table)
        if inline is not None:  # a small table as SQL VALUES: Spark holds it in the plan (a local relation)
            self._register(name, self._one(self.spark.sql(sql(inline, self.dialect))))
            return
        # a column of nothing but NULLs arrives typed `null`, which Spark has no Arrow conversion for
        fixed = table.cast(
            pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])
        )
        if fixed.num_rows == 0:  # PySpark cannot convert a column of no chunks (DuckDB's empty results have none)
            fixed = pa.table({f.name: pa.array([], f.type) for f in fixed.schema}, schema=fixed.schema)
        # held as a checkpoint: a frame made from Arrow is analysed again by every statement that reads it, and
        # for the compiled rulebooks' buckets (215,006 rows for the demo's cities) that was 6 s of the record
        # ledger's statement, against under a second over the checkpointed rows
        self._register(name, _checkpoint(self._one(self.spark.createDataFrame(fixed))))

    def fetch(self, query: Query) -> pa.Table:
        return self._frame(query).toArrow()

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        self._held.pop(name, None)
        self._parts.pop(name, None)

    def drop_all(self) -> None:
        """Every temporary view of the session dropped, so a reused session starts clean. (`SHOW VIEWS`, not
        `catalog.listTables`, whose rows Spark decodes with generated code that TINY turns off.)"""
        for row in self.spark.sql("SHOW VIEWS").collect():
            if row.isTemporary:
                self.drop(row.viewName)

    def keep(self, name: str) -> None:
        """The view's rows computed now and held under its name: a SQL view is planned again by every statement
        that reads it, and the engine's ledger views sit under most of a run's statements."""
        self._register(name, _checkpoint(self._one(self.spark.table(name))))

    def release(self) -> None:
        """Nothing: the session is the executor's own, changed by no statement."""

    # ------------------------------------------------------------------ the Parquet hand-over

    def attach(self, name: str, path: Path) -> None:
        """`name` becomes the Parquet files at `path` (a file or a directory of them), read lazily."""
        reader = self.spark.read
        schema = parquet_schema(path)
        if schema is not None:
            reader = reader.schema(schema)
        self._register(name, self._one(_naive(reader.parquet(str(path)))))

    def save(self, name: str, path: Path) -> None:
        """The rows of `name` into a Parquet directory at `path` (replacing it), one file per partition."""
        _naive(self.spark.table(name)).write.mode("overwrite").parquet(str(path))


def parquet_schema(path: Path) -> StructType | None:
    """The Spark schema of the Parquet files at `path` (a file, or a directory of files of one schema, as the
    hand-over writes them), from the first one's footer as Arrow reads it; None where there is no file or a
    type Spark has no Arrow conversion for (Spark then infers the schema itself).

    Why: given a schema, Spark does not infer one. Inferring opens a footer in the JVM, ~80 ms a table on this
    machine, and a run attaches seventeen tables (the rich history's three Spark runs: 3.3 s of 43). Spark reads
    every Parquet column as nullable, whatever the footer says, so the schema says so too."""
    first = path if path.is_file() else min(path.glob("*.parquet"), default=None)
    if first is None:
        return None
    try:
        read = from_arrow_schema(pq.read_schema(first))
    except TypeError:  # PySpark's "unsupported type" errors are TypeErrors
        return None
    return StructType([StructField(f.name, f.dataType, True) for f in read.fields])


# a table loaded with at most this many values is inlined in the plans that read it (see `_inline`)
INLINE_VALUES = 2_000
_INLINE_TYPES: dict[str, str] = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INT",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "timestamp[us]": "TIMESTAMP",
}


def _inline(table: pa.Table) -> exp.Expression | None:
    """A small table of plain columns as `SELECT CAST(c AS type) ... FROM VALUES ...`, or None for another.

    Spark keeps such a table in the query plan (a local relation), so a join broadcasts it without first
    running a job to collect it, as it must for a table made from Arrow (an RDD): the month loop joins its
    small tables (grade lists, the month, the network rules) in most statements. Larger ones would bloat
    every task's plan, so they stay RDDs."""
    kinds = [_INLINE_TYPES.get(str(f.type), "") for f in table.schema]
    if not all(kinds) or table.num_rows * max(1, table.num_columns) > INLINE_VALUES:
        return None
    names = table.column_names
    cols = [
        exp.cast(exp.column(f"c{i}"), k).as_(exp.to_identifier(n, quoted=True))
        for i, (n, k) in enumerate(zip(names, kinds, strict=True))
    ]
    if table.num_rows == 0:
        return exp.select(
            *[exp.cast(exp.null(), k).as_(exp.to_identifier(n, quoted=True)) for n, k in zip(names, kinds, strict=True)]
        ).where(exp.false())
    rows = [exp.Tuple(expressions=[_literal(v) for v in row.values()]) for row in table.to_pylist()]
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier("v"), columns=[exp.to_identifier(f"c{i}") for i in range(len(names))]
        ),
    )
    return exp.select(*cols).from_(values)


def _literal(v: object) -> exp.Expression:
    from socialcredit.engine.sql import value

    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):  # no SQL literal: Spark's words
        return exp.cast(exp.Literal.string(str(v).replace("inf", "Infinity")), exp.DataType.Type.DOUBLE)
    return value(v)


def _spark_intervals(query: exp.Expression) -> exp.Expression:
    """`t + INTERVAL (n) MONTH` with a computed `n` (how a step says "a row's own number of months later")
    as sqlglot's TimestampAdd, which it writes for Spark as TIMESTAMPADD-style DATE_ADD(MONTH, n, t); sqlglot
    passes the INTERVAL form through to Spark verbatim, and Spark cannot parse it. DuckDB is not affected: the
    DuckDB executor never sees this, and sqlglot writes the same text for both forms there."""

    out = query.copy()
    # `(a, b) IN ((1, 2), ...)`: Spark compares the row's struct type with the literals' (SMALLINT against INT)
    # and refuses; the same test as ORs of ANDs
    for within in reversed(list(out.find_all(exp.In))):
        if isinstance(within.this, exp.Tuple) and within.expressions and not within.args.get("query"):
            cols = within.this.expressions
            rows = [
                exp.and_(*[c.copy().eq(v.copy()) for c, v in zip(cols, t.expressions, strict=True)])
                for t in within.expressions
                if isinstance(t, exp.Tuple)
            ]
            if len(rows) == len(within.expressions):
                within.replace(exp.paren(exp.or_(*rows)))
    for node in reversed(list(out.find_all(exp.Add))):  # the innermost first: `t + a MONTH + b DAY` nests
        amount, unit = node.expression, node.expression.args.get("unit")
        if isinstance(amount, exp.Interval) and unit is not None and not isinstance(amount.this, exp.Literal):
            node.replace(exp.TimestampAdd(this=node.this, expression=amount.this.unnest(), unit=exp.var(unit.name)))
    return out


# the largest size estimate (bytes) a checkpointed frame keeps; Spark's own default for a frame it cannot size
# (`spark.sql.defaultSizeInBytes`) is the largest Long, 2^63 - 1
ESTIMATE_BITS = 63


def _checkpoint(frame: DataFrame) -> DataFrame:
    """The frame computed now and held (a local checkpoint), with a size estimate that cannot run away.

    Spark (3.4 on, SPARK-39834) gives a checkpointed frame the size its query was estimated at, and without
    column statistics it estimates a join at the product of its inputs' sizes. The month loop rewrites its
    state from itself (`cur` from `cur` joined to `nxt`, itself made from `cur`), so the estimate is squared
    every month: its digits double each month, and after some twenty months of the oracle's histories the
    planner spent minutes multiplying numbers of millions of digits (SizeInBytesOnlyStatsPlanVisitor) before
    running a statement of a few rows. An estimate past the largest Long says nothing Spark can use (no
    broadcast, no skew), so such a frame is held over the same checkpointed rows with Spark's default
    estimate instead; a sane estimate (a small table Spark may broadcast) is kept as it is."""
    return _sized(frame.localCheckpoint(eager=True))


def _sized(held: DataFrame) -> DataFrame:
    """A checkpointed frame, or the same rows under Spark's default estimate when its own has run away
    (`_checkpoint`)."""
    plan = held._jdf.queryExecution()
    try:
        sane = int(plan.optimizedPlan().stats().sizeInBytes()).bit_length() <= ESTIMATE_BITS
    except ValueError:  # too many digits for Python to read at all
        sane = False
    if sane:
        return held
    session = held.sparkSession
    rows = plan.toRdd()
    fresh = DataFrame(session._jsparkSession.internalCreateDataFrame(rows, held._jdf.schema(), False), session)
    # rows of one partition said to be one again (a narrow coalesce): the new frame knows nothing of its layout
    return fresh.coalesce(1) if rows.getNumPartitions() == 1 else fresh


def _naive(frame: DataFrame) -> DataFrame:
    """Every TIMESTAMP column as TIMESTAMP_NTZ. Some Spark functions return a zoned TIMESTAMP even from naive
    input (`date_trunc` does); in a UTC session the cast keeps the wall-clock value, and without it the
    column would come home marked as an instant (Arrow with a zone, Parquet adjusted to UTC)."""
    zoned = [f.name for f in frame.schema.fields if isinstance(f.dataType, TimestampType)]
    if not zoned:
        return frame
    return frame.withColumns({name: frame[name].cast(TimestampNTZType()) for name in zoned})
