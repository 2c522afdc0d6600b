"""The Spark executor does what the DuckDB one does: each protocol method, on the same sqlglot expressions,
gives the same rows (naive UTC timestamps unshifted, NULLs, integer division and casts, window functions)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from socialcredit.engine.executors import Executor


def q(text: str) -> exp.Expression:
    """A test query, written in DuckDB's words and parsed once into the tree both executors get."""
    return sqlglot.parse_one(text, read="duckdb")


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in table.to_pylist()]


EVERY_TYPE = pa.table(
    {
        "k": pa.array([1, 2, 3], pa.int32()),
        "small": pa.array([1, -2, None], pa.int16()),
        "big": pa.array([2**40, None, -1], pa.int64()),
        "x": pa.array([0.1, None, -2.5]),
        "s": pa.array(["张伟", None, "it's"]),
        "b": pa.array([True, None, False]),
        "t": pa.array(
            [dt.datetime(2020, 1, 31, 16, 0, 0, 123456), dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)],
            pa.timestamp("us"),
        ),
        "d": pa.array([dt.date(2020, 2, 29), None, dt.date(1970, 1, 1)], pa.date32()),
        "ids": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
        "nothing": pa.nulls(3, pa.string()),
    }
)


@pytest.fixture
def both(duck: Executor, sparkx: Executor) -> tuple[Executor, Executor]:
    return duck, sparkx


def test_load_then_fetch_gives_the_rows_back_unchanged(both: tuple[Executor, Executor]) -> None:
    for ex in both:
        ex.load("t", EVERY_TYPE)
        got = ex.fetch(q("SELECT * FROM t ORDER BY k"))
        assert got.column_names == EVERY_TYPE.column_names, ex.dialect
        assert got.to_pylist() == EVERY_TYPE.to_pylist(), ex.dialect
        # naive in, naive out: a zone on the way back would mean Spark read them as instants and converted
        assert got.schema.field("t").type == pa.timestamp("us"), ex.dialect


def test_delete_removes_the_rows_the_condition_holds_for_and_keeps_those_it_is_null_for(
    both: tuple[Executor, Executor],
) -> None:
    """As SQL's DELETE: a row whose condition is NULL stays (Spark rewrites the table; DuckDB deletes in place),
    and what was appended before or after is treated the same."""
    due = pa.array(
        [dt.datetime(2025, 1, 1), None, dt.datetime(2025, 3, 1), dt.datetime(2025, 2, 1)], pa.timestamp("us")
    )
    for ex in both:
        ex.load("pending", pa.table({"k": pa.array([1, 2, 3, 4], pa.int32()), "due": due}))
        ex.append("pending", q("SELECT 5 AS k, TIMESTAMP '2024-12-01 00:00:00' AS due"))
        ex.delete("pending", q("SELECT due <= TIMESTAMP '2025-02-01 00:00:00'").selects[0])
        ex.extend("pending", q("SELECT 6 AS k, TIMESTAMP '2025-01-15 00:00:00' AS due"))
        assert rows(ex.fetch(q("SELECT k FROM pending ORDER BY k"))) == [(2,), (3,), (6,)], ex.dialect


def test_update_changes_the_matched_rows_named_columns_and_keeps_the_rest(
    both: tuple[Executor, Executor],
) -> None:
    """As SQL's UPDATE … FROM: a matched row takes the update's columns, a NULL among them too; unmatched rows
    and columns the update does not name stay; the update may read the table it changes (Spark rewrites it,
    DuckDB updates in place)."""
    state = pa.table({
        "k": pa.array([1, 2, 3, 4], pa.int32()), "raw": pa.array([10, 20, 30, 40], pa.int32()),
        "grade": pa.array(["A", "B", None, "C"]), "city": pa.array(["x", "y", "z", "w"]),
    })  # fmt: skip
    for ex in both:
        ex.load("state", state)
        ex.append("state", q("SELECT 5 AS k, 50 AS raw, 'D' AS grade, 'v' AS city"))
        ex.update("state", "k", q("SELECT k, CAST(raw + 1 AS INT) AS raw, NULL AS grade FROM state WHERE k IN (2, 5)"))
        ex.update("state", "k", q("SELECT 3 AS k, 'E' AS grade"))
        got = rows(ex.fetch(q("SELECT k, raw, grade, city FROM state ORDER BY k")))
        assert got == [(1, 10, "A", "x"), (2, 21, None, "y"), (3, 30, "E", "z"), (4, 40, "C", "w"), (5, 51, None, "v")]
        with pytest.raises(ValueError, match="needs its key"):
            ex.update("state", "k", q("SELECT raw FROM state"))


