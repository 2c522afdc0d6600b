"""The embedded executor: steps run in the store's own DuckDB connection."""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa
from sqlglot import exp

from socialcredit.engine.executors import TEXTS, Query, sql, updated_columns
from socialcredit.sqltemplates import create


class DuckDBExecutor:
    """Runs steps on a DuckDB connection (the store's, so derived tables land beside the facts).

    A query handed to it is the caller's to give away: it is turned into SQL without a copy (the engine
    builds a fresh tree for every statement) and may be changed by sqlglot's generator.

    `dense_keys`: the number of dense integer keys the steps group by (citizens). DuckDB aggregates and joins
    on a key whose range fits 2^perfect_ht_threshold with a perfect hash table instead of a general one; the
    setting is DuckDB's own, so it lives here and no step names it. The range is bounded by the keys so that
    a sparse wider key (record keys) does not get a table the size of its range.

    The setting belongs to the connection, which is the store's: it is set before the executor's first
    statement and put back by `release` (the engine releases at the end of every call). Left set, it made
    every later query on the store that groups a few rows by a wide key initialise a table of 2^21 entries:
    the simulator's response query went from 0.02 to 0.33 s a month at a million citizens.
    """

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, dense_keys: int | None = None) -> None:
        self.con = con
        self._bits = None if dense_keys is None else max(12, min(26, int(dense_keys).bit_length() + 1))
        self._before: object = None  # the connection's own value while ours is set (None: not set)

    def _tune(self) -> None:
        if self._bits is not None and self._before is None:
            self._before = self.con.execute(_CURRENT_THRESHOLD).fetchall()[0][0]
            self.con.execute(_set_threshold(self._bits))

    def release(self) -> None:
        """The connection's own hash-table setting back (the next statement sets ours again)."""
        if self._before is not None:
            self.con.execute(_set_threshold(int(str(self._before))))
            self._before = None

    def _text(self, kind: str, name: str, query: Query, temporary: bool) -> str:
        """`CREATE OR REPLACE [TEMP] TABLE|VIEW name AS query`, as a sqlglot statement around the step's tree."""
        return TEXTS.text(
            query,
            (self.dialect, kind, name, temporary),
            lambda q: sql(create(kind, name, q, temporary), self.dialect, copy=False),
        )

    def materialize(self, name: str, query: Query, temporary: bool = False) -> None:
        self._tune()
        self.con.execute(self._text("TABLE", name, query, temporary))

    def view(self, name: str, query: Query, temporary: bool = False) -> None:
        """Created, unless the store already holds this very view: a stored view made from the same statement
        is kept as it is.

        Why: DuckDB binds a view's query when the view is created, and the ledger's views nest the compiled
        scoring query: 26 ms each at any size (of a small store's run, three such views were a tenth), for
        views whose statement most runs repeat word for word. Each stored view carries the digest of the
        statement it was made from as its comment (`_VIEW_MARK`); `CREATE OR REPLACE` and `DROP` lose the comment,
        so a view replaced or dropped by anyone else is never mistaken for ours. A view is bound when it is
        read, not when it was made, so a kept view reads the tables as they are now. Temporary views (one
        connection's, cheap ones here) are always made."""
        text = self._text("VIEW", name, query, temporary)
        self._tune()
        if temporary:
            self.con.execute(text)
            return
        mark = _VIEW_MARK + hashlib.sha256(text.encode()).hexdigest()
        if self.con.execute(_VIEW_COMMENT, [name]).fetchall() == [(mark,)]:
            return
        self.con.execute(text)
        comment = exp.Comment(this=_table(name), kind="VIEW", expression=exp.Literal.string(mark))
        self.con.execute(sql(comment, self.dialect, copy=False))

    def load(self, name: str, table: pa.Table, temporary: bool = False) -> None:
        self._tune()
        self.con.register("_executor_load", table)
        try:
            self.con.execute(self._text("TABLE", name, exp.select("*").from_("_executor_load"), temporary))
        finally:
            self.con.unregister("_executor_load")

    def append(self, name: str, query: Query) -> int:
        text = TEXTS.text(
            query,
            (self.dialect, "INSERT", name),
            lambda q: sql(exp.insert(q, _table(name), copy=False), self.dialect, copy=False),
        )
        self._tune()
        rows = self.con.execute(text).fetchall()
        return int(rows[0][0]) if rows else 0

    def extend(self, name: str, query: Query) -> None:
        """An append whose count is not asked for: DuckDB counts as it inserts, so it is `append`."""
        self.append(name, query)

    def delete(self, name: str, condition: Query) -> None:
        text = TEXTS.text(
            condition,
            (self.dialect, "DELETE", name),
            lambda c: sql(exp.delete(_table(name), where=c), self.dialect, copy=False),
        )
        self._tune()
        self.con.execute(text)

    def update(self, name: str, key: str, query: Query) -> None:
        """`UPDATE name SET c = u.c, … FROM (query) AS u WHERE name.key = u.key`: in place."""
        text = TEXTS.text(
            query,
            (self.dialect, "UPDATE", name, key),
            lambda q: sql(updated(name, key, q), self.dialect, copy=False),
        )
        self._tune()
        self.con.execute(text)

    def fetch(self, query: Query) -> pa.Table:
        text = TEXTS.text(query, (self.dialect, "SELECT"), lambda q: sql(q, self.dialect, copy=False))
        self._tune()
        return self.con.sql(text).to_arrow_table()

    def drop(self, name: str) -> None:
        # DROP TABLE on a view is an error (and an error aborts the store's transaction): ask what it is first
        kinds = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ? "
            "AND table_catalog = current_database() AND table_schema = current_schema()",
            [name],
        ).fetchall()
        kind = "VIEW" if ("VIEW",) in kinds else "TABLE"
        drop = exp.Drop(tables=[_table(name)], kind=kind, exists=True)
        self.con.execute(sql(drop, self.dialect, copy=False))

    def keep(self, name: str) -> None:
        """Nothing: DuckDB plans a view cheaply and reads it where it is used (a copy would cost a write)."""


# a stored view's comment when the engine made it: the digest of the statement it was made from (`view`)
_VIEW_MARK = "made by the socialcredit engine from the statement with sha256 "
_VIEW_COMMENT = """SELECT comment FROM duckdb_views() WHERE view_name = ? AND NOT temporary
                   AND database_name = current_database() AND schema_name = current_schema()"""
_CURRENT_THRESHOLD = exp.select(exp.func("current_setting", exp.Literal.string("perfect_ht_threshold"))).sql("duckdb")


def _set_threshold(bits: int) -> str:
    return exp.Set(
        expressions=[exp.EQ(this=exp.column("perfect_ht_threshold"), expression=exp.Literal.number(bits))]
    ).sql("duckdb")


def updated(name: str, key: str, query: exp.Expression) -> exp.Update:
    """The UPDATE of `DuckDBExecutor.update`: every column `query` names but the key, set from its row."""
    columns = updated_columns(name, key, query)
    return exp.Update(
        this=_table(name),
        expressions=[
            exp.EQ(this=exp.column(c, quoted=True), expression=exp.column(c, table="u", quoted=True)) for c in columns
        ],
        from_=exp.From(this=exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("u")))),
        where=exp.Where(
            this=exp.EQ(
                this=exp.column(key, table=name, quoted=True), expression=exp.column(key, table="u", quoted=True)
            )
        ),
    )


def _table(name: str) -> exp.Table:
    """A step's name as one identifier (quoted when it must be), never split at a dot."""
    return exp.Table(this=exp.to_identifier(name))
