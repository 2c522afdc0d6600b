"""How a report puts its queries together (report/sql.py): sqlglot trees, values bound or as literals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from sqlglot import exp

from socialcredit.report.sql import attach, cte, in_run, select, set_variable, statement, use


def test_shared_pieces_come_first_and_values_enter_as_literals() -> None:
    shared = cte("x", "SELECT $v AS x, $name AS name", v=41, name="it's", why="a shared piece")
    text = statement("WITH y AS (SELECT x + 1 AS z, name FROM x) SELECT z, name FROM y", shared, why={"y": "its own"})
    assert text.index("x AS (") < text.index("y AS (")
    assert "/* a shared piece */" in text and "/* its own */" in text
    assert duckdb.connect().execute(text).fetchall() == [(42, "it's")]


def test_a_run_of_two_reads_its_own_tables_and_keeps_its_common_table_expressions() -> None:
    q = in_run(
        select("WITH n AS (SELECT 1) SELECT * FROM ledger JOIN n ON TRUE JOIN b.pieces ON TRUE"), "a", ["ledger"]
    )
    tables = sorted(f"{t.db}.{t.name}" for t in q.find_all(exp.Table))
    assert tables == [".n", "a.ledger", "b.pieces"]


def test_attach_and_variables_bind_their_values_and_show_literals(tmp_path: Path) -> None:
    """A path with a quote in it: bound when run, escaped by sqlglot when shown, and the shown line runs too."""
    path = tmp_path / "o'brien.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 7 AS v")
    con = duckdb.connect()
    con.execute(attach("a"), [str(path)])
    con.execute(attach("b", str(path)))
    con.execute(set_variable("as_of"), [dt.datetime(2025, 3, 31, 16)])
    con.execute(set_variable("first_month", dt.date(2025, 1, 1)))
    con.execute(use("b"))
    got = con.execute("SELECT v, getvariable('as_of'), getvariable('first_month') FROM t").fetchall()
    assert got == [(7, dt.datetime(2025, 3, 31, 16), dt.date(2025, 1, 1))]
    assert con.execute("SELECT v FROM a.t").fetchall() == [(7,)]