def test_an_empty_table_loads_and_keeps_its_columns(both: tuple[Executor, Executor]) -> None:
    # an empty slice has empty chunks; an empty DuckDB result has none at all
    for empty in (EVERY_TYPE.slice(0, 0), pa.Table.from_batches([], schema=EVERY_TYPE.schema)):
        for ex in both:
            ex.load("e", empty)
            got = ex.fetch(q("SELECT * FROM e"))
            assert got.num_rows == 0 and got.column_names == EVERY_TYPE.column_names, ex.dialect


def test_materialize_computes_now_and_may_read_the_name_it_replaces(both: tuple[Executor, Executor]) -> None:
    for ex in both:
        ex.load("t", pa.table({"k": pa.array([1, 2], pa.int32())}))
        ex.materialize("cur", q("SELECT k, 0 AS n FROM t"))
        for _ in range(3):  # the engine's month loop: each month's state from the last one's
            ex.materialize("cur", q("SELECT k, n + k AS n FROM cur"))
        ex.load("t", pa.table({"k": pa.array([7], pa.int32())}))  # computed already: a later t changes nothing
        assert rows(ex.fetch(q("SELECT k, n FROM cur ORDER BY k"))) == [(1, 3), (2, 6)], ex.dialect


def test_a_state_rewritten_from_itself_keeps_a_bounded_size_estimate(sparkx: Any) -> None:
    """The month loop's shape (`cur` from `cur` joined to what was made from `cur`): Spark estimates a join at
    the product of its inputs and hands the estimate to the checkpoint, so without a cap it squares every
    month, and after some twenty months planning one statement took minutes (the oracle histories' stall).
    Six months here: uncapped, the estimate has some 570 bits."""
    sparkx.load("t", pa.table({"k": pa.array(range(50), pa.int32())}))
    sparkx.materialize("cur", q("SELECT k, 0 AS n FROM t"))
    for _ in range(6):
        sparkx.materialize("cur", q("SELECT c.k, c.n + d.k AS n FROM cur AS c JOIN cur AS d ON d.k = c.k"))
    estimate = sparkx.spark.table("cur")._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
    assert int(estimate).bit_length() <= 63, int(estimate).bit_length()  # at most Spark's default, the largest Long
    assert rows(sparkx.fetch(q("SELECT sum(n) FROM cur"))) == [(6 * sum(range(50)),)]


def test_a_view_is_read_when_it_is_read(both: tuple[Executor, Executor]) -> None:
    for ex in both:
        ex.load("t", pa.table({"k": pa.array([1, 2], pa.int32())}))
        ex.view("doubled", q("SELECT k * 2 AS k2 FROM t"))
        assert rows(ex.fetch(q("SELECT k2 FROM doubled ORDER BY k2"))) == [(2,), (4,)], ex.dialect
        # the view sees the name's new rows, as a DuckDB view does (Spark resolves a SQL view's names late)
        ex.materialize("t", q("SELECT 5 AS k"))
        assert rows(ex.fetch(q("SELECT k2 FROM doubled"))) == [(10,)], ex.dialect


def test_drop_forgets_tables_and_views_and_ignores_unknown_names(both: tuple[Executor, Executor]) -> None:
    for ex in both:
        ex.load("t", pa.table({"k": pa.array([1], pa.int32())}))
        ex.view("v", q("SELECT k FROM t"))
        ex.materialize("m", q("SELECT k FROM t"))
        for name in ("v", "m", "t"):
            ex.drop(name)
            with pytest.raises(Exception, match=name):
                ex.fetch(q(f"SELECT * FROM {name}"))
        ex.drop("never_made")


FACTS = pa.table(
    {
        "k": pa.array([1, 2, 3, 4, 5, 6], pa.int32()),
        "c": pa.array([10, 10, 10, 20, 20, 30], pa.int32()),
        "n": pa.array([7, -7, None, 0, 9, -1], pa.int64()),
        "x": pa.array([2.5, -2.5, None, 7.0, 1e-9, -0.0]),
        "s": pa.array(["b", None, "a", "c", None, "a"]),
        "t": pa.array(
            [
                dt.datetime(2020, 1, 31, 16, 0, 0, 1),
                dt.datetime(2019, 12, 31, 16, 0),
                None,
                dt.datetime(2019, 12, 31, 15, 59, 59, 999999),
                dt.datetime(2024, 2, 29, 8, 0),
                dt.datetime(2020, 12, 31, 16, 0),
            ],
            pa.timestamp("us"),
        ),
    }
)

# what the engine's steps are made of; each is run on both executors and must give the same rows
AGREE = {
    "integer division and remainder, negative too": "SELECT k, n // 2 AS q, n % 2 AS r, n // -3 AS q3 FROM f",
    "division of integers is a double": "SELECT k, n / 2 AS h, CAST(n AS DOUBLE) / 4 AS f FROM f",
    "casts: bool, floor, widening, narrowing": """SELECT k, CAST(n > 0 AS INT) AS pos, CAST(FLOOR(x) AS INT) AS fl,
        CAST(c AS BIGINT) * 3000000000 AS wide, CAST(c AS SMALLINT) AS narrow, CAST(n AS DOUBLE) AS d,
        CAST(k AS VARCHAR) || '-' || c AS label FROM f""",
    "bucket arithmetic as the record ledger does it": """SELECT k,
        CAST(FLOOR(LEAST(GREATEST((x - 1.5) / 0.5, -1.0), 4)) AS INT) + 1 AS bucket FROM f WHERE x IS NOT NULL""",
    "NULLs: coalesce, distinctness, concatenation, least/greatest": """SELECT k, coalesce(n, -100) AS n0,
        s IS DISTINCT FROM 'a' AS other, s || '!' AS loud, least(n, 1) AS lo, greatest(x, NULL, 0.5) AS hi,
        CASE WHEN n IS NULL THEN 'none' WHEN n > 0 THEN 'up' ELSE 'down' END AS way FROM f""",
    "aggregates over NULLs and over nothing": """SELECT c, count(*) AS rows_, count(n) AS ns, sum(n) AS total,
        min(s) AS first_s, max(t) AS last_t, bool_or(n > 5) AS any_big FROM f GROUP BY c""",
    "an aggregate of no rows is one row of NULLs": "SELECT sum(n) AS total, max(t) AS last_t FROM f WHERE k > 100",
    "naive UTC timestamps: literals, comparison, months, truncation": """SELECT k,
        t >= CAST('2019-12-31 16:00:00' AS TIMESTAMP) AS after_change,
        t + INTERVAL 1 MONTH AS next_month, t + INTERVAL 3 DAY AS three_days,
        date_trunc('month', t) AS month_start, date_trunc('year', t + INTERVAL 8 HOUR) AS cst_year,
        CAST(t AS DATE) AS day, EXTRACT(year FROM t) AS y FROM f""",
    "a row's own number of months and days later (a validity, a minimum stay)": """SELECT k,
        t + INTERVAL (c) MONTH + INTERVAL (k) DAY AS later, t + INTERVAL (CAST(n AS INT)) MONTH AS moved FROM f""",
    "window functions: running sums, ranks, neighbours, NULLs ordered last": """SELECT k,
        sum(n) OVER (PARTITION BY c ORDER BY t, k ROWS UNBOUNDED PRECEDING) AS running,
        row_number() OVER (ORDER BY s, k) AS by_s, rank() OVER (PARTITION BY c ORDER BY n DESC) AS rk,
        lag(k) OVER (PARTITION BY c ORDER BY k) AS before, count(*) OVER (PARTITION BY c) AS in_c FROM f""",
    "joins, anti-joins as NOT EXISTS, semi-joins as IN": """SELECT a.k, b.k AS other FROM f a
        LEFT JOIN f b ON b.c = a.c AND b.k > a.k
        WHERE NOT EXISTS (SELECT 1 FROM f z WHERE z.k = a.k AND z.s = 'c')
          AND a.c IN (SELECT c FROM f WHERE n IS NOT NULL)""",
    "a row of keys in a list of rows (a rule's cities and versions)": """SELECT k FROM f
        WHERE (CAST(c AS SMALLINT), k) IN ((10, 1), (20, 5), (30, 6), (30, 7))""",
    "union all keeps duplicates, distinct drops them": """SELECT c FROM f UNION ALL SELECT c FROM f
        UNION ALL SELECT DISTINCT c FROM f""",
}


@pytest.mark.parametrize("text", AGREE.values(), ids=list(AGREE))
def test_the_same_expression_gives_the_same_rows(both: tuple[Executor, Executor], text: str) -> None:
    query = q(text)
    got = {}
    for ex in both:
        ex.load("f", FACTS)
        got[ex.dialect] = ex.fetch(query)
    d, s = got["duckdb"], got["spark"]
    assert d.num_rows > 0
    assert d.column_names == s.column_names
    # row order is not part of a query without ORDER BY: compare as sorted lists (None sorts first)
    key = lambda r: tuple((v is not None, v) for v in r)  # noqa: E731
    assert sorted(rows(d), key=key) == sorted(rows(s), key=key)
    for name in d.column_names:
        for t in (d, s):
            assert not (pa.types.is_timestamp(t.schema.field(name).type) and t.schema.field(name).type.tz), name


def test_where_the_dialects_part_ways_a_step_must_not_go(both: tuple[Executor, Executor]) -> None:
    """What sqlglot translates faithfully but the engines evaluate differently, pinned so a step author sees
    it: a fractional value cast to an integer (DuckDB rounds, Spark truncates: floor first, as the record
    ledger does) and a division by zero (DuckDB gives infinity, Spark with ANSI semantics refuses)."""
    duck, spark = both
    for ex in both:
        ex.load("f", FACTS)
    cast = q("SELECT CAST(2.7 AS INT) AS i")
    assert rows(duck.fetch(cast)) == [(3,)] and rows(spark.fetch(cast)) == [(2,)]
    assert rows(duck.fetch(q("SELECT 1 / 0 AS z"))) == [(float("inf"),)]
    with pytest.raises(Exception, match="DIVIDE_BY_ZERO"):
        spark.fetch(q("SELECT 1 / 0 AS z"))


def test_materialized_rows_outlive_their_source_and_parquet_keeps_timestamps_both_ways(
    duck: Any, sparkx: Any, tmp_path: Path
) -> None:
    """Spark's hand-over both ways: Parquet that DuckDB wrote is read with the same naive times, a table
    materialized from it is computed then (its files can go), and what Spark saves DuckDB reads back equal."""
    duck.load("t", EVERY_TYPE)
    (tmp_path / "in").mkdir()
    duck.con.table("t").write_parquet(str(tmp_path / "in" / "part-0.parquet"))
    sparkx.attach("src", tmp_path / "in")
    sparkx.materialize("kept", q("SELECT * FROM src"))
    shutil.rmtree(tmp_path / "in")
    assert sparkx.fetch(q("SELECT * FROM kept ORDER BY k")).to_pylist() == EVERY_TYPE.to_pylist()
    sparkx.save("kept", tmp_path / "out")
    back = duck.con.read_parquet(str(tmp_path / "out" / "*.parquet")).order("k").to_arrow_table()
    assert back.to_pylist() == EVERY_TYPE.to_pylist()


def test_the_schema_given_for_a_hand_over_table_is_the_one_spark_infers(spark: Any, tmp_path: Path) -> None:
    """`attach` tells Spark each table's schema (read from its footer by Arrow) instead of letting it infer one:
    for every table a run hands over (the facts of a scored sample store, and the last run's tables), the same
    column names and types as Spark's own inference (so the rows read are the same too)."""
    from socialcredit.engine import Engine, handover
    from socialcredit.engine.executors.spark import parquet_schema
    from socialcredit.engine.executors.spark_run import LAST_RUN
    from socialcredit.sample import load_sample
    from socialcredit.store import Store

    with Store(tmp_path / "s.duckdb") as store:
        store.init()
        load_sample(store)
        Engine(store).run(dt.datetime(2025, 7, 1))
        handover.export_facts(store, tmp_path / "facts")
        kept = handover.export_tables(store, tmp_path / "last", LAST_RUN)
    dirs = [tmp_path / "facts" / n for n in handover.FACTS] + [tmp_path / "last" / n for n in sorted(kept)]
    assert len(dirs) > 15 and "engine_carry" in kept
    for path in dirs:
        given = parquet_schema(path)
        assert given is not None, path.name
        inferred = spark.read.parquet(str(path)).schema
        assert [(f.name, f.dataType) for f in given.fields] == [(f.name, f.dataType) for f in inferred.fields]
    assert parquet_schema(tmp_path / "nothing") is None  # no file: Spark infers (and says what is missing)


def test_a_join_and_a_grouping_over_a_small_sessions_tables_shuffle_nothing(
    both: tuple[Executor, Executor], tmp_path: Path
) -> None:
    """In a session of one shuffle partition (the tests' one, as any small store's) every table is held as one
    partition, loaded, materialized, appended to or attached, so a statement that joins two of them and groups
    the result is one stage: Spark plans no shuffle (an exchange) for it. (A second join in the same statement
    still shuffles: Spark skips the shuffle only where every side of a join is said to be one partition, and it
    says so of no inner join's output.) The rows are DuckDB's."""
    duck, spark = both
    assert getattr(spark, "single", False)
    many = pa.table({"k": pa.array(range(3000), pa.int64()), "g": pa.array([i % 7 for i in range(3000)], pa.int64())})
    (tmp_path / "f").mkdir()
    weights = pa.table({"g": pa.array(range(7), pa.int64()), "w": pa.array(range(7), pa.int64())})
    pq.write_table(weights, tmp_path / "f" / "part-0.parquet")
    for ex in (duck, spark):
        ex.load("many", many)  # past INLINE_VALUES: Arrow rows, checkpointed
        ex.load("few", pa.table({"g": pa.array([1, 2, 3], pa.int64())}))  # inlined in the plans
        ex.materialize("even", q("SELECT k, g FROM many WHERE k % 2 = 0"))
        ex.append("even", q("SELECT k, g FROM many WHERE k % 3 = 1"))
        ex.extend("even", q("SELECT k, g FROM many WHERE k < 5"))
    duck.load("weights", weights)
    spark.attach("weights", tmp_path / "f")
    for query in (
        "SELECT e.g, count(*) AS n FROM even AS e JOIN few AS f ON f.g = e.g GROUP BY e.g ORDER BY e.g",
        "SELECT m.g, sum(w.w) AS w FROM many AS m LEFT JOIN weights AS w ON w.g = m.g GROUP BY m.g ORDER BY m.g",
    ):
        plan = spark._frame(q(query))._jdf.queryExecution().executedPlan().toString()  # type: ignore[attr-defined]
        assert "Exchange" not in plan, plan
        assert rows(spark.fetch(q(query))) == rows(duck.fetch(q(query)))
